"""The offline job behind `sipwatch analyze`: captures -> pipeline -> trace store."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sipwatch.capture.api import read_captures
from sipwatch.capture.errors import CaptureError
from sipwatch.capture.stats import CaptureStats
from sipwatch.detect.stages import LabelerConfig, StageLabeler
from sipwatch.pipeline import Pipeline, PipelineStats
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
    store: Store | None = None  # open for the summary; closed by the caller


class StoreAction:
    """The trace store as a pipeline action; a failing store stops the run (fatal)."""

    fatal = True

    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(self, batch: list[Record]) -> None:
        self.store.add(batch)

    def close(self) -> None:
        self.store.end_bulk_load()  # the writer process ends here, before the summary


def _region(region: str | None) -> str | None:
    if region is None:
        return None
    import phonenumbers

    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise AnalyzeError(f"unknown region {region!r}: use a two-letter country code such as DE")
    return code


def run_analyze(
    sources: list[str],
    db: str,
    bpf: str | None = None,
    sensor: str = "",
    node: str = "",
    region: str | None = None,
    on_progress: Callable[[int, int, int], object] | None = None,
    on_warning: Callable[[str], object] | None = None,
) -> AnalyzeResult:
    """Read every SIP message in ``sources`` into the store at ``db`` and return the counts.

    The returned result holds the open store (for the summary); the caller closes it.
    """
    started = time.monotonic()
    labeler = StageLabeler(LabelerConfig(default_region=_region(region)))
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
    pipe = Pipeline([labeler.label], [StoreAction(store)])
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
    except (StoreError, sqlite3.Error) as exc:  # e.g. disk full: say so, keep what was written
        with contextlib.suppress(Exception):
            store.close()
        raise AnalyzeError(f"trace store {db}: {exc}") from None
    except KeyboardInterrupt:
        pipe.close()  # keep what was read: flush it before leaving
        store.close()
        raise
    result.inserted = store.counters["inserted"] - before.get("inserted", 0)
    result.duplicates = store.counters["duplicates"] - before.get("duplicates", 0)
    store.finish_ingest(run_id, messages=pipe.stats.records, inserted=result.inserted)
    result.elapsed = time.monotonic() - started
    return result
