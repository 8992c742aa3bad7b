"""The C password recovery (sipwatch._native.Recovery) against the Python PasswordRecovery.

PasswordRecovery is the definition. The same records (each message parsed once per copy, so
every recovery gets equal but separate Records, labelled by its own StageLabeler) go through
PasswordRecovery.label, Recovery.label and sw_recover (the bulk path's entry, over sw_msg views
of the records: Recovery._sw_recover); the password must be equal on every record, and the
stats, the answered table and the HA1 cache (keys, order, variants, HA1s) equal at the end.
Inputs: the generated attack capture, the public captures, the analyzer corpus (real tools,
when they can run here), hypothesis-made digest requests and responses (every algorithm, qop
forms, missing fields, bad hex, non-ASCII text, quoting that takes parse_digest's careful
path, svcrack claims right and wrong, tiny bounds so that evictions happen), recover() on
hand-made digests with any str (lone surrogates, characters whose case mapping is ASCII),
and the parts alone: the hashes against hashlib, parse_digest, the str operations.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sipwatch.capture.api import read_captures
from sipwatch.detect.passwords import PasswordRecovery, builtin_words
from sipwatch.detect.stages import LabelerConfig, StageLabeler
from sipwatch.native import part
from sipwatch.record import Record
from sipwatch.sip.digest import Digest, compute_response, parse_digest
from sipwatch.store.writer import clean_text

Recovery = part("Recovery")
if Recovery is None:
    pytest.skip("sipwatch._native has no Recovery (not built)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT.parent / "shared" / "data" / "pcaps"
NAMES = ("username", "realm", "nonce", "uri", "response", "algorithm", "qop", "cnonce", "nc")
WORDS = builtin_words()
ANALYZE = {"wordlist": WORDS[:50], "max_candidates": 56}
TINY = {
    "candidates": ["1234", "secret", "caf\udce9", "\ud800"],
    "wordlist": WORDS[:20],
    "max_candidates": 8,
    "ha1_cache": 3,
    "max_requests": 4,
}


def snapshot(rec: object) -> tuple:
    """Everything a recovery remembers, comparable across the two classes."""
    ha1 = [(k, tuple(v[0]), list(v[1])) for k, v in rec._ha1.items()]  # type: ignore[attr-defined]
    answered = list(rec._answered.items())  # type: ignore[attr-defined]
    return (rec.stats, answered, ha1, rec._ha1_count)  # type: ignore[attr-defined]


def stored(password: str) -> str:
    """The text the store writes for a password (lone surrogates as U+FFFD)."""
    return clean_text((password,))[0]


def differential(
    make: Callable[[], Iterable[Record]],
    config: LabelerConfig | None = None,
    **kw: object,
) -> tuple[PasswordRecovery, list[Record]]:
    """Run make()'s records through the three; assert equal passwords, stats and state."""
    copies = []
    for _ in range(3):
        recs = list(make())
        labeller = StageLabeler(config)
        for r in recs:
            labeller.label(r)
        copies.append(recs)
    a, b, c = copies
    py, cr, bulk = PasswordRecovery(**kw), Recovery(**kw), Recovery(**kw)
    assert (cr._head, cr._tail, cr._known) == (py._head, py._tail, py._known)
    assert (cr.max_candidates, cr.ha1_cache, cr.max_requests) == (
        py.max_candidates, py.ha1_cache, py.max_requests,
    )  # fmt: skip
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x.raw == y.raw
        py.label(x)
        assert cr.label(y) is y
        assert (type(y.password), y.password) == (type(x.password), x.password), (i, x.raw[:300])
    assert snapshot(cr) == snapshot(py)
    got, _ = bulk._sw_recover(c)
    want = [stored(x.password) for x in a]
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, (i, a[i].raw[:300])
    assert snapshot(bulk) == snapshot(py)
    return py, a


