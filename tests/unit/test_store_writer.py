"""Bulk-load writers (the C writer thread, the writer process): the same store as inline writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from storedata import trace

from sipwatch.store import sqlite as sqlite_store
from sipwatch.store.base import StoreError
from sipwatch.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(120)

THREAD = sqlite_store.native_writer() is not None


@pytest.fixture(params=["thread", "process"])
def writer_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with the writer thread (when the extension is built) and the process."""
    if request.param == "thread":
        if not THREAD:
            pytest.skip("sipwatch._native is not built (python setup.py build_ext --inplace)")
    else:
        monkeypatch.setattr(sqlite_store, "native_writer", lambda: None)
    return request.param


def dump(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM messages ORDER BY ts, id").fetchall()


def writer_alive(s: SqliteStore) -> object:
    """Something that tells whether the store's writer still runs, after it is dropped."""
    w = s._writer
    if hasattr(w, "_proc"):
        return w._proc.is_alive
    return lambda: w.running


def test_background_writes_what_inline_writes(tmp_path: Path, writer_kind: str) -> None:
    records = trace()
    inline, background = tmp_path / "inline.sqlite", tmp_path / "bg.sqlite"
    with SqliteStore(inline, batch_rows=3) as s:
        s.add(records)
    with SqliteStore(background, batch_rows=3, background=True) as s:
        s.add(records)
        assert s._writer is not None  # batches of 3: the writer was used
        s.flush()
        assert s.counters["inserted"] == len(records)
        assert s.counters["duplicates"] == 0
        s.add(records)  # the same messages again: nothing new
        s.flush()
        assert s.counters["inserted"] == len(records)
        assert s.counters["duplicates"] == len(records)
        assert s.counters["added"] == 2 * len(records)
        assert s.query("SELECT COUNT(*) FROM messages") == [(len(records),)]
        alive = writer_alive(s)
        s.end_bulk_load()  # the writer ends
        assert s._writer is None and not alive()
        s.add(records[:1])
        s.flush()
        assert s.counters["duplicates"] == len(records) + 1
    assert dump(inline) == dump(background)


def test_query_sees_rows_added_before(tmp_path: Path, writer_kind: str) -> None:
    """A read through the store waits for the writer: no flush() needed in between."""
    records = trace()
    with SqliteStore(tmp_path / "q.sqlite", batch_rows=2, background=True) as s:
        s.add(records)
        assert s.query("SELECT COUNT(*) FROM messages") == [(len(records) - len(records) % 2,)]
        s.flush()
        assert s.query("SELECT COUNT(*) FROM messages") == [(len(records),)]


def test_small_runs_never_start_a_process(tmp_path: Path, writer_kind: str) -> None:
    with SqliteStore(tmp_path / "s.sqlite", background=True) as s:
        s.add(trace())
        s.flush()
        if writer_kind == "process":
            assert s._writer is None
        assert s.counters["inserted"] == len(trace())


def test_a_failing_writer_process_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "native_writer", lambda: None)
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


FAIL_TRIGGER = """CREATE TRIGGER fail_src BEFORE INSERT ON messages WHEN NEW.src = '{src}'
BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"""


@pytest.mark.skipif(not THREAD, reason="sipwatch._native is not built")
def test_a_failing_writer_thread_is_reported(tmp_path: Path) -> None:
    """SQLite refuses a row in the writer: one StoreError with SQLite's message; the rows
    queued with it are lost, later ones are written (a live store goes on)."""
    records = trace()
    path = tmp_path / "f.sqlite"
    s = SqliteStore(path, batch_rows=2, background=True)
    s.add(records[:2])
    s.flush()
    s.execute(FAIL_TRIGGER.format(src=records[2].src))
    first = s._writer
    with pytest.raises(StoreError, match="writing the trace store failed: disk on fire"):
        s.add(records[2:])  # raised by a later batch of this add(), or by the flush
        s.flush()
    assert s._writer is first and first.running  # the same thread and connection go on
    s.execute("DROP TRIGGER fail_src")
    s.add(records)
    s.flush()
    assert s.query("SELECT COUNT(*) FROM messages") == [(len(records),)]
    s.close()
    with SqliteStore(tmp_path / "inline.sqlite") as inline:
        inline.add(records)
    assert dump(path) == dump(tmp_path / "inline.sqlite")
