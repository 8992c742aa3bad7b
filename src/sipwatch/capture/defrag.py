"""IP fragment reassembly (IPv4 and IPv6) with bounded state.

Big SIP messages (INVITE with SDP, REGISTER with many Contacts) exceed the MTU over UDP and
arrive as fragments. State is bounded three ways: a time-out by packet time, a maximum number
of datagrams in progress (oldest dropped first) and a maximum of fragments per datagram.
Every fragment thrown away is counted in `stats.fragments_dropped`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from sipwatch.capture.stats import CaptureStats

MAX_DATAGRAM = 65535 + 8  # largest IPv4/IPv6 (non-jumbo) payload plus slack


class _Datagram:
    __slots__ = ("first_ts", "parts", "total", "have")

    def __init__(self, ts: float) -> None:
        self.first_ts = ts
        self.parts: list[tuple[int, bytes]] = []
        self.total = -1  # known once the last fragment (MF=0) arrived
        self.have = 0


class Defragmenter:
    def __init__(
        self,
        stats: CaptureStats,
        timeout: float = 30.0,
        max_datagrams: int = 2048,
        max_fragments: int = 64,
    ) -> None:
        self.stats = stats
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_fragments = max_fragments
        self._table: OrderedDict[Hashable, _Datagram] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def add(self, key: Hashable, ts: float, offset: int, more: bool, data: bytes) -> bytes | None:
        """Add one fragment; return the whole payload when this completes it, else None."""
        st = self.stats
        st.fragments += 1
        table = self._table
        self._expire(ts)
        dg = table.get(key)
        if dg is None:
            if len(table) >= self.max_datagrams:
                _, old = table.popitem(last=False)
                st.fragments_dropped += len(old.parts)
            dg = table[key] = _Datagram(ts)
        end = offset + len(data)
        if end > MAX_DATAGRAM or len(dg.parts) >= self.max_fragments:
            self._drop(key, dg, 1)
            return None
        if not more:
            if dg.total not in (-1, end):  # two different "last" fragments
                self._drop(key, dg, 1)
                return None
            dg.total = end
        dg.parts.append((offset, data))
        dg.have += len(data)
        if dg.total < 0 or dg.have < dg.total:
            return None
        out = _assemble(dg)
        if out is not None:
            del table[key]
            st.fragments_reassembled += 1
        return out

    def _drop(self, key: Hashable, dg: _Datagram, extra: int) -> None:
        self.stats.fragments_dropped += len(dg.parts) + extra
        del self._table[key]

    def _expire(self, now: float) -> None:
        table = self._table
        limit = now - self.timeout
        while table:
            key, dg = next(iter(table.items()))
            if dg.first_ts >= limit:
                break
            self._drop(key, dg, 0)

    def flush(self) -> None:
        """End of capture: whatever is incomplete is dropped (and counted)."""
        for dg in self._table.values():
            self.stats.fragments_dropped += len(dg.parts)
        self._table.clear()


def _assemble(dg: _Datagram) -> bytes | None:
    buf = bytearray(dg.total)
    covered = 0
    for off, data in sorted(dg.parts, key=lambda part: part[0]):
        if off > covered:
            return None  # a hole: duplicates made `have` look complete
        if off + len(data) > covered:
            buf[covered : off + len(data)] = data[covered - off :]
            covered = off + len(data)
    return bytes(buf) if covered >= dg.total else None