# --- captures ---------------------------------------------------------------------------------
CONFIGS = {
    "analyze": ANALYZE,
    "default": {},
    "tiny": TINY,
    "one": {"max_candidates": 1, "ha1_cache": 1, "max_requests": 1},
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """svcrack-like password guessing with real MD5 digests, toll fraud with
    Proxy-Authorization, scans (bench/gen_capture.py)."""
    out = tmp_path_factory.mktemp("gen") / "attack.pcap"
    cmd = [sys.executable, str(ROOT / "bench" / "gen_capture.py"), "--packets", "30000"]
    subprocess.run([*cmd, "--seed", "3", "--out", str(out)], check=True, capture_output=True)
    return out


@pytest.mark.parametrize("name", CONFIGS)
def test_generated_capture(generated: Path, name: str) -> None:
    py, records = differential(lambda: read_captures([str(generated)]), **CONFIGS[name])
    s = py.stats
    assert s.requests > 1000 and s.responses > 1000
    if name == "analyze":
        assert s.from_tag > 100 and s.from_digest > 100 and s.exhausted
        proxy = [r for r in records if r.msg.is_request and "proxy-authorization" in r.msg.headers]
        assert proxy and any(r.password for r in proxy)  # toll fraud with found passwords
    if name in ("tiny", "one"):
        assert s.ha1_evictions > 0 and s.request_evictions > 0


def pcap_files() -> list[Path]:
    return sorted(PCAPS.rglob("*.pcap*")) if PCAPS.is_dir() else []


@pytest.mark.parametrize("pcap", pcap_files(), ids=lambda p: p.name)
@pytest.mark.parametrize("name", ["default", "tiny"])
def test_public_captures(pcap: Path, name: str) -> None:
    differential(lambda: read_captures([str(pcap)]), **CONFIGS[name])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(ROOT / "bench"))
    from make_corpus import make_corpus, missing_tools

    missing = missing_tools()
    if missing:
        pytest.skip(f"the analyzer corpus needs {', '.join(missing)}")
    if os.geteuid() != 0:
        pytest.skip("the analyzer corpus needs root (tcpdump on lo)")
    return make_corpus(tmp_path_factory.mktemp("corpus"))[0]


@pytest.mark.tools
@pytest.mark.parametrize("name", ["default", "tiny"])
def test_analyzer_corpus(corpus: Path, name: str) -> None:
    py, _ = differential(lambda: read_captures([str(corpus)]), **CONFIGS[name])
    assert py.stats.requests and py.stats.recovered


# --- hypothesis: digest requests and their responses ------------------------------------------
SERVER = "198.51.100.1"
SOURCES = ("203.0.113.7", "2001:db8::7")
PLACEHOLDER = b"RESPONSE-PLACEHOLDER"

USERS = (b"101", b"alice", b"aba", b"", b"caf\xc3\xa9", b"caf\xe9", b"x" * 64, b"y" * 65, b"2001")
REALMS = (b"asterisk", b"", b"r\xe9alm", b"a,b", b'quo\\"te')
PASSWORDS = (
    "1234", "password", "secret", "caf\udce9", "Tr0ub4dor&3", "pässword", "", WORDS[19],
    WORDS[49], WORDS[300],
)  # fmt: skip
ALGORITHMS = (
    None, b"MD5", b"md5", b"MD5-sess", b"SHA-256", b"sha-256-SESS", b"SHA-512-256",
    b"SHA-512-256-sess", b"AKAv1-MD5", b"", b"md5-se\xdf", b"\xdfha-256", b"MD5-SESS ",
)  # fmt: skip
QOPS = (
    None, b"auth", b"auth-int", b"AUTH-INT", b"auth,auth-int", b"auth-int , auth", b" auth",
    b"auth\xa0,x", b"\x85auth-int,", b"", b"bogus",
)  # fmt: skip
NONCES = (b"n1", b"", b"abc\xe9", b"5e3f1a2b7c")
CNONCES = (None, b"", b"0a4f113b", b"c\xe9")
NCS = (None, b"", b"00000001")
URIS = (f"sip:{SERVER}".encode(), b"sip:x,y@h", b"", b"sip:\xe9@h")
RESPONSES = ("right",) * 8 + ("upper", "wrong", "badhex", "short", "spaced", "none")
SCHEMES = (b"Digest ", b"digest ", b"", b"Basic ", b"Digest  ")
SEPARATORS = (b", ", b",", b" , ")
CLAIMS = ("none",) * 5 + ("right", "wrong", "other-user", "empty", "extra-colon")


def sv(data: bytes, rnd: bytes = b"3141592653") -> str:
    """SIPVicious' From tag: hex of data, 0x01, random decimal."""
    return (data + b"\x01" + rnd).hex()


