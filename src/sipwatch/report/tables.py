"""Every report number, computed from the trace store (CLI, HTML report and dashboard use this).

Each function takes anything with `query(sql, params) -> rows` (a Store) and returns a Table.
The SQL is plain and portable (no GROUP_CONCAT/strftime), so it runs on SQLite and PostgreSQL.
"Requests" counts request messages; "sources" counts distinct source addresses of requests (the
side that attacks); responses count towards the stage of the request they answer.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sipwatch.report import geo

STAGES = ("SS", "ES", "RHJ", "TF")
NONE = "none"  # shown for messages without a stage label


class Queryable(Protocol):
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...


@dataclass(slots=True)
class Table:
    name: str  # stable identifier: file names, JSON keys, CLI selection
    title: str
    columns: list[str]
    rows: list[tuple] = field(default_factory=list)
    note: str = ""


def utc(ts: float | None) -> str:
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


def _stage(label: str) -> str:
    return label or NONE


def _stage_order(label: str) -> int:
    return STAGES.index(label) if label in STAGES else len(STAGES)


# a message that failed to parse is neither a request nor a response
_RESPONSES = "SUM(CASE WHEN is_request = 0 AND error = '' THEN 1 ELSE 0 END)"


def totals(db: Queryable) -> Table:
    (n, req, rsp, srcs, dsts, first, last, errors, fuzz) = db.query(
        f"SELECT COUNT(*), SUM(is_request), {_RESPONSES}, COUNT(DISTINCT src),"
        " COUNT(DISTINCT dst), MIN(ts), MAX(ts), SUM(CASE WHEN error <> '' THEN 1 ELSE 0 END),"
        " SUM(fuzz) FROM messages"
    )[0]
    rows = [
        ("messages", n),
        ("requests", int(req or 0)),
        ("responses", int(rsp or 0)),
        ("sources", srcs),
        ("destinations", dsts),
        ("first", utc(first)),
        ("last", utc(last)),
        ("parse errors", int(errors or 0)),
        ("fuzz", int(fuzz or 0)),
    ]
    return Table(
        "totals",
        "Totals",
        ["metric", "value"],
        rows,
        "sources/destinations: distinct addresses over all messages; parse errors: messages "
        "stored from raw bytes because their start line or headers could not be read; fuzz: "
        "messages marked as fuzzing (parse errors and anomalies)",
    )


def per_day(db: Queryable) -> Table:
    counts: dict[str, dict[str, int]] = {}
    for day, stage, n in db.query(
        "SELECT day, stage, COUNT(*) FROM messages GROUP BY day, stage ORDER BY day"
    ):
        counts.setdefault(day, {})[_stage(stage)] = n
    cols = [*STAGES, NONE]
    rows = [(day, *(c.get(s, 0) for s in cols), sum(c.values())) for day, c in counts.items()]
    return Table(
        "per_day",
        "SIP packets per day by stage",
        ["day", *cols, "total"],
        rows,
        "days in UTC; every stored message (requests and responses) counts once",
    )


def stages(db: Queryable) -> Table:
    rows = db.query(
        f"SELECT stage, COUNT(*), SUM(is_request), {_RESPONSES},"
        " COUNT(DISTINCT CASE WHEN is_request = 1 THEN src END) FROM messages GROUP BY stage"
    )
    return stages_table(rows)


def stages_table(rows: list[tuple]) -> Table:
    """The stages table from (stage, messages, requests, responses, sources) per stage label."""
    rows = sorted(rows, key=lambda r: _stage_order(r[0]))
    return Table(
        "stages",
        "Messages and sources per stage",
        ["stage", "messages", "requests", "responses", "sources"],
        [(_stage(s), n, int(q or 0), int(p or 0), srcs) for s, n, q, p, srcs in rows],
        "SS server scan, ES extension scan, RHJ registration hijacking, TF toll fraud; "
        "sources: distinct addresses that sent requests of that stage",
    )


def top_sources(db: Queryable, limit: int = 20) -> Table:
    top = db.query(
        "SELECT src, COUNT(*), MIN(ts), MAX(ts) FROM messages WHERE is_request = 1"
        " GROUP BY src ORDER BY COUNT(*) DESC, src LIMIT ?",
        (limit,),
    )
    reached: dict[str, set[str]] = {}
    if top:
        marks = ", ".join("?" * len(top))
        for src, stage in db.query(
            f"SELECT DISTINCT src, stage FROM messages WHERE is_request = 1 AND stage <> ''"
            f" AND src IN ({marks})",
            [r[0] for r in top],
        ):
            reached.setdefault(src, set()).add(stage)
    return top_sources_table(top, reached)


def top_sources_table(top: list[tuple], reached: dict[str, set[str]]) -> Table:
    """The top sources table from (src, requests, first ts, last ts) in rank order and the
    stage labels each one's requests had."""
    rows = []
    for src, n, first, last in top:
        country, asn = geo.lookup(src)
        stages_ = " ".join(sorted(reached.get(src, ()), key=_stage_order))
        rows.append((src, n, stages_, country, asn, utc(first), utc(last)))
    return Table(
        "top_sources",
        "Top sources",
        ["source", "requests", "stages", "country", "as", "first", "last"],
        rows,
        "addresses that sent the most requests; country and AS from the offline geoip2fast "
        "data; 'private' for private, loopback and documentation addresses",
    )


