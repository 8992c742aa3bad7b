"""JSON lines: documented fields, reaches the file without close(), follows rotation."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson

from actionevents import make_event
from sipwatch.actions.jsonl import JsonlSink
from sipwatch.detect.events import Event

FIELDS = ["@timestamp", "id", "rule", "kind", "severity", "stage", "src", "targets", "node",
          "sensor", "first", "last", "count", "summary", "evidence", "data", "tags"]  # fmt: skip


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def _wait_lines(path: Path, n: int, limit: float = 10.0) -> list[dict]:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if path.exists() and len(rows := _lines(path)) >= n:
            return rows
        time.sleep(0.005)
    raise AssertionError(f"{path} did not get {n} lines")


def test_lines_have_the_documented_fields_and_round_trip(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path)
    ev = make_event(data={"distinct": 25, "odd": {1, 2}, 7: "int key"}, summary='say "hi"\n')
    sink.emit([ev])
    sink.close()
    (row,) = _lines(path)
    assert list(row) == FIELDS
    assert row["@timestamp"].endswith("Z") and row["@timestamp"].startswith("2023-11-14T22:")
    row.pop("@timestamp")
    back = Event.from_dict(row)
    assert (back.id, back.rule, back.targets, back.evidence, back.summary) == (
        ev.id, ev.rule, ev.targets, ev.evidence, ev.summary)  # fmt: skip
    assert row["data"]["7"] == "int key"  # non-JSON parts of `data` degrade, never crash


def test_alert_reaches_the_file_without_close(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path)
    t0 = time.monotonic()
    sink.emit([make_event()])
    _wait_lines(path, 1)
    print(f"event on disk {1000 * (time.monotonic() - t0):.1f} ms after emit")
    sink.close()


def test_follows_logrotate_move_and_delete(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path)
    a, b, c = make_event(), make_event(), make_event()
    sink.emit([a])
    _wait_lines(path, 1)
    path.rename(tmp_path / "events.jsonl.1")  # logrotate's default (create mode)
    sink.emit([b])
    assert [r["id"] for r in _wait_lines(path, 1)] == [b.id]
    os.unlink(path)
    sink.emit([c])
    assert [r["id"] for r in _wait_lines(path, 1)] == [c.id]
    assert [r["id"] for r in _lines(tmp_path / "events.jsonl.1")] == [a.id]
    assert sink.reopens == 2
    sink.close()


def test_reopen_on_request(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path, timestamp=False)
    sink.emit([make_event()])
    assert sink.flush(10)
    sink.reopen()
    sink.emit([make_event()])
    sink.close()
    assert sink.reopens == 1
    rows = _lines(path)
    assert len(rows) == 2 and "@timestamp" not in rows[0]


def test_stdout():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from actionevents import make_event\n"
        "from sipwatch.actions.jsonl import JsonlSink\n"
        "s = JsonlSink('-'); s.emit([make_event(), make_event()]); s.close()\n"
    )
    tests_dir = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", code, tests_dir], capture_output=True,
                         check=True, timeout=60).stdout  # fmt: skip
    rows = [orjson.loads(x) for x in out.splitlines()]
    assert [r["rule"] for r in rows] == ["es.extension-scan"] * 2
