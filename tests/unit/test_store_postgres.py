"""PostgreSQL trace store: day partitions, retention, hostile text, migrations, errors, and the
same reports as SQLite (store behaviour shared by both engines: test_store_batches.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from storedata import DAY1, DAY2, trace

from sipwatch.detect.events import Event
from sipwatch.report.tables import all_tables
from sipwatch.store import migrations
from sipwatch.store.base import StoreError, open_store
from sipwatch.store.eventrows import event_row
from sipwatch.store.rows import message_row
from sipwatch.store.schema import MESSAGE_COLUMNS

pytest_plugins = ["storeengines"]  # pg_url: a fresh database per test

PCAP = Path("/work/shared/data/pcaps/zeek/wireshark.pcap")


def _partitions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'messages'::regclass ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def _event(last: float, summary: str = "scan") -> Event:
    return Event(
        id=7, rule="es.extension-scan", kind="threshold", severity="medium", stage="ES",
        src="8.8.8.8", targets=("192.0.2.1",), node="n1", sensor="s1", first=last - 5,
        last=last, count=1, summary=summary, evidence=(1,), data={}, tags=(),
    )  # fmt: skip


def test_messages_go_to_one_partition_per_day(pg_url: str) -> None:
    with open_store(pg_url) as store:
        assert store.engine == "postgresql"
        store.add(trace())
        store.flush()
        got = store.query(
            "SELECT tableoid::regclass::text, day, COUNT(*) FROM messages GROUP BY 1, 2 ORDER BY 1"
        )
        assert got == [
            ("messages_20240301", "2024-03-01", 6),
            ("messages_20240302", "2024-03-02", 8),
        ]
        # the same messages again: deduped across partitions, nothing new created
        store.add(trace())
        store.flush()
        assert store.counters["inserted"] == 14 and store.counters["duplicates"] == 14
    assert _partitions(pg_url) == ["messages_20240301", "messages_20240302"]


def test_timestamps_no_date_names_are_kept(pg_url: str) -> None:
    rows = [message_row(r) for r in trace()[:4]]
    odd = (float("nan"), -1e12, 1e300, float("-inf"))
    rows = [(r[0], ts, *r[2:]) for r, ts in zip(rows, odd, strict=True)]
    with open_store(pg_url) as store:
        assert store.store_batch("s1", 1, rows)
        got = store.query(
            "SELECT tableoid::regclass::text, COUNT(*) FROM messages GROUP BY 1 ORDER BY 1"
        )
        assert got == [("messages_after", 2), ("messages_before", 2)]
        store.add(trace())  # day partitions go between the two open-ended ones
        store.flush()
        assert store.query("SELECT COUNT(*) FROM messages") == [(18,)]
        # retention drops the far past; NaN and the far future stay (never older than a cut)
        assert store.purge(DAY2) == 2 + 6
    assert _partitions(pg_url) == ["messages_20240302", "messages_after"]


def test_purge_drops_whole_days_and_deletes_the_rest(pg_url: str) -> None:
    with open_store(pg_url) as store:
        store.add(trace())
        store.add_events([_event(DAY1 + 100)])
        cut = DAY2 + 25  # all of day 1, and day 2's first two requests with their responses
        expected = store.query("SELECT COUNT(*) FROM messages WHERE ts < ?", (cut,))[0][0]
        assert expected == 10
        assert store.purge(cut) == expected
        assert store.query("SELECT COUNT(*), MIN(ts) >= ? FROM messages", (cut,)) == [(4, True)]
        assert store.query("SELECT COUNT(*) FROM events") == [(0,)]
    assert _partitions(pg_url) == ["messages_20240302"]
    # a store that still believes day 1 exists recreates it when its rows come back
    with open_store(pg_url) as other, open_store(pg_url) as store:
        store.add(trace()[:2])
        store.flush()
        assert other.purge(DAY2) == 2
        store.add(trace()[:2])
        store.flush()
        assert store.query("SELECT COUNT(*) FROM messages WHERE ts < ?", (DAY2,)) == [(2,)]


def test_nul_and_lone_surrogates_are_stored_as_replacement_characters(pg_url: str) -> None:
    records = trace()
    rows = [message_row(r) for r in records]
    ua, user = MESSAGE_COLUMNS.index("user_agent"), MESSAGE_COLUMNS.index("from_user")
    bad = list(rows[0])
    bad[ua], bad[user] = "evil\x00agent", "x\udcffy"
    rows[0] = tuple(bad)
    with open_store(pg_url) as store:
        assert store.store_batch("s1", 1, rows, [event_row(_event(DAY1, "nul\x00here"))])
        got = store.query(
            "SELECT user_agent, from_user, raw FROM messages WHERE id = ?", (rows[0][0],)
        )
        assert got == [("evil\ufffdagent", "x\ufffdy", records[0].raw)]
        assert store.query("SELECT COUNT(*) FROM messages") == [(14,)]
        assert store.query("SELECT summary FROM events") == [("nul\ufffdhere",)]
        # the raw bytes keep their NUL: bytea is binary
        junk = store.query("SELECT raw FROM messages WHERE error = 'not_sip'")
        assert junk == [(records[-1].raw,)] and b"\x00" in records[-1].raw


def test_days_that_ended_get_the_report_index(pg_url: str) -> None:
    import time

    records = trace()
    today = time.time()
    records[0].ts = today  # a message of today: its partition takes inserts without the index
    with open_store(pg_url) as store:
        store.add(records)
        store.ensure_indexes()
        got = store.query(
            "SELECT tablename FROM pg_indexes WHERE indexname LIKE '%contacts' ORDER BY 1"
        )
        assert got == [("messages_20240301",), ("messages_20240302",)]
        store.ensure_indexes()  # nothing new to index: cheap
        # the report answers from the index and the rows alike
        assert store.query(
            "SELECT COUNT(*) FROM messages WHERE is_request = 1 AND error = '' AND node = ''"
        ) == [(7,)]


def test_migrating_twice_at_once_and_reopening(pg_url: str) -> None:
    stores, failures = [], []

    def opener() -> None:
        try:
            stores.append(open_store(pg_url))
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    for s in stores:
        s.close()
    with open_store(pg_url) as store:
        assert store.schema_version == migrations.LATEST
        versions = store.query("SELECT version FROM migrations ORDER BY version")
        assert [v for (v,) in versions] == list(range(1, migrations.LATEST + 1))
        # the parent is partitioned, and has the columns in row order
        assert store.query("SELECT relkind FROM pg_class WHERE relname = 'messages'") == [("p",)]
        cols = store.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'messages'"
            " ORDER BY ordinal_position"
        )
        assert tuple(c for (c,) in cols) == MESSAGE_COLUMNS
        store.ensure_indexes()
        store.ensure_indexes()  # cheap and harmless when they exist
        store.execute("INSERT INTO migrations VALUES (99, 'from the future', 0)")
    for readonly in (False, True):
        with pytest.raises(StoreError, match="schema version 99.*upgrade sipwatch"):
            open_store(pg_url, readonly=readonly)


def test_readonly_neither_creates_nor_migrates(pg_url: str) -> None:
    with pytest.raises(StoreError, match="empty trace store"):
        open_store(pg_url, readonly=True)
    assert _partitions_table_absent(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn, conn.transaction():
        migrations.apply(lambda sql, params=(): conn.execute(sql, params), "postgresql", 0, 2)
    with pytest.raises(StoreError, match="schema version 2.*open it once for writing"):
        open_store(pg_url, readonly=True)
    with open_store(pg_url) as store:
        assert store.schema_version == migrations.LATEST
        store.add(trace())
    with open_store(pg_url, readonly=True) as store:
        assert store.query("SELECT COUNT(*) FROM messages") == [(14,)]
        with pytest.raises(StoreError, match="read-only"):
            store.add(trace())
        with pytest.raises(StoreError, match="read-only"):
            store.store_batch("s1", 1, [])


def _partitions_table_absent(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT to_regclass('migrations')").fetchone() == (None,)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://postgres:sekrit@127.0.0.1:1/x", "Connection refused"),
        ("postgresql://postgres:sekrit@127.0.0.1/sw_no_such_database", "does not exist"),
        ("postgresql://postgres:sekrit@127.0.0.1:notaport/x", "port"),
        ("postgres://postgres:sekrit@127.0.0.1/test?nosuchoption=1", "nosuchoption"),
    ],
)
def test_clear_errors_without_the_password(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as err:
        open_store(url)
    text = str(err.value)
    assert "sekrit" not in text and "***" in text and "\n" not in text


def test_a_dropped_connection_fails_one_call_then_reconnects(pg_url: str) -> None:
    rows = [message_row(r) for r in trace()]
    with open_store(pg_url) as store:
        assert store.store_batch("s1", 1, rows[:5])
        (pid,) = store.query("SELECT pg_backend_pid()")[0]
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreError, match="PostgreSQL store"):
            store.store_batch("s1", 2, rows[5:])
        assert store.store_batch("s1", 2, rows[5:])  # the sender's retry
        assert not store.store_batch("s1", 1, rows[:5])
        assert store.query("SELECT COUNT(*) FROM messages") == [(14,)]


def test_a_foreign_messages_table_is_not_taken_over(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE messages (x int)")
    with pytest.raises(StoreError, match="not a sipwatch trace store"):
        open_store(pg_url)


def _tables(store) -> dict:  # noqa: ANN001
    # the ingest table holds wall-clock times of the run: not part of the comparison
    return {t.name: t.rows for t in all_tables(store) if t.name != "ingest"}


def test_reports_are_the_same_on_both_engines(pg_url: str, tmp_path: Path) -> None:
    events = [_event(DAY1 + 40), _event(DAY2 + 40)]
    results = []
    for url in (str(tmp_path / "t.sqlite"), pg_url):
        with open_store(url) as store:
            store.add(trace())
            store.add_events(events)
            store.ensure_indexes()
        with open_store(url, readonly=True) as store:
            results.append(_tables(store))
    assert results[0] == results[1]
    assert results[0]["totals"]  # the comparison is not between two empty reports


def _sipwatch(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", "from sipwatch.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(not PCAP.is_file(), reason=f"{PCAP} is not here")
def test_cli_analyze_into_postgresql_reports_like_sqlite(pg_url: str, tmp_path: Path) -> None:
    reports = []
    for db in (str(tmp_path / "t.sqlite"), pg_url):
        _sipwatch("analyze", str(PCAP), "--db", db)
        report = json.loads(_sipwatch("report", "--db", db, "--format", "json"))
        report.pop("ingest")
        reports.append(report)
    assert reports[0] == reports[1]
    assert reports[0]["totals"]["rows"][0] == {"metric": "messages", "value": 81}


def test_concurrent_writers_of_a_new_day(pg_url: str) -> None:
    """Two processes' stores meet a new day at once: both write, the partition is made once."""
    open_store(pg_url).close()
    rows = [message_row(r) for r in trace()]
    errors: list[Exception] = []

    def writer(sensor: str) -> None:
        try:
            with open_store(pg_url) as store:
                for seq in range(5):
                    store.store_batch(sensor, seq, rows)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with open_store(pg_url, readonly=True) as store:
        assert store.query("SELECT COUNT(*) FROM messages") == [(14,)]
        assert store.query("SELECT COUNT(*) FROM uplink_batches") == [(20,)]
    assert _partitions(pg_url) == ["messages_20240301", "messages_20240302"]


def test_pg_database_fixture_drops_its_database() -> None:
    from storeengines import pg_database  # the plugin's module, already imported by pytest

    with pg_database() as url:
        name = url.rpartition("/")[2]
        open_store(url).close()
    with pytest.raises(StoreError, match="does not exist"):
        open_store(url)
    assert name.startswith("sw_test_")
