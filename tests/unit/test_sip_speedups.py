"""The C fast paths (sipwatch.sip.speedups) give exactly what the Python parser gives.

Differential: whenever a fast function answers (not None), its answer must equal the
Python parser's, for RFC 4475 torture messages, public capture payloads, the benchmark
messages and generated ones; for any bytes parse_head must not crash.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipwatch.sip import speedups
from sipwatch.sip.digest import parse_digest
from sipwatch.sip.headers import parse_name_addr, parse_via
from sipwatch.sip.message import parse, parse_pure

if not speedups.AVAILABLE:
    print("sipwatch.sip._speedups is not built: C fast-path tests skipped")
    pytest.skip("C extension sipwatch.sip._speedups not built", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
RFC4475 = ROOT / "tests" / "data" / "rfc4475"
PCAPS = ROOT / ".." / "shared" / "data" / "pcaps"

FIELDS = (
    "raw", "error", "is_request", "method", "ruri", "version", "status", "reason", "headers",
    "body", "anomalies", "cseq_num", "cseq_method", "content_length",
)  # fmt: skip

# anomalies that parse_head's start line + header loop rule out when it answers
HEAD_ANOMALIES = {
    "junk_before_start_line",
    "invalid_version",
    "status_out_of_range",
    "long_method",
    "long_request_uri",
    "bad_request_uri",
    "start_line_whitespace",
    "header_no_colon",
    "bad_header_name",
    "too_many_headers",
    "header_too_long",
    "no_end_of_headers",
}


# --- checks ------------------------------------------------------------------------------
def check_head(data: bytes) -> bool:
    """parse_head agrees with the pure-Python parser; True when it answered."""
    got = speedups.parse_head(data)
    if got is None:
        return False
    msg = parse_pure(data)
    fast = parse(data)  # parse() with the C head: the whole message must come out the same
    for field in FIELDS:
        assert getattr(fast, field) == getattr(msg, field), (field, data[:200])
    (is_request, method, ruri, version, status, reason, headers, body_at, found, cseq_num,
     cseq_method, content_length, body) = got  # fmt: skip
    assert msg.error == ""
    if found is not None:  # C did message._check as well
        assert (found, cseq_num, cseq_method, content_length, body) == (
            msg.anomalies, msg.cseq_num, msg.cseq_method, msg.content_length, msg.body,
        ), data[:200]  # fmt: skip
    else:
        assert (cseq_num, cseq_method, content_length, body) == (None,) * 4
    assert (is_request, method, ruri, version, status, reason) == (
        msg.is_request, msg.method, msg.ruri, msg.version, msg.status, msg.reason,
    ), data[:200]  # fmt: skip
    assert headers == msg.headers, data[:200]
    assert list(headers) == list(msg.headers)  # same order
    assert data[body_at - 4 : body_at] == b"\r\n\r\n"
    assert b"\r\n\r\n" not in data[: body_at - 2]
    assert not HEAD_ANOMALIES & set(msg.anomalies), msg.anomalies
    return True


def check_name_addr(value: str) -> bool:
    got = speedups.name_addr(value)
    if got is None:
        return False
    na = parse_name_addr(value)
    assert na is not None and na.uri is not None, value
    uri = na.uri
    want = (na.display, na.uri_text, uri.scheme, uri.user, uri.host, uri.port)
    assert got[:6] == want, value
    assert got[6] == na.params.get("tag"), value
    assert (got[6] or "") == na.tag
    return True


def check_via(value: str) -> bool:
    got = speedups.via_branch(value)
    if got is None:
        return False
    via = parse_via(value)
    assert via is not None and got == via.branch, value
    return True


def check_digest(value: str) -> bool:
    got = speedups.digest_user_realm(value)
    if got is None:
        return False
    d = parse_digest(value)
    assert d is not None and got == (d.username, d.realm), value
    return True


def check_all_fields(data: bytes) -> int:
    """Check parse_head and every field function on the values of a message."""
    answered = int(check_head(data))
    msg = parse(data)
    got = speedups.flat(msg.headers, msg.ruri)
    if got is not None:  # the all-in-one flat(): same as the field-by-field Python one
        assert got == msg._flat_py() == msg.flat(), data[:200]
        answered += 1
    for name in ("from", "to", "contact", "route", "record-route", "p-asserted-identity"):
        for v in msg.headers.get(name, ()):
            answered += check_name_addr(v)
    for v in msg.headers.get("via", ()):
        answered += check_via(v)
    for name in ("authorization", "proxy-authorization", "www-authenticate"):
        for v in msg.headers.get(name, ()):
            answered += check_digest(v)
    return answered


# --- fixed corpora -------------------------------------------------------------------------
_HEX = re.compile(rb"<hex:([0-9A-Fa-f]*)>")
_REPEAT = re.compile(rb"<repeat count=([0-9]+)>(.*?)</repeat>", re.S)


def load_rfc4475(path: Path) -> bytes:
    raw = path.read_bytes()
    if not path.name.endswith(".lf.sip"):
        raw = raw.replace(b"\n", b"\r\n")
    raw = _REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), raw)
    return _HEX.sub(lambda m: bytes.fromhex(m.group(1).decode()), raw)


def bench_samples() -> list[bytes]:
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from bench_parse import SAMPLES
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return list(SAMPLES.values())


def test_bench_messages_take_the_fast_path():
    for data in bench_samples():
        assert speedups.parse_head(data) is not None
        assert check_all_fields(data) >= 5


def test_rfc4475_torture_messages():
    files = sorted(RFC4475.glob("*.sip"))
    assert len(files) >= 25
    for path in files:
        data = load_rfc4475(path)
        check_all_fields(data)
        for cut in range(0, len(data), 7):  # truncations must not crash either
            check_head(data[:cut])


def test_public_capture_payloads():
    from sipwatch.capture.api import read_captures

    if not PCAPS.is_dir():
        pytest.skip(f"public captures not found at {PCAPS}")
    seen = answered = 0
    for rec in read_captures([str(PCAPS)]):
        payload = rec.raw
        seen += 1
        answered += check_head(payload)
        check_all_fields(payload)
        if seen >= 20000:
            break
    assert seen > 100
    assert answered > 0


def test_mutated_bench_messages():
    """Seeded random edits of real messages and of their header values (bounded: 3000)."""
    import random

    rnd = random.Random(4475)
    seeds = bench_samples()
    values = [
        line.partition(b":")[2].strip().decode("latin-1")
        for data in seeds
        for line in data.split(b"\r\n")[1:]
        if b":" in line
    ]
    alphabet = b'\r\n :;<>"@\\,=\t\x00\xff\xc3\xa9SIP/2.0sip:tag=branch=a1%[]?'

    def mutate(data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(rnd.randint(1, 6)):
            i = rnd.randrange(len(b) + 1)
            op = rnd.randrange(4)
            if op == 0 and b:
                del b[i % len(b) : i % len(b) + rnd.randint(1, 5)]
            elif op == 1:
                b[i:i] = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 4)))
            elif op == 2 and b:
                b[i % len(b)] = rnd.randrange(256)
            else:
                del b[i:]
        return bytes(b)

    answered = 0
    for _ in range(3000):
        answered += check_all_fields(mutate(rnd.choice(seeds)))
        value = mutate(rnd.choice(values).encode("latin-1")).decode("latin-1")
        answered += check_name_addr(value) + check_via(value) + check_digest(value)
    assert answered > 1000  # the fast paths were exercised, not just refused


def test_many_distinct_header_names_and_mixed_spellings():
    """Beyond the bounded name cache the results stay the same; compact and long spellings
    of one header share one list, in order."""
    for batch in range(4):  # 4 x 250 new names: more than the cache holds
        names = "".join(f"X-N{batch}-{i}: {i}\r\n" for i in range(250))
        data = f"OPTIONS sip:a SIP/2.0\r\nv: 1\r\n{names}Via: 2\r\nV : 3\r\n\r\n".encode()
        assert check_head(data)
        assert speedups.parse_head(data)[6]["via"] == ["1", "2", "3"]


def test_unusual_shapes_fall_back():
    p = speedups.parse_head
    ok = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9\r\nCSeq: 1 INVITE\r\n\r\n"
    assert p(ok) is not None
    assert p(b"\r\n" + ok) is None  # leading keep-alive CRLF
    assert p(ok.replace(b"\r\nCSeq", b"\nCSeq")) is None  # bare LF
    assert p(ok.replace(b"\r\nCSeq", b"\r\n CSeq")) is None  # folding
    assert p(ok.replace(b"CSeq:", b"CSeq")) is None  # no colon
    assert p(ok.replace(b"INVITE sip", b"INVITE  sip")) is None  # extra SP
    assert p(ok.replace(b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia")) is None
    assert p(ok[:-2]) is None  # no end of headers
    many = ok[:-2] + b"X: y\r\n" * 256 + b"\r\n"
    assert p(many) is None and p(ok[:-2] + b"X: y\r\n" * 254 + b"\r\n") is not None
    assert p(b"SIP/2.0 200\r\nCSeq: 1 X\r\n\r\n")[5] == ""  # no reason phrase
    assert p(b"SIP/2.0 099 x\r\n\r\n") is None  # status out of range
    assert p(bytearray(ok)) is None and p("text") is None  # not bytes


def test_field_functions_examples():
    na = speedups.name_addr
    assert na('"Bob" <sip:bob@example.com:5070;transport=udp>;tag=a1;x') == (
        "Bob", "sip:bob@example.com:5070;transport=udp", "sip", "bob", "example.com", 5070, "a1",
    )  # fmt: skip
    assert na("sip:100@1.1.1.1") == ("", "sip:100@1.1.1.1", "sip", "100", "1.1.1.1", None, None)
    assert na("Alice <sip:h>") == ("Alice", "sip:h", "sip", "", "h", None, None)
    # IPv6 references: the host without its brackets, as the Python parser gives it
    assert na("<sip:[::1]>") == ("", "sip:[::1]", "sip", "", "::1", None, None)
    assert na('"6" <sip:6@[2001:db8::1]:5062;transport=tcp>;tag=x') == (
        "6", "sip:6@[2001:db8::1]:5062;transport=tcp", "sip", "6", "2001:db8::1", 5062, "x",
    )  # fmt: skip
    assert na("sip:6@[2001:DB8::A]:99999") == (
        "", "sip:6@[2001:DB8::A]:99999", "sip", "6", "2001:DB8::A", None, None,
    )  # fmt: skip
    # addr-spec: the URI ends at the first ';', header parameters follow (RFC 3261 20.10)
    assert na("sip:a@h;tag=1") == ("", "sip:a@h", "sip", "a", "h", None, "1")
    assert na("sip:a@[::1]:5060 ;transport=udp;TAG=2") == (
        "", "sip:a@[::1]:5060", "sip", "a", "::1", 5060, "2",
    )  # fmt: skip
    # a '"' in a display name that does not start with it: the general parser's plain display
    assert na('\\"arik\\" <sip:816666@h>;tag=64') == (
        '\\"arik\\"', "sip:816666@h", "sip", "816666", "h", None, "64",
    )  # fmt: skip
    assert na('a"b <sip:h>')[0] == 'a"b'
    for odd in [
        "sip:%61@h",
        "tel:+1",
        'Bob" < sip:a@h>',  # the general parser strips the URI text; the C does not read it
        "sip:a:pw@h",
        '"a\\"b" <sip:h>',
        "<sip:[::1>",  # unclosed, empty, not hex, doubled, trailing, a port without digits
        "<sip:[]>",
        "<sip:[g::1]>",
        "<sip:[::1]]>",
        "<sip:[::1]x>",
        "<sip:[::1]:>",
        "<sip:a[1]@h>",
        "<sip:h;maddr=[::1]>",
        "sip:a@h;tag=a b",  # header parameters that need header_params' general path
        'sip:a@h;tag="1"',
        ";tag=1",
    ]:
        assert na(odd) is None, odd
        check_name_addr(odd)
    assert speedups.via_branch("SIP/2.0/UDP h:5060;rport;BRANCH=z9hG4bK1") == "z9hG4bK1"
    assert speedups.via_branch("SIP/2.0/UDP h:5060") == ""
    assert speedups.via_branch("SIP/2.0/UDP [::1]:5060;branch=1") == "1"
    assert speedups.via_branch("SIP/2.0/TCP [2001:db8::7];received=2001:db8::7;branch=b") == "b"
    for odd in [
        "SIP/2.0/UDP [::1;branch=1",
        "SIP/2.0/UDP []:5060;branch=1",
        "SIP/2.0/UDP [::1]5060;branch=1",
        "SIP/2.0/UDP [::1]:;branch=1",
        "SIP/2.0/UDP h;branch=1, SIP/2.0/UDP g",  # one via-parm: parse_via reads it all
    ]:
        assert speedups.via_branch(odd) is None, odd
        check_via(odd)
    du = speedups.digest_user_realm
    assert du('Digest username="1001", realm="asterisk", nonce="n"') == ("1001", "asterisk")
    assert du('Digest username="a,b", realm="r"') is None  # quoted comma: the careful parser
    assert du("Digest nonce=1") == ("", "")


# --- generated ----------------------------------------------------------------------------
_NAMES = [
    "Via", "v", "VIA", "From", "f", "To", "t", "Call-ID", "i", "call-id", "CSeq", "Contact", "m",
    "Content-Length", "l", "Content-Type", "c", "User-Agent", "Authorization", "Max-Forwards",
    "X-Custom", "Accept", "Route", "Subject", "s", "k", "P-Asserted-Identity", "Expires",
    "Server", "Proxy-Authorization",
]  # fmt: skip
_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=40)
_PRINT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
_WSP = st.sampled_from(["", " ", "  ", "\t", " \t"])
_FRAG = st.sampled_from(
    ["sip:", "@", ":", ";", "<", ">", '"', "\\", " ", "\t", ",", "=", "tag", "branch", "%41",
     "[::1]", "5060", "99999", "user", "h.example", "\xe9", "\xc3\xa9", "sips:", "TAG=", "?"]
)  # fmt: skip
_PIECES = st.lists(st.one_of(_FRAG, _PRINT, _TEXT), max_size=12).map("".join)


def pick(draw, usual: list[str], odd: list[str]) -> str:
    """Mostly a usual (fast-path) choice, sometimes an odd one the C code must refuse."""
    return draw(st.sampled_from(odd if draw(st.integers(0, 4)) == 0 else usual))


@st.composite
def name_addr_values(draw):
    disp = pick(
        draw,
        ["", '"Bob" ', '"Bob"', "Bob ", '""', "Bob", '\\"arik\\" ', 'a"b" ', 'x"'],
        ['"\xc3\xa9" ', "\xe9 ", '"a\\"b" ', 'a"\xc3\xa9" ', 'a"<b" '],
    )
    user = pick(draw, ["", "100@", "a.b-c@"], ["@", "%41@", "u:p@", "a@b@"])
    host = pick(
        draw,
        ["h", "192.0.2.1", "H.example", "[::1]", "[2001:db8::1]", "[::ffff:192.0.2.1]"],
        ["h,x", "", "h>", "[::1", "[]", "[g::1]", "[::1]]", "[::1]x", "[ ::1]", "::1]", "[[::1]]"],
    )
    port = pick(draw, ["", ":5060", ":0"], [":99999", ":123456", ":x", ":"])
    uparams = pick(
        draw,
        ["", ";transport=udp", ";lr", ";a=b;c", ";user=phone", ";maddr=192.0.2.1"],
        [";a b", ";a?b", "?x=y", ";maddr=[::1]", ";a=%41"],
    )
    scheme = pick(draw, ["sip:"], ["SIP:", "sips:", "tel:", ""])
    params = pick(
        draw,
        ["", ";tag=1", ";TAG=ab", ";tag", ";tag=a;tag=b", ";x;tag=9", ";", " ;tag=7", ";tag="],
        [";tag=a b", ';tag="q"', "x", " ;", ";tag=\xe9", ";tag=1,x"],
    )
    uri = scheme + user + host + port + uparams
    angle = draw(st.integers(0, 3)) > 0 or bool(disp)
    core = f"{disp}<{uri}>{params}" if angle else uri + params
    return pick(draw, [""], [" ", "\t "]) + core + pick(draw, [""], [" ", "\t"])


@st.composite
def via_values(draw):
    proto = pick(draw, ["SIP/2.0/"], ["sip/2.0/", "SIP / 2.0 / ", "SIP/2.0"])
    transport = pick(draw, ["UDP", "tcp", "TLS"], ["", "U1"])
    sep = pick(draw, [" "], ["  ", "\t", ""])
    host = pick(
        draw,
        ["h", "192.0.2.1", "h.example", "[::1]", "[2001:DB8::a]"],
        ["a b", "h(c)", "", "[::1", "[]", "[x]", "[::1]]", "[::1]h", "::1"],
    )
    port = pick(draw, ["", ":5060"], [":99999", ":123456", ":", ":x"])
    params = pick(
        draw,
        ["", ";branch=z9hG4bK1", ";rport;branch=1", ";Branch", ";", ";branch=a;branch=b",
         ";received=2001:db8::1;branch=z9"],
        [';branch="x"', ";branch=1 ", ",SIP/2.0/UDP x", "x", " ;branch=1", " (c);branch=1"],
    )  # fmt: skip
    return proto + transport + sep + host + port + params


@st.composite
def via_lines(draw):
    """A Via header value of one or more via-parms (empty ones and odd separators too)."""
    parts = draw(st.lists(st.one_of(via_values(), st.sampled_from(["", " ", "x"])), min_size=1,
                          max_size=4))  # fmt: skip
    out = parts[0]
    for part in parts[1:]:
        out += pick(draw, [",", ", ", " , "], [",,", "\t,", ', "x",', ",<a,b>,"]) + part
    return out


@st.composite
def digest_values(draw):
    scheme = pick(draw, ["Digest ", ""], ["Digest  ", "Basic ", "digest\t"])
    parts = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["username", "USERNAME", "realm", " realm ", "nonce", "uri", ""]),
                st.sampled_from(["=", "=", " = ", "", "=="]),
                st.sampled_from(['"1001"', "1001", '""', '"a,b"', '"a\\"b"', '"x', 'a"b', ""]),
            ),
            max_size=5,
        )
    )
    sep = pick(draw, [", ", ","], [" , ", ",,"])
    return scheme + sep.join(n + e + v for n, e, v in parts)


# CSeq, Content-Length and body shapes message._check tells apart (all of them the C check
# must either get exactly right or refuse)
_NUMS = ["1", "0", "007", "2147483647", "2147483648", "4294967295", "9999999999", "12345678901"]
_ODD_NUMS = ["-1", "-", "1x", "\xb2", "+1", "", "1.5", "-99999999999"]
_SPACES = [" ", "  ", "\t", "\x0b", "\xa0", "\x85", "\x1c", "\r", ""]
_CMETHODS = ["INVITE", "REGISTER", "OPTIONS", "FOO", "invite", "INVITE x", "", "\xe9", " "]
_CONTENT_LENGTH = st.sampled_from(
    ["{L}", "{L}", "{L+1}", "{L-1}", "0", "", "x", "\xb2", "-1", "1" * 19, "9" * 19, "1" * 20,
     "0" * 25, "{L} ", "{L}x"]
)  # fmt: skip
_BODIES = [
    "", "", "v=0\r\n", "\r\n", "\r\n\r\n", " \t", "x", "v=0\r\no=- 1 1 IN IP4 h\r\n",
    "ab\r\nINVITE sip:a SIP/2.0\r\n\r\n", "SIP/2.0 200 OK\r\n\r\n", "\x00", "\xe9" * 3,
    "y" * 65537, "z" * 65536 + "\r\n",
]  # fmt: skip
_ODD_VALUES = st.sampled_from(
    ["a" * 257, "a" * 1025, '"a', '"a\\"', '"a\\" b"', '"a" "b', '\\"', '""', '"' * 3,
     '"x" <sip:a@h>;tag="', "sip:" + "a" * 300, "SIP/2.0/UDP " + "h" * 1100]
)  # fmt: skip


@st.composite
def cseq_values(draw):
    num = pick(draw, _NUMS, _ODD_NUMS)
    return num + draw(st.sampled_from(_SPACES)) + draw(st.sampled_from(_CMETHODS))


@st.composite
def messages(draw):
    if draw(st.booleans()):
        method = pick(draw, ["INVITE", "REGISTER", "OPTIONS", "FOO", "A%B"], ["x" * 33, "", "A/B"])
        ruri = pick(
            draw,
            ["sip:100@h", "sip:h", "SIP:h", "tel:+1", "1x:y", "sip:a@b?c@d"],
            ["h", "sip:a?b", "sip:a@b?c", "sip:" + "a" * 300, "sip:\xe9", ":x", "-a:b"],
        )
        version = pick(draw, ["SIP/2.0"], ["sip/2.0", "SIP/1.0", "SIP/2.0 "])
        sp = pick(draw, [" "], ["  ", "\t"])
        start = f"{method}{sp}{ruri} {version}"
    else:
        code = pick(draw, ["200", "401", "100", "699"], ["099", "700", "2000", "20", "2x0"])
        reason = pick(draw, ["", " OK", " Not Found ", " "], ["\tOK", "  x", "x"])
        start = pick(draw, ["SIP/2.0 "], ["SIP/2.1 ", "sip/2.0 ", "SIP/2.0  "]) + code + reason
    lines = [start]
    for _ in range(draw(st.integers(0, 14))):
        name = draw(st.sampled_from(_NAMES))
        if draw(st.integers(0, 39)) == 0:
            name = draw(_PRINT)
        if draw(st.integers(0, 9)) == 0:
            name = name.upper() if draw(st.booleans()) else name.lower()
        low = name.lower()
        if low == "cseq" and draw(st.integers(0, 3)):
            value = draw(cseq_values())
        elif low in ("content-length", "l") and draw(st.integers(0, 3)):
            value = draw(_CONTENT_LENGTH)
        else:
            value = draw(
                st.one_of(
                    _PIECES,
                    name_addr_values(),
                    via_values(),
                    via_lines(),
                    digest_values(),
                    _TEXT,
                    _ODD_VALUES,
                )  # fmt: skip
            )
        value = value.replace("\r", "").replace("\n", "")  # mostly no bare CR/LF in values
        if draw(st.integers(0, 39)) == 0:
            value += draw(st.sampled_from(["\r", "\n", "\r\n", "\r\n ", "\r\r\n"]))
        before = pick(draw, [""], [" ", "\t", " \t"])
        after = pick(draw, [" ", ""], ["  ", "\t"])
        lines.append(name + before + ":" + after + value + pick(draw, [""], [" ", "\t"]))
    eol = pick(draw, ["\r\n"], ["\n", "\r"])
    body = draw(st.sampled_from(_BODIES))
    for mark, delta in (("{L}", 0), ("{L+1}", 1), ("{L-1}", -1)):  # lengths near the body's
        lines = [line.replace(mark, str(len(body) + delta)) for line in lines]
    text = eol.join(lines) + "\r\n\r\n" + body
    return text.encode("latin-1")


@settings(max_examples=600, deadline=None)
@given(messages())
def test_generated_messages(data):
    check_all_fields(data)


@settings(max_examples=600, deadline=None)
@given(st.one_of(name_addr_values(), _PIECES))
def test_generated_name_addrs(value):
    check_name_addr(value)


@settings(max_examples=400, deadline=None)
@given(st.one_of(via_values(), _PIECES))
def test_generated_vias(value):
    check_via(value)


@settings(max_examples=400, deadline=None)
@given(via_lines(), st.sampled_from(["sip:a", "sip:a@[::1]:5060;transport=tcp", "sip:[::1"]))
def test_generated_via_lines(value, ruri):
    """flat()'s top branch of a Via line of several via-parms is message.vias[0]'s."""
    data = f"OPTIONS {ruri} SIP/2.0\r\nVia: {value}\r\nVia: SIP/2.0/UDP n;branch=2nd\r\n\r\n"
    check_all_fields(data.encode("latin-1"))


@settings(max_examples=400, deadline=None)
@given(st.one_of(digest_values(), _PIECES))
def test_generated_digests(value):
    check_digest(value)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=1500))
def test_any_bytes(data):
    check_head(data)
    check_head(b"OPTIONS sip:a@b SIP/2.0\r\n" + data)


def test_non_latin1_strings_fall_back():
    assert speedups.name_addr("\u20ac <sip:h>") is None
    assert speedups.via_branch("SIP/2.0/UDP h;branch=\u20ac") is None
    assert speedups.digest_user_realm("Digest username=\u20ac") is None
    assert speedups.name_addr(b"sip:h") is None  # not a str


def test_check_results_and_fall_backs():
    """parse_head also gives message._check's results, or None for the shapes it leaves."""
    head = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n"
    head += b"Call-ID: c1\r\n"
    cases = {
        b"CSeq: 7 INVITE\r\nContent-Length: 3\r\n\r\nabc": ([], 7, "INVITE", 3, b"abc"),
        b"CSeq: 2147483648 BYE\r\nl: 5\r\n\r\nabc": (
            ["cseq_too_large", "cseq_method_mismatch", "content_length_mismatch"],
            2147483648, "BYE", 5, b"abc",
        ),
        b"CSeq: 1\r\nContent-Length: x\r\n\r\n": (["cseq_invalid", "content_length_invalid"],
                                                   None, "", None, b""),
        b"CSeq: 1 INVITE\r\n\r\nv=0\r\n": (["content_length_missing"], 1, "INVITE", None,
                                          b"v=0\r\n"),
        b"CSeq: 1 INVITE\r\nl: 1\r\n\r\na\r\n \t": ([], 1, "INVITE", 1, b"a"),
        # bytes after the body: another message (looks_like_sip) or a mismatch
        b"CSeq: 1 INVITE\r\nl: 0\r\n\r\nOPTIONS sip:a SIP/2.0\r\n\r\n": (
            ["multiple_messages"], 1, "INVITE", 0, b"",
        ),
        b"CSeq: 1 INVITE\r\nl: 2\r\n\r\nv=\r\nSIP/2.0 200": (
            ["multiple_messages"], 1, "INVITE", 2, b"v=",
        ),
        b"CSeq: 1 INVITE\r\nl: 2\r\n\r\nv=0\r\no=x": (
            ["content_length_mismatch"], 1, "INVITE", 2, b"v=",
        ),
    }  # fmt: skip
    for tail, want in cases.items():
        got = speedups.parse_head(head + tail)
        assert got is not None and got[8:] == want, tail
        assert check_head(head + tail)
    for tail in [
        b"CSeq: -1 INVITE\r\n\r\n",  # negative: _cseq_odd
        b"CSeq: 12345678901 INVITE\r\n\r\n",  # more than 10 digits
    ]:
        got = speedups.parse_head(head + tail)
        assert got is not None and got[8:] == (None,) * 5, tail
        assert check_head(head + tail)


