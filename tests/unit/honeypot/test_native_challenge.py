"""The responder's REGISTER -> 401/404 in C (native/challenge.c ChallengeFast) against the
Python path, which stays the definition: two responders with the same config and the same
seeded rng answer the same requests with the same bytes, count the same stats and leave the
rng in the same state; the C path must answer the plain REGISTERs (not silently decline)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipwatch.honeypot import uas
from sipwatch.honeypot.accounts import Accounts
from sipwatch.honeypot.personality import BUILTIN_PERSONALITIES, load_personality
from sipwatch.native import part
from sipwatch.record import Record
from sipwatch.sip.digest import build_credentials

SECRET = b"test secret, 32 bytes long......"
T0 = 1_700_000_000.0
BUILT = importlib.util.find_spec("sipwatch._native") is not None

_BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_sensor_path.py"
_spec = importlib.util.spec_from_file_location("bench_sensor_path", _BENCH)
assert _spec is not None and _spec.loader is not None
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)
register = _bench.register  # the load generator's REGISTER (bench/loadgen.c's shape)
WANTED = BUILT and not os.environ.get("SIPWATCH_NO_NATIVE")
EXTENSIONS = ["100-199", "0100-0199", "alice", "1000", "2000-2009"]
ALGS = [("MD5",), ("SHA-256", "MD5"), ("SHA-256", "SHA-512-256", "MD5")]
REALMS = [None, "{dst}", "pbx.example", 'odd "realm" \\ é']

needs_native = pytest.mark.skipif(
    part("ChallengeFast") is None, reason="sipwatch._native not built (or not wanted)"
)


def _pair(personality: str, algorithms: tuple[str, ...], realm: str | None, seed: int):
    accounts = Accounts.from_config(EXTENSIONS, {"101": "1234"})
    config = uas.UasConfig(algorithms=algorithms, realm=realm)
    return tuple(
        uas.Responder(
            load_personality(personality),
            accounts,
            secret=SECRET,
            config=config,
            rng=random.Random(seed),
            native=native,
        )  # fmt: skip
        for native in (True, False)
    )


def _record(raw: bytes, src: str, sport: int, dst: str, ts: float) -> Record:
    return Record.from_bytes(raw, ts, "udp", src, sport, dst, 5060)


def _same(fast: uas.Responder, slow: uas.Responder, record: Record) -> list[bytes]:
    got, want = fast.handle(record), slow.handle(record)
    assert got == want
    assert dataclasses.asdict(fast.stats) == dataclasses.asdict(slow.stats)
    assert fast._rng.getstate() == slow._rng.getstate()
    assert fast._now == slow._now
    assert fast.stats.errors == 0, fast.last_error
    return got


def test_built_and_wired() -> None:
    """A stale build (no ChallengeFast) must not pass as the C path."""
    if not WANTED:
        pytest.skip("sipwatch._native is not built (or SIPWATCH_NO_NATIVE is set)")
    fast, slow = _pair("asterisk", ("MD5",), None, 1)
    assert type(fast._fast) is part("ChallengeFast")
    assert slow._fast is None


@needs_native
@pytest.mark.parametrize("personality", BUILTIN_PERSONALITIES)
@pytest.mark.parametrize("algorithms", ALGS)
@pytest.mark.parametrize("realm", REALMS)
def test_plain_registers_answered_in_c(
    personality: str, algorithms: tuple[str, ...], realm: str | None
) -> None:
    fast, slow = _pair(personality, algorithms, realm, 3)
    users = ["100", "150", "0150", "150x", "099", "alice", "bob", "1000", "2005", "20050"]
    dsts = ["192.0.2.1", "", "10.1.1.1", 'a"b\\c']
    n = 0
    for seq in range(120):
        user = users[seq % len(users)]
        src = f"198.51.100.{seq % 7}"
        raw = register(seq, src, 5060 + seq, user)
        got = _same(fast, slow, _record(raw, src, 5060 + seq, dsts[seq % 4], T0 + seq * 0.5))
        status = got[0].split(b" ", 2)[1]
        assert status == (b"401" if fast.accounts.exists(user) else b"404")
        n += 1
    assert fast._fast.answered == n  # every one of them in C
    assert fast.stats.challenges > 0 and fast.stats.by_status.get(404)


# --- hypothesis: requests of every shape, mostly REGISTERs near the usual one ---------------
VIAS = [
    "SIP/2.0/UDP {src}:5060;branch=z9hG4bK-1;rport",
    "SIP/2.0/UDP {src}:5060;branch=z9hG4bK-1",
    "SIP/2.0/UDP {src};branch=z9hG4bK-1",
    "SIP/2.0/TCP 203.0.113.9:5070;branch=z9hG4bK-2",
    "SIP/2.0/UDP 203.0.113.9:5070;branch=z9hG4bK-2;rport",
    "SIP/2.0/UDP 010.0.0.1;branch=z9hG4bK-3",
    "SIP/2.0/UDP 10.0.0.1;branch=",
    "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK-4",
    "SIP/2.0/UDP [2001:DB8:0::1];branch=z9hG4bK-4;rport",
    "SIP/2.0/UDP [10.0.0.1];branch=z9hG4bK-4",
    "SIP/2.0/UDP host.example:5060;branch=z9hG4bK-5",
    "SIP/2.0/UDP host.example:123456;branch=z9hG4bK-5",
    "SIP/2.0/UDP host.example:;branch=z9hG4bK-5",
    "SIP/2.0/UDP h\xe9st;branch=z9hG4bK-\xe96",
    "SIP/2.0/UDP {src}:5060;branch=z9hG4bK-7;received=1.1.1.1",
    "SIP/2.0/UDP {src}:5060;rport;branch=z9hG4bK-8",
    "SIP/2.0/UDP {src}:5060;branch=z9hG4bK-9;RPORT",
    "SIP/2.0/UDP {src}:5060;branch=z9hG4bK-9;rport;ttl=1",
    "SIP/2.0/UDP {src}:5060;branch=z9hG4bK-a, SIP/2.0/UDP 10.9.9.9;branch=b",
    "sip/2.0/udp {src};branch=z9hG4bK-b",
    "SIP/2.0/UDP  {src};branch=z9hG4bK-c",
    "SIP/2.0/UDP {src};branch=z9hG4bK-" + "x" * 1100,
    "SIP/2.0/UDP {src};branch=z9hG4bK d",
    "SIP/2.0/U2P {src};branch=z9hG4bK-e",
    "garbage",
]
SRCS = ["10.0.0.1", "198.51.100.7", "203.0.113.9", "2001:db8::1", "::1", "010.0.0.1"]
USERS = ["100", "150", "0150", "01500", "099", "199", "alice", "bob", "1000", "2009", "",
         "\xe9l\xe8ve", "1" * 19, "001"]  # fmt: skip
DISPLAYS = ["", '"Bob" ', '"\xe9t\xe9" ', '"caf\xc3\xa9" ', "bob "]
NAME_ADDRS = [
    "{d}<sip:{u}@example.com>",
    "{d}<sip:{u}@example.com>;tag=abc123",
    "sip:{u}@example.com",
    "{d}<sip:{u}@example.com;transport=udp>;tag=\xe9x",
    "<sips:{u}@[2001:db8::1]:5061>",
    "<sip:",
    "",
]
URIS = ["sip:{u}@example.com", "SIP:example.com", "sips:example.com", "tel:+4930123",
        "http://example.com", "sipx:example.com", "example.com", "Sips:{u}@h"]  # fmt: skip
MAX_FORWARDS = [None, "70", "0", "00", "0000000000000001", "000000000000", "abc", "\xb2", ""]
CSEQS = ["1 {m}", "1 INVITE", "x {m}", None, "99999999999 {m}", "1"]


def _pick(draw: st.DrawFn, usual: list, odd: list) -> Any:
    """Mostly one of the usual values, so that a whole request is often the C path's case
    (and its edges are met one at a time), sometimes an odd one."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(odd))
    return draw(st.sampled_from(usual))


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, str, int, str, float]:
    method = _pick(draw, ["REGISTER"], ["INVITE", "OPTIONS", "ACK", "MESSAGE", "FOO", "register"])
    src = draw(st.sampled_from(SRCS))
    user = draw(st.sampled_from(USERS))
    uri = _pick(draw, URIS[:4] + URIS[-1:], URIS[4:]).format(u=user)
    version = _pick(draw, ["SIP/2.0"], ["SIP/3.0"])
    lines = [f"{method} {uri} {version}"]
    host = f"[{src}]" if ":" in src else src
    n_vias = _pick(draw, [1, 1, 1, 2, 3], [0])
    for i in range(n_vias):
        via = _pick(draw, VIAS[:14], VIAS[14:]) if i == 0 else draw(st.sampled_from(VIAS))
        lines.append("Via: " + via.format(src=host))
    mf = _pick(draw, [None, "70", "0000000000000001", "\xb2", "abc", ""], ["0", "00", "0" * 13])
    if mf is not None:
        lines.append(f"Max-Forwards: {mf}")
    d = draw(st.sampled_from(DISPLAYS))
    f = _pick(draw, NAME_ADDRS[:5], NAME_ADDRS[5:]).format(d=d, u=draw(st.sampled_from(USERS)))
    t = _pick(draw, NAME_ADDRS[:5], NAME_ADDRS[5:]).format(d=d, u=user)
    if _pick(draw, [True], [False]):
        lines.append(f"From: {f}")
    if _pick(draw, [True], [False]):
        lines.append(f"To: {t}")
    call_id = _pick(draw, ["a84b4c76e66710", "x@\xe9"], ["", None])
    if call_id is not None:
        lines.append(f"Call-ID: {call_id}")
    cseq = _pick(draw, ["1 {m}", "99999999999 {m}"], ["1 INVITE", "x {m}", None, "1"])
    if cseq is not None:
        lines.append("CSeq: " + cseq.format(m=method))
    auth = _pick(draw, [None], ["Authorization", "Proxy-Authorization"])
    if auth is not None:
        realm = draw(st.sampled_from(["asterisk", "pbx.example", "192.0.2.1"]))
        value = build_credentials(
            user or "100", realm, draw(st.sampled_from(["1234", "bad"])), method, uri,
            draw(st.sampled_from(["0" * 48, "abc"])),
        )  # fmt: skip
        lines.append(f"{auth}: {value}")
    lines += ["Contact: <sip:100@10.0.0.1:5060>", "Expires: 60", "Content-Length: 0"]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    sport = draw(st.sampled_from([5060, 1, 65535, 0]))
    dst = _pick(draw, ["192.0.2.1", "", "2001:db8::5", 'q"\\', "\xe9"], ["\x00d", "\x01"])
    ts = _pick(draw, [T0, T0 + 0.25, T0 + 301.5, 1.5], [math.nan, math.inf, -math.inf, 0.0])
    return raw, src, sport, dst, ts


