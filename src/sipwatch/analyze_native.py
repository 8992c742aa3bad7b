"""`sipwatch analyze` through the C bulk path (sipwatch._native), when it can run.

The C BulkAnalyzer fuses the per-message stages of the pipeline (decode, parse, Record id,
stage labels, store row) for the common shape of a message: one SIP message in a UDP datagram,
or a message the Python decoder framed (TCP, tunnels, VLANs), whose head the C scanner reads.
Every other message takes the Python pipeline at once and in order (Record, the same
analyzers, the same store), and both share the one labeller, which is the C Labeller, and the
one password recovery, which is the C Recovery (so digest requests stay on the C path): the
trace store ends up with exactly the rows the Python pipeline alone would store
(tests/unit/test_native_analyze.py holds the two to it).

It runs for `--no-detect` on a SQLite store, for any inputs (several are merged by packet
timestamp, as the Python path merges them): detection needs Records for the rule engine, and
PostgreSQL is written by COPY elsewhere.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator

from sipwatch.capture import tcp as pytcp
from sipwatch.capture.decode import SIP_PORTS, PacketDecoder
from sipwatch.capture.merge import Run, packet_runs
from sipwatch.capture.reader import CaptureFile
from sipwatch.capture.sources import expand
from sipwatch.capture.stats import CaptureStats
from sipwatch.detect.passwords import PasswordRecovery
from sipwatch.detect.stages import LabelerConfig
from sipwatch.native import part
from sipwatch.pipeline import PipelineStats
from sipwatch.record import Record
from sipwatch.sip.framing import MAX_HEAD
from sipwatch.sip.message import MAX_BODY
from sipwatch.store.base import Store
from sipwatch.store.schema import MESSAGE_COLUMNS

# as Pipeline.run: bulk runs allocate many short-lived objects on the Python path
_GC_GEN0 = 50_000
_PENDING_ROWS = 2000  # Python-path records handed to the store together


def writer_errors() -> tuple[type[BaseException], ...]:
    """What the writer thread raises when the store fails (disk full, I/O error)."""
    err = part("WriterError")
    return (err,) if err is not None else ()


def usable(db: str, detect: bool, workers: int | None) -> bool:
    """True when a run into `db` can take the C bulk path (decided before anything is opened)."""
    if detect or (workers is not None and workers > 1):
        return False
    if part("BulkAnalyzer") is None or part("Labeller") is None or part("Recovery") is None:
        return False
    if str(db).lower().startswith(("postgresql:", "postgres:", "postgresql+")):
        return False  # PostgreSQL stores take rows through COPY, not the writer thread
    from sipwatch.store.sqlite import native_writer

    return native_writer() is not None


def tcp_reassembler(sink: object) -> object | None:
    """The C reassembler with the bounds of the Python one (capture/tcp.py, sip/framing.py),
    or None when this build has none (the Python decoder then reassembles as usual)."""
    kind = part("TcpReassembler")
    if kind is None:
        return None
    return kind(
        sink,
        max_flows=pytcp.MAX_FLOWS,
        max_ooo_segments=pytcp.MAX_OOO_SEGMENTS,
        max_ooo_bytes=pytcp.MAX_OOO_BYTES,
        max_total_ooo_bytes=pytcp.MAX_TOTAL_OOO_BYTES,
        idle_timeout=pytcp.IDLE_TIMEOUT,
        max_head=MAX_HEAD,
        max_body=MAX_BODY,
        sip_ports=tuple(sorted(SIP_PORTS)),
    )


def add_counts(stats: CaptureStats, counts: dict[str, int]) -> None:
    """Add the counters the C reassembler kept to the capture's."""
    for name, n in counts.items():
        setattr(stats, name, getattr(stats, name) + n)


def open_inputs(
    sources: list[str],
    bpf: str | None,
    stats: CaptureStats,
    on_warning: Callable[[str], object] | None,
) -> Iterator[Run]:
    """The packets of `sources` as the Python path reads them: one input batch by batch, several
    merged by packet timestamp (capture/merge.py); each input ends with a Run without meta.
    Opens (one input) or probes (several) now, so a bad file, link type or filter raises
    CaptureError here, before the store is touched."""
    files = expand(sources)

    def make(path: str, kind: str) -> CaptureFile:
        return CaptureFile(path, kind, bpf, stats, on_warning)

    if len(files) > 1:
        return packet_runs(files, make)
    return _one_input(make(*files[0]).open())