requests = st.fixed_dictionaries(
    {
        "src": st.sampled_from(SOURCES),
        "method": st.sampled_from(("REGISTER", "INVITE")),
        "user": st.sampled_from(USERS),
        "realm": st.sampled_from(REALMS),
        "password": st.sampled_from(PASSWORDS),
        "algorithm": st.sampled_from(ALGORITHMS),
        "qop": st.sampled_from(QOPS),
        "nonce": st.sampled_from(NONCES),
        "cnonce": st.sampled_from(CNONCES),
        "nc": st.sampled_from(NCS),
        "uri": st.sampled_from(URIS),
        "response": st.sampled_from(RESPONSES),
        "quote": st.sampled_from(("quoted", "quoted", "token", "token", "escaped")),
        "scheme": st.sampled_from(SCHEMES),
        "sep": st.sampled_from(SEPARATORS),
        "dup": st.sampled_from((None,) * 6 + ("before", "after")),
        "header": st.sampled_from(
            ("Authorization",) * 4 + ("Proxy-Authorization", "Proxy-Authorization", "both", "empty")
        ),
        "claim": st.sampled_from(CLAIMS),
        "body": st.sampled_from((b"", b"v=0\r\n")),
        "order": st.permutations(range(len(NAMES))),
    }
)
steps = st.one_of(
    st.tuples(st.just("req"), requests),
    st.tuples(st.just("req"), requests),
    st.tuples(st.just("resp"), st.tuples(st.integers(0, 6), st.sampled_from((401, 403, 200)))),
    st.tuples(st.just("resp"), st.tuples(st.integers(0, 1), st.sampled_from((403, 200)))),
)


def quoted(value: bytes, how: str) -> bytes:
    if how == "token" and not any(c in value for c in b' \t,"\\'):
        return value
    if how == "escaped" and value[:1] not in (b"", b'"', b"\\"):
        # an escape (of the first character) makes parse_digest take the regex path
        return b'"\\' + value[:1] + value[1:].replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _response(p: dict, mode: str, password: str, method: str, body: bytes) -> str:
    """The digest response a case asks for: right (as written, upper-case or spaced hex),
    else "" (the caller fills in a wrong one)."""
    if mode not in ("right", "upper", "spaced"):
        return ""
    qop = p.get("qop", "")
    if qop and "," in qop:
        qop = qop.split(",")[0].strip()
    form = {} if not (qop and p.get("cnonce") and p.get("nc")) else {
        "qop": qop, "nc": p["nc"], "cnonce": p["cnonce"]}  # fmt: skip
    try:
        response = compute_response(
            p.get("username", ""), p.get("realm", ""), password, method, p.get("uri", ""),
            p.get("nonce", ""), algorithm=p.get("algorithm") or "MD5", body=body, **form,
        )  # fmt: skip
    except UnicodeEncodeError:
        return ""
    if mode == "upper":
        return response.upper()
    if mode == "spaced":
        return " ".join(response[i : i + 2] for i in range(0, len(response), 2))
    return response


def auth_value(d: dict) -> bytes | None:
    """The Authorization value, with the right response for d's password where it asks."""
    fields: dict[str, bytes | None] = {
        "username": d["user"], "realm": d["realm"], "nonce": d["nonce"], "uri": d["uri"],
        "response": PLACEHOLDER, "algorithm": d["algorithm"], "qop": d["qop"],
        "cnonce": d["cnonce"], "nc": d["nc"],
    }  # fmt: skip
    if d["response"] == "none":
        fields["response"] = None
    parts = []
    for i in d["order"]:
        name = NAMES[i]
        v = fields[name]
        if v is None:
            continue
        how = {"algorithm": "token", "qop": "token", "nc": "token", "response": "quoted"}.get(
            name, d["quote"]
        )
        parts.append(name.encode() + b"=" + quoted(v, how))
    if d["dup"] == "before":
        parts.insert(0, b'username="intruder", response="00"')
    elif d["dup"] == "after":
        parts.append(b'username="intruder", realm="other"')
    value = d["scheme"] + d["sep"].join(parts)
    if PLACEHOLDER not in value:
        return value
    cred = parse_digest(value.decode("latin-1"))
    assert cred is not None
    p = cred.params
    mode = d["response"]
    response = _response(p, mode, d["password"], d["method"], d["body"])
    if not response or mode == "wrong":
        response = hashlib.md5(repr(d).encode()).hexdigest()
    if mode == "badhex":
        response = "g" * 32
    elif mode == "short":
        response = response[:-2]
    return value.replace(PLACEHOLDER, response.encode("latin-1"))


