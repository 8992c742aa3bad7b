"""The responder's nonces and To-tags in C (native/nonce.c NonceMac, native/totag.c ToTag)
against nonces.py and uas.py, which stay the definition: the same nonces from the same rng,
nonces of either path check in the other, the same To-tags, the same responses."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import math
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipwatch.honeypot import nonces as nonces_mod
from sipwatch.honeypot import uas
from sipwatch.honeypot.accounts import Accounts
from sipwatch.honeypot.nonces import NonceIssuer
from sipwatch.honeypot.personality import (
    BUILTIN_PERSONALITIES,
    TO_TAG_STYLES,
    format_to_tag,
    load_personality,
)
from sipwatch.native import part
from sipwatch.record import Record
from sipwatch.sip.build import build_request
from sipwatch.sip.digest import build_credentials
from sipwatch.sip.message import parse

SECRET = b"test secret, 32 bytes long......"
T0 = 1_700_000_000.0
BUILT = importlib.util.find_spec("sipwatch._native") is not None
WANTED = BUILT and not os.environ.get("SIPWATCH_NO_NATIVE")


def test_native_path_is_used_when_built() -> None:
    """A stale build (no NonceMac/ToTag) or a broken lookup must not pass as the C path."""
    if not WANTED:
        pytest.skip("sipwatch._native is not built (or SIPWATCH_NO_NATIVE is set)")
    assert part("NonceMac") is not None and part("ToTag") is not None
    n = NonceIssuer(SECRET, 300)
    assert n.native and type(n.issue.__self__) is part("NonceMac")  # not nonces.py's issue
    assert type(n._mac.__self__) is part("NonceMac")
    assert not NonceIssuer(SECRET, 300, native=False).native
    r = _responder("asterisk", native=True)
    assert r._nonces.native and r._tagger is not None


needs_native = pytest.mark.skipif(
    part("NonceMac") is None, reason="sipwatch._native not built (or not wanted)"
)


@needs_native
def test_responder_answers_without_the_python_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 401 with a nonce and a To-tag, while the Python versions would fail if called."""

    def boom(*args: object) -> None:
        raise AssertionError("the Python path ran")

    monkeypatch.setattr(uas, "format_to_tag", boom)
    monkeypatch.setattr(nonces_mod.NonceIssuer, "_mac", boom)
    r = _responder("asterisk", native=True)
    out = r.handle(_record(_request("REGISTER", "c1", "t1", "198.51.100.7"), "198.51.100.7"))
    assert r.stats.errors == 0, r.last_error
    reply = parse(out[0])
    assert reply.status == 401 and reply.to_tag and len(reply.challenge.nonce) == 48


# --- nonces --------------------------------------------------------------------------------

SECRETS = [b"s" * 16, SECRET, bytes(range(63)), bytes(range(64)), bytes(range(65)), b"k" * 200]
SRCS = [
    "198.51.100.7", "0.0.0.0", "2001:db8::1", "::ffff:192.0.2.1", "fe80::1%eth0", "",
    "h\u00e9te", "\u20ac" * 40, "x\udc80", "\udcff\udc80", "a|b", "x" * 64, "y" * 200,
]  # fmt: skip
TIMES = [
    0, 0.0, 1, T0, 2**32 - 1, 2**32, 2**32 + 1.5, -1, -0.5, -1.5, -(2**31), 1e12, 2.0**63,
    -(2.0**63), 1e30, -1e30, 2**70, -(2**70), True,
]  # fmt: skip


def _pair(secret: bytes, seed: int = 1) -> tuple[NonceIssuer, NonceIssuer]:
    c = NonceIssuer(secret, 300, random.Random(seed), native=True)
    py = NonceIssuer(secret, 300, random.Random(seed), native=False)
    return c, py


def _outcome(fn, *args: object) -> tuple[str, object]:  # noqa: ANN001
    """("ok", value) or (exception type name, message): both paths must agree on either."""
    try:
        return ("ok", fn(*args))
    except Exception as e:
        return (type(e).__name__, str(e))


@needs_native
@pytest.mark.parametrize("secret", SECRETS, ids=len)
def test_issue_same_nonces(secret: bytes) -> None:
    c, py = _pair(secret)
    assert c.native and not py.native
    for src in SRCS:
        for now in TIMES:
            nonce = c.issue(src, now)
            assert nonce == py.issue(src, now), (src, now)
            assert len(nonce) == 48 and nonce[:8] == f"{int(now) & 0xFFFFFFFF:08x}"
            # each path checks the other's nonces
            assert c._mac(src, nonce[:24]) == py._mac(src, nonce[:24]) == nonce[24:]


@needs_native
def test_mac_is_hmac_sha256_for_any_key_length() -> None:
    for size in (16, 32, 63, 64, 65, 127, 128, 129, 1000):
        secret = bytes(random.Random(size).randbytes(size))
        c, _ = _pair(secret)
        for src in SRCS:
            data = f"{src}|0123456789abcdef01234567".encode("utf-8", "surrogateescape")
            want = hmac.new(secret, data, hashlib.sha256).hexdigest()[:24]
            assert c._mac(src, "0123456789abcdef01234567") == want