# what can follow a body shorter than the whole: start lines (message._START_LINE), near
# misses, truncated ones, at and across looks_like_sip's 4096-byte window
_WS_RUN = st.sampled_from([b" "] * 8 + [b"\t", b" \t ", b"", b"\r"])
_VERSION = st.sampled_from(
    [b"SIP/2.0"] * 8 + [b"sip/12.34", b"SiP/2.0", b"SIP/2", b"SIP/.0", b"SIP2.0", b"SIP/2."]
)


@st.composite
def after_body(draw) -> bytes:
    lead = draw(st.sampled_from([b""] * 3 + [b"\r\n", b"\n\n\r", b"\r\n\r\n", b" ", b"x"]))
    if draw(st.booleans()):
        method = draw(st.sampled_from([b"INVITE"] * 4 + [b"A%B", b"x", b"", b"IN/VITE", b"\xff"]))
        uri = draw(st.sampled_from([b"sip:a@b"] * 4 + [b"*", b"\xe9", b"", b"a\rb"]))
        eol = draw(st.sampled_from([b"\r\n"] * 4 + [b"\n", b"\r", b"", b"\r\r\n", b"x\r\n"]))
        line = method + draw(_WS_RUN) + uri + draw(_WS_RUN) + draw(_VERSION)
        line += draw(st.sampled_from([b"", b" ", b"\t "])) + eol
    else:
        code = draw(st.sampled_from([b"200"] * 4 + [b"2000", b"20", b"2x0", b"099"]))
        line = draw(_VERSION) + draw(_WS_RUN) + code
        line += draw(st.sampled_from([b"", b" OK", b"\r\n", b"\n", b"\t", b"0", b"x"]))
    cut = draw(st.integers(0, 3))
    line = line[: len(line) - cut] if draw(st.integers(0, 3)) == 0 else line
    tail = draw(st.sampled_from([b"", b"\r\n\r\n", b"Via: x\r\n\r\n"]))
    pad = draw(st.sampled_from([0] * 6 + [2038, 2040, 2041, 2042, 2043, 2044]))  # 4096 bytes
    return pad * b"\r\n" + lead + line + tail


