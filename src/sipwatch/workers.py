"""Run `sipwatch analyze` as several worker processes, one per core.

Each worker reads and decodes the whole input (cheap), keeps the records of its share of client
addresses (sipwatch.partition) and runs the same pipeline as a single run on them: labeller,
password recovery, trace store. The store is shared (SQLite serialises the writers'
transactions). Capture counters are the same in every worker (each decodes everything), so
worker 0's are reported.
"""

from __future__ import annotations

import functools
import multiprocessing
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import fields
from multiprocessing.connection import Connection
from typing import Any

from sipwatch.capture.api import read_captures
from sipwatch.capture.errors import CaptureError
from sipwatch.capture.stats import CaptureStats
from sipwatch.detect.passwords import analyze_recovery
from sipwatch.detect.stages import LabelerConfig, labeller_class
from sipwatch.partition import partitioned
from sipwatch.pipeline import Pipeline, PipelineStats
from sipwatch.record import Record
from sipwatch.store.base import StoreError, open_store

# progress slots shared with the parent: per worker (packets read, bytes read, records analysed)
_SLOTS = 3


def _worker(
    index: int,
    workers: int,
    job: dict[str, Any],
    progress: Any,
    conn: Connection,
) -> None:
    """One worker: its share of the records through the pipeline into the store."""
    from sipwatch.analyze import StoreAction  # the same action as a single run

    stats = CaptureStats()
    stages: Counter = Counter()
    make_record = Record.from_bytes
    if job["sensor"] or job["node"]:
        make_record = functools.partial(Record.from_bytes, sensor=job["sensor"], node=job["node"])
    store = None
    try:
        make_record = partitioned(make_record, index, workers)  # parse only our share
        records = read_captures(
            job["sources"], bpf=job["bpf"], stats=stats, make_record=make_record
        )
        # the C writer thread when built (rows packed here, inserted without the GIL: ~7%
        # faster with 2 workers on 2 cores); no writer process per worker
        store = open_store(job["db"], threaded=True)
        # each worker sees 1/workers of the clients: its share of the state bounds keeps the
        # memory of all workers together what one process would use
        cfg = LabelerConfig(default_region=job["region"])
        cfg.max_sources = max(1024, cfg.max_sources // workers)
        cfg.max_requests = max(1024, cfg.max_requests // workers)
        labeler = labeller_class()(cfg)

        def count_stage(rec: Record) -> None:
            stages[rec.stage] += 1

        recovery = analyze_recovery(job["passwords"], workers)
        pipe = Pipeline([labeler.label, recovery.label, count_stage], [StoreAction(store)])
        base = index * _SLOTS

        def report(_n: int) -> None:
            progress[base] = stats.packets
            progress[base + 1] = stats.bytes
            progress[base + 2] = pipe.stats.records

        try:
            pipe.run(records, on_batch=report)
        finally:
            pipe.close()  # flushes what was analysed, also when interrupted
        report(0)
        conn.send(
            (
                "ok",
                {
                    "capture": {f.name: getattr(stats, f.name) for f in fields(stats)},
                    "records": pipe.stats.records,
                    "batches": pipe.stats.batches,
                    "stages": dict(stages),
                    "inserted": store.counters["inserted"],
                    "duplicates": store.counters["duplicates"],
                },
            )
        )
    except CaptureError as exc:
        conn.send(("error", str(exc)))
    except (StoreError, sqlite3.Error) as exc:
        conn.send(("error", f"trace store {job['db']}: {exc}"))
    except KeyboardInterrupt:
        pass
    finally:
        if store is not None:
            store.close()
        conn.close()


class WorkerError(Exception):
    """A worker met an error the user can fix (bad capture, store failure): its message."""


def run_workers(
    workers: int,
    job: dict[str, Any],
    on_progress: Callable[[int, int, int], object] | None = None,
) -> tuple[CaptureStats, PipelineStats, Counter, int, int]:
    """Run ``workers`` processes on ``job``; (capture stats, pipeline stats, stages, inserted,
    duplicates) summed over them. Raises WorkerError with the first worker's error message."""
    ctx = multiprocessing.get_context("spawn")
    progress = ctx.Array("q", workers * _SLOTS, lock=False)
    procs = []
    pipes = []
    for index in range(workers):
        parent_end, child_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker,
            args=(index, workers, job, progress, child_end),
            name=f"sipwatch-worker-{index}",
        )
        proc.start()
        child_end.close()
        procs.append(proc)
        pipes.append(parent_end)
    results: list[Any] = [None] * workers
    try:
        waiting = set(range(workers))
        while waiting:
            for index in list(waiting):
                pipe = pipes[index]
                if pipe.poll(0.1):
                    try:
                        results[index] = pipe.recv()
                    except EOFError:
                        results[index] = ("error", f"analysis worker {index} ended unexpectedly")
                    waiting.discard(index)
                elif not procs[index].is_alive() and not pipe.poll(0):
                    results[index] = ("error", f"analysis worker {index} ended unexpectedly")
                    waiting.discard(index)
            failed = next((r for r in results if r is not None and r[0] == "error"), None)
            if failed is not None:  # one worker cannot go on: stop the others now
                for proc in procs:
                    if proc.is_alive():
                        proc.terminate()
                raise WorkerError(failed[1])
            if on_progress is not None:
                slots = list(progress)
                packets = max(slots[i * _SLOTS] for i in range(workers))
                done = max(slots[i * _SLOTS + 1] for i in range(workers))
                records = sum(slots[i * _SLOTS + 2] for i in range(workers))
                on_progress(packets, records, done)
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    for result in results:
        if result[0] == "error":
            raise WorkerError(result[1])
    capture = CaptureStats()
    for name, value in results[0][1]["capture"].items():
        setattr(capture, name, value)
    pipeline = PipelineStats()
    stages: Counter = Counter()
    inserted = duplicates = 0
    for _kind, res in results:
        pipeline.records += res["records"]
        pipeline.batches += res["batches"]
        stages.update(res["stages"])
        inserted += res["inserted"]
        duplicates += res["duplicates"]
    return capture, pipeline, stages, inserted, duplicates
