"""Message rows into PostgreSQL with binary COPY, skipping rows already stored.

Measured on this machine (bench/BENCHMARKS.md, "Central store ingest"): binary COPY straight
into the partitioned messages table is the fastest path; COPY into a temporary staging table
followed by INSERT ... SELECT ... ON CONFLICT DO NOTHING is slower, but the only COPY that
can skip duplicates. So a batch is first copied straight in, inside a savepoint; when it holds
a message already stored (unique violation), the savepoint is rolled back and the batch goes
through the staging table. After such a fallback the next batches go straight to staging for
a while (a re-analysed capture is duplicates from end to end), then the fast path is tried again.

PostgreSQL text cannot hold NUL characters and psycopg cannot encode lone surrogates; attack
traffic carries both. Checking every field costs more than the insert, so a batch is sent as is
and cleaned only when PostgreSQL (or the encoder) refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import errors

from sipwatch.native import part
from sipwatch.store import schema

# PostgreSQL types of the non-text message columns (binary COPY needs every column's type)
_TYPES = {
    "id": "int8", "ts": "float8", "sport": "int4", "dport": "int4", "is_request": "int2",
    "status": "int4", "cseq_num": "int8", "body_len": "int4", "fuzz": "int2",
    "request_id": "int8", "raw": "bytea",
}  # fmt: skip
COPY_TYPES: tuple[str, ...] = tuple(_TYPES.get(c, "text") for c in schema.MESSAGE_COLUMNS)
# the same types as letters for the C formatter (native/pgcopy.c), which writes the whole
# stream in one call instead of one write_row per row
_KIND = {"int8": "q", "int4": "i", "int2": "h", "float8": "d", "text": "t", "bytea": "b"}
COPY_KINDS = "".join(_KIND[t] for t in COPY_TYPES).encode()
_copy_binary = part("pg_copy_binary")
STAGE = "sipwatch_stage"
STAGED_AFTER_CONFLICT = 8  # batches sent to staging directly after a batch held duplicates

_COLUMNS = ", ".join(schema.MESSAGE_COLUMNS)
_REFUSED_TEXT = (
    UnicodeEncodeError,
    errors.CharacterNotInRepertoire,  # NUL in binary COPY
    errors.UntranslatableCharacter,
    psycopg.DataError,  # NUL in text parameters
)


def clean_text(value: str) -> str:
    """value made storable: each lone surrogate and each NUL becomes one U+FFFD."""
    return (
        value.encode("utf-16", "surrogatepass")
        .decode("utf-16", "replace")
        .replace("\x00", "\ufffd")
    )


def clean_row(row: Sequence) -> tuple:
    return tuple(clean_text(v) if isinstance(v, str) else v for v in row)


class MessageCopier:
    """Inserts batches of message rows on one connection, inside the caller's transaction."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._staged_left = 0
        self._copy_direct = f"COPY messages ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
        self._copy_stage = f"COPY {STAGE} ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
        self._from_stage = (
            f"INSERT INTO messages ({_COLUMNS}) SELECT {_COLUMNS} FROM {STAGE}"
            " ON CONFLICT (ts, id) DO NOTHING"
        )

    def create_stage(self) -> None:
        """The session's staging table (outside a transaction: it lives as long as the session)."""
        self.conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (LIKE messages INCLUDING DEFAULTS)"
            " ON COMMIT DELETE ROWS"
        )

    def insert(self, rows: Sequence[tuple]) -> int:
        """Insert rows, skipping those already stored; returns how many were inserted.

        Call once per transaction: the staging table empties at commit.
        """
        if not rows:
            return 0
        if self._staged_left <= 0:
            try:
                self._copy(self._copy_direct, rows)
                return len(rows)
            except errors.UniqueViolation:
                self._staged_left = STAGED_AFTER_CONFLICT
        self._staged_left -= 1
        self._copy(self._copy_stage, rows)
        return self.conn.execute(self._from_stage).rowcount

    def _copy(self, statement: str, rows: Sequence[tuple]) -> None:
        """COPY in a savepoint; a batch with text PostgreSQL refuses is cleaned and sent again."""
        try:
            with self.conn.transaction():
                self._write(statement, rows)
        except _REFUSED_TEXT:
            with self.conn.transaction():
                self._write(statement, [clean_row(r) for r in rows])

    def _write(self, statement: str, rows: Sequence[tuple]) -> None:
        with self.conn.cursor().copy(statement) as copy:
            if _copy_binary is not None:
                copy.write(memoryview(_copy_binary(rows, COPY_KINDS)))
                return
            copy.set_types(COPY_TYPES)
            write = copy.write_row
            for row in rows:
                write(row)
