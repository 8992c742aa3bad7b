"""Insert batches of message rows into SQLite, here or in a writer process on another core.

Binding ~44 parameters per row and the B-tree insert cost as much as parsing a message, so a
bulk analysis hands finished rows to a child process that owns its own connection: the
parent goes on decoding and parsing while the child writes. The pipe between them holds at
most a few batches (the parent blocks when it is full), so memory stays bounded.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from multiprocessing.connection import Connection
from pathlib import Path


def clean_text(row: tuple) -> tuple:
    """Make every str in a row encodable as UTF-8 (lone surrogates become U+FFFD).

    Used only when a batch failed to encode, so the normal path pays nothing for it.
    """
    return tuple(
        v.encode("utf-8", "surrogatepass").decode("utf-8", "replace") if isinstance(v, str) else v
        for v in row
    )


def insert_rows(conn: sqlite3.Connection, insert_sql: str, rows: list[tuple]) -> int:
    """Insert one batch in one transaction; returns rows inserted (the rest were duplicates)."""
    before = conn.total_changes
    conn.execute("BEGIN")
    try:
        try:
            conn.executemany(insert_sql, rows)
        except UnicodeEncodeError:  # lone surrogates in some field: clean this batch only
            conn.execute("ROLLBACK")
            conn.execute("BEGIN")
            before = conn.total_changes
            conn.executemany(insert_sql, [clean_text(r) for r in rows])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return conn.total_changes - before


def _child(path: str, insert_sql: str, pipe: Connection) -> None:
    """The writer process: rows in, counts out on request, until told to stop."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-16384")
    inserted = batches = 0
    error = ""
    try:
        while True:
            kind, payload = pipe.recv()
            if kind == "rows":
                if not error:  # after a failure, drain without writing; the parent is told
                    try:
                        inserted += insert_rows(conn, insert_sql, payload)
                        batches += 1
                    except Exception as exc:
                        error = f"{type(exc).__name__}: {exc}"
            elif kind == "sync":
                pipe.send((inserted, batches, error))
                inserted = batches = 0
            elif kind == "stop":
                pipe.send((inserted, batches, error))
                return
    except (EOFError, KeyboardInterrupt):
        return
    finally:
        conn.close()


class WriterError(Exception):
    """The writer process failed; the message says why."""


class WriterProcess:
    """A child process that inserts the row batches it is sent."""

    def __init__(self, path: Path, insert_sql: str) -> None:
        # spawn: a fresh interpreter that imports only this module (sqlite3), not a copy of the
        # parser's memory; and safe with the progress bar's thread running
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child_end = ctx.Pipe()
        self._proc = ctx.Process(
            target=_child, args=(str(path), insert_sql, child_end), name="sipwatch-writer"
        )
        self._proc.daemon = True
        self._proc.start()
        child_end.close()

    def send(self, rows: list[tuple]) -> None:
        self._pipe.send(("rows", rows))

    def sync(self) -> tuple[int, int]:
        """Wait until everything sent is written; (rows inserted, batches) since the last sync."""
        return self._ask("sync")

    def stop(self) -> tuple[int, int]:
        try:
            return self._ask("stop")
        finally:
            self._pipe.close()
            self._proc.join(timeout=30)

    def _ask(self, kind: str) -> tuple[int, int]:
        try:
            self._pipe.send((kind, None))
            inserted, batches, error = self._pipe.recv()
        except (EOFError, OSError) as exc:
            raise WriterError(f"the store writer process ended unexpectedly ({exc})") from None
        if error:
            raise WriterError(f"writing the trace store failed: {error}")
        return inserted, batches
