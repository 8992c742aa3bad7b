"""Detector and EventAction: events from every source, to the store and every sink."""

from __future__ import annotations

from sipwatch.detect.detector import Detector, EventAction
from sipwatch.detect.events import Event


def _event(n: int, count: int = 1) -> Event:
    return Event(
        id=n, rule="r", kind="threshold", severity="low", stage="ES", src="198.51.100.1",
        targets=(), node="", sensor="", first=1.0, last=2.0, count=count, summary="s",
    )  # fmt: skip


class Source:
    def __init__(self) -> None:
        self.fed = 0

    def feed(self, record):
        self.fed += 1
        return [_event(self.fed)]

    def flush(self):
        return [_event(99)]

    def tick(self, now):
        return [_event(int(now))]


class Sink:
    def __init__(self) -> None:
        self.got: list[int] = []
        self.closed = False

    def emit(self, events):
        self.got += [e.id for e in events]

    def close(self):
        self.closed = True


class Store:
    def __init__(self) -> None:
        self.rows: list[tuple[int, int]] = []

    def add_events(self, events):
        self.rows += [(e.id, e.count) for e in events]
        return len(events)


def test_events_flow_to_store_and_sinks_per_batch_and_at_close():
    det = Detector([Source()])
    store, sink = Store(), Sink()
    action = EventAction(det, store, [sink])
    det(object())
    det(object())
    action.handle([])
    assert sink.got == [1, 2] and [r[0] for r in store.rows] == [1, 2]
    det.tick(500.0)  # a live source closing quiet state
    action.handle([])
    assert sink.got[-1] == 500
    action.close()
    assert sink.got[-1] == 99 and sink.closed
    assert det.emitted == 4


def test_store_at_end_keeps_one_row_per_event_id():
    det = Detector([])
    store, sink = Store(), Sink()
    action = EventAction(det, store, [sink], store_at_end=True)
    det._pending += [_event(7, 1), _event(7, 5)]
    action.handle([])
    assert store.rows == [] and sink.got == [7, 7]  # sinks see every emission at once
    action.close()
    assert store.rows == [(7, 5)]  # the store only the latest


def test_a_failing_sink_does_not_cost_the_others():
    class Broken(Sink):
        def emit(self, events):
            raise RuntimeError("down")

    det = Detector([Source()])
    good = Sink()
    action = EventAction(det, None, [Broken(), good])
    det(object())
    action.handle([])
    assert good.got == [1] and action.sink_errors == 1


class Tagging:
    """Emits (source name, record) for the records in `fires`, several events for some."""

    def __init__(self, name: str, fires: dict[int, int]) -> None:
        self.name, self.fires = name, fires

    def feed(self, record):
        return [(self.name, record, k) for k in range(self.fires.get(record, 0))]

    def flush(self):
        return [(self.name, "flush", 0)]

    def tick(self, now):
        return [(self.name, "tick", now)]


def _sources() -> list[Tagging]:
    return [Tagging("engine", {0: 1, 2: 2, 3: 1, 7: 3}), Tagging("chains", {0: 2, 3: 1, 5: 1})]


def test_per_source_passes_give_the_events_in_record_order():
    one = Detector(_sources())  # record by record: every source over each record
    passes = Detector(_sources())  # as a pipeline runs them: each source over a batch
    for batch in (range(4), range(4, 8)):
        for r in batch:
            assert one(r) == r
        for analyze in passes.analyzers:
            for r in batch:
                assert analyze(r) == r
        one.tick(batch[-1] + 0.5)
        passes.tick(batch[-1] + 0.5)
    expected = one.finish()
    assert expected[:5] == [
        ("engine", 0, 0), ("chains", 0, 0), ("chains", 0, 1), ("engine", 2, 0), ("engine", 2, 1),
    ]  # fmt: skip
    assert ("engine", "tick", 3.5) in expected
    assert passes.finish() == expected
    assert passes.emitted == one.emitted == len(expected)


def test_a_source_replaced_in_place_is_the_one_the_passes_feed():
    # the sensor swaps its rule engine when the central publishes a pack
    det = Detector(_sources())
    engine_pass = det.analyzers[0]
    engine_pass(0)
    det.sources[0] = Tagging("new engine", {1: 1})
    engine_pass(1)
    assert det.take() == [("engine", 0, 0), ("new engine", 1, 0)]


def test_a_pass_stopped_part_way_does_not_disorder_later_batches():
    det = Detector(_sources())
    engine, chains = det.analyzers
    engine(0)  # the engine's pass of a batch, then an error before the chains' pass
    det.take()
    for analyze in det.analyzers:  # the next batch, whole
        for r in (3, 4, 5):
            analyze(r)
    assert det.take() == [("engine", 3, 0), ("chains", 3, 0), ("chains", 5, 0)]
