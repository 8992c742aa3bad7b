"""Listener -> Queue -> Analyzer -> Action, wired once.

Every source (capture files, live capture, honeypot sockets, HEP) yields Records;
the analyzers label them in arrival order (sans-I/O, time from the records), a batch
at a time: the first analyzer over the whole batch, then the next (each reads only what
the ones before it wrote, so the result is that of record by record, and each one's code
and tables stay in the CPU caches while it runs); actions (the trace store, alert
outputs, exporters) receive them in batches.

Two ways in:
- ``run(records)``: a pull loop for sources that can wait (files, stdin). Nothing is
  dropped: the reader simply goes as fast as the analyzer and actions allow.
- ``offer(record)``: for live sources that cannot wait (sockets, live capture). The
  record goes into a bounded queue; when the queue is full the record is dropped and
  counted, never silently. The queue is drained either by a worker thread
  (``start()``), or, for an asyncio source, by the source's own loop calling ``pump()``
  (``start(inline=True)``): one thread, so no GIL hand-offs between the thread that
  answers packets and the one that stores them (they cost the honeypot half its rate).
"""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from sipwatch.record import Record


class Action(Protocol):
    """A consumer of labelled records (store, alert output, exporter)."""

    def handle(self, batch: list[Record]) -> None: ...

    def close(self) -> None: ...


Analyzer = Callable[[Record], object]

# Every record allocates a dozen small containers (message, header dict and lists, row
# tuple), nearly none of them in cycles: with the default young-generation threshold (700)
# the collector runs every ~50 records and costs ~12% of a bulk run. run() raises it while it
# runs (cycles are still collected, only less often) and restores it afterwards.
_GC_GEN0 = 50_000


@dataclass(slots=True)
class PipelineStats:
    records: int = 0  # records analysed and handed to the actions
    dropped: int = 0  # live records dropped because the queue was full
    batches: int = 0
    action_errors: dict[str, int] = field(default_factory=dict)


class Pipeline:
    def __init__(
        self,
        analyzers: list[Analyzer],
        actions: list[Action],
        batch_size: int = 2000,
        queue_size: int = 100_000,
    ) -> None:
        self.analyzers = analyzers
        self.actions = actions
        self.batch_size = batch_size
        self.stats = PipelineStats()
        self._queue: queue.Queue[Record | None] = queue.Queue(maxsize=queue_size)
        self._worker: threading.Thread | None = None
        self._queue_size = queue_size
        self._inline = False
        self._pending: list[Record] = []  # inline mode: offered, not yet pumped

    @property
    def depth(self) -> int:
        """Records offered and not yet analysed (inline list or worker queue)."""
        return len(self._pending) + self._queue.qsize()

    # --- pull: files and other sources that can wait -------------------------------
    def run(
        self, records: Iterable[Record], on_batch: Callable[[int], object] | None = None
    ) -> None:
        """Analyse every record from ``records`` and hand them to the actions in batches."""
        threshold = gc.get_threshold()
        if 0 < threshold[0] < _GC_GEN0:
            gc.set_threshold(_GC_GEN0, *threshold[1:])
        try:
            self._run(records, on_batch)
        finally:
            gc.set_threshold(*threshold)

    def _run(self, records: Iterable[Record], on_batch: Callable[[int], object] | None) -> None:
        batch: list[Record] = []
        append = batch.append
        size = self.batch_size
        for rec in records:
            append(rec)
            if len(batch) >= size:
                self._analyze_deliver(batch)
                if on_batch is not None:
                    on_batch(len(batch))
                batch = []
                append = batch.append
        if batch:
            self._analyze_deliver(batch)
            if on_batch is not None:
                on_batch(len(batch))

    # --- push: live sources ---------------------------------------------------------
    def start(self, inline: bool = False) -> None:
        """Start draining the live queue: a worker thread, or (inline) the caller's pump()."""
        if inline:
            self._inline = True
            return
        if self._worker is None:
            self._worker = threading.Thread(
                target=self._drain, name="sipwatch-pipeline", daemon=True
            )
            self._worker.start()

    def offer(self, rec: Record) -> bool:
        """Queue a live record; False (and counted) when the queue is full."""
        if self._inline:
            if len(self._pending) >= self._queue_size:
                self.stats.dropped += 1
                return False
            self._pending.append(rec)
            return True
        try:
            self._queue.put_nowait(rec)
            return True
        except queue.Full:
            self.stats.dropped += 1
            return False

    def pump(self) -> int:
        """Inline mode: analyse and deliver everything offered so far; returns how many."""
        pending = self._pending
        if not pending:
            return 0
        self._pending = []
        size = self.batch_size
        for i in range(0, len(pending), size):
            self._analyze_deliver(pending[i : i + size])
        return len(pending)

    def _drain(self) -> None:
        get = self._queue.get
        while True:
            first = get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._analyze_deliver(batch)
                    return
                batch.append(nxt)
            self._analyze_deliver(batch)

    def _analyze_deliver(self, batch: list[Record]) -> None:
        # one analyzer over the whole batch, then the next: the same results as record by
        # record (each one reads only what the analyzers before it wrote), and its code and
        # tables stay in the CPU caches (the detector ran ~2x slower interleaved)
        for analyze in self.analyzers:
            for rec in batch:
                analyze(rec)
        self._deliver(batch)

    # --- common -----------------------------------------------------------------------
    def _deliver(self, batch: list[Record]) -> None:
        self.stats.records += len(batch)
        self.stats.batches += 1
        for action in self.actions:
            try:
                action.handle(batch)
            except Exception:  # one failing output must not stop the others; counted
                name = type(action).__name__
                self.stats.action_errors[name] = self.stats.action_errors.get(name, 0) + 1
                if getattr(action, "fatal", False):
                    raise

    def close(self) -> None:
        """Drain the live queue (if started) and close every action."""
        if self._inline:
            self.pump()
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker = None
        for action in self.actions:
            action.close()
