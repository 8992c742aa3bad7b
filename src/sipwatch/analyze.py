"""The offline job behind `sipwatch analyze`: captures -> pipeline -> trace store."""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg

from sipwatch.capture.api import read_captures
from sipwatch.capture.errors import CaptureError
from sipwatch.capture.sources import expand
from sipwatch.capture.stats import CaptureStats
from sipwatch.detect.chains import ChainTracker
from sipwatch.detect.detector import Detector, EventAction
from sipwatch.detect.engine import Engine
from sipwatch.detect.passwords import analyze_recovery, load_wordlist
from sipwatch.detect.rules import RuleError
from sipwatch.detect.stages import LabelerConfig, labeller_class
from sipwatch.pipeline import Pipeline, PipelineStats
from sipwatch.progress import input_size
from sipwatch.record import Record
from sipwatch.store.base import Store, StoreError, open_store


class AnalyzeError(Exception):
    """A problem the user can fix; its text is the one message to show."""


@dataclass(slots=True)
class AnalyzeResult:
    db: str
    sources: list[str]
    capture: CaptureStats
    pipeline: PipelineStats
    inserted: int = 0  # new rows in the store
    duplicates: int = 0  # messages already stored by an earlier run
    stages: Counter = field(default_factory=Counter)  # this run's messages per stage label
    elapsed: float = 0.0
    events: int = 0  # detection events emitted (new and updated)
    store: Store | None = None  # open for the summary; closed by the caller
    # the C bulk path's count of the summary tables (sipwatch._native.RunTally), when the store
    # held no message before the run: then, if every message was stored, they are the store's
    tally: object | None = None


class StoreAction:
    """The trace store as a pipeline action; a failing store stops the run (fatal)."""

    fatal = True

    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(self, batch: list[Record]) -> None:
        self.store.add(batch)

    def close(self) -> None:
        self.store.end_bulk_load()  # the writer (thread or process) ends here, before the summary


def _region(region: str | None) -> str | None:
    if region is None:
        return None
    import phonenumbers

    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise AnalyzeError(f"unknown region {region!r}: use a two-letter country code such as DE")
    return code


def _detector(rules: Sequence[str]) -> Detector:
    """Rule engine (default pack + ``rules`` files) and chain tracker; one message per problem."""
    try:
        engine = Engine.load(list(rules))
    except RuleError as exc:
        raise AnalyzeError("; ".join(exc.problems)) from None
    return Detector([engine, ChainTracker()])


def _wordlist(path: str | None) -> list[str]:
    if path is None:
        return []
    try:
        return load_wordlist(path)
    except OSError as exc:
        raise AnalyzeError(f"cannot read word list {path}: {exc.strerror or exc}") from None


PARALLEL_MIN_BYTES = 64 << 20  # below this, starting worker processes costs more than it saves
MAX_AUTO_WORKERS = 4  # every worker decodes the whole input: beyond a few, that work dominates


def _workers(sources: list[str], requested: int | None) -> int:
    if requested is not None:
        if requested < 1:
            raise AnalyzeError("--workers must be 1 or more")
        if requested > 1 and "-" in sources:
            raise AnalyzeError("standard input can be read by one worker only: use --workers 1")
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < 2 or "-" in sources:
        return 1
    size = input_size(sources)
    if size is None or size < PARALLEL_MIN_BYTES:
        return 1
    return min(cores or 1, MAX_AUTO_WORKERS)


def _run_parallel(
    n_workers: int,
    job: dict,
    store: Store,
    started: float,
    on_progress: Callable[[int, int, int], object] | None,
    on_warning: Callable[[str], object] | None,
) -> AnalyzeResult:
    from sipwatch.workers import WorkerError, run_workers

    run_id = store.start_ingest(job["sources"])
    store.flush()
    try:
        capture, pipeline, stages, inserted, duplicates = run_workers(n_workers, job, on_progress)
    except WorkerError as exc:
        store.close()
        raise AnalyzeError(str(exc)) from None
    except KeyboardInterrupt:
        store.close()
        raise
    for message in capture.warnings:
        if on_warning is not None:
            on_warning(message)
    result = AnalyzeResult(
        db=job["db"], sources=job["sources"], capture=capture, pipeline=pipeline,
        inserted=inserted, duplicates=duplicates, stages=stages, store=store,
    )  # fmt: skip
    store.finish_ingest(run_id, messages=pipeline.records, inserted=inserted)
    result.elapsed = time.monotonic() - started
    return result