def request_bytes(d: dict, n: int) -> tuple[bytes, dict[str, bytes]]:
    user = d["user"] or b"x"
    claim = {
        "none": None,
        "right": user + b":" + d["password"].encode("utf-8", "surrogateescape"),
        "wrong": user + b":not-it",
        "other-user": b"999:" + d["password"].encode("utf-8", "surrogateescape"),
        "empty": user + b":",
        "extra-colon": user + b":a:b",
    }[d["claim"]]
    tag = b"abc123" if claim is None else sv(claim).encode()
    ruri = b"sip:" + user + b"@" + SERVER.encode()
    h = {
        "Via": b"SIP/2.0/UDP " + d["src"].encode() + b":5070;branch=z9hG4bK-%d" % n,
        "From": b"<sip:" + user + b"@" + SERVER.encode() + b">;tag=" + tag,
        "To": b"<sip:" + user + b"@" + SERVER.encode() + b">",
        "Call-ID": b"c%d@x" % n,
        "CSeq": b"2 " + d["method"].encode(),
    }
    lines = [d["method"].encode() + b" " + ruri + b" SIP/2.0"]
    lines += [k.encode() + b": " + v for k, v in h.items()]
    value = auth_value(d)
    if d["header"] == "empty":
        lines.append(b"Authorization: ")
    elif value is not None:
        names = {"both": ["Authorization", "Proxy-Authorization"]}.get(d["header"], [d["header"]])
        for i, name in enumerate(names):
            lines.append(name.encode() + b": " + (value if i == 0 else b'Digest username="z"'))
    body = d["body"]
    lines += [b"Content-Length: %d" % len(body), b"", b""]
    return b"\r\n".join(lines) + body, h


def build(script: list) -> list[tuple[bytes, float, str, str]]:
    out: list[tuple[bytes, float, str, str]] = []
    sent: list[tuple[dict, dict[str, bytes]]] = []
    ts = 1_000_000.0
    for n, (kind, d) in enumerate(script):
        ts += 0.5
        if kind == "req":
            raw, h = request_bytes(d, n)
            out.append((raw, ts, d["src"], SERVER))
            sent.append((d, h))
        elif sent:
            k, code = d
            req, h = sent[-1 - k % len(sent)]
            lines = [b"SIP/2.0 %d X" % code]
            lines += [k2.encode() + b": " + v for k2, v in {**h, "To": h["To"] + b";tag=s"}.items()]
            raw = b"\r\n".join([*lines, b"Content-Length: 0", b"", b""])
            out.append((raw, ts, SERVER, req["src"]))
    return out


def records(msgs: list[tuple[bytes, float, str, str]]) -> list[Record]:
    return [Record.from_bytes(raw, ts, "udp", src, 5070, dst, 5060) for raw, ts, src, dst in msgs]


bounds = st.fixed_dictionaries(
    {
        "candidates": st.sampled_from(((), ("1234", "caf\udce9", "\ud800", "x"), ("secret",))),
        "wordlist": st.sampled_from((None, WORDS[:50], ["password", "1234", "pässword"], [])),
        "max_candidates": st.sampled_from((1, 2, 5, 56, 56, 1000, 1000)),
        "ha1_cache": st.sampled_from((1, 2, 8, 65536)),
        "max_requests": st.sampled_from((1, 2, 3, 64)),
    }
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=5, max_size=60), bounds)
def test_sequences(script: list, kw: dict) -> None:
    msgs = build(script)
    py, _ = differential(lambda: records(msgs), **kw)
    s = py.stats
    for name in ("from_tag", "from_digest", "exhausted", "unverifiable", "responses",
                 "ha1_evictions", "request_evictions"):  # fmt: skip
        event(f"{name} > 0: {getattr(s, name) > 0}")