@needs_native
@pytest.mark.parametrize(
    "src, now",
    [("\ud800", T0), ("x\udfff", T0), ("1.2.3.4", math.nan), ("1.2.3.4", math.inf),
     ("1.2.3.4", -math.inf), ("1.2.3.4", "nope"), ("1.2.3.4", None), (None, T0), (5, T0)],
)  # fmt: skip
def test_errors_and_rng_draws_match(src: object, now: object) -> None:
    """The same exception (or text of a non-str src), and the rng left in the same state: an
    unencodable source fails after the draw, a time that int() refuses before it."""
    c, py = _pair(SECRET, seed=5)
    assert _outcome(c.issue, src, now) == _outcome(py.issue, src, now)
    assert c.issue("192.0.2.1", T0) == py.issue("192.0.2.1", T0)


@needs_native
def test_mac_errors_match() -> None:
    """An unencodable character fails at its place in f"{src}|{stamp}", in either part."""
    c, py = _pair(SECRET)
    for src, stamp in [("1.2.3.4", "ab\ud800"), ("\udfff", "ab"), ("h\u00e9", "x\ud800y"),
                       (None, 7), ("a", None), ("\udc80", "\udcff")]:  # fmt: skip
        got, want = _outcome(c._mac, src, stamp), _outcome(py._mac, src, stamp)
        assert got == want, (src, stamp)


class _Bits:
    """An rng of the caller's own whose draws are the given values, in turn."""

    def __init__(self, values: list[object]) -> None:
        self.values = list(values)

    def getrandbits(self, k: int) -> object:
        assert k == 64
        return self.values.pop(0)


@needs_native
def test_any_random_bits_written_as_python_writes_them() -> None:
    values = [0, 1, 2**64 - 1, 2**63, 2**64, 2**80, -1, -(2**64), True, 1.5, "ab"]
    c = NonceIssuer(SECRET, 300, _Bits(values), native=True)  # type: ignore[arg-type]
    py = NonceIssuer(SECRET, 300, _Bits(values), native=False)  # type: ignore[arg-type]
    for _ in values:
        got, want = _outcome(c.issue, "198.51.100.7", T0), _outcome(py.issue, "198.51.100.7", T0)
        assert got == want
        if want[0] == "ok":  # (longer or signed ones never check: not 48 hex digits)
            nonce: str = want[1]  # type: ignore[assignment]
            assert c.check(nonce, "198.51.100.7", T0) == py.check(nonce, "198.51.100.7", T0)


any_text = st.text(st.characters(exclude_categories=()), max_size=80)  # lone surrogates too
any_time = st.one_of(st.floats(), st.integers(-(2**80), 2**80), st.floats(-(2.0**33), 2.0**33))


@needs_native
@settings(max_examples=300, deadline=None)
@given(secret=st.binary(min_size=16, max_size=150), src=any_text, now=any_time,
       seed=st.integers(0, 2**32))  # fmt: skip
def test_issue_any_input(secret: bytes, src: str, now: float, seed: int) -> None:
    c, py = _pair(secret, seed)
    got, want = _outcome(c.issue, src, now), _outcome(py.issue, src, now)
    assert got == want
    if want[0] == "ok":
        nonce = want[1]
        t = int(now) & 0xFFFFFFFF
        for a, b in ((c, py), (py, c)):  # issued by one path, checked by the other
            assert b.check(a.issue(src, t), src, t) == "ok"
        assert c.check(nonce, src, t + 301) == py.check(nonce, src, t + 301) == "stale"


@needs_native
@settings(max_examples=300, deadline=None)
@given(nonce=st.one_of(any_text, st.text("0123456789abcdef", min_size=48, max_size=48)),
       src=any_text, stamp=any_text)  # fmt: skip
def test_check_and_mac_any_text(nonce: str, src: str, stamp: str) -> None:
    c, py = _pair(SECRET)
    assert _outcome(c.check, nonce, src, T0) == _outcome(py.check, nonce, src, T0)
    assert _outcome(c._mac, src, stamp) == _outcome(py._mac, src, stamp)


def test_native_false_or_not_built_is_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nonces_mod, "part", lambda name: None)  # as SIPWATCH_NO_NATIVE leaves it
    n = NonceIssuer(SECRET, 300, random.Random(1))
    assert not n.native and "issue" not in vars(n)
    assert n.check(n.issue("192.0.2.1", T0), "192.0.2.1", T0) == "ok"


# --- To-tags -------------------------------------------------------------------------------


def _python_tag(key: bytes, style: str, prefix: str, call_id: str, from_tag: str) -> str:
    h = hashlib.blake2b(key=key, digest_size=16)
    h.update(b"%s\x00%s" % (call_id.encode("latin-1", "replace"),
                            from_tag.encode("latin-1", "replace")))  # fmt: skip
    return format_to_tag(style, h.digest(), prefix)


