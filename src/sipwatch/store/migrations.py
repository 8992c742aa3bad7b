"""Numbered schema steps. A store records each applied step in its `migrations` table.

Rules: never edit a released step; add a new one. Each step is a list of portable statements
(placeholders filled by schema.ddl). Opening a store whose version is newer than the last step
here is refused with a clear message (an older sipwatch must not write to a newer schema).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sipwatch.store import schema

# (version, name, statements)
STEPS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "messages table", (schema.MESSAGES_DDL,)),
    (2, "ingest runs table", (schema.INGEST_DDL,)),
    (3, "messages.password column", (schema.PASSWORD_DDL,)),
    (4, "events table", (schema.EVENTS_DDL, schema.EVENTS_INDEX_DDL)),
    (5, "central service: sensors, uplink batches, rule packs, users", schema.CENTRAL_DDL),
    (6, "events table keyed by arrival", schema.EVENTS_BY_ARRIVAL_DDL),
)

LATEST = STEPS[-1][0]

# Engine-specific variants of a step: same tables and columns, engine features added
# ({engine: {version: statements}}).
ENGINE_STEPS: dict[str, dict[int, tuple[str, ...]]] = {
    "postgresql": {1: (schema.MESSAGES_PARTITIONED_DDL,), 6: ()},  # 6: SQLite's page layout
}


class SchemaTooNew(Exception):
    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"this store has schema version {found}, but this sipwatch supports up to "
            f"{supported}: upgrade sipwatch to read it"
        )
        self.found = found
        self.supported = supported


def current_version(query: Callable[[str], list[tuple[Any, ...]]]) -> int:
    """Highest applied step (0 for a new store). `query` runs one SQL statement."""
    rows = query("SELECT MAX(version) FROM migrations")
    return int(rows[0][0] or 0) if rows else 0


def pending(version: int, target: int = LATEST) -> list[tuple[int, str, tuple[str, ...]]]:
    """Steps still to apply to go from `version` to `target`; refuses a newer store."""
    if version > LATEST:
        raise SchemaTooNew(version, LATEST)
    return [s for s in STEPS if version < s[0] <= target]


def apply(execute: Callable[..., Any], engine: str, version: int, target: int = LATEST) -> int:
    """Apply the pending steps with `execute(sql, params)`; the caller owns the transaction.

    Returns the new version.
    """
    execute(schema.ddl(schema.MIGRATIONS_DDL, engine), ())
    mark = "?" if engine == "sqlite" else "%s"
    overrides = ENGINE_STEPS.get(engine, {})
    for number, name, statements in pending(version, target):
        for sql in overrides.get(number, statements):
            execute(schema.ddl(sql, engine), ())
        execute(
            f"INSERT INTO migrations (version, name, applied_at) VALUES ({mark}, {mark}, {mark})",
            (number, name, time.time()),
        )
        version = number
    return version