def _top(
    db: Queryable,
    name: str,
    title: str,
    key_sql: str,
    key_col: str,
    where: str,
    limit: int,
    note: str,
) -> Table:
    rows = db.query(
        f"SELECT {key_sql}, COUNT(*), COUNT(DISTINCT src) FROM messages WHERE {where}"
        f" GROUP BY {key_sql} ORDER BY COUNT(*) DESC, {key_sql} LIMIT ?",
        (limit,),
    )
    return Table(name, title, [key_col, "requests", "sources"], rows, note)


def user_agents(db: Queryable, limit: int = 20) -> Table:
    return _top(
        db, "user_agents", "Top User-Agents", "user_agent", "user_agent",
        "is_request = 1 AND user_agent <> ''", limit,
        "User-Agent header of requests (Server when a request has no User-Agent)",
    )  # fmt: skip


TOOLS_TITLE = "Attack tools"
TOOLS_NOTE = "tool fingerprints: User-Agent strings and encodings tools leave (SIPVicious From tag)"


def tools(db: Queryable, limit: int = 20) -> Table:
    return _top(
        db, "tools", TOOLS_TITLE, "tool", "tool", "is_request = 1 AND tool <> ''", limit,
        TOOLS_NOTE,
    )  # fmt: skip


def tools_table(rows: list[tuple]) -> Table:
    """The tools table from (tool, requests, sources) in rank order."""
    return Table("tools", TOOLS_TITLE, ["tool", "requests", "sources"], rows, TOOLS_NOTE)


COUNTED_TABLES = ("stages", "top_sources", "tools")


def counted_tables(counted: dict, names: Sequence[str], top: int) -> list[Table]:
    """The tables named (of COUNTED_TABLES) from counts kept while the rows were stored
    (sipwatch._native.RunTally.tables()), ranked as the SQL ranks them: the same rows."""
    out = []
    for name in names:
        if name == "stages":
            out.append(stages_table(counted["stages"]))
        elif name == "top_sources":
            # ORDER BY COUNT(*) DESC, src: str order is the UTF-8 byte order SQLite sorts by
            ranked = heapq.nsmallest(top, counted["sources"], key=lambda r: (-r[1], r[0]))
            reached = {r[0]: set(r[4]) for r in ranked}
            out.append(top_sources_table([r[:4] for r in ranked], reached))
        elif name == "tools":
            ranked = heapq.nsmallest(top, counted["tools"], key=lambda r: (-r[1], r[0]))
            out.append(tools_table(ranked))
        else:
            raise KeyError(f"{name!r} is not counted; counted tables: {', '.join(COUNTED_TABLES)}")
    return out


_EXTENSION = "CASE WHEN ruri_user <> '' THEN ruri_user ELSE to_user END"


def extensions(db: Queryable, limit: int = 20) -> Table:
    rows = db.query(
        f"SELECT {_EXTENSION}, COUNT(*), COUNT(DISTINCT src),"
        " SUM(CASE WHEN stage = 'ES' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN stage = 'RHJ' THEN 1 ELSE 0 END)"
        " FROM messages WHERE is_request = 1 AND stage IN ('ES', 'RHJ')"
        f" AND {_EXTENSION} <> '' GROUP BY {_EXTENSION} ORDER BY COUNT(*) DESC, 1 LIMIT ?",
        (limit,),
    )
    return Table(
        "extensions",
        "Top targeted extensions",
        ["extension", "requests", "sources", "ES", "RHJ"],
        rows,
        "user part of the request-URI (else of To) of extension-scan and registration-"
        "hijacking requests: the accounts attackers probe and try passwords on",
    )


# the account a password was tried on: the digest username (svcrack's tag names the same user);
# the To user when the digest has none
_ACCOUNT = "CASE WHEN auth_user <> '' THEN auth_user ELSE to_user END"


