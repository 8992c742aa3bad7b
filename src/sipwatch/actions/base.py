"""QueuedSink: the off-the-hot-path part every action shares.

``emit()`` is called by the detection thread and only filters and appends to a bounded
queue: it never waits for a file, a socket or a subprocess. A worker thread per sink takes
batches off the queue and hands them to ``_process()``. When the queue is full the event is
dropped and counted; ``stats`` shows it. ``close()`` lets the worker drain for a bounded
time, then gives up, counting what was left as dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase

from sipwatch.actions.config import Section
from sipwatch.detect.events import SEVERITIES, Event, severity_rank

log = logging.getLogger("sipwatch.actions")

_ERROR_LOG_INTERVAL = 60.0  # seconds between repeated failure warnings of one sink


@dataclass(slots=True)
class SinkStats:
    received: int = 0  # events passed to emit()
    filtered: int = 0  # not meant for this sink (severity, rule, stage)
    queued: int = 0  # waiting in the queue right now
    delivered: int = 0  # handled successfully
    dropped: int = 0  # queue full, sink closed, or still queued when close() gave up
    failed: int = 0  # in a batch whose delivery failed for good
    errors: int = 0  # failed deliveries (each may cover many events)
    last_error: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a sink takes: a minimum severity, rule id globs, stages (empty = all)."""

    min_severity: str = "info"
    rules: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()

    def __call__(self, event: Event) -> bool:
        if severity_rank(event.severity) < severity_rank(self.min_severity):
            return False
        if self.stages and event.stage not in self.stages:
            return False
        return not self.rules or any(fnmatchcase(event.rule, p) for p in self.rules)


def parse_common(sec: Section, min_severity: str = "info") -> dict[str, object]:
    """Keys every sink accepts; returns keyword arguments for QueuedSink."""
    return {
        "max_queue": sec.int("max_queue", 10_000, minimum=1, maximum=10_000_000),
        "close_timeout": sec.float("close_timeout", 5.0, minimum=0),
        "event_filter": EventFilter(
            min_severity=sec.str("min_severity", min_severity, choices=SEVERITIES) or "info",
            rules=tuple(sec.str_list("rules")),
            stages=tuple(sec.str_list("stages")),
        ),
    }


class QueuedSink:
    """Base of all actions: bounded queue, one worker thread, counted drops.

    Subclasses implement ``_process(batch)`` (raise on failure: the batch is counted as
    failed), optionally ``_tick()`` (called every ``tick_interval`` seconds by the worker,
    also while idle) and ``_finish()`` (release files and sockets), and call ``_start()``
    at the end of their ``__init__``.
    """

    kind = "sink"
    tick_interval: float | None = None
    stats_class: type[SinkStats] = SinkStats

    def __init__(
        self,
        *,
        max_queue: int = 10_000,
        batch_max: int = 500,
        close_timeout: float = 5.0,
        event_filter: EventFilter | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or self.kind
        self.max_queue = max_queue
        self.batch_max = batch_max
        self.close_timeout = close_timeout
        self.event_filter = event_filter or EventFilter()
        self._stats = self.stats_class()
        self._queue: deque[Event] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._closed = False
        self._busy = False
        self._abort = threading.Event()
        self._last_error_log = -_ERROR_LOG_INTERVAL
        self._thread = threading.Thread(target=self._run, name=f"sipwatch-{self.name}", daemon=True)

    # --- called by the detection side ----------------------------------------------------
    def emit(self, events: list[Event]) -> None:
        """Queue the events this sink takes; never blocks on I/O."""
        keep = self.event_filter
        st = self._stats
        with self._cond:
            for event in events:
                st.received += 1
                if not keep(event):
                    st.filtered += 1
                elif self._closing or len(self._queue) >= self.max_queue:
                    st.dropped += 1
                else:
                    self._queue.append(event)
            self._cond.notify()

    @property
    def stats(self) -> SinkStats:
        with self._cond:
            self._stats.queued = len(self._queue)
        return self._stats

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far was handled; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Stop taking events, let the worker drain (bounded), release resources."""
        with self._cond:
            if self._closed:
                return
            self._closed = self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(self.close_timeout if timeout is None else timeout)
            if self._thread.is_alive():  # still busy: make retries give up, wait a little more
                self._abort.set()
                self._thread.join(1.0)
        with self._cond:
            self._stats.dropped += len(self._queue)
            self._queue.clear()
        try:
            self._finish()
        except Exception as exc:  # closing must not raise into the caller's shutdown
            self._record_error(exc)

    # --- subclass hooks ------------------------------------------------------------------
    def _process(self, batch: list[Event]) -> None:
        raise NotImplementedError

    def _tick(self) -> None:
        """Periodic housekeeping on the worker thread."""

    def _finish(self) -> None:
        """Release resources after the worker stopped."""

    def _start(self) -> None:
        self._thread.start()

    def _sleep(self, seconds: float) -> bool:
        """Wait on the worker (e.g. a retry backoff); True when close() asked to give up."""
        return self._abort.wait(seconds)

    # --- worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        interval = self.tick_interval
        next_tick = time.monotonic() + interval if interval else None
        cond, queue = self._cond, self._queue
        while True:
            with cond:
                while not queue and not self._closing:
                    if next_tick is None:
                        cond.wait()
                        continue
                    wait = next_tick - time.monotonic()
                    if wait <= 0:
                        break
                    cond.wait(wait)
                if self._abort.is_set():
                    return
                batch = [queue.popleft() for _ in range(min(len(queue), self.batch_max))]
                if not batch and self._closing:
                    return
                self._busy = bool(batch)
            try:
                if batch:
                    self._deliver(batch)
                if next_tick is not None and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + (interval or 0)
                    self._guarded(self._tick)
            finally:
                with cond:
                    self._busy = False
                    cond.notify_all()

    def _deliver(self, batch: list[Event]) -> None:
        try:
            self._process(batch)
        except Exception as exc:  # one bad delivery must not kill the worker; counted
            self._stats.failed += len(batch)
            self._record_error(exc)
        else:
            self._stats.delivered += len(batch)

    def _guarded(self, fn) -> None:
        try:
            fn()
        except Exception as exc:
            self._record_error(exc)

    def _record_error(self, exc: BaseException) -> None:
        st = self._stats
        st.errors += 1
        st.last_error = f"{type(exc).__name__}: {exc}"[:500]
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL:
            self._last_error_log = now
            log.warning("action %s failed (%d failures so far): %s", self.name, st.errors,
                        st.last_error)  # fmt: skip
