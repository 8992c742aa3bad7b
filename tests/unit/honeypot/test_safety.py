"""Reply rate per source and the UDP amplification bound."""

from __future__ import annotations

from sipwatch.honeypot.safety import RateLimiter, SafetyStats, fit_replies, strip_optional


def _reply(code: int, extra: int = 0) -> bytes:
    return (
        f"SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
        f"Server: {'x' * extra}\r\nAllow: INVITE, ACK\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_bucket_allows_burst_then_the_rate():
    stats = SafetyStats()
    lim = RateLimiter(rate=10, burst=5, max_sources=100, stats=stats)
    assert [lim.allow("a", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert stats.rate_limited == 2
    assert lim.allow("a", 0.1)  # 0.1 s at 10/s refills one token
    assert not lim.allow("a", 0.1)
    assert lim.allow("b", 0.1)  # other sources have their own bucket


def test_bucket_table_is_bounded_and_evictions_counted():
    stats = SafetyStats()
    lim = RateLimiter(rate=1, burst=1, max_sources=3, stats=stats)
    for i in range(10):
        lim.allow(f"198.51.100.{i}", 0.0)
    assert len(lim) == 3
    assert stats.limiter_evictions == 7


def test_clock_going_back_refills_nothing():
    lim = RateLimiter(rate=100, burst=1, max_sources=10, stats=SafetyStats())
    assert lim.allow("a", 10.0)
    assert not lim.allow("a", 5.0)


def test_replies_within_budget_unchanged():
    stats = SafetyStats()
    replies = [_reply(100), _reply(486)]
    assert fit_replies(replies, 1000, 3, stats) == replies
    assert stats == SafetyStats()


def test_over_budget_drops_provisional_then_trims_then_drops():
    stats = SafetyStats()
    final = _reply(486, extra=200)
    size = len(final)
    # room for the final one only: the 100 Trying goes
    out = fit_replies([_reply(100), final], size // 3 + 1, 3, stats)
    assert out == [final] and stats.provisional_cut == 1
    # not even room for the final one as is: it loses Server and Allow
    out = fit_replies([final], (size - 100) // 3, 3, stats)
    assert out == [strip_optional(final)] and stats.trimmed == 1
    assert b"Server:" not in out[0] and b"Allow:" not in out[0] and b"Call-ID: c" in out[0]
    assert sum(map(len, out)) <= 3 * ((size - 100) // 3)
    # a tiny datagram gets nothing back
    assert fit_replies([final], 20, 3, stats) == [] and stats.oversize_dropped == 1


def test_strip_keeps_body_and_mandatory_headers():
    msg = _reply(200).replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: 4\r\n\r\nv=0\n")
    out = strip_optional(msg)
    assert out.endswith(b"\r\n\r\nv=0\n")
    for h in (b"Via:", b"From:", b"To:", b"Call-ID:", b"CSeq:", b"Content-Length: 4"):
        assert h in out
