"""The writer process: batches inserted on another core give the same store as inline writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from storedata import trace

from sipwatch.store.base import StoreError
from sipwatch.store.sqlite import SqliteStore


def dump(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM messages ORDER BY ts, id").fetchall()


def test_background_writes_what_inline_writes(tmp_path: Path) -> None:
    records = trace()
    inline, background = tmp_path / "inline.sqlite", tmp_path / "bg.sqlite"
    with SqliteStore(inline, batch_rows=3) as s:
        s.add(records)
    with SqliteStore(background, batch_rows=3, background=True) as s:
        s.add(records)
        assert s._writer is not None  # batches of 3: the writer process was used
        s.flush()
        assert s.counters["inserted"] == len(records)
        assert s.counters["duplicates"] == 0
        s.add(records)  # the same messages again: nothing new
        s.flush()
        assert s.counters["inserted"] == len(records)
        assert s.counters["duplicates"] == len(records)
        assert s.query("SELECT COUNT(*) FROM messages") == [(len(records),)]
        proc = s._writer._proc
        s.end_bulk_load()  # the writer process ends; later rows are written inline
        assert s._writer is None and not proc.is_alive()
        s.add(records[:1])
        s.flush()
        assert s.counters["duplicates"] == len(records) + 1
    assert dump(inline) == dump(background)


def test_small_runs_never_start_a_writer(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "s.sqlite", background=True) as s:
        s.add(trace())
        s.flush()
        assert s._writer is None
        assert s.counters["inserted"] == len(trace())


def test_a_failing_writer_is_reported(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "f.sqlite", batch_rows=2, background=True)
    s.add(trace()[:2])  # starts the writer
    s._insert = "INSERT INTO no_such_table VALUES (?)"
    s._writer._pipe.send(("rows", [(1,)]))  # a batch the child cannot write
    s._in_flight += 1
    with pytest.raises(StoreError, match="writing the trace store failed"):
        s.flush()
    proc = s._writer._proc
    s.add(trace()[:2])  # more rows after the failure are refused too, not silently lost
    with pytest.raises(StoreError, match="writing the trace store failed"):
        s.flush()
    s.close()
    assert not proc.is_alive()  # the writer process ended