def _run_native(
    sources: list[str],
    db: str,
    bpf: str | None,
    sensor: str,
    node: str,
    config: LabelerConfig,
    passwords: list[str],
    on_progress: Callable[[int, int, int], object] | None,
    on_warning: Callable[[str], object] | None,
    started: float,
) -> AnalyzeResult:
    """The run through the C bulk path (analyze_native.py; analyze_native.usable() said yes)."""
    from sipwatch import analyze_native

    stats = CaptureStats()
    try:
        # opens (and checks) every capture before the store is touched
        runs = analyze_native.open_inputs(sources, bpf, stats, on_warning)
    except CaptureError as exc:
        raise AnalyzeError(str(exc)) from None
    try:
        store = open_store(db, background=True)
    except StoreError as exc:
        runs.close()  # type: ignore[attr-defined]
        raise AnalyzeError(str(exc)) from None
    pipe_stats = PipelineStats()
    result = AnalyzeResult(db=db, sources=list(sources), capture=stats, pipeline=pipe_stats)
    result.store = store
    before = dict(store.counters)
    run_id = store.start_ingest(sources)
    recovery = analyze_recovery(passwords)
    store_errors = (StoreError, sqlite3.Error, *analyze_native.writer_errors())
    try:
        result.tally = analyze_native.new_tally(store)
        analyze_native.run(runs, store, stats, pipe_stats, result.stages, recovery, config,
                           sensor, node, on_progress, result.tally)  # fmt: skip
        store.end_bulk_load()
    except CaptureError as exc:
        store.close()
        raise AnalyzeError(str(exc)) from None
    except store_errors as exc:  # disk full...: keep what was written
        with contextlib.suppress(Exception):
            store.close()
        raise AnalyzeError(f"trace store {db}: {exc}") from None
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            store.end_bulk_load()  # keep what was read
        store.close()
        raise
    result.inserted = store.counters["inserted"] - before.get("inserted", 0)
    result.duplicates = store.counters["duplicates"] - before.get("duplicates", 0)
    store.finish_ingest(run_id, messages=pipe_stats.records, inserted=result.inserted)
    result.elapsed = time.monotonic() - started
    return result


def run_analyze(
    sources: list[str],
    db: str,
    bpf: str | None = None,
    sensor: str = "",
    node: str = "",
    region: str | None = None,
    on_progress: Callable[[int, int, int], object] | None = None,
    on_warning: Callable[[str], object] | None = None,
    workers: int | None = None,
    wordlist: str | None = None,
    detect: bool = True,
    rules: Sequence[str] = (),
) -> AnalyzeResult:
    """Read every SIP message in ``sources`` into the store at ``db`` and return the counts.

    ``workers``: analysis processes (None: one per core for large files, else one).
    ``wordlist``: a file of extra candidate passwords for the password recovery.
    ``detect``: run the rule engine and attack chains (default pack plus ``rules`` files) and
    store their events. Their state spans sources (floods per target, information sharing),
    so they need the whole stream in one process: detection means one analysis process.
    The returned result holds the open store (for the summary); the caller closes it.
    """
    started = time.monotonic()
    region = _region(region)
    passwords = _wordlist(wordlist)
    labeler = labeller_class()(LabelerConfig(default_region=region))
    detector = _detector(rules) if detect else None
    if detector is not None:
        if workers is not None and workers > 1:
            raise AnalyzeError(
                "detection needs the whole stream in one process: use --workers 1, "
                "or --no-detect to store and label with several workers"
            )
        workers = 1
    from sipwatch import analyze_native

    if analyze_native.usable(db, detect=detector is not None, workers=workers):
        # one process on the C bulk path beats several Python workers (bench/BENCHMARKS.md)
        return _run_native(sources, db, bpf, sensor, node, labeler.config, passwords,
                           on_progress, on_warning, started)  # fmt: skip
    n_workers = _workers(sources, workers)
    if n_workers > 1:
        try:
            expand(sources)  # every input exists and is a capture; the workers open them
            store = open_store(db)
        except (CaptureError, StoreError) as exc:
            raise AnalyzeError(str(exc)) from None
        job = {"sources": list(sources), "bpf": bpf, "sensor": sensor, "node": node,
               "region": region, "db": db, "passwords": passwords}  # fmt: skip
        return _run_parallel(n_workers, job, store, started, on_progress, on_warning)
    stats = CaptureStats()
    make_record = Record.from_bytes
    if sensor or node:
        make_record = functools.partial(Record.from_bytes, sensor=sensor, node=node)
    try:
        # opens (and checks) every capture before the store is touched
        records = read_captures(
            sources, bpf=bpf, stats=stats, on_warning=on_warning, make_record=make_record
        )
    except CaptureError as exc:
        raise AnalyzeError(str(exc)) from None
    try:
        store = open_store(db, background=True)
    except StoreError as exc:
        raise AnalyzeError(str(exc)) from None
    analyzers: list = [labeler.label, analyze_recovery(passwords).label]
    actions: list = [StoreAction(store)]
    if detector is not None:
        analyzers += detector.analyzers
        actions.append(EventAction(detector, store, sinks=(), store_at_end=True))
    pipe = Pipeline(analyzers, actions)
    result = AnalyzeResult(db=db, sources=list(sources), capture=stats, pipeline=pipe.stats)
    result.store = store
    before = dict(store.counters)
    run_id = store.start_ingest(sources)

    stages = result.stages

    def count_stage(rec: Record) -> None:
        stages[rec.stage] += 1

    pipe.analyzers.append(count_stage)

    def progress(_n: int) -> None:
        if on_progress is not None:
            on_progress(stats.packets, pipe.stats.records, stats.bytes)

    try:
        pipe.run(records, on_batch=progress)
        pipe.close()  # flushes the store
    except CaptureError as exc:
        store.close()
        raise AnalyzeError(str(exc)) from None
    except (StoreError, sqlite3.Error, psycopg.Error) as exc:  # disk full...: keep what was written
        with contextlib.suppress(Exception):
            store.close()
        raise AnalyzeError(f"trace store {db}: {exc}") from None
    except KeyboardInterrupt:
        pipe.close()  # keep what was read: flush it before leaving
        store.close()
        raise
    if detector is not None:
        result.events = detector.emitted
    result.inserted = store.counters["inserted"] - before.get("inserted", 0)
    result.duplicates = store.counters["duplicates"] - before.get("duplicates", 0)
    store.finish_ingest(run_id, messages=pipe.stats.records, inserted=result.inserted)
    result.elapsed = time.monotonic() - started
    return result
