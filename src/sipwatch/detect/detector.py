"""The detection stage of the pipeline: rule engine and attack chains, events to store and sinks.

Detector is an analyzer (a callable taking a Record), run after the stage labeller and password
recovery; it collects the events that the rule engine and the chain tracker emit. EventAction is
the matching pipeline action: after each batch it stores the collected events and hands them to
the event sinks (JSON lines, syslog, webhook, blocklist), so events follow their messages with
at most one batch of delay, live and offline alike.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from sipwatch.detect.events import Event, EventSink
from sipwatch.record import Record
from sipwatch.store.base import Store

log = logging.getLogger("sipwatch.detect")


class EventSource(Protocol):
    """What the rule engine and the chain tracker have in common."""

    def feed(self, record: Record) -> list[Event]: ...

    def flush(self) -> list[Event]: ...


class Detector:
    """Run every event source over each record; keep what they emit until taken.

    A pipeline runs each analyzer over a whole batch before the next one (pipeline.py), so
    `analyzers` gives one pass per source: the rule engine over the batch, then the chain
    tracker over it, each with its own tables warm in the CPU caches. Their events are put
    back in the order of one record at a time (all sources for record 1, then record 2, ...)
    when taken, so events come out the same either way.
    """

    def __init__(self, sources: Sequence[EventSource]) -> None:
        self.sources = list(sources)
        self.emitted = 0
        self._pending: list[Event] = []
        # events of the per-source passes, (record number in that pass, source, event)
        self._tagged: list[tuple[int, int, Event]] = []
        # each pass numbers its records from the last take: a pass that stopped part way
        # through a batch (an analyzer bug) puts no later batch out of order
        self._numbers = [itertools.count() for _ in self.sources]
        self.analyzers = [self._pass(i) for i in range(len(self.sources))]

    def _pass(self, index: int) -> Callable[[Record], Record]:
        tagged = self._tagged

        def analyze(record: Record) -> Record:
            n = next(self._numbers[index])
            # the source looked up each time: the sensor replaces its engine when the central
            # publishes a rule pack (sensor_uplink.swap_rules)
            events = self.sources[index].feed(record)
            if events:
                tagged.extend([(n, index, e) for e in events])
            return record

        return analyze

    def __call__(self, record: Record) -> Record:
        """All sources over one record (when a caller runs analyzers record by record)."""
        for analyze in self.analyzers:
            analyze(record)
        return record

    label = __call__  # the same spelling as the other analyzers

    def _merge(self) -> None:
        tagged = self._tagged
        if tagged:
            tagged.sort(key=_record_then_source)  # stable: a source's own order is kept
            self._pending.extend([e for _, _, e in tagged])
            tagged.clear()
        self._numbers[:] = [itertools.count() for _ in self._numbers]

    def tick(self, now: float) -> None:
        """Live sources: let sources close what went quiet by ``now`` (the receive clock)."""
        self._merge()
        for source in self.sources:
            tick = getattr(source, "tick", None)
            if tick is not None:
                self._pending.extend(tick(now))

    def take(self) -> list[Event]:
        """The events emitted since the last take (in order)."""
        self._merge()
        out, self._pending = self._pending, []
        self.emitted += len(out)
        return out

    def finish(self) -> list[Event]:
        """End of input: the sources' final updates, plus anything not yet taken."""
        self._merge()
        for source in self.sources:
            self._pending.extend(source.flush())
        return self.take()


def _record_then_source(item: tuple[int, int, Event]) -> tuple[int, int]:
    return item[0], item[1]


MAX_PENDING_EVENTS = 10_000  # events kept for a bulk load before they are written


class EventAction:
    """Pipeline action: after each batch, the detector's events go to the store and the sinks."""

    fatal = False  # a failing sink is counted by the pipeline; detection goes on

    def __init__(
        self,
        detector: Detector,
        store: Store | None,
        sinks: Sequence[EventSink],
        store_at_end: bool = False,
    ) -> None:
        """store_at_end: keep the latest version of each event and store them together, at
        close or whenever MAX_PENDING_EVENTS are waiting (bulk loads: a writer thread or
        process holds the store's write lock most of the time; the bound keeps memory flat
        whatever the capture size, and an event stored again is updated in place)."""
        self.detector = detector
        self.store = store
        self.sinks = list(sinks)
        self.sink_errors = 0
        self.store_at_end = store_at_end
        self._latest: dict[int, Event] = {}

    def handle(self, batch: list[Record]) -> None:
        self._deliver(self.detector.take())

    def _deliver(self, events: list[Event]) -> None:
        if not events:
            return
        if self.store is not None:
            if self.store_at_end:
                latest = self._latest
                for e in events:  # one row per id: only its latest version is stored
                    latest[e.id] = e
                if len(latest) >= MAX_PENDING_EVENTS:
                    self.store.add_events(list(latest.values()))
                    latest.clear()
            else:
                self.store.add_events(events)
        for sink in self.sinks:
            try:
                sink.emit(events)
            except Exception:  # one broken output must not cost the others their events
                self.sink_errors += 1
                if self.sink_errors == 1 or self.sink_errors % 1000 == 0:
                    log.exception("event sink %s failed", type(sink).__name__)

    def close(self) -> None:
        try:
            self._deliver(self.detector.finish())
            if self._latest and self.store is not None:
                self.store.add_events(list(self._latest.values()))
                self._latest.clear()
        finally:
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception:
                    log.exception("closing event sink %s failed", type(sink).__name__)