@settings(max_examples=600, deadline=None)
@given(after_body(), st.integers(0, 3))
def test_bytes_after_the_body(after, length):
    """multiple_messages or content_length_mismatch, as message.looks_like_sip tells them."""
    body = b"v=0\r\n"[:length]
    data = (
        b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: %d\r\n\r\n" % length + body + after
    )
    check_all_fields(data)


def test_flat_examples():
    flat = speedups.flat
    assert flat({}, "") == ("",) * 10
    h = {
        "from": ['"Bob" <sip:100@h>;tag=a'],
        "to": ["sip:200@h"],
        "via": ["SIP/2.0/UDP h;branch=z9b"],
        "user-agent": [],  # empty: Server is used, as `h.get("user-agent") or h.get("server")`
        "server": ["\xc3\xa9"],
        "proxy-authorization": ['Digest username="u", realm="r"'],
    }
    want = ("300", "Bob", "100", "a", "200", "", "z9b", "\xe9", "u", "r")
    assert flat(h, "sip:300@h") == want
    # request-URI parameters and IPv6 references; the top via-parm of a line of several
    h = {"via": [" , SIP/2.0/UDP [2001:db8::1]:5060;branch=top ,SIP/2.0/UDP h;branch=2"]}
    assert flat(h, "sip:300@[2001:db8::1]:5060;user=phone")[:1] + flat(h, "")[6:7] == (
        "300", "top",
    )  # fmt: skip
    assert flat({}, "sip:[::1];transport=udp")[0] == ""
    for odd_h, odd_ruri in [
        ({"from": ["<tel:1>"]}, ""),  # the Python field parsers decide
        ({"via": ["SIP/2.0/UDP [::1"]}, ""),
        ({"via": ["garbage, SIP/2.0/UDP h;branch=2"]}, ""),  # vias[0] may be a later part
        ({"via": ['SIP/2.0/UDP h;branch=1, SIP/2.0/UDP g;x="y"']}, ""),  # careful split
        ({"via": [","]}, ""),
        ({"user-agent": ["\u20ac"]}, ""),
        ({"via": "not a list"}, ""),
        ({}, "sip:a@h;x?y"),
        ({}, "sip:a@[::1"),
        ({}, "sips:a@h"),
    ]:
        assert flat(odd_h, odd_ruri) is None, (odd_h, odd_ruri)
    assert flat([], "") is None and flat({}, 1) is None
