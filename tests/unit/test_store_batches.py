"""Uplink batches are stored exactly once; admin writes and retention (the central service).

Every test runs on both engines (storeengines.store_url).
"""

from __future__ import annotations

from storedata import DAY2, trace

from sipwatch.detect.events import Event
from sipwatch.store.base import open_store
from sipwatch.store.eventrows import event_row
from sipwatch.store.rows import message_row

pytest_plugins = ["storeengines"]  # the store_url fixture: each test on every engine


def _event(last: float, count: int) -> Event:
    return Event(
        id=42, rule="es.extension-scan", kind="threshold", severity="medium", stage="ES",
        src="8.8.8.8", targets=("192.0.2.1",), node="n1", sensor="s1", first=last - 5,
        last=last, count=count, summary="scan", evidence=(1, 2), data={"users": 3}, tags=(),
    )  # fmt: skip


def test_a_batch_is_stored_once(store_url: str) -> None:
    rows = [message_row(r) for r in trace()]
    with open_store(store_url) as store:
        assert store.store_batch("s1", 1, rows[:5], [event_row(_event(DAY2, 3))])
        assert not store.store_batch("s1", 1, rows[:5], [event_row(_event(DAY2, 9))])
        assert store.query("SELECT COUNT(*) FROM messages") == [(5,)]
        assert store.query("SELECT count FROM events") == [(3,)]  # the replay wrote nothing
        # another sensor's seq 1 is its own batch; a message already stored is skipped
        assert store.store_batch("s2", 1, rows[4:], [event_row(_event(DAY2 + 1, 4))])
        assert store.query("SELECT COUNT(*) FROM messages") == [(len(rows),)]
        assert store.query("SELECT count, last FROM events") == [(4, DAY2 + 1)]
        assert store.counters["duplicates"] == 1
        assert store.query(
            "SELECT sensor, seq, records, events FROM uplink_batches ORDER BY sensor"
        ) == [("s1", 1, 5, 1), ("s2", 1, len(rows) - 4, 1)]


def test_a_failed_batch_leaves_nothing_behind(store_url: str) -> None:
    rows = [message_row(r) for r in trace()]
    bad = [*rows[:3], rows[3][:-1]]  # a short row: the insert fails mid-batch
    with open_store(store_url) as store:
        try:
            store.store_batch("s1", 7, bad)
        except Exception:
            pass
        else:
            raise AssertionError("a short row must fail")
        assert store.query("SELECT COUNT(*) FROM messages") == [(0,)]
        assert store.query("SELECT COUNT(*) FROM uplink_batches") == [(0,)]
        assert store.store_batch("s1", 7, rows[:3])  # the retry is not taken for a replay


def test_execute_and_purge(store_url: str) -> None:
    with open_store(store_url) as store:
        store.add(trace())
        store.add_events([_event(DAY2 - 10, 1)])
        n = store.execute(
            "INSERT INTO users (name, role, password_hash, created) VALUES (?, ?, ?, ?)",
            ("ann", "admin", "x", 1.0),
        )
        assert n == 1
        before = store.query("SELECT COUNT(*) FROM messages WHERE ts < ?", (DAY2,))[0][0]
        assert before > 0
        assert store.purge(DAY2) == before
        assert store.query("SELECT MIN(ts) >= ? FROM messages", (DAY2,)) == [(1,)]
        assert store.query("SELECT COUNT(*) FROM events") == [(0,)]


def test_a_batch_may_repeat_its_own_messages(store_url: str) -> None:
    rows = [message_row(r) for r in trace()]
    with open_store(store_url) as store:
        assert store.store_batch("s1", 1, rows + rows[:3])
        assert store.query("SELECT COUNT(*) FROM messages") == [(len(rows),)]
        assert (store.counters["inserted"], store.counters["duplicates"]) == (len(rows), 3)
        # many batches of duplicates, then new rows again: all counted, none lost
        for seq in range(2, 12):
            assert store.store_batch("s1", seq, rows)
        later = [(r[0] + 1, *r[1:]) for r in rows]  # other messages at the same times
        assert store.store_batch("s1", 12, later)
        assert store.query("SELECT COUNT(*) FROM messages") == [(2 * len(rows),)]
        assert store.counters["duplicates"] == 3 + 10 * len(rows)
