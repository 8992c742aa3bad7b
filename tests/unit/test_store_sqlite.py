"""Trace store (SQLite): rows keep what a user queries, reopen, dedupe, batching, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from storedata import DAY1, HONEYPOT, request, trace

from sipwatch.record import Record
from sipwatch.store.base import StoreError, open_store
from sipwatch.store.schema import MESSAGE_COLUMNS


def _rows(db: Path, where: str = "1=1") -> list[dict]:
    with open_store(db, readonly=True) as store:
        cols = ", ".join(MESSAGE_COLUMNS)
        return [
            dict(zip(MESSAGE_COLUMNS, r, strict=True))
            for r in store.query(f"SELECT {cols} FROM messages WHERE {where} ORDER BY ts")
        ]


def test_fields_survive_reopen(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    records = trace()
    with open_store(db) as store:
        store.add(records)
    rows = _rows(db)
    assert len(rows) == 14
    reg = next(r for r in rows if r["auth_user"])
    assert reg["method"] == "REGISTER" and reg["is_request"] == 1 and reg["stage"] == "RHJ"
    assert (reg["src"], reg["sport"], reg["dst"], reg["dport"]) == (
        "198.51.100.7",
        5060,
        HONEYPOT,
        5060,
    )
    assert (reg["to_user"], reg["from_user"], reg["from_tag"]) == ("102", "102", "from4")
    assert (reg["auth_realm"], reg["call_id"], reg["cseq_num"], reg["cseq_method"]) == (
        "asterisk",
        "call4@198.51.100.7",
        1,
        "REGISTER",
    )
    assert reg["via_branch"] == "z9hG4bK-4" and reg["contact"] == "<sip:102@198.51.100.7:5060>"
    assert reg["user_agent"] == "<script>alert(1)</script>" and reg["day"] == "2024-03-02"
    assert bytes(reg["raw"]) == records[6].raw
    invite = next(r for r in rows if r["method"] == "INVITE")
    assert (invite["ruri_user"], invite["number"], invite["number_type"], invite["number_country"]) == (
        "0046701234567", "+46701234567", "mobile", "SE",
    )  # fmt: skip
    rsp = next(r for r in rows if r["status"] == 403)
    assert (rsp["reason"], rsp["to_tag"], rsp["user_agent"], rsp["is_request"]) == (
        "Forbidden",
        "to4",
        "pbx <b>1</b>",
        0,
    )
    assert rsp["request_id"] == records[6].id
    junk = rows[-1]
    assert (
        junk["error"] == "not_sip" and junk["fuzz"] == 1 and bytes(junk["raw"]) == records[-1].raw
    )


def test_same_records_twice_are_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    with open_store(db) as store:
        assert store.add(trace()) == 0  # queued: fewer rows than one batch
        assert store.flush() == 14
    with open_store(f"sqlite:///{db}") as store:  # the URL form opens the same file
        store.add(trace())  # rebuilt from the same bytes: same ids
        store.flush()
        assert store.counters == {
            "added": 14,
            "inserted": 0,
            "duplicates": 14,
            "fallback_rows": 0,
            "batches": 1,
        }
        assert store.query("SELECT COUNT(*) FROM messages") == [(14,)]


def test_batches_report_inserted_rows(tmp_path: Path) -> None:
    from sipwatch.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "t.sqlite", batch_rows=4)
    records = trace()
    written = store.add(records[:10])  # two full batches written, two rows queued
    assert written == 8
    assert store.flush() == 2
    assert store.add(records[:10]) == 0  # duplicates
    assert store.add(records[10:]) + store.flush() == 4
    store.close()
    assert _rows(tmp_path / "t.sqlite", "1=1").__len__() == 14


def test_broken_parsed_fields_keep_raw(tmp_path: Path) -> None:
    r = Record.from_bytes(
        request("OPTIONS", "sip:1@x", "1", 1, "10.0.0.1"),
        DAY1,
        "udp",
        "10.0.0.1",
        5060,
        HONEYPOT,
        5060,
    )
    r.msg = None  # type: ignore[assignment]  # a record whose parsed message is unusable
    with open_store(tmp_path / "t.sqlite") as store:
        store.add([r])
        store.flush()
        assert store.counters["fallback_rows"] == 1
        assert store.query("SELECT error, raw FROM messages") == [("store:AttributeError", r.raw)]


def test_ingest_runs_are_recorded(tmp_path: Path) -> None:
    with open_store(tmp_path / "t.sqlite") as store:
        run = store.start_ingest(["a.pcap", "b.pcapng"])
        store.add(trace())
        store.finish_ingest(run, messages=14, inserted=store.flush() + 14, dropped=2)
        (row,) = store.query("SELECT sources, messages, dropped, finished >= started FROM ingest")
    assert row == ("a.pcap\nb.pcapng", 14, 2, 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"this is a capture, not a database" * 100, "not a usable trace store")],
)
def test_not_a_database(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.sqlite"
    path.write_bytes(content)
    with pytest.raises(StoreError, match=message):
        open_store(path)


def test_foreign_sqlite_file_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a sipwatch trace store"):
        open_store(path)


def test_missing_store_for_reports(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no trace store"):
        open_store(tmp_path / "nope.sqlite", readonly=True)
    with pytest.raises(StoreError, match="folder does not exist"):
        open_store(tmp_path / "no" / "such" / "dir.sqlite")


def test_wal_mode(tmp_path: Path) -> None:
    with open_store(tmp_path / "t.sqlite") as store:
        assert store.query("PRAGMA journal_mode") == [("wal",)]


def test_new_stores_get_the_large_page_size_old_ones_keep_theirs(tmp_path: Path) -> None:
    from sipwatch.store.sqlite import PAGE_SIZE

    with open_store(tmp_path / "new.sqlite") as store:
        assert store.query("PRAGMA page_size") == [(PAGE_SIZE,)]
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as conn:  # a store made before: SQLite's default page size
        conn.execute("PRAGMA page_size=4096")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("DROP TABLE t")
    with open_store(old) as store:
        store.add(trace())
        assert store.query("PRAGMA page_size") == [(4096,)]
    assert PAGE_SIZE == 16384