# --- recover() on hand-made digests: any str ---------------------------------------------------
SPECIAL = (
    "\ud800", "\udce9", "\udcff", "\udc80", "\udbff\udfff", "ſ", "ß", "ı", "\ufb06", "\u212a",
    "\u00a0", "\u2028", "\u3000", "\x85", "\x1c", "é", "😀", ",", ":", '"', "\\", "",
)  # fmt: skip
texts = (
    st.text(max_size=6)
    | st.sampled_from(SPECIAL)
    | st.lists(
        st.sampled_from(SPECIAL + ("a", "auth", "-int", "MD5", "sess", "-")), max_size=4
    ).map("".join)
)
ALG_TEXT = (
    "MD5", "md5-ſeſſ", "ſha-256", "SHA-256-SEß", "ſha-512-256-ſeſſ", "MD5-SESS", "ﬆ", "ıMD5",
    "MD5\u212a", "Md5", "sha-512-256", "MD5-", "-SESS", "", "AKAv1-MD5", "\udce9",
)  # fmt: skip
QOP_TEXT = (
    "auth", "auth-int", "AUTH-\u0131NT", "auth-\u212aint", "\u3000auth-int\u2028,x", "auth-int,",
    ",auth", "\u00a0auth\u00a0,", "auth-int\udce9", "\ud800,auth", "",
)  # fmt: skip
digests = st.fixed_dictionaries(
    {},
    optional={
        "username": st.sampled_from(("101", "alice", "aba")) | texts,
        "realm": st.sampled_from(("asterisk", "")) | texts,
        "nonce": st.sampled_from(("n1",)) | texts,
        "uri": st.sampled_from(("sip:h",)) | texts,
        "algorithm": st.sampled_from(ALG_TEXT) | texts,
        "qop": st.sampled_from(QOP_TEXT) | texts,
        "cnonce": st.sampled_from(("c1",)) | texts,
        "nc": st.sampled_from(("00000001",)) | texts,
    },
)
calls = st.fixed_dictionaries(
    {
        "params": digests,
        "password": st.sampled_from(PASSWORDS + ("\udcff", "aba", "alice123", "101101", "\ud800")),
        "response": st.sampled_from(RESPONSES),
        "method": st.sampled_from(("REGISTER", "INVITE", "r\udce9g", "\ud800")),
        "body": st.sampled_from((b"", b"v=0\r\n")),
        "svcrack": st.sampled_from(("", "101:1234", "alice:", ":", "101")) | texts,
        "claim_right": st.booleans(),
    }
)


def make_call(c: dict) -> tuple[Digest, str, bytes, str]:
    p = dict(c["params"])
    mode = c["response"]
    response = _response(p, mode, c["password"], c["method"], c["body"])
    if mode == "wrong" or (not response and mode != "none"):
        response = hashlib.md5(repr(c).encode("utf-8", "surrogatepass")).hexdigest()
    if mode == "badhex":
        response = "g" * 32
    elif mode == "short":
        response = response[:-2]
    if mode != "none":
        p["response"] = response
    svcrack = c["svcrack"]
    if c["claim_right"]:
        svcrack = f"{p.get('username', '')}:{c['password']}"
    return Digest(params=p), c["method"], c["body"], svcrack


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(calls, min_size=1, max_size=25), bounds)
def test_recover_any_text(seq: list[dict], kw: dict) -> None:
    py, cr = PasswordRecovery(**kw), Recovery(**kw)
    for c in seq:
        args = make_call(c)
        want = py.recover(*args)
        got = cr.recover(*args)
        assert (type(got), got) == (type(want), want), args
        event(f"found: {bool(want)}")
        assert cr.stats == py.stats
    assert snapshot(cr) == snapshot(py)


def test_recover_defaults_and_keywords() -> None:
    cred = parse_digest(
        'Digest username="101", realm="asterisk", nonce="n", uri="sip:h", '
        f'response="{compute_response("101", "asterisk", "1234", "REGISTER", "sip:h", "n")}"'
    )
    assert cred is not None
    py, cr = PasswordRecovery(), Recovery()
    assert cr.recover(cred, "REGISTER") == py.recover(cred, "REGISTER") == "1234"
    assert cr.recover(cred=cred, method="REGISTER", body=b"", svcrack="101:1234") == "1234"
    py.recover(cred=cred, method="REGISTER", body=b"", svcrack="101:1234")
    assert cr.stats == py.stats
    assert Recovery(max_candidates=0, ha1_cache=-5, max_requests=0).max_candidates == 1
    r = Recovery(candidates=[1234, "1234", b"x"])
    assert r._head == PasswordRecovery(candidates=[1234, "1234", b"x"])._head
    with pytest.raises(TypeError):
        Recovery(wordlist=[None])


