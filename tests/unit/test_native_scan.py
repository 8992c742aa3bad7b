"""The bulk path's C scanner (sipwatch._native.scan) gives exactly the Python pipeline's fields.

Differential: whenever scan() answers (not None), every field equals what
``parse(raw)`` + store/rows.py ``message_row`` give (plus ``from_display`` and
``has_credentials``), and what the pure-Python parser gives with every C fast path switched
off (the scanner shares its C with the parser's accelerator, so the accelerator alone is not
an independent reference). Inputs: every SIP payload of the public captures, the RFC 4475
torture messages and their truncations, a capture of generated attack traffic (where scan
must handle at least 90% of the messages), hypothesis mutations of valid messages and random
bytes (never a crash).

Under AddressSanitizer and UBSan (scan() scans an exact-size copy on the C heap, so a read
past the end is seen; --capture=sys lets a sanitizer report reach the terminal):

    CFLAGS='-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer' \
        python setup.py build_ext --inplace --force
    LD_PRELOAD=$(gcc -print-file-name=libasan.so) PYTHONMALLOC=malloc \
        ASAN_OPTIONS=detect_leaks=0 python -m pytest --capture=sys tests/unit/test_native_scan.py
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sip_rfc4475 import DATA as RFC4475
from test_sip_rfc4475 import load as load_rfc4475

from sipwatch.record import Record
from sipwatch.sip import message
from sipwatch.sip.message import parse, parse_pure
from sipwatch.sip.names import COMPACT
from sipwatch.store.rows import message_row
from sipwatch.store.schema import MESSAGE_COLUMNS

try:
    from sipwatch import _native
except ImportError:
    _native = None
if _native is None or not hasattr(_native, "scan"):
    print("sipwatch._native.scan is not built: native scanner tests skipped")
    pytest.skip("sipwatch._native has no scan()", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT / ".." / "shared" / "data" / "pcaps"

# the sw_msg fields that are row columns under the same name
ROW_FIELDS = (
    "method", "status", "reason", "ruri", "ruri_user", "from_user", "from_tag", "to_user",
    "to_tag", "call_id", "cseq_num", "cseq_method", "via_branch", "user_agent", "auth_user",
    "auth_realm", "contact", "content_type", "body_len", "anomalies", "error",
)  # fmt: skip


# --- the reference -------------------------------------------------------------------------
def python_fields(msg: message.SipMessage) -> dict:
    """What the Python pipeline stores (and labels read) for a parsed message."""
    rec = Record(1700000000.0, "udp", "192.0.2.1", 5060, "192.0.2.2", 5060, msg.raw, msg)
    row = dict(zip(MESSAGE_COLUMNS, message_row(rec), strict=True))
    out = {k: row[k] for k in ROW_FIELDS}
    out["is_request"] = bool(row["is_request"])
    out["has_cseq"] = row["cseq_num"] is not None
    out["from_display"] = msg.from_display
    out["has_credentials"] = msg.has_credentials
    # the text msg.credentials parses, and the body: what the password recovery reads
    cred = msg.headers.get("authorization") or msg.headers.get("proxy-authorization")
    out["credentials"] = cred[0] if cred else ""
    out["body"] = msg.body
    return out


@contextmanager
def pure_python() -> Iterator[None]:
    """Switch off the C field fast paths message.py uses (parse_pure skips parse_head)."""
    names = ("_flat", "_name_addr", "_via_branch", "_digest_user_realm")
    saved = {name: getattr(message, name) for name in names}
    for name in names:
        setattr(message, name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(message, name, value)


def check(raw: bytes) -> bool:
    """scan(raw) agrees with the Python pipeline; True when it answered."""
    got = _native.scan(raw)
    if got is None:
        return False
    want = python_fields(parse(raw))
    diff = {k: (got.get(k), want[k]) for k in want if got.get(k) != want[k]}
    assert not diff and set(got) == set(want), (diff, raw[:300])
    with pure_python():
        pure = python_fields(parse_pure(raw))
    diff = {k: (got.get(k), pure[k]) for k in pure if got.get(k) != pure[k]}
    assert not diff, ("pure Python", diff, raw[:300])
    return True


# --- corpora -------------------------------------------------------------------------------
class Payload(NamedTuple):
    raw: bytes
    ts: float


def keep_raw(raw: bytes, ts: float, *_seen: object, **_more: object) -> Payload:
    return Payload(raw, ts)


def capture_payloads(path: Path) -> list[bytes]:
    from sipwatch.capture.api import read_captures

    return [p.raw for p in read_captures([str(path)], make_record=keep_raw)]


def bench_samples() -> list[bytes]:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from bench_parse import SAMPLES
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return list(SAMPLES.values())


@pytest.fixture(scope="module")
def attack_payloads(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """20,000 messages of generated attack traffic (bench/gen_capture.py)."""
    out = tmp_path_factory.mktemp("gen") / "attack.pcap"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gen_capture.py"), "--packets", "20000",
         "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    payloads = capture_payloads(out)
    assert len(payloads) == 20000
    return payloads


# --- tests ---------------------------------------------------------------------------------
def test_generated_attack_traffic(attack_payloads):
    handled = sum(check(raw) for raw in attack_payloads)
    share = handled / len(attack_payloads)
    print(f"native scan handled {handled} of {len(attack_payloads)} messages ({share:.1%})")
    assert share >= 0.90
    assert _native.scan_count(attack_payloads) == handled


def test_public_capture_payloads():
    if not PCAPS.is_dir():
        pytest.skip(f"public captures not found at {PCAPS}")
    payloads = capture_payloads(PCAPS)
    assert len(payloads) > 100
    handled = sum(check(raw) for raw in payloads)
    print(f"native scan handled {handled} of {len(payloads)} public capture payloads")
    assert handled > 0


def test_rfc4475_torture_messages():
    files = sorted(RFC4475.glob("*.sip"))
    assert len(files) >= 25
    for path in files:
        data = load_rfc4475(path.name)
        check(data)
        for cut in range(0, len(data), 5):  # truncations must not crash or differ either
            check(data[:cut])


def test_bench_messages():
    for raw in bench_samples():
        assert check(raw), raw[:80]


def test_fields_of_typical_messages():
    register, options, response, invite = bench_samples()
    got = _native.scan(register)
    assert got["method"] == "REGISTER" and got["ruri"] == "sip:192.0.2.10"
    assert (got["from_display"], got["from_user"], got["to_user"]) == ("1001", "1001", "1001")
    assert (got["auth_user"], got["auth_realm"], got["has_credentials"]) == (
        "1001", "asterisk", True,
    )  # fmt: skip
    assert (got["cseq_num"], got["cseq_method"], got["anomalies"]) == (2, "REGISTER", "")
    assert got["via_branch"] == "z9hG4bK-2471795231"
    got = _native.scan(response)
    assert (got["is_request"], got["status"], got["reason"]) == (False, 401, "Unauthorized")
    assert got["user_agent"] == "Asterisk PBX 16.2.1"  # Server when there is no User-Agent
    assert got["to_tag"] == "as5f2e6a1b" and got["method"] == ""
    got = _native.scan(invite)
    assert got["ruri_user"] == "0046812345678" and got["content_type"] == "application/sdp"
    assert got["body_len"] > 0


def test_anomalies_and_odd_bodies_are_handled():
    head = b"INVITE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9\r\nf: <sip:a@h>;tag=1\r\n"
    cases = {
        b"CSeq: 1 BYE\r\n\r\n": "missing_to,missing_call_id,cseq_method_mismatch",
        b"t: <sip:b@h>\r\ni: c\r\nI: d\r\nCSeq: 2147483648 INVITE\r\nl: 9\r\n\r\n\xff\xfe": (
            "duplicate_header,cseq_too_large,content_length_mismatch"
        ),
        b"To: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1\r\n\r\nv=0\xe9": (
            "cseq_invalid,content_length_missing"
        ),
        b"To: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nl: x\r\n\r\n": "content_length_invalid",
    }
    for tail, anomalies in cases.items():
        assert _native.scan(head + tail)["anomalies"] == anomalies, tail
        assert check(head + tail)
    # an open quote in From/To is never the name-addr shape scan reads: the Python parser's
    odd = head + b'To: "b <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n'
    assert _native.scan(odd) is None and parse(odd).anomalies == ["unbalanced_quotes"]
    assert _native.scan(head + b"To: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
                        b"Content-Length: 70000\r\n\r\n" + b"x" * 70000)["anomalies"] == (
        "body_too_large"
    )  # fmt: skip


def test_unusual_shapes_fall_back():
    ok = bench_samples()[0]
    assert check(ok)
    for odd in [
        b"\r\n" + ok,  # leading keep-alive CRLF
        ok.replace(b"\r\nCSeq", b"\nCSeq"),  # bare LF
        ok.replace(b"\r\nCSeq", b"\r\n CSeq"),  # folding
        ok.replace(b"User-Agent: friendly", b"User-Agent: fr\xc3\xa9ndly"),  # non-ASCII in head
        ok.replace(b"User-Agent: friendly", b"User-Agent: fr\x7fndly"),  # DEL
        ok.replace(b"Expires: 3600", b"Expires: 36\r00"),  # a CR inside a line
        ok.replace(b"CSeq: 2", b"CSeq: -2"),  # negative CSeq: _cseq_odd
        ok.replace(b"CSeq: 2", b"CSeq: 12345678901"),  # more than 10 digits
        ok.replace(b"sip:192.0.2.10 SIP", b"tel:+4930123 SIP"),
        ok.replace(b"sip:192.0.2.10 SIP", b"sip:[2001:db8::10 SIP"),  # unclosed IPv6 reference
        ok.replace(b"UDP 198.51.100.7:5060", b"UDP [2001:db8::1]5060"),
        ok.replace(b"Via: SIP", b"Via: junk, SIP"),  # vias[0]: parse_via decides about "junk"
        ok.replace(b"Via: SIP", b'Via: SIP/2.0/UDP h, "x" SIP'),  # split_commas' careful path
        ok.replace(b'From: "1001"', b'From: "10\\"01"'),  # escaped quote in a display name
        ok.replace(b'username="1001"', b'username="10,01"'),  # quoted comma in digest
        ok.replace(b"REGISTER sip", b"REGISTER  sip"),  # start line whitespace
        ok[:-2],  # no end of headers
    ]:
        assert _native.scan(odd) is None, odd[:120]
        assert not check(odd)
    lines = ok.count(b"\r\n") - 2  # header lines
    assert check(ok[:-2] + b"X: y\r\n" * (256 - lines) + b"\r\n")  # 256 header lines
    assert _native.scan(ok[:-2] + b"X: y\r\n" * (257 - lines) + b"\r\n") is None
    long_name = ok[:-2] + b"X-" + b"N" * 60 + b": 1\r\nCall-ID-Not: 2\r\n\r\n"
    assert check(long_name)  # any other header, however long its name
    body = ok.replace(b"Content-Length: 0", b"Content-Length: 4") + b"\xc3\xa9\x00\xff"
    assert check(body)  # any bytes in the body
    for extra, anomaly in [  # bytes after the body: another message, or a mismatch
        (b"OPTIONS sip:a SIP/2.0\r\n\r\n", "multiple_messages"),
        (b"\r\nSIP/2.0 200", "multiple_messages"),
        (b"\r\n" * 2042 + b"\nSIP/2.0 2000", "multiple_messages"),  # '$' at byte 4096
        (b"\r\n" * 2043 + b"SIP/2.0 200", "content_length_mismatch"),  # past its 4096 bytes
        (b"v=0\r\n", "content_length_mismatch"),
        (b"SIP/2.0 2000", "content_length_mismatch"),
    ]:
        assert check(ok + extra), extra[-40:]
        assert _native.scan(ok + extra)["anomalies"] == anomaly, extra[-40:]
    with pytest.raises(TypeError):
        _native.scan("text")
    assert _native.scan(b"") is None and _native.scan(b"SIP/2.0 200 OK\r\n\r\n") is not None


def test_ipv6_uri_params_and_via_lists():
    """IPv6 references (request-URI, From, To, Contact, Via sent-by), URI parameters, a Via
    line of several via-parms: the fields the Python parser gives for them."""
    base = bench_samples()[0]
    v6 = (
        base.replace(b"REGISTER sip:192.0.2.10 SIP", b"REGISTER sip:[2001:db8:5060::10] SIP")
        .replace(b"UDP 198.51.100.7:5060", b"TCP [3bd0:6555::d4c]:42797")
        .replace(b"@192.0.2.10>", b"@[2001:db8:5060::10]>")
        .replace(b"@198.51.100.7:5060>", b"@[3bd0:6555::d4c]:42797>")
    )
    assert v6.count(b"[") == 5
    got = _native.scan(v6)
    assert check(v6) and got["ruri"] == "sip:[2001:db8:5060::10]" and got["ruri_user"] == ""
    assert (got["from_user"], got["to_user"], got["via_branch"]) == (
        "1001", "1001", "z9hG4bK-2471795231",
    )  # fmt: skip
    assert got["contact"].startswith("<sip:1001@[3bd0:6555::d4c]:42797>")
    cases = {  # request-URI -> its user
        b"sip:100@[2001:db8::1]:5060": "100",
        b"sip:100@192.0.2.10;transport=udp": "100",
        b"sip:+4930123@h;user=phone;transport=UDP": "+4930123",
        b"sip:[::1];lr": "",
        b"sip:a@[::ffff:192.0.2.1]:99999;x": "a",  # a port above 65535 is None, the user stays
    }
    for ruri, user in cases.items():
        data = base.replace(b"sip:192.0.2.10 SIP", ruri + b" SIP")
        assert check(data) and _native.scan(data)["ruri_user"] == user, ruri
    # addr-spec From/To: the URI ends at the first ';', the rest are header parameters
    data = base.replace(b'"1001"<sip:1001@192.0.2.10>;tag=', b"sip:1001@[2001:db8::1];tag=")
    assert data != base and check(data)
    assert (_native.scan(data)["from_user"], _native.scan(data)["from_tag"]) == (
        "1001", "3130303133393330393634",
    )  # fmt: skip
    via = b"Via: ,SIP/2.0/UDP [2001:db8::1];branch=top;received=2001:db8::1 , SIP/2.0/UDP h"
    data = base.replace(b"Via: SIP/2.0/UDP", via + b";branch=2, SIP/2.0/UDP")
    assert check(data) and _native.scan(data)["via_branch"] == "top"


def test_display_name_with_a_quote_inside():
    """A display name that has a '"' but does not start with one (a softphone of the public
    captures escapes its quotes outside a quoted string) is read as the Python parser does."""
    base = bench_samples()[0]
    data = base.replace(b'From: "1001"<sip', b'From: \\"arik\\" <sip')
    assert data != base
    got = _native.scan(data)
    assert check(data) and (got["from_display"], got["from_user"]) == ('\\"arik\\"', "1001")
    odd = base.replace(b'From: "1001"<sip', b'From: a"b <sip')  # unbalanced: an anomaly
    assert check(odd) and _native.scan(odd)["anomalies"] == "unbalanced_quotes"


def test_header_name_spellings():
    """Compact forms and any case of a name map as the Python parser maps them."""
    inverse = {long: short for short, long in COMPACT.items()}
    base = bench_samples()[0]
    head, _, _ = base.partition(b"\r\n\r\n")
    start, *lines = head.split(b"\r\n")
    for style in ("upper", "lower", "compact", "COMPACT", "spaced"):
        out = [start]
        for line in lines:
            name, _, value = line.partition(b": ")
            text = name.decode()
            if style == "upper":
                text = text.upper()
            elif style == "lower":
                text = text.lower()
            elif style in ("compact", "COMPACT") and text.lower() in inverse:
                short = inverse[text.lower()]
                text = short.upper() if style == "COMPACT" else short
            elif style == "spaced":
                text += " \t"
            out.append(text.encode() + b": " + value)
        data = b"\r\n".join(out) + b"\r\n\r\n"
        assert check(data), style
        assert _native.scan(data)["auth_user"] == "1001"


# --- generated -----------------------------------------------------------------------------
SEEDS = [
    *bench_samples(),
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKx;rport=5060\r\n"
    b"From: <sip:100@192.0.2.10>;tag=aa\r\nTo: Bob <sip:200@192.0.2.10>;tag=bb;x\r\n"
    b"Call-ID: abc@h\r\nCSeq: 7 INVITE\r\nContact: <sip:200@192.0.2.20:5060;transport=tcp>\r\n"
    b"Server: FPBX-13.0\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\r",
    b"INVITE sip:+8821234@192.0.2.10:5060 SIP/2.0\r\nv: SIP/2.0/UDP 203.0.113.9;branch=1\r\n"
    b"f: sip:+4930@203.0.113.9\r\nt: <sip:+8821234@192.0.2.10>\r\ni: 1-2-3\r\n"
    b"CSeq: 102 INVITE\r\nm: <sip:+4930@203.0.113.9>\r\nc: application/sdp\r\n"
    b'Proxy-Authorization: Digest realm="r", username="u", nonce="n", uri="sip:x"\r\n'
    b"l: 3\r\n\r\nv=0",
    b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: a <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n"
    b"Call-ID: x\r\nCSeq: 3 BYE\r\n\r\n",
    b"REGISTER sip:[2001:db8:5060::10] SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP [3bd0:6555::d4c]:42797;branch=z9hG4bKc2;rport\r\n"
    b'From: "639" <sip:639@[2001:db8:5060::10]>;tag=3633\r\nTo: "639" <sip:639@[2001:db8::10]>\r\n'
    b"Call-ID: 8674\r\nCSeq: 1 REGISTER\r\nContact: <sip:639@[3bd0:6555::d4c]:42797>\r\n"
    b"User-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n",
    b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP [21f5::30b9]:5060;branch=z9hG4bKf;rport=5060;"
    b"received=21f5::30b9, SIP/2.0/UDP 192.0.2.1;branch=2\r\nFrom: sip:a@[2001:db8::10];tag=61\r\n"
    b"To: <sip:a@[2001:db8::10];user=phone>;tag=85\r\nCall-ID: 5596\r\nCSeq: 1 REGISTER\r\n"
    b"Server: Asterisk PBX 18.12.1\r\nContent-Length: 0\r\n\r\n",
]
_HEADER_NAMES = [
    "Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Contact", "m", "Content-Type",
    "c", "Content-Length", "l", "User-Agent", "Server", "Authorization", "Proxy-Authorization",
    "X-A-Header-Name-Longer-Than-Any-Key", "X-" + "N" * 48, "Accept", "k", "s", "x",
]  # fmt: skip
_VALUES = [
    "", "a" * 257, "a" * 1025, '"a', '"a\\"', '"x" <sip:a@h>;tag="', "sip:" + "a" * 300,
    "SIP/2.0/UDP " + "h" * 1100, "SIP/2.0/UDP h;branch=z9;branch=z8", "SIP/2.0/UDP h:5060;Branch",
    "SIP/2.0/UDP h, SIP/2.0/UDP g", "SIP/2.0/UDP [::1]", "<sip:a@h>;TAG=Q", "<sip:a@h>;tag",
    "<sip:a@h>;tag=1;tag=2", "Bob <sip:%41@h>", "sip:a@h;tag=1", "<tel:+1>", "<sip:h:99999>",
    '"\\\\" <sip:a@h>', "Digest username=u, realm=r", 'Digest username="", realm="r"',
    "Digest nonce=1", 'Basic realm="x"', "\xe9", "\xc3\xa9", "a\x00b", "a\tb", "x" * 9000,
    "application/sdp", "<sip:a@h>, <sip:b@h>", "*",
    "<sip:[::1]>", "sip:a@[2001:db8::1]:5060;tag=9", "<sip:a@[::1>", "<sip:[]>", "<sip:[::1]]>",
    "<sip:a@[::1]:5060;transport=udp>;tag=v6", "<sip:[g::1]>", "sip:[::1]:;tag=1",
    "SIP/2.0/UDP [::1]:5060;branch=b6", "SIP/2.0/UDP [::1;branch=b", "SIP/2.0/UDP []",
    "SIP/2.0/UDP h;branch=1,SIP/2.0/UDP g;branch=2", ",, SIP/2.0/UDP [::1];branch=3 ,",
    "x, SIP/2.0/UDP h;branch=4", 'SIP/2.0/UDP h;branch=5, SIP/2.0/UDP g;x="y"',
]  # fmt: skip
_CSEQ = [
    f"{n}{sp}{m}"
    for n in ("1", "0", "007", "2147483647", "2147483648", "9999999999", "12345678901", "-1", "x")
    for sp in (" ", "\t", "  ")
    for m in ("INVITE", "REGISTER", "OPTIONS", "invite", "")
]  # fmt: skip
_CONTENT_LENGTH = ["{L}", "{L}", "{L+1}", "{L-1}", "0", "", "x", "-1", "9" * 19, "1" * 20, " {L}"]
_BODIES = [
    b"", b"v=0\r\n", b"\r\n", b"\r\n\t ", b"\x00\xff\xc3\xa9", b"ab\r\nINVITE sip:a SIP/2.0\r\n\r\n",
    b"y" * 65537,
]  # fmt: skip
_OPS = ["case", "compact", "drop", "dup", "value", "cseq", "clen", "body", "sep", "add", "start"]


@st.composite
def mutated_messages(draw) -> bytes:
    raw = draw(st.sampled_from(SEEDS))
    head, _, body = raw.partition(b"\r\n\r\n")
    start, *lines = head.decode("latin-1").split("\r\n")
    headers = [list(line.partition(":")) for line in lines]  # [name, ":", value]
    inverse = {long: short for short, long in COMPACT.items()}
    for op in draw(st.lists(st.sampled_from(_OPS), max_size=6)):
        i = draw(st.integers(0, max(0, len(headers) - 1)))
        h = headers[i] if headers else None
        if op == "case" and h:
            h[0] = draw(st.sampled_from([h[0].upper(), h[0].lower(), h[0].swapcase()]))
        elif op == "compact" and h:
            low = h[0].strip().lower()
            h[0] = inverse.get(low) or COMPACT.get(low) or h[0]
            if draw(st.booleans()):
                h[0] = h[0].upper()
        elif op == "drop" and h:
            del headers[i]
        elif op == "dup" and h:
            headers.insert(i, list(h))
        elif op == "value" and h:
            h[2] = " " + draw(st.sampled_from(_VALUES))
        elif op == "cseq":
            headers.append(["CSeq", ":", " " + draw(st.sampled_from(_CSEQ))])
            if draw(st.booleans()):
                headers = [x for x in headers[:-1] if x[0].lower() != "cseq"] + headers[-1:]
        elif op == "clen":
            headers = [x for x in headers if x[0].strip().lower() not in ("content-length", "l")]
            headers.append([draw(st.sampled_from(["Content-Length", "l"])), ":",
                            " " + draw(st.sampled_from(_CONTENT_LENGTH))])  # fmt: skip
        elif op == "body":
            body = draw(st.sampled_from(_BODIES))
        elif op == "sep" and h:
            h[1] = draw(st.sampled_from([" :", ":", "\t:", " \t:"]))
            h[2] = draw(st.sampled_from(["", " ", "\t"])) + h[2].strip(" \t")
        elif op == "add":
            name = draw(st.sampled_from(_HEADER_NAMES))
            headers.insert(i, [name, ":", " " + draw(st.sampled_from(_VALUES))])
        elif op == "start":
            start = draw(
                st.sampled_from(
                    [start.lower(), start + " ", "SIP/2.0 180 Ringing", "SIP/2.0 200",
                     "SIP/2.0 099 x", "SIP/2.0 404 Not \xe9", "SIP/2.0 486 \tBusy\t",
                     "OPTIONS sip:100@h SIP/2.0", "FOO sip:x@y SIP/2.0", "A%B sip:y SIP/2.0",
                     "INVITE sip:a@b;lr SIP/2.0", "INVITE sips:a@b SIP/2.0",
                     "INVITE sip:a@[::1]:5060;user=phone SIP/2.0", "OPTIONS sip:[::1] SIP/2.0",
                     "INVITE sip:a@[::1 SIP/2.0", "INVITE sip:a@[::1]x SIP/2.0"]
                )
            )  # fmt: skip
    for h in headers:
        h[2] = h[2].replace("{L}", str(len(body)))
        h[2] = h[2].replace("{L+1}", str(len(body) + 1)).replace("{L-1}", str(len(body) - 1))
    text = "\r\n".join([start, *("".join(h) for h in headers)]) + "\r\n\r\n"
    data = text.encode("latin-1") + body
    if draw(st.integers(0, 5)) == 0:  # a byte-level edit anywhere: LF, CR, SP, HT, any byte
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from([b"\n", b"\r", b"\r\n ", b" ", b"\t", b"\x80", b"\x00"]))
        data = data[:at] + edit + data[at + draw(st.integers(0, 2)) :]
    return data


@settings(max_examples=1500, deadline=None)
@given(mutated_messages())
def test_mutated_messages(data):
    check(data)


# IPv6 references, URI parameters and Via lines of several via-parms, usual and malformed
_V6 = ["[2001:db8::1]", "[::1]", "[::ffff:192.0.2.1]", "[2001:DB8:0:0:0:0:0:A]", "[3bd0::d4c]"]
_V6_ODD = [
    "[2001:db8::1", "2001:db8::1]", "[]", "[g::1]", "[::1]]", "[[::1]]", "[::1]x", "[ ::1]",
    "[::1]@h", "::1", "[::1]:", "[::1]:123456", "[::1]:x", "[::1];]", "[::1];x=[",
]  # fmt: skip
_HOSTS = ["192.0.2.10", "pbx.example", "h", *_V6]
_PORTS = ["", ":5060", ":0", ":65535", ":65536", ":99999"]
_URI_PARAMS = ["", ";transport=udp", ";user=phone", ";transport=UDP;lr", ";lr", ";maddr=h"]
_URI_PARAMS_ODD = [";maddr=[::1]", ";a b", "?h=v", ';a="b"', ";%41", ";a@b", ";a,b"]
_USERS = ["", "100@", "+4930123@", "@", "a.b-c@"]
_USERS_ODD = ["%41@", "a:pw@", "a[1]@", "a@b@", "a b@"]


def pick(draw, usual: list[str], odd: list[str], odds: int) -> str:
    """A usual choice, or with a chance of 1 in `odds` (0: never) a malformed one (which the
    scanner must refuse or get right)."""
    bad = odds > 0 and draw(st.integers(1, odds)) == 1
    return draw(st.sampled_from(odd if bad else usual))


@st.composite
def sip_uris(draw, odds: int) -> str:
    scheme = pick(draw, ["sip:"], ["sips:", "SIP:", "tel:"], odds)
    user = pick(draw, _USERS, _USERS_ODD, odds)
    host = pick(draw, _HOSTS, _V6_ODD, odds)
    port = pick(draw, _PORTS, [":", ":x", ":123456"], odds)
    return scheme + user + host + port + pick(draw, _URI_PARAMS, _URI_PARAMS_ODD, odds)


@st.composite
def name_addrs(draw, odds: int) -> str:
    uri = draw(sip_uris(odds))
    params = pick(
        draw,
        ["", ";tag=1a", ";TAG=Q", ";tag", ";x=1;tag=z", ";tag=a;tag=b", ";", " ;tag=7"],
        [";tag=a b", ';tag="q"', ";tag=1,x", ";tag=[::1]"],
        odds,
    )
    display = pick(
        draw,
        ["", '"639" ', '"639"', "Bob ", '"a b" ', '\\"arik\\" '],
        ['"a\\"b" ', '"x', 'a"b ', 'x"y"<z" '],
        odds,
    )
    if display or draw(st.booleans()):
        return f"{display}<{uri}>{params}"
    return uri + params  # addr-spec: the first ';' ends the URI


@st.composite
def via_lines(draw, odds: int) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        host = pick(draw, _HOSTS, _V6_ODD, odds)
        host += pick(draw, ["", ":5060", ":42797"], [":", ":1x"], odds)
        params = pick(
            draw,
            ["", ";branch=z9hG4bK1", ";branch=b;rport", ";rport=5060;branch=v6;received=::1",
             ";Branch=B", ";received=2001:db8::1;branch=z9"],
            [";branch=a b", ';branch="q"', " ;branch=1", ";branch=(c)"],
            odds,
        )  # fmt: skip
        transport = pick(draw, ["UDP", "TCP", "tls"], ["", "U1"], odds)
        via = f"SIP/2.0/{transport} {host}{params}"
        parts.append(pick(draw, [via], ["", " ", "junk", "<a,b>"], odds))
    seps = [pick(draw, [",", ", ", " ,"], [",,", ', "q",', "\t, "], odds) for _ in parts[1:]]
    return "".join(p + sep for p, sep in zip(parts[:-1], seps, strict=True)) + parts[-1]


@st.composite
def shaped_messages(draw) -> bytes:
    odds = draw(st.sampled_from([0, 40, 12, 4]))  # how often a part is a malformed one
    method = draw(st.sampled_from(["REGISTER", "INVITE", "OPTIONS"]))
    if draw(st.integers(0, 3)):
        start = f"{method} {draw(sip_uris(odds))} SIP/2.0"
    else:
        start = draw(st.sampled_from(["SIP/2.0 401 Unauthorized", "SIP/2.0 403 Forbidden"]))
    lines = [start]
    lines += [f"Via: {draw(via_lines(odds))}" for _ in range(draw(st.integers(1, 2)))]
    lines += [
        f"{draw(st.sampled_from(['From', 'f']))}: {draw(name_addrs(odds))}",
        f"{draw(st.sampled_from(['To', 't']))}: {draw(name_addrs(odds))}",
        "Call-ID: 867443786285",
        f"CSeq: 1 {method}",
        f"Contact: {draw(name_addrs(odds))}",
        "User-Agent: friendly-scanner",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@settings(max_examples=1500, deadline=None)
@given(shaped_messages())
def test_shaped_messages(data):
    check(data)


def test_usual_shapes_are_all_handled():
    """Every usual combination of host, port and URI parameters is handled (and right)."""
    base = SEEDS[-2]  # an IPv6 REGISTER
    for host in _HOSTS:
        for port in _PORTS:
            for uparams in _URI_PARAMS:
                for user in _USERS:
                    uri = f"sip:{user}{host}{port}{uparams}".encode()
                    data = base.replace(b"sip:[2001:db8:5060::10] SIP", uri + b" SIP")
                    data = data.replace(b"<sip:639@[2001:db8:5060::10]>", b"<" + uri + b">")
                    data = data.replace(b"[3bd0:6555::d4c]:42797;", f"{host}{port};".encode())
                    assert data.count(uri) == 2 and check(data), data[:200]
                    # addr-spec: URI parameters become the header's, the user stays
                    addr_spec = data.replace(b'"639" <' + uri + b">;tag", uri + b";tag")
                    assert addr_spec != data and check(addr_spec), addr_spec[:200]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1500), st.sampled_from([b"", b"OPTIONS sip:a@b SIP/2.0\r\n", *SEEDS]))
def test_any_bytes(data, prefix):
    check(data)
    check(prefix + data)
    check(prefix[: len(prefix) // 2] + data + prefix[len(prefix) // 2 :])
