"""Trace-store schema: one column list and DDL that ports between SQLite and PostgreSQL.

Types are written as placeholders ({id}, {real}, {blob}, {serial}) and filled per engine, so the
same statements create the same tables on both engines. Booleans are SMALLINT 0/1 (portable).
"""

from __future__ import annotations

# The messages row, in insert order. store/rows.py builds tuples in exactly this order.
MESSAGE_COLUMNS: tuple[str, ...] = (
    "id",  # Record.id: stable 63-bit hash, the dedupe key
    "ts",  # seconds since the epoch (capture time)
    "day",  # 'YYYY-MM-DD' in UTC, for packets per day
    "transport",
    "src",
    "sport",
    "dst",
    "dport",
    "direction",
    "is_request",
    "method",
    "status",
    "reason",
    "ruri",
    "ruri_user",
    "from_user",
    "from_tag",
    "to_user",
    "to_tag",
    "call_id",
    "cseq_num",
    "cseq_method",
    "via_branch",
    "user_agent",  # User-Agent, else Server
    "auth_user",  # digest username (Authorization or Proxy-Authorization)
    "auth_realm",
    "contact",  # first Contact, as text
    "content_type",
    "body_len",
    "anomalies",  # comma-joined anomaly codes
    "error",  # parse error code, '' when the message parsed
    "stage",  # SS | ES | RHJ | TF | ''
    "tool",
    "tool_data",
    "fuzz",
    "number",
    "number_type",
    "number_country",
    "request_id",  # for a response: id of the request it answers, 0 when unseen
    "sensor",
    "node",
    "tunnel",
    "vlan",
    "raw",  # last of the first version's columns: scans that do not need the bytes stop before
    # Added by later schema versions. ALTER TABLE can only append, so these follow raw; keeping
    # this tuple in table order makes `SELECT *` and store/rows.py tuples line up.
    "password",  # v3: password the digest attempt tried (responses: their request's), '' unknown
)

ENGINE_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {
        "id": "INTEGER",
        "real": "REAL",
        "blob": "BLOB",
        "serial": "INTEGER PRIMARY KEY",
    },
    "postgresql": {
        "id": "BIGINT",
        "real": "DOUBLE PRECISION",
        "blob": "BYTEA",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    },
}

MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at {real} NOT NULL
)"""

# the messages table as version 1 created it (a released step: columns added later are
# migration steps of their own, e.g. PASSWORD_DDL)
MESSAGES_DDL = """
CREATE TABLE messages (
    id {id} NOT NULL,
    ts {real} NOT NULL,
    day TEXT NOT NULL,
    transport TEXT NOT NULL,
    src TEXT NOT NULL,
    sport INTEGER NOT NULL,
    dst TEXT NOT NULL,
    dport INTEGER NOT NULL,
    direction TEXT NOT NULL,
    is_request SMALLINT NOT NULL,
    method TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    ruri TEXT NOT NULL,
    ruri_user TEXT NOT NULL,
    from_user TEXT NOT NULL,
    from_tag TEXT NOT NULL,
    to_user TEXT NOT NULL,
    to_tag TEXT NOT NULL,
    call_id TEXT NOT NULL,
    cseq_num BIGINT,
    cseq_method TEXT NOT NULL,
    via_branch TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    auth_user TEXT NOT NULL,
    auth_realm TEXT NOT NULL,
    contact TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body_len INTEGER NOT NULL,
    anomalies TEXT NOT NULL,
    error TEXT NOT NULL,
    stage TEXT NOT NULL,
    tool TEXT NOT NULL,
    tool_data TEXT NOT NULL,
    fuzz SMALLINT NOT NULL,
    number TEXT NOT NULL,
    number_type TEXT NOT NULL,
    number_country TEXT NOT NULL,
    request_id {id} NOT NULL,
    sensor TEXT NOT NULL,
    node TEXT NOT NULL,
    tunnel TEXT NOT NULL,
    vlan TEXT NOT NULL,
    raw {blob} NOT NULL,
    -- (ts, id), not id alone: ids are random hashes, and a b-tree keyed by them takes random
    -- page writes (measured 18-26k rows/s against ~100k+ for this time-ordered key). The same
    -- message always has the same ts, so this key dedupes exactly like id would.
    PRIMARY KEY (ts, id)
)"""

# PostgreSQL's version 1: the same table, partitioned by day on ts (store/pgpartitions.py adds
# one partition per UTC day before rows of that day arrive; retention drops whole days). The
# primary key holds the partition key ts, as PostgreSQL requires, so the dedupe is unchanged.
MESSAGES_PARTITIONED_DDL = MESSAGES_DDL + " PARTITION BY RANGE (ts)"

# v3: recovered passwords (detect/passwords.py). The default fills the rows of older stores.
PASSWORD_DDL = "ALTER TABLE messages ADD COLUMN password TEXT NOT NULL DEFAULT ''"

# Detection events (detect/events.py Event). One row per event id; a later emission of the same
# event (it kept firing) updates last, count, evidence, data and severity in place.
EVENT_COLUMNS: tuple[str, ...] = (
    "id", "rule", "kind", "severity", "stage", "src", "targets", "node", "sensor",
    "first", "last", "count", "summary", "evidence", "data", "tags",
)  # fmt: skip
EVENTS_DDL = """
CREATE TABLE events (
    id {id} PRIMARY KEY,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    stage TEXT NOT NULL,
    src TEXT NOT NULL,
    targets TEXT NOT NULL,
    node TEXT NOT NULL,
    sensor TEXT NOT NULL,
    first {real} NOT NULL,
    last {real} NOT NULL,
    count BIGINT NOT NULL,
    summary TEXT NOT NULL,
    evidence TEXT NOT NULL,
    data TEXT NOT NULL,
    tags TEXT NOT NULL
)"""
EVENTS_INDEX_DDL = "CREATE INDEX events_src ON events (src, first)"

# v6 (SQLite): the events table keyed by arrival. With the id (a random 63-bit hash) as the
# rowid, every new event went to a random page of the table and each commit rewrote every page
# it touched: ~33 us per stored event against ~12 us with the implicit, growing rowid and a
# unique index on id (bench/BENCHMARKS.md, HEP, 2026-12-08). Same columns, same upsert (ON
# CONFLICT (id) takes the unique index); PostgreSQL's heap is not ordered by its key: unchanged.
EVENTS_BY_ARRIVAL_DDL: tuple[str, ...] = (
    EVENTS_DDL.replace("CREATE TABLE events (", "CREATE TABLE events_by_arrival (").replace(
        "id {id} PRIMARY KEY,", "id {id} NOT NULL UNIQUE,"
    ),
    f"INSERT INTO events_by_arrival ({', '.join(EVENT_COLUMNS)})"
    f" SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY first, id",
    "DROP TABLE events",
    "ALTER TABLE events_by_arrival RENAME TO events",
    EVENTS_INDEX_DDL,
)

INGEST_DDL = """
CREATE TABLE ingest (
    id {serial},
    sources TEXT NOT NULL,
    started {real} NOT NULL,
    finished {real},
    messages BIGINT NOT NULL DEFAULT 0,
    inserted BIGINT NOT NULL DEFAULT 0,
    dropped BIGINT NOT NULL DEFAULT 0,
    sipwatch_version TEXT NOT NULL DEFAULT ''
)"""

# v5: the central service. Sensors (tokens stored as SHA-256 of a 256-bit random token: a slow
# password hash buys nothing against a guess space that large), the uplink batches already
# stored (the exactly-once key), rule packs the central hands out, and dashboard logins.
SENSORS_DDL = """
CREATE TABLE sensors (
    name TEXT PRIMARY KEY,
    nodes TEXT NOT NULL,
    deployment TEXT NOT NULL DEFAULT '',
    token_hash TEXT NOT NULL,
    created {real} NOT NULL,
    revoked {real},
    last_seen {real},
    status TEXT NOT NULL DEFAULT ''
)"""
SENSORS_TOKEN_INDEX_DDL = "CREATE UNIQUE INDEX sensors_token ON sensors (token_hash)"
UPLINK_BATCHES_DDL = """
CREATE TABLE uplink_batches (
    sensor TEXT NOT NULL,
    seq BIGINT NOT NULL,
    received {real} NOT NULL,
    records INTEGER NOT NULL,
    events INTEGER NOT NULL,
    dropped BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (sensor, seq)
)"""
RULE_PACKS_DDL = """
CREATE TABLE rule_packs (
    version {serial},
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created {real} NOT NULL,
    active SMALLINT NOT NULL DEFAULT 0
)"""
USERS_DDL = """
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created {real} NOT NULL
)"""
CENTRAL_DDL: tuple[str, ...] = (
    SENSORS_DDL, SENSORS_TOKEN_INDEX_DDL, UPLINK_BATCHES_DDL, RULE_PACKS_DDL, USERS_DDL,
)  # fmt: skip

# Secondary indexes for the report queries. Each one costs insert speed, so they are created
# after a bulk load (Store.ensure_indexes) rather than maintained row by row during it.
# The reports themselves are full-table aggregates (an index does not help them), so by
# default there are none; these serve lookups (by id, by source) for the dashboard and events.
REPORT_INDEXES: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS messages_id ON messages (id)",
    "CREATE INDEX IF NOT EXISTS messages_src ON messages (src, ts)",
)


def ddl(statement: str, engine: str) -> str:
    """Fill the type placeholders of one statement for an engine."""
    return statement.format(**ENGINE_TYPES[engine])


def insert_sql(engine: str) -> str:
    """The dedupe insert: a message already stored (same id) is skipped, not an error."""
    cols = ", ".join(MESSAGE_COLUMNS)
    if engine == "sqlite":
        marks = ", ".join("?" * len(MESSAGE_COLUMNS))
        return f"INSERT OR IGNORE INTO messages ({cols}) VALUES ({marks})"
    marks = ", ".join(["%s"] * len(MESSAGE_COLUMNS))
    return f"INSERT INTO messages ({cols}) VALUES ({marks}) ON CONFLICT (ts, id) DO NOTHING"


def upsert_events_sql(engine: str) -> str:
    """Insert an event, or update the one with the same id (it kept firing)."""
    cols = ", ".join(EVENT_COLUMNS)
    mark = "?" if engine == "sqlite" else "%s"
    marks = ", ".join([mark] * len(EVENT_COLUMNS))
    updated = ("severity", "last", "count", "summary", "evidence", "data", "tags")
    sets = ", ".join(f"{c} = excluded.{c}" for c in updated)
    # an event stays with the sensor that first reported it (the central also refuses others)
    return (
        f"INSERT INTO events ({cols}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {sets}"
        " WHERE events.sensor = excluded.sensor"
    )


def placeholders(sql: str, engine: str) -> str:
    """Queries are written with SQLite's '?'; PostgreSQL (psycopg) wants '%s' (and '%%')."""
    if engine == "sqlite":
        return sql
    return sql.replace("%", "%%").replace("?", "%s")
