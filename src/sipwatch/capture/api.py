"""read_captures: many captures in, one stream of Records out, in timestamp order."""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable, Iterator
from typing import Any

from sipwatch.capture.decode import PacketDecoder, RecordFactory
from sipwatch.capture.reader import BATCH, CaptureFile
from sipwatch.capture.sources import expand
from sipwatch.capture.stats import CaptureStats
from sipwatch.record import Record

Warn = Callable[[str], None]


def _records(cap: CaptureFile, stats: CaptureStats, make_record: RecordFactory) -> Iterator[Any]:
    """Records of one opened capture, in packet order; closes the capture at the end."""
    try:
        decoder = PacketDecoder(cap.dlt, stats, make_record)
        decode = decoder.decode_batch
        for pkts, meta in cap.batches():
            yield from decode(pkts, meta)
        yield from decoder.flush()
    finally:
        cap.close()


def read_captures(
    sources: list[str],
    bpf: str | None = None,
    stats: CaptureStats | None = None,
    on_warning: Warn | None = None,
    make_record: RecordFactory = Record.from_bytes,
    batch: int = BATCH,
) -> Iterator[Record]:
    """Stream the SIP Records of capture files, folders (recursive) and "-" (standard input).

    Several captures are merged by timestamp. Each capture is opened once up front (so a bad
    file, link type or filter raises CaptureError before any Record), then read lazily: a file
    is re-opened only when the merge reaches its first packet, so a folder of rotated captures
    keeps one or two files open at a time.
    """
    stats = stats if stats is not None else CaptureStats()
    warn = on_warning or stats.warn
    files = expand(sources)

    def make(path: str, kind: str) -> CaptureFile:
        return CaptureFile(path, kind, bpf, stats, warn, batch)

    if len(files) == 1:
        cap = make(*files[0]).open()
        return _records(cap, stats, make_record)
    # check every file and learn where it starts; standard input can only be opened once
    heap: list[tuple[float, int, Iterator[Any] | None, Any]] = []
    try:
        for i, (path, kind) in enumerate(files):
            if kind == "stdin":
                it = _records(make(path, kind).open(), stats, make_record)
                first = next(it, None)
                if first is not None:
                    heap.append((first.ts, i, it, first))
                continue
            first_ts = make(path, kind).probe()
            if first_ts is not None:
                heap.append((first_ts, i, None, None))
    except BaseException:
        for _, _, it, _ in heap:
            if it is not None:
                it.close()  # type: ignore[attr-defined]
        raise
    heapq.heapify(heap)
    return _merge(heap, files, make, stats, make_record)


def _merge(
    heap: list[tuple[float, int, Iterator[Any] | None, Any]],
    files: list[tuple[str, str]],
    make: Callable[[str, str], CaptureFile],
    stats: CaptureStats,
    make_record: RecordFactory,
) -> Iterator[Any]:
    open_iters: list[Iterator[Any]] = []
    try:
        while heap:
            ts, i, it, rec = heap[0]
            if it is None:  # the merge reached this file's first packet: open it now
                it = _records(make(*files[i]).open(), stats, make_record)
                open_iters.append(it)
                rec = next(it, None)
                if rec is None:
                    heapq.heappop(heap)
                else:
                    heapq.heapreplace(heap, (rec.ts, i, it, rec))
                continue
            yield rec
            nxt = next(it, None)
            if nxt is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (nxt.ts, i, it, nxt))
    finally:
        for it in open_iters:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        for _, _, it, _ in heap:
            if it is not None:
                getattr(it, "close", lambda: None)()


def iter_packets(
    source: str, bpf: str | None = None, stats: CaptureStats | None = None
) -> Iterator[tuple[float, int, bytes]]:
    """The raw frames of one capture as (timestamp, link type, frame bytes): the lower layer
    for tools that want packets rather than Records (e.g. writing a filtered capture)."""
    stats = stats if stats is not None else CaptureStats()
    ((path, kind),) = expand([source])
    cap = CaptureFile(path, kind, bpf, stats).open()
    try:
        meta_unpack = struct.Struct("=IIII").iter_unpack
        for pkts, meta in cap.batches():
            for sec, usec, off, caplen in meta_unpack(meta):
                yield sec + usec * 1e-6, cap.dlt, pkts[off : off + caplen]
    finally:
        cap.close()