# --- the parts alone ----------------------------------------------------------------------------
native = pytest.importorskip("sipwatch._native")
HASHES = ((0, hashlib.md5), (1, hashlib.sha256), (2, lambda d: hashlib.new("sha512_256", d)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_hashes(data: bytes) -> None:
    for kind, ref in HASHES:
        assert native._digest_hash(kind, data) == ref(data).digest()


def test_hashes_at_block_edges() -> None:
    for n in range(0, 300):
        data = bytes((i * 7 + n) & 0xFF for i in range(n))
        for kind, ref in HASHES:
            assert native._digest_hash(kind, data) == ref(data).digest(), (kind, n)


VALUE_CHARS = st.sampled_from(
    list('=",\\ \t\n') + list("usernamealgorithmqopcnoncerealmuri") + ["é", "\x85", "Ü", "K"]
)
values = st.lists(VALUE_CHARS, max_size=60).map("".join) | st.text(max_size=40)


def digest_texts() -> st.SearchStrategy[str]:
    param = st.tuples(
        st.sampled_from((*NAMES, "USERNAME", "Realm", "x", "nonce ", " qop", "a b", "")),
        st.sampled_from(("=", " = ", "\t=", "", "==")),
        values,
        st.sampled_from(("", '"', "'")),
    ).map(lambda t: f"{t[0]}{t[1]}{t[3]}{t[2]}{t[3]}")
    return st.tuples(
        st.sampled_from(("Digest ", "", " Digest  ", "Basic\t", "x=y ")),
        st.lists(param, max_size=8),
        st.sampled_from((",", ", ", " ,")),
    ).map(lambda t: t[0] + t[2].join(t[1]))


@settings(max_examples=1000, deadline=None)
@given(digest_texts() | values)
def test_parse_digest(value: str) -> None:
    want = parse_digest(value)
    got = native._parse_digest(value)
    if want is None:
        assert got is None
    else:
        assert got == {k: want.params.get(k, "") for k in NAMES}


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=12) | st.lists(st.sampled_from(SPECIAL), max_size=5).map("".join))
def test_text_operations(s: str) -> None:
    enc, n, rev, strip, alg, auth_int = native._text_ops(s)
    try:
        want_enc: bytes | None = s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        want_enc = None
    assert enc == want_enc
    assert (n, rev, strip) == (len(s), s[::-1], s.strip())
    assert auth_int == (s.lower() == "auth-int")
    up = (s or "MD5").upper()
    sess = up.endswith("-SESS")
    kinds = {"MD5": 0, "SHA-256": 1, "SHA-512-256": 2}
    kind = kinds.get(up[:-5] if sess else up)
    assert alg == (None if kind is None else (kind, int(sess)))


def test_algorithm_case_mapping_of_every_character() -> None:
    """Which characters str.upper() makes part of an algorithm name: every code point, in the
    first letter's place and in the session suffix's."""
    for c in map(chr, range(0x110000)):
        for s in (c + "ha-256", "md5-se" + c, "MD5" + c):
            _, _, _, _, alg, _ = native._text_ops(s)
            up = s.upper()
            sess = up.endswith("-SESS")
            kind = {"MD5": 0, "SHA-256": 1, "SHA-512-256": 2}.get(up[:-5] if sess else up)
            assert alg == (None if kind is None else (kind, int(sess))), hex(ord(c))


def test_labels_the_python_way_for_odd_records() -> None:
    """label() reads the record's fields like PasswordRecovery: a response id that is not an
    int, a record without credentials, an empty Authorization."""
    raw = b"REGISTER sip:h SIP/2.0\r\nAuthorization:   \r\nContent-Length: 0\r\n\r\n"
    for make in (PasswordRecovery, Recovery):
        rec = make()
        r = Record.from_bytes(raw, 1.0, "udp", "a", 1, "b", 2)
        assert rec.label(r) is r and rec(r) is r
        assert r.password == "" and rec.stats.requests == 0
        r.request_id = "not an int"  # type: ignore[assignment]
        rec.label(r)
        r.request_id = 2**70
        rec.label(r)
        assert rec.stats.responses == 0
