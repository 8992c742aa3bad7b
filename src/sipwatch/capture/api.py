"""read_captures: many captures in, one stream of Records out, in timestamp order."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

from sipwatch.capture.decode import PacketDecoder, RecordFactory
from sipwatch.capture.merge import Run, packet_runs
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

    Several captures are merged by packet timestamp (capture/merge.py). Each capture is probed
    up front (so a bad file, link type or filter raises CaptureError before any Record), then
    read lazily: a file is opened only when the merge reaches its first packet, so a folder of
    rotated captures keeps one or two files open at a time.
    """
    stats = stats if stats is not None else CaptureStats()
    warn = on_warning or stats.warn
    files = expand(sources)

    def make(path: str, kind: str) -> CaptureFile:
        return CaptureFile(path, kind, bpf, stats, warn, batch)

    if len(files) == 1:
        cap = make(*files[0]).open()
        return _records(cap, stats, make_record)
    return _merged_records(packet_runs(files, make), stats, make_record)


def _merged_records(
    runs: Iterator[Run], stats: CaptureStats, make_record: RecordFactory
) -> Iterator[Any]:
    """Records of several captures, decoded in the merged packet order (capture/merge.py)."""
    decoders: dict[int, PacketDecoder] = {}
    try:
        for run in runs:
            dec = decoders.get(run.index)
            if run.meta is None:  # that input ended: what its TCP streams still hold
                if dec is not None:
                    yield from decoders.pop(run.index).flush()
                continue
            if dec is None:
                dec = decoders[run.index] = PacketDecoder(run.cap.dlt, stats, make_record)
            yield from dec.decode_batch(run.pkts, run.meta, run.nbytes)
    finally:
        runs.close()  # type: ignore[attr-defined]  # the inputs still open


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
