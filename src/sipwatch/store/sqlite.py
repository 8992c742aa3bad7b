"""SQLite trace store: WAL, synchronous=NORMAL, batched INSERT OR IGNORE in transactions.

Bulk loads (background=True) hand their row batches to a writer: the C extension's writer
thread (sipwatch._native.SqliteWriter: its own connection, prepared statement, no GIL) when it
is built, else a writer process (store/writer.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sipwatch import __version__, native
from sipwatch.record import Record
from sipwatch.store import migrations, schema

if TYPE_CHECKING:
    from sipwatch.detect.events import Event
from sipwatch.store.base import Store, StoreError
from sipwatch.store.rows import stored_row
from sipwatch.store.writer import WriterError, WriterProcess, clean_text, insert_rows

BATCH_ROWS = 5000  # rows per transaction: large enough to amortise the commit, small in memory
# page size of new store files (SQLite's default is 4096). Measured on 500,000 real rows
# (bench/bench_writer.py --page-sizes): the writer ~10% less CPU per row, `sipwatch report`
# ~20% faster, the file ~8% smaller. Existing files keep theirs (WAL cannot change it).
PAGE_SIZE = 16384


def native_writer() -> Any:
    """The C writer-thread type (sipwatch._native.SqliteWriter), or None.

    Only when the extension uses the very SQLite library the sqlite3 module uses: two copies
    of SQLite in one process do not see each other's POSIX locks on the same file (SQLite's
    "multiple copies of SQLite linked into the same application" corruption case).
    """
    writer = native.part("SqliteWriter")
    version = native.part("sqlite_version")
    if writer is None or version is None or version() != sqlite3.sqlite_version:
        return None
    return writer


def _writer_errors() -> tuple[type[BaseException], ...]:
    error = native.part("WriterError")
    return (WriterError, error) if error is not None else (WriterError,)


class SqliteStore(Store):
    engine = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        readonly: bool = False,
        batch_rows: int = BATCH_ROWS,
        background: bool = False,
        threaded: bool = False,
    ) -> None:
        """background=True: batches are inserted by the writer thread of the C extension, or
        without it by a writer process (bulk loads, 2+ cores). threaded=True: by the writer
        thread when the extension is built, else inline (live sources, analysis workers)."""
        super().__init__()
        self.background = background and not readonly
        self._writer: Any = None  # a running SqliteWriter or WriterProcess
        self._thread_type = None if readonly else native_writer()
        # rows go through the writer thread (else inline, or the process for background)
        self._use_thread = self._thread_type is not None and (background or threaded)
        self._writer_errors = _writer_errors()
        self._in_flight = 0  # rows this store sent to the writer and not yet counted
        self.path = path
        self.readonly = readonly
        self.batch_rows = max(1, batch_rows)
        self._pending: list[tuple] = []
        self._insert = schema.insert_sql("sqlite")
        self._upsert_events = schema.upsert_events_sql("sqlite")
        self._version = 0
        self._conn = self._connect()
        if self._use_thread:
            # now, not at the first write: a sensor that drops root privileges after opening
            # its store keeps the files it opened as root
            try:
                self.bulk_writer()
            except BaseException:
                self._conn.close()
                raise

    # --- opening ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        path = self.path
        if self.readonly and not path.is_file():
            raise StoreError(f"no trace store at {path}")
        if not self.readonly and not path.parent.is_dir():
            raise StoreError(f"cannot create trace store {path}: folder does not exist")
        try:
            if self.readonly:
                conn = sqlite3.connect(
                    f"file:{path.resolve()}?mode=ro", uri=True, isolation_level=None,
                    check_same_thread=False,
                )  # fmt: skip
            else:
                new = not path.exists() or path.stat().st_size == 0
                conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
                if new:  # before the first write (journal_mode=WAL) fixes it
                    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self._setup(conn)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a usable trace store: {exc}") from None
        except migrations.SchemaTooNew as exc:
            raise StoreError(f"{path}: {exc}") from None
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        if not self.readonly:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        # 16 MiB of page cache; temporary sorts (report GROUP BYs) spill to disk, so memory
        # stays bounded whatever the store size
        conn.execute("PRAGMA cache_size=-16384")
        # a writer process (bulk loads) or another sipwatch may hold the write lock briefly
        conn.execute("PRAGMA busy_timeout=30000")
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if names and "migrations" not in names:
            raise StoreError(f"{self.path} is a SQLite file but not a sipwatch trace store")
        version = 0
        if "migrations" in names:
            version = migrations.current_version(lambda sql: conn.execute(sql).fetchall())
        if self.readonly:
            if version == 0:
                raise StoreError(f"{self.path} is an empty trace store")
            migrations.pending(version)  # refuses a newer schema
            if version < migrations.LATEST:
                raise StoreError(
                    f"{self.path} has schema version {version}; open it once for writing "
                    f"(e.g. sipwatch analyze) to upgrade it to {migrations.LATEST}"
                )
            self._version = version
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._version = migrations.apply(conn.execute, "sqlite", version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        return self._version

    # --- writing ---------------------------------------------------------------------------
    def add(self, records: Iterable[Record]) -> int:
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only")
        if not self._use_thread:
            return self._queue_rows(records)
        # the writer thread: rows packed in C straight from the records (no row tuples), the
        # same rows as stored_row gives (records the C reader refuses take stored_row itself)
        batch = records if isinstance(records, list) else list(records)
        if self._pending:
            self._write()
        writer = self.bulk_writer()
        try:
            fell_back = writer.add_records(batch, stored_row)
        except self._writer_errors as exc:
            self._writer_failed(exc)
        self.counters["added"] += len(batch)
        self.counters["fallback_rows"] += fell_back
        self._in_flight += len(batch)
        return 0

    def _write(self) -> int:
        rows = self._pending
        self._pending = []
        if self._use_thread:
            writer = self.bulk_writer()
            try:
                writer.add_rows(rows)
            except self._writer_errors as exc:
                self._writer_failed(exc)
            self._in_flight += len(rows)
            return 0
        if self.background and (self._writer is not None or len(rows) >= self.batch_rows):
            if self._writer is None:  # started on the first full batch: small runs never fork
                self._writer = WriterProcess(self.path, self._insert)
            self._writer.send(rows)
            self._in_flight += len(rows)
            return 0
        inserted = insert_rows(self._conn, self._insert, rows)
        self._count(len(rows), inserted, 1)
        return inserted

    def bulk_writer(self) -> Any:
        """The writer thread (sipwatch._native.SqliteWriter, started now if needed) that the C
        bulk path submits row buffers to, or None without the extension (or read-only). Once
        it runs, rows given to add() go through it too (one writer for the messages table).

        Rows it is given are counted in this store's counters at the next flush(), like rows
        given to add(); query() and flush() wait until it has committed them.
        """
        if self._thread_type is None:
            return None
        if self._writer is None:
            try:
                self._writer = self._thread_type(
                    str(self.path), self._insert, len(schema.MESSAGE_COLUMNS), self.batch_rows
                )
            except self._writer_errors as exc:
                raise StoreError(f"{self.path}: {exc}") from None
            self._use_thread = True
        return self._writer

    def _writer_failed(self, exc: BaseException) -> None:
        """The writer thread failed: report it once; the rows queued before the failure are
        lost, later ones are written again (a live store goes on once there is room)."""
        writer = self._writer
        try:
            inserted, batches = writer.reset()  # counts what was committed before the failure
            self._count(writer.synced_rows, inserted, batches)
        except self._writer_errors:  # cannot happen: reset() only waits
            self._writer = None
            with contextlib.suppress(*self._writer_errors):
                writer.close()
        self._in_flight = 0
        raise StoreError(str(exc)) from None

    def submit(self) -> int:
        if not self._use_thread:
            return self.flush()
        return self._write() if self._pending else 0  # the thread commits it: no waiting

    def _count(self, rows: int, inserted: int, batches: int) -> None:
        self.counters["inserted"] += inserted
        self.counters["duplicates"] += rows - inserted
        self.counters["batches"] += batches

    def flush(self) -> int:
        inserted = self._write() if self._pending else 0
        writer = self._writer
        if writer is None:
            return inserted
        if self._thread_type is not None:  # the writer thread (also fed by the C bulk path)
            try:
                inserted, batches = writer.sync()
            except self._writer_errors as exc:
                self._writer_failed(exc)
            self._count_thread(writer, inserted, batches)
        elif self._in_flight:
            in_flight, self._in_flight = self._in_flight, 0
            try:
                inserted, batches = writer.sync()
            except WriterError as exc:
                raise StoreError(str(exc)) from None
            self._count(in_flight, inserted, batches)
        return inserted

    def _count_thread(self, writer: Any, inserted: int, batches: int) -> None:
        """Count what the writer thread's last sync()/close() covered: this store's rows and
        those the C bulk path submitted directly (which add() did not count as added)."""
        rows = writer.synced_rows
        own, self._in_flight = self._in_flight, 0
        if rows > own:
            self.counters["added"] += rows - own
        self._count(rows, inserted, batches)

    def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if self._thread_type is not None:
            try:
                inserted, batches = writer.close()
            except self._writer_errors as exc:
                self._in_flight = 0
                raise StoreError(str(exc)) from None
            self._count_thread(writer, inserted, batches)
            return
        try:
            writer.stop()
        except WriterError as exc:
            raise StoreError(str(exc)) from None

    def end_bulk_load(self) -> None:
        self.flush()
        self._stop_writer()

    def start_ingest(self, sources: Sequence[str]) -> int:
        self.flush()
        cur = self._conn.execute(
            "INSERT INTO ingest (sources, started, sipwatch_version) VALUES (?, ?, ?)",
            ("\n".join(str(s) for s in sources), time.time(), __version__),
        )
        return int(cur.lastrowid or 0)

    def finish_ingest(self, run_id: int, messages: int, inserted: int, dropped: int = 0) -> None:
        self.flush()
        self._conn.execute(
            "UPDATE ingest SET finished = ?, messages = ?, inserted = ?, dropped = ? WHERE id = ?",
            (time.time(), messages, inserted, dropped, run_id),
        )

    def ensure_indexes(self) -> None:
        if self.readonly:
            return
        self.flush()
        for sql in schema.REPORT_INDEXES:
            self._conn.execute(sql)
        self._conn.execute("ANALYZE")

    # --- reading ---------------------------------------------------------------------------
    def add_events(self, events: Iterable[Event]) -> int:
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only")
        from sipwatch.store.eventrows import event_row

        rows = [event_row(e) for e in events]
        if not rows:
            return 0
        if self._writer is not None:
            # the writer thread idle first: this connection then never sleeps in SQLite's
            # busy handler waiting for the other one's transaction
            self.flush()
        with self._transaction() as conn:
            conn.executemany(self._upsert_events, rows)
        self.counters["events"] = self.counters.get("events", 0) + len(rows)
        return len(rows)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only")
        self.flush()
        with self._transaction() as conn:
            return conn.execute(sql, params).rowcount

    def store_batch(
        self,
        sensor: str,
        seq: int,
        rows: Sequence[tuple],
        events: Sequence[tuple] = (),
        dropped: int = 0,
    ) -> bool:
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only")
        self.flush()
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO uplink_batches (sensor, seq, received, records, events,"
                " dropped) VALUES (?, ?, ?, ?, ?, ?)",
                (sensor, seq, time.time(), len(rows), len(events), dropped),
            )
            if cur.rowcount == 0:
                return False
            before = conn.total_changes
            try:
                conn.executemany(self._insert, rows)
            except UnicodeEncodeError:
                conn.executemany(self._insert, [clean_text(r) for r in rows])
            inserted = conn.total_changes - before
            if events:
                conn.executemany(self._upsert_events, events)
        self._count(len(rows), inserted, 1)
        self.counters["added"] += len(rows)
        return True

    def purge(self, before_ts: float) -> int:
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only")
        self.flush()
        with self._transaction() as conn:
            deleted = conn.execute("DELETE FROM messages WHERE ts < ?", (before_ts,)).rowcount
            conn.execute("DELETE FROM events WHERE last < ?", (before_ts,))
        return deleted

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")  # waits (busy_timeout) while another writer commits
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        if self._pending or self._writer is not None:  # every row written before is seen
            self.flush()
        return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            if not self.readonly:
                self.flush()
                conn.execute("PRAGMA optimize")
        finally:
            with contextlib.suppress(StoreError):  # a failure was reported by the flush
                self._stop_writer()
            conn.close()
            self._conn = None  # type: ignore[assignment]
