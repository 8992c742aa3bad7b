"""TCP stream reassembly for SIP, per direction, bounded.

A SIP-over-TCP stream is cut into segments anywhere: several messages in one segment, one
message over several. Segments are put back in sequence order and handed to a framer
(``sipwatch.sip.framing.StreamFramer``: Content-Length framing) that returns whole messages.

Real captures lose segments and reorder them. Out-of-order segments wait in a small buffer;
when the buffer is full (or the flow ends) the hole is declared lost: the message in progress
is emitted as it is (the parser flags it), and a fresh framer resynchronises on the next SIP
start line at the beginning of a line. Retransmitted bytes are delivered once. The flow table is an LRU with an idle time-out by packet time, and
buffered bytes are capped per flow and in total. Every drop is counted in CaptureStats.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Protocol

from sipwatch.capture.stats import CaptureStats

FIN, SYN, RST = 0x01, 0x02, 0x04
_WRAP = 1 << 32
_HALF = 1 << 31
_FAR = 1 << 24  # a segment this far ahead belongs to another connection (port reuse)

# the bounds (also given to the C reassembler of the bulk path, sipwatch._native, which
# mirrors this module and is the one reassembler of a `sipwatch analyze` run that takes it)
MAX_FLOWS = 2048
MAX_OOO_SEGMENTS = 64
MAX_OOO_BYTES = 128 * 1024
MAX_TOTAL_OOO_BYTES = 16 * 1024 * 1024
IDLE_TIMEOUT = 900.0


class Framer(Protocol):
    dropped_bytes: int

    def feed(self, data: bytes) -> list[bytes]: ...

    def close(self) -> list[bytes]: ...


class Flow:
    """One direction of a TCP connection carrying SIP."""

    __slots__ = (
        "src",
        "sport",
        "dst",
        "dport",
        "tunnel",
        "vlan",
        "next_seq",
        "ooo",
        "ooo_bytes",
        "framer",
        "last_ts",
        "dead",
        "started",
    )

    def __init__(self, src: str, sport: int, dst: str, dport: int, tunnel: str, vlan: str) -> None:
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self.tunnel, self.vlan = tunnel, vlan
        self.next_seq = -1  # unknown until SYN or the first data segment
        self.ooo: dict[int, bytes] = {}  # seq -> payload, segments ahead of a hole
        self.ooo_bytes = 0
        self.framer: Framer | None = None
        self.last_ts = 0.0
        self.dead = False  # not SIP after all (TLS on 5061): ignore the rest
        self.started = False  # first data seen


Emit = Callable[[Flow, float, bytes], None]


def _rel(a: int, b: int) -> int:
    """Signed distance a - b in sequence space."""
    d = (a - b) % _WRAP
    return d - _WRAP if d >= _HALF else d


class TcpReassembler:
    def __init__(
        self,
        stats: CaptureStats,
        framer_factory: Callable[[], Framer],
        emit: Emit,
        is_foreign: Callable[[bytes], bool],
        max_flows: int = MAX_FLOWS,
        max_ooo_segments: int = MAX_OOO_SEGMENTS,
        max_ooo_bytes: int = MAX_OOO_BYTES,
        max_total_ooo_bytes: int = MAX_TOTAL_OOO_BYTES,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.stats = stats
        self.new_framer = framer_factory
        self.emit = emit
        self.is_foreign = is_foreign
        self.max_flows = max_flows
        self.max_ooo_segments = max_ooo_segments
        self.max_ooo_bytes = max_ooo_bytes
        self.max_total_ooo_bytes = max_total_ooo_bytes
        self.idle_timeout = idle_timeout
        self.total_ooo = 0
        self.flows: OrderedDict[Hashable, Flow] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self.flows

    # ------------------------------------------------------------------ flow table
    def open(self, key: Hashable, ts: float, flow: Flow) -> Flow:
        """Start tracking a flow the caller decided is SIP."""
        self._expire(ts)
        flows = self.flows
        while len(flows) >= self.max_flows:
            _, old = flows.popitem(last=False)
            self.stats.tcp_flows_evicted += 1
            self._finish(old, old.last_ts)
        flow.framer = self.new_framer()
        flow.last_ts = ts
        flows[key] = flow
        return flow

    def _expire(self, now: float) -> None:
        flows = self.flows
        limit = now - self.idle_timeout
        while flows:
            key, flow = next(iter(flows.items()))
            if flow.last_ts >= limit:
                break
            del flows[key]
            self._finish(flow, flow.last_ts)

    def flush(self) -> None:
        """End of capture: deliver what waits behind holes, then forget every flow."""
        for flow in self.flows.values():
            self._finish(flow, flow.last_ts)
        self.flows.clear()

    def _finish(self, flow: Flow, ts: float) -> None:
        while flow.ooo:
            self._skip_hole(flow, ts)
            self._drain(flow, ts)
        self._close_framer(flow, ts)

    def _close_framer(self, flow: Flow, ts: float) -> None:
        """Emit an unfinished message as it is (evidence) and count what the framer dropped."""
        framer = flow.framer
        if framer is None:
            return
        flow.framer = None
        for msg in framer.close():
            self.emit(flow, ts, msg)
        self.stats.tcp_framing_drops += framer.dropped_bytes

    # ------------------------------------------------------------------ segments
    def segment(self, key: Hashable, ts: float, seq: int, flags: int, payload: bytes) -> None:
        """One segment of a tracked flow (the caller checked `key in self`)."""
        flows = self.flows
        flow = flows[key]
        flows.move_to_end(key)
        flow.last_ts = ts
        if flow.dead:
            if payload:
                self.stats.non_sip += 1
            if flags & (FIN | RST):
                del flows[key]
            return
        if flags & SYN:
            if flow.next_seq >= 0 and _rel(seq + 1, flow.next_seq) != 0:
                self._restart(flow, ts)  # a new connection on the same ports
            flow.next_seq = (seq + 1) % _WRAP
            seq = flow.next_seq  # data on a SYN (TFO) follows the SYN's sequence number
        if payload:
            if not flow.started:
                flow.started = True
                if self.is_foreign(payload):  # TLS/HTTP on a SIP port: not ours to read
                    flow.dead = True
                    self.stats.non_sip += 1
                    return
                if flow.next_seq < 0:
                    flow.next_seq = seq  # capture started mid-stream: the framer resyncs
            self.stats.tcp_segments += 1
            self._data(flow, ts, seq, payload)
        if flags & (FIN | RST):
            self._finish(flow, ts)
            del flows[key]

    def _restart(self, flow: Flow, ts: float) -> None:
        self._finish(flow, ts)
        flow.framer = self.new_framer()

    def _data(self, flow: Flow, ts: float, seq: int, payload: bytes) -> None:
        rel = _rel(seq, flow.next_seq)
        if rel == 0:
            self._deliver(flow, ts, payload)
            flow.next_seq = (seq + len(payload)) % _WRAP
            if flow.ooo:
                self._drain(flow, ts)
            return
        if rel < 0:
            if -rel >= len(payload):
                self.stats.tcp_retransmissions += 1
                return
            self.stats.tcp_retransmissions += 1  # partly old: keep the new tail
            self._data(flow, ts, flow.next_seq, payload[-rel:])
            return
        if rel > _FAR:
            self._restart(flow, ts)
            flow.next_seq = seq
            self._data(flow, ts, seq, payload)
            return
        # ahead of a hole: wait for the missing bytes, within bounds
        self.stats.tcp_out_of_order += 1
        old = flow.ooo.get(seq)
        if old is None or len(old) < len(payload):
            grow = len(payload) - (len(old) if old else 0)
            flow.ooo[seq] = payload
            flow.ooo_bytes += grow
            self.total_ooo += grow
        while flow.ooo and (
            len(flow.ooo) > self.max_ooo_segments
            or flow.ooo_bytes > self.max_ooo_bytes
            or self.total_ooo > self.max_total_ooo_bytes
        ):
            self._skip_hole(flow, ts)
            self._drain(flow, ts)

    def _pop(self, flow: Flow, seq: int) -> bytes:
        data = flow.ooo.pop(seq)
        flow.ooo_bytes -= len(data)
        self.total_ooo -= len(data)
        return data

    def _drain(self, flow: Flow, ts: float) -> None:
        """Deliver buffered segments that now continue the stream."""
        while flow.ooo:
            nxt = flow.next_seq
            if nxt in flow.ooo:
                data = self._pop(flow, nxt)
                self._deliver(flow, ts, data)
                flow.next_seq = (nxt + len(data)) % _WRAP
                continue
            progressed = False
            for s in list(flow.ooo):
                rel = _rel(s, nxt)
                if rel < 0:  # starts before the stream position: old or overlapping
                    data = self._pop(flow, s)
                    if -rel < len(data):
                        self._deliver(flow, ts, data[-rel:])
                        flow.next_seq = (s + len(data)) % _WRAP
                        progressed = True
                        break
                    self.stats.tcp_retransmissions += 1
            if not progressed:
                return

    def _skip_hole(self, flow: Flow, ts: float) -> None:
        """Give up on the missing bytes before the earliest buffered segment."""
        nxt = flow.next_seq
        first = min(flow.ooo, key=lambda s: _rel(s, nxt))
        gap = _rel(first, nxt)
        if gap > 0:
            self.stats.tcp_gaps += 1
            self.stats.tcp_gap_bytes += gap
            self._close_framer(flow, ts)
            flow.framer = self.new_framer()  # resyncs on the next start line
        flow.next_seq = first

    def _deliver(self, flow: Flow, ts: float, data: bytes) -> None:
        framer = flow.framer
        if framer is None:
            framer = flow.framer = self.new_framer()
        for msg in framer.feed(data):
            self.emit(flow, ts, msg)
