"""Detection events in the trace store: stored once per id, updated when they keep firing."""

from __future__ import annotations

import json

from sipwatch.detect.events import Event, event_id
from sipwatch.report.tables import all_tables
from sipwatch.store.base import open_store
from sipwatch.store.migrations import LATEST


def _event(count: int, last: float, severity: str = "medium") -> Event:
    return Event(
        id=event_id("es.extension-scan", "198.51.100.7", 100.0),
        rule="es.extension-scan", kind="threshold", severity=severity, stage="ES",
        src="198.51.100.7", targets=("192.0.2.1",), node="oslo", sensor="s1",
        first=100.0, last=last, count=count, summary=f"probed {count} extensions",
        evidence=(11, 12), data={"distinct": count}, tags=("scan",),
    )  # fmt: skip


def test_events_are_upserted_by_id(tmp_path):
    with open_store(tmp_path / "t.sqlite") as store:
        assert store.schema_version == LATEST >= 4
        assert store.add_events([_event(10, 160.0)]) == 1
        assert store.add_events([_event(25, 220.0, "high")]) == 1
        rows = store.query("SELECT id, count, last, severity, first, data, targets FROM events")
    assert len(rows) == 1
    _id, count, last, severity, first, data, targets = rows[0]
    assert (count, last, severity, first) == (25, 220.0, "high", 100.0)
    assert json.loads(data) == {"distinct": 25} and json.loads(targets) == ["192.0.2.1"]


def test_events_report_table(tmp_path):
    with open_store(tmp_path / "t.sqlite") as store:
        store.add_events([_event(10, 160.0)])
    with open_store(tmp_path / "t.sqlite", readonly=True) as store:
        (table,) = all_tables(store, ["events"])
    assert table.rows[0][:5] == ("medium", "es.extension-scan", "ES", "198.51.100.7", 10)


def test_nothing_to_store(tmp_path):
    with open_store(tmp_path / "t.sqlite") as store:
        assert store.add_events([]) == 0
