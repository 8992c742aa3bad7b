"""Schema versions: an old store upgrades in place; a newer one is refused with a clear message."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from storedata import trace

from sipwatch.store import migrations
from sipwatch.store.base import StoreError, open_store
from sipwatch.store.rows import message_row
from sipwatch.store.schema import insert_sql


def _version_1_store(path: Path) -> None:
    """A store as the first schema version left it, holding two messages."""
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrations.apply(conn.execute, "sqlite", 0, target=1) == 1
    conn.executemany(insert_sql("sqlite"), [message_row(r) for r in trace()[:2]])
    conn.close()


def test_old_store_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    _version_1_store(db)
    with pytest.raises(StoreError, match="upgrade it"):
        open_store(db, readonly=True)  # reports do not write: they ask for an upgrade
    with open_store(db) as store:
        assert store.schema_version == migrations.LATEST == 2
        assert store.query("SELECT COUNT(*) FROM messages") == [(2,)]
        store.finish_ingest(store.start_ingest(["x.pcap"]), 2, 0)  # the table step 2 added
        assert [r[0] for r in store.query("SELECT version FROM migrations ORDER BY version")] == [
            1,
            2,
        ]
        store.add(trace())
    with open_store(db, readonly=True) as store:
        assert store.query("SELECT COUNT(*) FROM messages") == [(14,)]


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
