"""The one trace-store interface, and open_store() which picks the engine from a URL or path."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sipwatch.record import Record
from sipwatch.store.rows import stored_row

if TYPE_CHECKING:
    from sipwatch.detect.events import Event


class StoreError(Exception):
    """A problem the user can fix (bad URL, newer schema, unreadable file): one clear message."""


class Store(abc.ABC):
    """A trace store: messages (one row per SIP message) and ingest runs.

    add() buffers rows and writes them in batches; call flush() (or close()) to write the rest.
    counters: 'added' rows given to add(), 'inserted' rows written, 'duplicates' rows skipped
    because a message with the same id was already stored, 'fallback_rows' messages stored
    from their raw bytes only because their parsed fields could not be read, 'batches'.
    """

    engine: str = ""
    batch_rows: int = 5000  # rows per written batch (engines set their own)
    _pending: list[tuple]  # rows queued by add() and not yet written

    def __init__(self) -> None:
        self.counters: dict[str, int] = {
            "added": 0,
            "inserted": 0,
            "duplicates": 0,
            "fallback_rows": 0,
            "batches": 0,
        }

    @property
    @abc.abstractmethod
    def schema_version(self) -> int: ...

    @abc.abstractmethod
    def add(self, records: Iterable[Record]) -> int:
        """Queue records; returns how many rows were inserted by batches written in this call."""

    def _write(self) -> int:
        """Write self._pending as one batch (the engines' own path); returns rows inserted."""
        raise NotImplementedError

    def _queue_rows(self, records: Iterable[Record]) -> int:
        """add() for the engines: rows into self._pending, self._write() at every
        self.batch_rows; returns the rows those writes inserted."""
        pending = self._pending
        batch = self.batch_rows
        inserted = added = 0
        for r in records:
            added += 1
            row, fell_back = stored_row(r)
            pending.append(row)
            if fell_back:
                self.counters["fallback_rows"] += 1
            if len(pending) >= batch:
                inserted += self._write()
                pending = self._pending
        self.counters["added"] += added
        return inserted

    @abc.abstractmethod
    def flush(self) -> int:
        """Write everything queued; returns how many rows were inserted."""

    def submit(self) -> int:
        """Hand everything queued to the engine's writer without waiting for it (a live
        source's batch). Engines without a writer thread write it now (flush); with one, it is
        committed within milliseconds, a failure is raised by a later call, and query() and
        flush() still see every row submitted before them. Returns rows inserted now."""
        return self.flush()

    def end_bulk_load(self) -> None:
        """Write everything queued and release bulk-load helpers (e.g. a writer process)."""
        self.flush()

    @abc.abstractmethod
    def add_events(self, events: Iterable[Event]) -> int:
        """Store detection events now; an event already stored (same id) is updated."""

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a read query (SQLite '?' placeholders) and return all rows."""

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement ('?' placeholders) in its own transaction; returns rowcount.

        For small writes (sensor registry, rule packs, users), not for messages.
        """

    @abc.abstractmethod
    def store_batch(
        self,
        sensor: str,
        seq: int,
        rows: Sequence[tuple],
        events: Sequence[tuple] = (),
        dropped: int = 0,
    ) -> bool:
        """Store one uplink batch exactly once, in one transaction.

        rows are message rows (schema.MESSAGE_COLUMNS order), events event rows
        (schema.EVENT_COLUMNS order). When (sensor, seq) was stored before, nothing is written
        and False is returned; otherwise the batch is recorded in uplink_batches, messages
        already stored (same ts and id) are skipped, events are upserted, and True is returned.
        """

    @abc.abstractmethod
    def purge(self, before_ts: float) -> int:
        """Retention: delete messages older than before_ts and events that ended before it.

        Returns the number of messages deleted.
        """

    @abc.abstractmethod
    def start_ingest(self, sources: Sequence[str]) -> int:
        """Record the start of an ingest run (e.g. one `sipwatch analyze`); returns its id."""

    @abc.abstractmethod
    def finish_ingest(self, run_id: int, messages: int, inserted: int, dropped: int = 0) -> None:
        """Record the end of an ingest run with its counts."""

    @abc.abstractmethod
    def ensure_indexes(self) -> None:
        """Create the report indexes (after a bulk load; cheap when they exist)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and close."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(
    url_or_path: str | Path,
    *,
    readonly: bool = False,
    background: bool = False,
    threaded: bool = False,
) -> Store:
    """Open (creating and migrating if needed) the store a path or URL names.

    'trace.sqlite', 'sqlite:///trace.sqlite' (relative), 'sqlite:////abs/trace.sqlite' -> SQLite.
    'postgresql://user@host:port/db' (also 'postgres://') -> PostgreSQL (the database must exist).
    readonly=True opens an existing store for reports without creating or migrating it.
    background=True: a writer inserts the batches on another core (bulk loads such as analyze):
    the C extension's writer thread, else a writer process.
    threaded=True: the writer thread when the C extension is built, else inline writes (live
    sources and analysis workers: no extra process). Both are SQLite-only (PostgreSQL inserts
    in its server process already).
    """
    text = str(url_or_path)
    lower = text.lower()
    if lower.startswith(("postgresql://", "postgres://", "postgresql+")):
        from sipwatch.store.postgres import PostgresStore

        if lower.startswith("postgresql+"):  # SQLAlchemy-style 'postgresql+psycopg://'
            text = "postgresql://" + text.split("://", 1)[-1]
        # the server inserts in its own process already: no writer process (background)
        return PostgresStore(text, readonly=readonly)
    if lower.startswith("sqlite://"):
        path = text[len("sqlite://") :]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db
        if not path:
            raise StoreError(f"no file name in store URL {text!r}")
    elif "://" in text:
        raise StoreError(f"unknown store URL scheme in {text!r} (use a file path or sqlite:///)")
    else:
        path = text
    from sipwatch.store.sqlite import SqliteStore

    return SqliteStore(Path(path), readonly=readonly, background=background, threaded=threaded)
