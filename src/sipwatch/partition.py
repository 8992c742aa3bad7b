"""Split a record stream by client address, so several analysis workers can share the work.

Every piece of labeller state is keyed by the client's address (the source of a request, the
destination of a response): the distinct users a source probed, the request table that gives
responses their request's label, the INVITE an ACK belongs to. Workers that each take the
records of their own clients therefore give the same labels as one worker taking all of them
(while the bounded tables do not overflow: each worker gets its share of the bounds, and which
entries an overflow evicts can differ).

``partitioned()`` decides before parsing, from the first word of the message, so a worker
parses only its own share; messages that do not start with a letter are parsed first and
placed exactly as the labeller keys them. The one case it can place differently: junk that
starts with a letter with a status line hidden behind it (a fuzzed response), which is then
taken for a request, and its label is inferred rather than inherited.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from socket import inet_ntoa
from typing import Any

from sipwatch.record import Record

_CACHE_MAX = 65536  # client address -> worker; bounded (spoofed sources cannot grow it)


def client_of(rec: Record) -> str:
    """The client side of a message: the sender of a request, the receiver of a response."""
    msg = rec.msg
    return rec.dst if not msg.is_request and msg.status else rec.src


def partitioned(
    make_record: Callable[..., Any], index: int, workers: int
) -> Callable[..., Record | None]:
    """A record factory that returns None (without parsing) for other workers' clients."""
    cache: dict[str, int] = {}
    cache4: dict[bytes, bool] = {}  # packed IPv4 client address -> ours?
    crc = zlib.crc32

    def worker_of(client: str) -> int:
        worker = cache.get(client)
        if worker is None:
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            worker = cache[client] = crc(client.encode()) % workers
        return worker

    def make(raw: bytes, ts: float, transport: str, src: str, sport: int, dst: str,
             dport: int, **seen: str) -> Record | None:  # fmt: skip
        if raw[:1].isalpha():  # a start line right away: request or response by its first word
            client = dst if raw[:4].upper() == b"SIP/" else src
            if worker_of(client) != index:
                return None
            return make_record(raw, ts, transport, src, sport, dst, dport, **seen)
        rec = make_record(raw, ts, transport, src, sport, dst, dport, **seen)
        return rec if worker_of(client_of(rec)) == index else None

    def route_ipv4(raw: bytes, src: bytes, dst: bytes) -> Callable[..., Any] | None:
        """The decoder's shortcut for one message between packed IPv4 addresses, before it
        formats them: None when ``make`` would return None for it (another worker's client),
        else the factory to call (``make_record`` itself when the client is known to be ours,
        ``make`` when only parsing can tell)."""
        if not raw[:1].isalpha():
            return make
        client = dst if raw[:4].upper() == b"SIP/" else src
        ours = cache4.get(client)
        if ours is None:
            if len(cache4) >= _CACHE_MAX:
                cache4.clear()
            ours = cache4[client] = crc(inet_ntoa(client).encode()) % workers == index
        return make_record if ours else None

    make.route_ipv4 = route_ipv4  # type: ignore[attr-defined]
    return make
