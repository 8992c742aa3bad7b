"""Keep the honeypot from being used as a weapon: per-source reply rates, reply size bound.

Sans-I/O: time comes from the caller (the receive timestamp), nothing here touches a socket.

- RateLimiter: a token bucket per source address in an LRU-bounded table, so a flood of
  spoofed sources cannot grow memory; a source pushed out simply starts with a full bucket.
- fit_replies: the bytes we send over UDP in answer to one datagram never exceed ``factor``
  times the bytes of that datagram (QUIC's anti-amplification rule, RFC 9000 8.1). Over the
  budget, provisional replies go first, then optional headers (Server, Allow, ...); what still
  does not fit is not sent. Every cut is counted.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

# headers a reply can lose without breaking the transaction (the client still matches it)
_OPTIONAL = (
    b"server:",
    b"user-agent:",
    b"allow:",
    b"supported:",
    b"accept:",
    b"accept-language:",
    b"accept-encoding:",
    b"date:",
    b"allow-events:",
    b"organization:",
)


@dataclass(slots=True)
class SafetyStats:
    rate_limited: int = 0  # requests not answered because their source was over its rate
    limiter_evictions: int = 0  # sources pushed out of the bounded rate table
    provisional_cut: int = 0  # 1xx replies left out to respect the size bound
    trimmed: int = 0  # replies sent without their optional headers
    oversize_dropped: int = 0  # replies not sent at all: still too big


class RateLimiter:
    """Token bucket per source: ``rate`` replies/s sustained, ``burst`` at once."""

    __slots__ = ("rate", "burst", "max_sources", "stats", "_buckets")

    def __init__(self, rate: float, burst: float, max_sources: int, stats: SafetyStats) -> None:
        if rate <= 0 or burst < 1 or max_sources < 1:
            raise ValueError("rate > 0, burst >= 1 and max_sources >= 1 are required")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_sources = max_sources
        self.stats = stats
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, source: str, now: float) -> bool:
        """Take one token for ``source`` at time ``now``; False (counted) when none is left."""
        buckets = self._buckets
        bucket = buckets.get(source)
        if bucket is None:
            if len(buckets) >= self.max_sources:
                buckets.popitem(last=False)
                self.stats.limiter_evictions += 1
            bucket = buckets[source] = [self.burst, now]
        else:
            buckets.move_to_end(source)
            elapsed = now - bucket[1]
            if elapsed > 0:  # a clock step backwards refills nothing
                bucket[0] = min(self.burst, bucket[0] + elapsed * self.rate)
                bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        self.stats.rate_limited += 1
        return False


def strip_optional(reply: bytes) -> bytes:
    """The reply without its optional header lines (body and other headers unchanged)."""
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep:
        return reply
    lines = head.split(b"\r\n")
    kept = [lines[0]] + [ln for ln in lines[1:] if not ln.lower().startswith(_OPTIONAL)]
    return b"\r\n".join(kept) + sep + body


def _is_provisional(reply: bytes) -> bool:
    return reply.startswith(b"SIP/2.0 1")


def fit_replies(
    replies: list[bytes], request_size: int, factor: float, stats: SafetyStats
) -> list[bytes]:
    """The replies that may answer a ``request_size``-byte datagram: total <= factor * size."""
    budget = int(request_size * factor)
    if (len(replies[0]) if len(replies) == 1 else sum(map(len, replies))) <= budget:
        return replies
    finals = [r for r in replies if not _is_provisional(r)]
    if finals:  # the final reply is what the client waits for; 1xx are optional
        stats.provisional_cut += len(replies) - len(finals)
        replies = finals
    out: list[bytes] = []
    for reply in replies:
        if len(reply) > budget:
            reply = strip_optional(reply)
            if len(reply) > budget:
                stats.oversize_dropped += 1
                continue
            stats.trimmed += 1
        out.append(reply)
        budget -= len(reply)
    return out