def passwords(db: Queryable, limit: int = 20, per_extension: int = 5) -> Table:
    rows = db.query(
        "WITH pairs AS ("
        f" SELECT {_ACCOUNT} AS ext, password, COUNT(*) AS tries, COUNT(DISTINCT src) AS sources,"
        # tries answered 2xx: the responses carry their request's password and request_id
        "  SUM(CASE WHEN id IN (SELECT request_id FROM messages WHERE is_request = 0"
        "   AND password <> '' AND status >= 200 AND status < 300) THEN 1 ELSE 0 END)"
        "   AS accepted,"
        "  MIN(ts) AS first, MAX(ts) AS last"
        "  FROM messages WHERE is_request = 1 AND password <> ''"
        f" GROUP BY {_ACCOUNT}, password"
        "), ranked AS ("
        " SELECT ext, password, tries, sources, accepted, first, last,"
        "  SUM(tries) OVER (PARTITION BY ext) AS ext_tries,"
        "  ROW_NUMBER() OVER (PARTITION BY ext ORDER BY tries DESC, password) AS pos"
        "  FROM pairs"
        ") SELECT ext, password, tries, sources, accepted, first, last FROM ranked"
        " WHERE pos <= ? ORDER BY ext_tries DESC, ext, tries DESC, password LIMIT ?",
        (per_extension, limit),
    )
    return Table(
        "passwords",
        "Top tried passwords per extension",
        ["extension", "password", "tries", "sources", "accepted", "first", "last"],
        [(e, p, n, s, int(a or 0), utc(f), utc(la)) for e, p, n, s, a, f, la in rows],
        "passwords recovered from digest attempts (svcrack's From tag, or a digest response "
        f"matched against the candidate list); the {per_extension} most tried per extension, "
        "extensions with the most recovered tries first. accepted: tries answered with 2xx "
        "(a password that worked). Tries whose password is not in the list are not counted. "
        "These are clear-text credentials: treat reports and the store as sensitive",
    )


def events(db: Queryable, limit: int = 20) -> Table:
    """Detection events, most severe and most recent first."""
    rows = db.query(
        "SELECT severity, rule, stage, src, count, first, last, summary FROM events"
        " ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2"
        " WHEN 'low' THEN 3 ELSE 4 END, last DESC, id LIMIT ?",
        (limit,),
    )
    return Table(
        "events",
        "Detection events",
        ["severity", "rule", "stage", "source", "count", "first", "last", "summary"],
        [(sev, r, st, src, n, utc(f), utc(la), summ) for sev, r, st, src, n, f, la, summ in rows],
        "what the analyzer's rules, attack chains and information-sharing links reported "
        "(docs/rules.md); count: messages that counted for the event; most severe first",
    )


def numbers(db: Queryable, limit: int = 20) -> Table:
    rows = db.query(
        "SELECT number, number_type, number_country, COUNT(*), COUNT(DISTINCT src)"
        " FROM messages WHERE is_request = 1 AND number <> ''"
        " GROUP BY number, number_type, number_country ORDER BY COUNT(*) DESC, number LIMIT ?",
        (limit,),
    )
    return Table(
        "numbers",
        "Top dialled numbers",
        ["number", "type", "country", "requests", "sources"],
        rows,
        "numbers in INVITEs (E.164 when they parse), classified with phonenumbers",
    )


def methods(db: Queryable, limit: int = 50) -> Table:
    return _top(
        db, "methods", "Request methods", "method", "method", "is_request = 1", limit,
        "unknown methods are kept as sent",
    )  # fmt: skip


def codes(db: Queryable, limit: int = 50) -> Table:
    rows = db.query(
        "SELECT status, cseq_method, COUNT(*) FROM messages WHERE is_request = 0 AND error = ''"
        " GROUP BY status, cseq_method ORDER BY status, COUNT(*) DESC, cseq_method LIMIT ?",
        (limit,),
    )
    return Table(
        "codes",
        "Response codes",
        ["code", "method", "responses"],
        rows,
        "status code of responses and the method (from CSeq) they answer",
    )


def ingest_runs(db: Queryable, limit: int = 20) -> Table:
    rows = db.query(
        "SELECT id, sources, started, finished, messages, inserted, dropped FROM ingest"
        " ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return Table(
        "ingest",
        "What this store holds (ingest runs)",
        ["run", "sources", "started", "finished", "messages", "inserted", "dropped"],
        [(i, s.replace("\n", " "), utc(a), utc(b), m, n, d) for i, s, a, b, m, n, d in rows],
        "newest first; inserted < messages when messages were already stored (same capture "
        "analysed again); dropped: messages lost before the store (counted, never silent)",
    )


REPORTS: dict[str, Callable[..., Table]] = {
    "totals": totals,
    "per_day": per_day,
    "stages": stages,
    "top_sources": top_sources,
    "user_agents": user_agents,
    "tools": tools,
    "extensions": extensions,
    "passwords": passwords,
    "events": events,
    "numbers": numbers,
    "methods": methods,
    "codes": codes,
    "ingest": ingest_runs,
}


TOP_N = {"top_sources", "user_agents", "tools", "extensions", "passwords", "events", "numbers"}


def all_tables(
    db: Queryable, names: Sequence[str] | None = None, top: int | None = None
) -> list[Table]:
    """The report tables in display order (all, or those named); `top` rows in top-N tables.

    An unknown name raises KeyError with a message that lists the known ones.
    """
    unknown = [n for n in names or () if n not in REPORTS]
    if unknown:
        raise KeyError(f"unknown table {unknown[0]!r}; tables: {', '.join(REPORTS)}")
    tables = []
    for name in names or REPORTS:
        if top is not None and name in TOP_N:
            tables.append(REPORTS[name](db, top))  # type: ignore[call-arg]
        else:
            tables.append(REPORTS[name](db))
    return tables