def _one_input(cap: CaptureFile) -> Iterator[Run]:
    try:
        for pkts, meta in cap.batches():
            yield Run(0, cap, pkts, meta, len(pkts))
        yield Run(0, cap, b"", None)
    finally:
        cap.close()


def new_tally(store: Store) -> object | None:
    """A RunTally for the run's summary tables when the store holds no message yet (then the
    run's counts are the store's, summary.py), else None."""
    kind = part("RunTally")
    if kind is None or store.query("SELECT 1 FROM messages LIMIT 1"):
        return None
    return kind()


def run(
    runs: Iterator[Run],
    store: Store,
    stats: CaptureStats,
    pipe_stats: PipelineStats,
    stages: dict,
    recovery: PasswordRecovery,
    config: LabelerConfig,
    sensor: str,
    node: str,
    on_progress: Callable[[int, int, int], object] | None,
    tally: object | None = None,
) -> None:
    """Analyse the packets of `runs` (open_inputs) into `store`; counts into the given objects
    (and every stored message into `tally`, a RunTally, when given); closes the inputs.

    recovery: a sipwatch._native.Recovery (analyze_recovery() makes one when it is built); the
    Python-path records go through its label() too, so both paths share its state."""
    if not isinstance(recovery, part("Recovery")):
        raise TypeError("the C bulk path needs the C password recovery (sipwatch._native.Recovery)")
    labeller = part("Labeller")(config)
    writer = store.bulk_writer()  # type: ignore[attr-defined]
    pending: list[Record] = []
    analyzers = (labeller.label, recovery.label)
    seen = {"sensor": sensor, "node": node}

    def python_path(raw, ts, transport, src, sport, dst, dport, tunnel, vlan) -> None:  # noqa: ANN001
        rec = Record.from_bytes(raw, ts, transport, src, sport, dst, dport, tunnel=tunnel,
                                vlan=vlan, **seen)  # fmt: skip
        for analyze in analyzers:
            analyze(rec)
        stages[rec.stage] = stages.get(rec.stage, 0) + 1
        if tally is not None:
            tally.add(rec.stage, rec.is_request, bool(rec.msg.error), rec.src, rec.ts, rec.tool)
        pending.append(rec)
        if len(pending) >= _PENDING_ROWS:
            store.add(pending)
            pending.clear()

    bulk = part("BulkAnalyzer")(
        labeller, writer, python_path, recovery=recovery, sensor=sensor, node=node,
        ncols=len(MESSAGE_COLUMNS), tally=tally,
    )  # fmt: skip
    threshold = gc.get_threshold()
    if 0 < threshold[0] < _GC_GEN0:
        gc.set_threshold(_GC_GEN0, *threshold[1:])
    # what exists now (modules, rule and number metadata) lives for the whole run: keep it out
    # of the full collections that the labeller's long-lived table entries trigger
    gc.freeze()
    # per input, as the Python path has: a decoder for the frames C leaves to Python, and one
    # TCP reassembler (the C one) that the C batch loop and that decoder both hand segments to
    decoders: dict[int, tuple[PacketDecoder, object | None]] = {}
    batch = bulk.batch
    try:
        for run in runs:
            got = decoders.get(run.index)
            if run.meta is None:  # that input ended: TCP streams and fragments still buffered
                if got is not None:
                    decoder, tcp = decoders.pop(run.index)
                    decoder.flush()
                    if tcp is not None:
                        add_counts(stats, tcp.counts())  # type: ignore[attr-defined]
                continue
            if got is None:
                tcp = tcp_reassembler(bulk)
                got = decoders[run.index] = (
                    PacketDecoder(run.cap.dlt, stats, bulk.message, tcp=tcp),
                    tcp,
                )
            decoder, tcp = got
            stats.packets += len(run.meta) >> 4
            stats.bytes += run.nbytes
            n_sip, n_other = batch(run.pkts, run.meta, run.cap.dlt, decoder.frame_at, tcp)
            stats.sip_messages += n_sip
            stats.non_sip += n_other
            if on_progress is not None:
                counts = bulk.counts()
                on_progress(stats.packets, counts["handled"] + counts["fallbacks"], stats.bytes)
        bulk.check()
        bulk.flush()
        if pending:
            store.add(pending)
            pending.clear()
    finally:
        runs.close()  # type: ignore[attr-defined]
        gc.unfreeze()
        gc.set_threshold(*threshold)
    counts = bulk.counts()
    for stage, n in counts["stages"].items():
        stages[stage] = stages.get(stage, 0) + n
    pipe_stats.records += counts["handled"] + counts["fallbacks"]
