"""QueuedSink: emit never waits for the action; what it cannot take is counted."""

from __future__ import annotations

import threading

from actionevents import make_event
from sipwatch.actions.base import EventFilter, QueuedSink


class Gate(QueuedSink):
    """A sink whose work waits until the test opens the gate: a slow action."""

    kind = "gate"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.gate = threading.Event()
        self.started = threading.Event()
        self.seen: list[int] = []
        self.finished = False
        self._start()

    def _process(self, batch):
        self.started.set()
        self.gate.wait(30)
        self.seen.extend(e.id for e in batch)

    def _finish(self):
        self.finished = True


def test_slow_action_never_blocks_emit_and_drops_are_counted():
    sink = Gate(max_queue=5)
    first = make_event()
    sink.emit([first])
    assert sink.started.wait(10)  # the worker holds `first` and is stuck in the action
    events = [make_event() for _ in range(12)]
    sink.emit(events)  # returns at once although the action is stuck
    st = sink.stats
    assert (st.received, st.queued, st.dropped) == (13, 5, 7)
    sink.gate.set()
    assert sink.flush(10)
    assert sink.seen == [first.id] + [e.id for e in events[:5]]
    assert sink.stats.delivered == 6 and sink.stats.queued == 0
    sink.close()
    assert sink.finished


def test_filter_by_severity_rule_and_stage():
    sink = Gate(event_filter=EventFilter("medium", rules=("rhj.*",), stages=("RHJ",)))
    sink.gate.set()
    keep = make_event(rule="rhj.bruteforce", stage="RHJ", severity="critical")
    sink.emit([
        keep,
        make_event(rule="rhj.bruteforce", stage="RHJ", severity="low"),
        make_event(rule="es.extension-scan", stage="RHJ", severity="high"),
        make_event(rule="rhj.bruteforce", stage="ES", severity="high"),
    ])  # fmt: skip
    assert sink.flush(10)
    assert sink.seen == [keep.id]
    assert sink.stats.filtered == 3
    sink.close()


def test_close_drains_what_is_queued():
    sink = Gate()
    sink.gate.set()
    events = [make_event() for _ in range(50)]
    sink.emit(events)
    sink.close()
    assert sink.seen == [e.id for e in events]
    assert sink.stats.dropped == 0


def test_close_gives_up_on_a_stuck_action_and_counts_the_rest():
    class Stuck(QueuedSink):
        def __init__(self) -> None:
            super().__init__(batch_max=1)
            self.aborted = False
            self._start()

        def _process(self, batch):
            if self._sleep(60):  # a retry backoff: close() cuts it short
                self.aborted = True
                raise RuntimeError("aborted")

    sink = Stuck()
    sink.emit([make_event() for _ in range(4)])
    sink.close(timeout=0.2)
    st = sink.stats
    assert sink.aborted
    assert st.failed == 1 and st.dropped == 3 and st.queued == 0
    sink.emit([make_event()])  # after close: counted, not queued
    assert sink.stats.dropped == 4


def test_failing_action_is_counted_and_the_worker_goes_on():
    class Flaky(QueuedSink):
        def __init__(self) -> None:
            super().__init__(batch_max=1)
            self.calls = 0
            self._start()

        def _process(self, batch):
            self.calls += 1
            if self.calls == 1:
                raise OSError("disk full")

    sink = Flaky()
    sink.emit([make_event(), make_event()])
    assert sink.flush(10)
    st = sink.stats
    assert (st.failed, st.delivered, st.errors) == (1, 1, 1)
    assert st.last_error == "OSError: disk full"
    sink.close()


def test_tick_runs_while_idle():
    ticked = threading.Event()

    class Ticker(QueuedSink):
        tick_interval = 0.01

        def __init__(self) -> None:
            super().__init__()
            self._start()

        def _tick(self):
            ticked.set()

    sink = Ticker()
    assert ticked.wait(10)
    sink.close()
