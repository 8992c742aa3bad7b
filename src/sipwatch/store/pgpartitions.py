"""Day partitions of the PostgreSQL messages table: created on demand, dropped by retention.

messages is PARTITION BY RANGE (ts); each UTC day is one partition messages_YYYYMMDD holding
[day start, next day start). A partition is created (in its own short transaction) before the
first rows of its day are written, so a batch transaction never creates tables and a rolled-back
batch cannot leave the cache wrong. Timestamps no four-digit year names (hostile or broken
captures: negative, NaN, infinite) go to two open-ended partitions, messages_before (MINVALUE to
year 1000) and messages_after (year 10000 to MAXVALUE, NaN included), made when first needed.
There is no DEFAULT partition: PostgreSQL would scan it for every new day, and a row whose day
partition was just dropped would land there silently instead of failing and being retried.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Sequence

import psycopg
from psycopg import errors

DAY = 86400
_EPOCH = dt.date(1970, 1, 1)
MIN_DAY = (dt.date(1000, 1, 1) - _EPOCH).days
MAX_DAY = (dt.date(9999, 12, 31) - _EPOCH).days
BEFORE = MIN_DAY - 1  # the day number standing for messages_before
AFTER = MAX_DAY + 1  # and for messages_after
EDGES = {BEFORE: "messages_before", AFTER: "messages_after"}
# The correlation reports' one scan (report/fleet.py: GROUP BY node, src over parsed requests)
# answered from an index instead of the wide rows: an index-only scan reads ~1/20 of the bytes
# (measured: 10M messages, 5.5 s -> 2.5 s). Maintaining it row by row would cost ~20% of the
# ingest rate, so only days that have ended get it (ensure_indexes); today's partition, where
# the inserts go, is scanned as before.
CONTACTS_INDEX = "(node, src) INCLUDE (ts, stage, method) WHERE is_request = 1 AND error = ''"
# one key for every sipwatch process on the database: partition DDL is serialised, so two
# creators of the same day wait for each other instead of failing
LOCK_KEY = 0x5157_0001


def day_number(ts: object) -> int:
    """The partition day of a timestamp: its UTC day number, or BEFORE / AFTER."""
    try:
        n = int(ts // DAY)  # type: ignore[operator]
    except (TypeError, ValueError, OverflowError):
        try:
            return BEFORE if float(ts) < 0 else AFTER  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return AFTER
    return BEFORE if n < MIN_DAY else AFTER if n > MAX_DAY else n


def partition_name(day: int) -> str:
    edge = EDGES.get(day)
    return edge or "messages_" + (_EPOCH + dt.timedelta(days=day)).strftime("%Y%m%d")


def _day_of_name(name: str) -> int | None:
    for day, edge in EDGES.items():
        if name == edge:
            return day
    try:
        return (dt.datetime.strptime(name[len("messages_") :], "%Y%m%d").date() - _EPOCH).days
    except ValueError:
        return None


def _bounds(day: int) -> str:
    if day == BEFORE:
        return f"FROM (MINVALUE) TO ({MIN_DAY * DAY})"
    if day == AFTER:
        return f"FROM ({AFTER * DAY}) TO (MAXVALUE)"
    return f"FROM ({day * DAY}) TO ({(day + 1) * DAY})"


def _upper(day: int) -> float:
    return math.inf if day == AFTER else float(MIN_DAY * DAY if day == BEFORE else (day + 1) * DAY)


def days_of(rows: Sequence[Sequence]) -> set[int]:
    """Partition days of message rows (ts is column 1)."""
    try:
        days = {int(r[1] // DAY) for r in rows}
    except (TypeError, ValueError, OverflowError):  # NaN, infinity: the slow way
        return {day_number(r[1]) for r in rows}
    if days and (min(days) < MIN_DAY or max(days) > MAX_DAY):
        return {BEFORE if d < MIN_DAY else AFTER if d > MAX_DAY else d for d in days}
    return days


class DayPartitions:
    """Which day partitions exist (cached), and making the missing ones."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.known: set[int] = set()
        self.reload()

    def reload(self) -> None:
        """Read the partitions from the catalog (another process may have made or dropped some)."""
        self.known = {day for _, day in self.children()}

    def children(self) -> list[tuple[str, int]]:
        """(name, day number) of every partition of messages that sipwatch made."""
        rows = self.conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'messages'::regclass"
        ).fetchall()
        days = [(name, _day_of_name(name)) for (name,) in rows]
        return [(name, day) for name, day in days if day is not None]

    def ensure(self, rows: Sequence[Sequence]) -> None:
        """Create the partitions the rows need (outside any transaction of the caller)."""
        for day in sorted(days_of(rows) - self.known):
            self._create(day)
            self.known.add(day)

    def _create(self, day: int) -> None:
        sql = (
            f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF messages"
            f" FOR VALUES {_bounds(day)}"
        )
        # a process without the lock (or a catalog race) may still win: its table is ours too
        with (
            contextlib.suppress(errors.DuplicateTable, errors.UniqueViolation),
            self.conn.transaction(),
        ):
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            self.conn.execute(sql)

    def drop_before(self, before_ts: float) -> int:
        """Drop the partitions that end at or before before_ts; returns the rows they held.

        Runs inside the caller's transaction (retention: the drops and the deletes commit together).
        """
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        dropped = 0
        for name, day in self.children():
            if _upper(day) > before_ts:
                continue
            (n,) = self.conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone() or (0,)
            self.conn.execute(f"DROP TABLE {name}")
            dropped += int(n)
            self.known.discard(day)
        return dropped

    def index_ended_days(self, now: float) -> list[str]:
        """Give every partition whose day has ended the contacts index; returns those indexed.

        Each one is vacuumed afterwards: index-only scans need its pages marked all-visible.
        """
        rows = self.conn.execute(
            "SELECT tablename FROM pg_indexes WHERE indexname LIKE 'messages%contacts'"
        ).fetchall()
        indexed = {name for (name,) in rows}
        done = []
        for name, day in sorted(self.children(), key=lambda c: c[1]):
            if _upper(day) > now or name in indexed:
                continue
            self.conn.execute(
                f"CREATE INDEX IF NOT EXISTS {name}_contacts ON {name} {CONTACTS_INDEX}"
            )
            self.conn.execute(f"VACUUM (ANALYZE) {name}")
            done.append(name)
        return done
