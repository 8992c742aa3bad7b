"""Schema versions: an old store upgrades in place; a newer one is refused with a clear message."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from storedata import trace

from sipwatch.detect.events import Event
from sipwatch.store import migrations, schema
from sipwatch.store.base import StoreError, open_store
from sipwatch.store.eventrows import event_row
from sipwatch.store.rows import message_row
from sipwatch.store.schema import MESSAGE_COLUMNS

V2_COLUMNS = MESSAGE_COLUMNS[: MESSAGE_COLUMNS.index("password")]  # versions 1 and 2


def _old_store(path: Path, version: int, records: int = 2) -> None:
    """A store as schema version 1 or 2 left it, holding the first messages of the trace."""
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrations.apply(conn.execute, "sqlite", 0, target=version) == version
    marks = ", ".join("?" * len(V2_COLUMNS))
    conn.executemany(
        f"INSERT INTO messages ({', '.join(V2_COLUMNS)}) VALUES ({marks})",
        [message_row(r)[: len(V2_COLUMNS)] for r in trace()[:records]],
    )
    conn.close()


def _version_1_store(path: Path) -> None:
    _old_store(path, 1)


def test_old_store_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    _version_1_store(db)
    with pytest.raises(StoreError, match="upgrade it"):
        open_store(db, readonly=True)  # reports do not write: they ask for an upgrade
    with open_store(db) as store:
        assert store.schema_version == migrations.LATEST == 6
        assert store.query("SELECT COUNT(*) FROM messages") == [(2,)]
        store.finish_ingest(store.start_ingest(["x.pcap"]), 2, 0)  # the table step 2 added
        assert [r[0] for r in store.query("SELECT version FROM migrations ORDER BY version")] == [
            1,
            2,
            3,
            4,
            5,
            6,
        ]
        store.add(trace())
    with open_store(db, readonly=True) as store:
        assert store.query("SELECT COUNT(*) FROM messages") == [(14,)]


def test_version_2_store_gets_the_password_column(tmp_path: Path) -> None:
    """A store written before password recovery keeps its rows (password '' = unknown) and
    takes new rows with passwords; reports read it once it has been opened for writing."""
    db = tmp_path / "v2.sqlite"
    _old_store(db, 2, records=8)
    with pytest.raises(StoreError, match="schema version 2.*upgrade it to 6"):
        open_store(db, readonly=True)
    with open_store(db) as store:
        assert store.schema_version == 6
        assert store.query("SELECT COUNT(*), MAX(password) FROM messages") == [(8, "")]
        records = trace()
        records[8].password = "1234"  # the second password try (a REGISTER)
        records[9].password = "1234"  # and its 200
        store.add(records)
    with open_store(db, readonly=True) as store:
        got = store.query("SELECT method, status, password FROM messages WHERE password <> ''")
        assert sorted(got) == [("", 200, "1234"), ("REGISTER", 0, "1234")]
        assert store.query("SELECT COUNT(*) FROM messages") == [(14,)]
        # the column order of the table is MESSAGE_COLUMNS: SELECT * and rows.py agree
        names = [r[1] for r in store.query("PRAGMA table_info(messages)")]
        assert tuple(names) == MESSAGE_COLUMNS


def test_new_store_has_the_columns_in_row_order(tmp_path: Path) -> None:
    with open_store(tmp_path / "new.sqlite") as store:
        names = [r[1] for r in store.query("PRAGMA table_info(messages)")]
        assert tuple(names) == MESSAGE_COLUMNS
        record = trace()[0]
        record.password = "x"
        store.add([record])
        (row,) = store.query("SELECT * FROM messages")
        assert row == message_row(record)


def test_newer_store_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite"
    open_store(db).close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO migrations VALUES (99, 'from the future', 0)")
    conn.commit()
    conn.close()
    for readonly in (False, True):
        with pytest.raises(StoreError, match="schema version 99.*upgrade sipwatch"):
            open_store(db, readonly=readonly)


def test_version_5_store_keeps_its_events_keyed_by_arrival(tmp_path: Path) -> None:
    """Step 6 rebuilds SQLite's events table: the same rows and columns, the id no longer the
    rowid (a random id put each new event on a random page), the upsert unchanged."""

    def event(n: int, count: int) -> Event:
        return Event(
            id=(n * 0x9E3779B97F4A7C15) % 2**63, rule="r", kind="threshold", severity="low",
            stage="ES", src=f"198.51.100.{n}", targets=("192.0.2.1",), node="", sensor="s",
            first=1000.0 - n, last=1000.0 + n, count=count, summary=f"e{n}",
        )  # fmt: skip

    db = tmp_path / "v5.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    assert migrations.apply(conn.execute, "sqlite", 0, target=5) == 5
    conn.close()
    open_store(db).close()  # upgrades to 6 on an empty table
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TABLE events")  # back to a version 5 table holding events
    conn.execute("DELETE FROM migrations WHERE version = 6")
    conn.execute(schema.ddl(schema.EVENTS_DDL, "sqlite"))
    conn.execute(schema.EVENTS_INDEX_DDL)
    conn.executemany(schema.upsert_events_sql("sqlite"), [event_row(event(n, 1)) for n in range(9)])
    before = conn.execute("SELECT * FROM events ORDER BY id").fetchall()
    conn.close()
    with open_store(db) as store:
        assert store.schema_version == 6
        assert store.query("SELECT * FROM events ORDER BY id") == before
        pk = [r[1] for r in store.query("PRAGMA table_info(events)") if r[5]]
        assert pk == []  # the implicit rowid, in arrival order
        names = tuple(r[1] for r in store.query("PRAGMA table_info(events)"))
        assert names == schema.EVENT_COLUMNS
        assert store.query("SELECT name FROM sqlite_master WHERE name = 'events_src'") != []
        store.add_events([event(3, 5), event(20, 1)])  # an update in place and a new one
        assert store.query("SELECT COUNT(*), SUM(count) FROM events") == [(10, 8 + 5 + 1)]
        assert store.query("SELECT id FROM events ORDER BY rowid DESC LIMIT 1") == [
            (event(20, 1).id,)
        ]