@needs_native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    personality=st.sampled_from(BUILTIN_PERSONALITIES),
    algorithms=st.sampled_from(ALGS),
    realm=st.sampled_from(REALMS),
    seed=st.integers(0, 2**32),
    reqs=st.lists(requests(), min_size=1, max_size=8),
)
def test_same_answers_as_python(
    personality: str,
    algorithms: tuple[str, ...],
    realm: str | None,
    seed: int,
    reqs: list[tuple[bytes, str, int, str, float]],
) -> None:
    fast, slow = _pair(personality, algorithms, realm, seed)
    for raw, src, sport, dst, ts in reqs:
        _same(fast, slow, _record(raw, src, sport, dst, ts))
    assert fast.registered_sources == slow.registered_sources


@needs_native
def test_hypothesis_shapes_reach_the_c_path() -> None:
    """Of the generated shapes, the plain REGISTERs are the C path's (a fixed sample)."""
    fast, slow = _pair("asterisk", ("SHA-256", "MD5"), None, 11)
    src = "10.0.0.1"
    for i, user in enumerate(["100", "0150", "999"]):
        for via in VIAS[:3]:
            raw = (
                f"REGISTER sip:{user}@example.com SIP/2.0\r\nVia: {via.format(src=src)}\r\n"
                f"From: <sip:{user}@example.com>;tag=t{i}\r\nTo: <sip:{user}@example.com>\r\n"
                f"Call-ID: c{i}\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            _same(fast, slow, _record(raw, src, 5060, "192.0.2.1", T0 + i))
    assert fast._fast.answered == 9


@needs_native
def test_accounts_replaced_later_are_used() -> None:
    fast, slow = _pair("asterisk", ("MD5",), None, 9)
    for r in (fast, slow):
        r.accounts = Accounts.from_config(["3000-3099"])
    raw = register(1, "10.0.0.1", 5060, "3005")
    got = _same(fast, slow, _record(raw, "10.0.0.1", 5060, "192.0.2.1", T0))
    assert got[0].startswith(b"SIP/2.0 401 ") and fast._fast.answered == 1


@needs_native
def test_declines_without_side_effects() -> None:
    """None from answer() leaves the stats and the rng as they were."""
    fast, _ = _pair("asterisk", ("MD5",), None, 5)
    raw = register(1, "10.0.0.1", 5060, "100").replace(b"SIP/2.0/UDP", b"SIP/2.0/UDP  ")
    state = fast._rng.getstate()
    assert fast._fast.answer(_record(raw, "10.0.0.1", 5060, "192.0.2.1", T0), fast.stats) is None
    assert fast._rng.getstate() == state
    assert dataclasses.asdict(fast.stats) == dataclasses.asdict(uas.ResponderStats())


def test_not_used_when_native_false_or_unusable() -> None:
    personality = load_personality("asterisk")
    accounts = Accounts.from_config(EXTENSIONS)
    r = uas.Responder(personality, accounts, secret=SECRET, native=False)
    assert r._fast is None

    class MyAccounts(Accounts):  # exists() may differ: the C path reads Accounts' tables
        pass

    mine = MyAccounts(["100"])
    assert uas.Responder(personality, mine, secret=SECRET)._fast is None
    r = uas.Responder(personality, accounts, secret=SECRET, native=True)
    if r._fast is not None:  # accounts replaced later: the C path follows (or steps aside)
        r.accounts = mine
        assert r._fast is None and r.accounts is mine
        r.accounts = Accounts.from_config(["300"])
        assert r._fast is None  # stays with Python once it stepped aside
    odd = uas.UasConfig(realm="a\x01b")
    assert uas.Responder(personality, accounts, secret=SECRET, config=odd)._fast is None
