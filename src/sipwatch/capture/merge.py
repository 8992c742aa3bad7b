"""Several captures read as one: their packets in timestamp order.

The merge is by packet, not by message: packets of all inputs are taken in (timestamp, input
order) order, each input keeps its own decoder state (fragments, TCP streams), and a message
is produced when the packet that completes it is decoded. Consecutive packets of one input are
handed over together ("runs"), so inputs that do not overlap in time (rotated captures) cost
one comparison per batch, and interleaved ones (two interfaces) still come out in order.

Inputs are opened lazily: a file is opened when the merge reaches its first packet (known from
a probe of the file) and closed at its last, so a folder of many rotated captures keeps one or
two open. Standard input cannot be probed: it is opened at once.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sipwatch.capture.reader import CaptureFile

_META = struct.Struct("=IIII")  # next_batch: sec, usec, offset, caplen


@dataclass(slots=True)
class Run:
    """Consecutive packets of one input (meta entries of one batch), or its end (meta None)."""

    index: int  # the input's position in the list of inputs
    cap: CaptureFile
    pkts: bytes
    meta: bytes | None  # None: the input has no more packets (flush its decoder now)
    nbytes: int = 0  # captured bytes of the run's packets


@dataclass(slots=True)
class _Input:
    cap: CaptureFile
    batches: Iterator[tuple[bytes, bytes]]
    pkts: bytes = b""
    meta: bytes = b""
    ts: list[float] = field(default_factory=list)
    caplen: list[int] = field(default_factory=list)
    pos: int = 0

    def next_batch(self) -> bool:
        """Read the next batch; False at the end of the input."""
        for pkts, meta in self.batches:
            if not meta:
                continue
            self.pkts, self.meta, self.pos = pkts, meta, 0
            entries = list(_META.iter_unpack(meta))
            # the decoders' own timestamp arithmetic, so the order is the one they see
            self.ts = [sec + usec * 1e-6 for sec, usec, _, _ in entries]
            self.caplen = [e[3] for e in entries]
            return True
        return False


def packet_runs(
    files: list[tuple[str, str]], make: Callable[[str, str], CaptureFile]
) -> Iterator[Run]:
    """Runs of packets of `files` in merged timestamp order; each input ends with a Run whose
    meta is None. `make(path, kind)` builds an unopened CaptureFile. Probing happens here, so a
    bad file, link type or filter raises CaptureError before the first Run."""
    heap: list[tuple[float, int]] = []
    inputs: dict[int, _Input] = {}
    try:
        for i, (path, kind) in enumerate(files):
            if kind == "stdin":  # cannot be probed: open it now and look at its first packet
                inp = _Input(cap := make(path, kind).open(), cap.batches())
                inputs[i] = inp
                if inp.next_batch():
                    heap.append((inp.ts[0], i))
                else:
                    inputs.pop(i).cap.close()
                continue
            first = make(path, kind).probe()
            if first is not None:
                heap.append((first, i))
    except BaseException:
        for inp in inputs.values():
            inp.cap.close()
        raise
    heapq.heapify(heap)
    return _merge(heap, inputs, files, make)


def _merge(
    heap: list[tuple[float, int]],
    inputs: dict[int, _Input],
    files: list[tuple[str, str]],
    make: Callable[[str, str], CaptureFile],
) -> Iterator[Run]:
    try:
        while heap:
            _, i = heap[0]
            inp = inputs.get(i)
            if inp is None:  # the merge reached this file's first packet: open it now
                cap = make(*files[i]).open()
                inp = inputs[i] = _Input(cap, cap.batches())
                if not inp.next_batch():
                    heapq.heappop(heap)
                    yield Run(i, inputs.pop(i).cap, b"", None)
                    inp.cap.close()
                    continue
                heapq.heapreplace(heap, (inp.ts[0], i))
                continue
            heapq.heappop(heap)
            bound = heap[0] if heap else None
            ts, start, end = inp.ts, inp.pos, len(inp.ts)
            if bound is not None:
                stop = start + 1  # the input at the top of the heap goes first
                while stop < end and (ts[stop], i) < bound:
                    stop += 1
                end = stop
            yield Run(i, inp.cap, inp.pkts, inp.meta[16 * start : 16 * end],
                      sum(inp.caplen[start:end]))  # fmt: skip
            inp.pos = end
            if inp.pos < len(inp.ts) or inp.next_batch():
                heapq.heappush(heap, (inp.ts[inp.pos], i))
            else:
                del inputs[i]
                yield Run(i, inp.cap, b"", None)
                inp.cap.close()
    finally:
        for inp in inputs.values():
            inp.cap.close()
