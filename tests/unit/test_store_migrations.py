"""Schema versions: an old store upgrades in place; a newer one is refused with a clear message."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from storedata import trace

from sipwatch.store import migrations
from sipwatch.store.base import StoreError, open_store
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
        assert store.schema_version == migrations.LATEST == 5
        assert store.query("SELECT COUNT(*) FROM messages") == [(2,)]
        store.finish_ingest(store.start_ingest(["x.pcap"]), 2, 0)  # the table step 2 added
        assert [r[0] for r in store.query("SELECT version FROM migrations ORDER BY version")] == [
            1,
            2,
            3,
            4,
            5,
        ]
        store.add(trace())
    with open_store(db, readonly=True) as store:
        assert store.query("SELECT COUNT(*) FROM messages") == [(14,)]


def test_version_2_store_gets_the_password_column(tmp_path: Path) -> None:
    """A store written before password recovery keeps its rows (password '' = unknown) and
    takes new rows with passwords; reports read it once it has been opened for writing."""
    db = tmp_path / "v2.sqlite"
    _old_store(db, 2, records=8)
    with pytest.raises(StoreError, match="schema version 2.*upgrade it to 5"):
        open_store(db, readonly=True)
    with open_store(db) as store:
        assert store.schema_version == 5
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
