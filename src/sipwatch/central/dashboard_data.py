"""The dashboard's own queries: live counters, newest events, attacker search, sensor health.

Everything else the dashboard shows comes from report/ (tables, correlation, attacker view), so
a number means the same on the dashboard, in the CLI and in the HTML report. These functions
take a Queryable (portable SQL, '?' placeholders) and run under the Central's store lock.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sipwatch.central.api_admin import sensor_out
from sipwatch.central.registry import SensorInfo
from sipwatch.report import geo
from sipwatch.report.correlation import ATTACK, node_label
from sipwatch.report.tables import STAGES, Queryable, Table, _stage_order, utc

SEARCH_LIMIT = 200  # attackers listed per search
_PREFIX_RE = re.compile(r"[0-9A-Fa-f.:]{1,45}")


class SearchError(ValueError):
    """A search field the dashboard cannot use; the message says which and why."""


def counters(db: Queryable) -> dict[str, int]:
    """Messages, requests, attackers (sources of parsed requests), nodes and events."""
    messages, requests = db.query("SELECT COUNT(*), SUM(is_request) FROM messages")[0]
    attackers, nodes = db.query(
        f"SELECT COUNT(DISTINCT src), COUNT(DISTINCT node) FROM messages WHERE {ATTACK}"
    )[0]
    (events,) = db.query("SELECT COUNT(*) FROM events")[0]
    return {
        "messages": int(messages or 0),
        "requests": int(requests or 0),
        "attackers": int(attackers or 0),
        "nodes": int(nodes or 0),
        "events": int(events or 0),
    }


def newest_events(db: Queryable, limit: int = 20) -> Table:
    rows = db.query(
        "SELECT last, severity, rule, stage, src, node, count, summary FROM events"
        " ORDER BY last DESC, id LIMIT ?",
        (limit,),
    )
    return Table(
        "newest_events",
        "Newest events",
        ["last", "severity", "rule", "stage", "source", "node", "count", "summary"],
        [(utc(la), sev, r, st, src, node_label(n), c, s) for la, sev, r, st, src, n, c, s in rows],
        "detection events by the time they last fired, newest first",
    )


@dataclass(frozen=True, slots=True)
class Search:
    prefix: str = ""
    country: str = ""
    stage: str = ""

    @classmethod
    def parse(cls, prefix: str, country: str, stage: str) -> Search:
        prefix, country, stage = prefix.strip(), country.strip(), stage.strip().upper()
        if prefix and not _PREFIX_RE.fullmatch(prefix):
            raise SearchError("address: the start of an IPv4 or IPv6 address (digits, '.', ':')")
        if country and not (
            country.lower() == geo.PRIVATE or (len(country) == 2 and country.isalpha())
        ):
            raise SearchError("country: a two-letter code such as DE, or 'private'")
        if stage and stage not in STAGES:
            raise SearchError(f"stage: one of {', '.join(STAGES)}")
        norm = country.lower() if country.lower() == geo.PRIVATE else country.upper()
        return cls(prefix.lower(), norm, stage)


def search_attackers(db: Queryable, search: Search, limit: int = SEARCH_LIMIT) -> Table:
    """Attackers whose address starts with the prefix, of a country, that reached a stage;
    most requests first."""
    where, params = [ATTACK], []
    if search.prefix:
        escaped = search.prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        where.append("LOWER(src) LIKE ? ESCAPE '!'")
        params.append(escaped + "%")
    if search.stage:
        where.append(f"src IN (SELECT src FROM messages WHERE {ATTACK} AND stage = ?)")
        params.append(search.stage)
    sql = (
        "SELECT src, COUNT(*), COUNT(DISTINCT node), MIN(ts), MAX(ts) FROM messages"
        f" WHERE {' AND '.join(where)} GROUP BY src ORDER BY COUNT(*) DESC, src"
    )
    if not search.country:  # the country is known only after a lookup: filter in Python
        sql += " LIMIT ?"
        params.append(limit)
    found = []
    for src, n, nodes, first, last in db.query(sql, params):
        country, network = geo.lookup(src)
        if search.country and country != search.country:
            continue
        found.append((src, n, nodes, country, network, first, last))
        if len(found) >= limit:
            break
    reached = stages_of(db, [r[0] for r in found])
    rows = [
        (src, n, nodes, " ".join(reached.get(src, ())), country, network, utc(f), utc(la))
        for src, n, nodes, country, network, f, la in found
    ]
    return Table(
        "attackers",
        "Attackers",
        ["source", "requests", "nodes", "stages", "country", "as", "first", "last"],
        rows,
        f"sources that sent requests, most requests first (at most {limit}); country and AS "
        "from the offline geoip2fast data",
    )


def stages_of(db: Queryable, sources: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for start in range(0, len(sources), 500):  # bounded IN lists
        chunk = sources[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for src, stage in db.query(
            f"SELECT DISTINCT src, stage FROM messages WHERE {ATTACK} AND stage <> ''"
            f" AND src IN ({marks})",
            list(chunk),
        ):
            out.setdefault(src, set()).add(stage)
    return {s: sorted(v, key=_stage_order) for s, v in out.items()}


def valid_address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


# --- sensors -----------------------------------------------------------------------------------
def uplink_totals(db: Queryable) -> dict[str, tuple[int, int]]:
    """Per sensor: the batches and records the central stored from it."""
    return {
        name: (int(b), int(r or 0))
        for name, b, r in db.query(
            "SELECT sensor, COUNT(*), SUM(records) FROM uplink_batches GROUP BY sensor"
        )
    }


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def sensors_table(
    sensors: Sequence[SensorInfo],
    stale_after: float,
    uplink: dict[str, tuple[int, int]],
    active_pack: str,
    now: float | None = None,
) -> tuple[Table, list[str]]:
    """The sensor health table and a CSS class per row ('stale', 'revoked' or '')."""
    now = time.time() if now is None else now
    rows, classes = [], []
    for s in sensors:
        out = sensor_out(s, stale_after, now)
        st = s.status
        state = "revoked" if s.revoked is not None else ("stale" if out.stale else "ok")
        seen = f"{utc(s.last_seen)} ({_ago(now - s.last_seen)})" if s.last_seen else "never"
        pack = str(st.get("rule_pack", ""))
        if pack and active_pack and pack != active_pack:
            pack += f" (active: {active_pack})"
        batches, records = uplink.get(s.name, (0, 0))
        rows.append(
            (
                s.name, state, " ".join(s.nodes), s.deployment, seen, str(st.get("version", "")),
                pack, _int(st.get("spool_batches")), _int(st.get("spool_bytes")),
                _int(st.get("queue")), _int(st.get("dropped")), batches, records,
                str(st.get("error", "")),
            )
        )  # fmt: skip
        classes.append("" if state == "ok" else state)
    table = Table(
        "sensors",
        "Sensors",
        [
            "sensor",
            "state",
            "nodes",
            "deployment",
            "last heard",
            "version",
            "rule pack",
            "spool batches",
            "spool bytes",
            "queue",
            "dropped",
            "batches",
            "records",
            "error",
        ],  # fmt: skip
        rows,
        f"stale: no heartbeat or batch in the last {stale_after:g} s; last heard: the latest "
        "heartbeat or batch; version, rule pack, spool, queue, dropped and error as the sensor's "
        "last heartbeat reported them; batches and records: what the central stored from it",
    )
    return table, classes


def rule_history(db: Queryable, limit: int = 20) -> Table:
    rows = db.query(
        "SELECT version, name, sha256, created, active FROM rule_packs"
        " ORDER BY version DESC LIMIT ?",
        (limit,),
    )
    return Table(
        "rule_packs",
        "Rule pack versions",
        ["version", "name", "sha256", "created", "active"],
        [(v, n, h, utc(c), "yes" if a else "") for v, n, h, c, a in rows],
        "newest first; sensors fetch the active one at their next heartbeat",
    )