STYLES = [*TO_TAG_STYLES, "not-a-style", ""]
PREFIX = hashlib.md5(b"k").hexdigest()


@needs_native
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("key_len", [0, 1, 32, 63, 64])
def test_to_tag_styles_and_keys(style: str, key_len: int) -> None:
    key = bytes(range(100, 100 + key_len))
    tagger = part("ToTag")(key, style, PREFIX)
    for call_id, from_tag in [
        ("", ""), ("call-1@198.51.100.7", "a1b2c3"), ("c\u00e9ll\u20ac", "t\u0100g\U0001f600"),
        ("\udcff\ud800", "x"), ("x" * 126, ""), ("x" * 127, ""), ("x" * 128, "y"),
        ("\u0101" * 300, "\xff" * 300),
    ]:  # fmt: skip
        want = _python_tag(key, style, PREFIX, call_id, from_tag)
        assert tagger.tag(call_id, from_tag) == want


@needs_native
@settings(max_examples=300, deadline=None)
@given(style=st.sampled_from(STYLES), key=st.binary(max_size=64), prefix=any_text,
       call_id=any_text, from_tag=any_text)  # fmt: skip
def test_to_tag_any_text(style: str, key: bytes, prefix: str, call_id: str, from_tag: str) -> None:
    tagger = part("ToTag")(key, style, prefix)
    assert tagger.tag(call_id, from_tag) == _python_tag(key, style, prefix, call_id, from_tag)


@needs_native
def test_to_tag_refuses_what_blake2b_refuses() -> None:
    with pytest.raises(ValueError):
        hashlib.blake2b(key=b"k" * 65)
    with pytest.raises(ValueError):
        part("ToTag")(b"k" * 65, "uuid", PREFIX)
    with pytest.raises(TypeError):
        part("ToTag")(b"k", "uuid", PREFIX).tag(b"bytes", "x")


# --- the responder, both ways --------------------------------------------------------------


def _responder(personality: str, native: bool) -> uas.Responder:
    accounts = Accounts.from_config(["100-199"], {"101": "1234"})
    return uas.Responder(
        load_personality(personality), accounts, secret=SECRET,
        config=uas.UasConfig(algorithms=("SHA-256", "MD5")), rng=random.Random(7),
        native=native,
    )  # fmt: skip


def _request(method: str, call_id: str, tag: str, src: str, auth: tuple[str, str] | None = None):  # noqa: ANN202
    host = f"[{src}]" if ":" in src else src
    return build_request(
        method, "sip:101@127.0.0.1", via=f"SIP/2.0/UDP {host}:5062;branch=z9hG4bK-{call_id[:8]}",
        from_=f"<sip:101@127.0.0.1>;tag={tag}" if tag else "<sip:101@127.0.0.1>",
        to="<sip:101@127.0.0.1>", call_id=call_id, cseq=2 if auth else 1,
        headers=[auth] if auth else [],
    )  # fmt: skip


def _record(msg, src: str, ts: float = T0) -> Record:  # noqa: ANN001
    return Record.from_bytes(msg.to_bytes(), ts, "udp", src, 5062, "127.0.0.1", 5060)


@needs_native
@pytest.mark.parametrize("personality", BUILTIN_PERSONALITIES)
def test_responder_same_bytes_both_ways(personality: str) -> None:
    """Challenges, retransmissions, right and wrong passwords, stale nonces: byte for byte."""
    c, py = _responder(personality, True), _responder(personality, False)
    assert c._tagger is not None and py._tagger is None
    cases = [
        ("call-1@198.51.100.7", "a1b2", "198.51.100.7"), ("c\u00e9ll", "t\u00e9g", "2001:db8::1"),
        ("z", "", "10.0.0.1"), ("x" * 300, "y" * 200, "192.0.2.1"),
    ]  # fmt: skip
    for method in ("REGISTER", "INVITE", "OPTIONS", "MESSAGE"):
        for call_id, tag, src in cases:
            for ts in (T0, 0.0, 2**32 + 5.5, -3.7):
                record = _record(_request(method, call_id, tag, src), src, ts)
                out = c.handle(record)
                assert out == py.handle(record)
                reply = parse(out[0]) if out else None
                if reply is None or reply.challenge is None:
                    continue
                for password, when in (("1234", ts), ("wrong", ts), ("1234", ts + 1000)):
                    auth = build_credentials(
                        "101", reply.challenge.realm, password, method, "sip:101@127.0.0.1",
                        reply.challenge.nonce, algorithm=reply.challenge.algorithm,
                        qop="auth", cnonce="0a4f113b", opaque=reply.challenge.opaque,
                    )  # fmt: skip
                    header = "Authorization" if reply.status == 401 else "Proxy-Authorization"
                    again = _record(_request(method, call_id, tag, src, (header, auth)), src, when)
                    assert c.handle(again) == py.handle(again)
    assert c.stats.as_dict() == py.stats.as_dict()
    assert c.stats.errors == 0 and c.stats.auth_ok and c.stats.auth_fail and c.stats.stale
