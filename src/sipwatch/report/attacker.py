"""Everything the store knows about one attacker: where and when, what it tried, who it is linked to.

An attacker is a source address that sent requests (report/correlation.py). Its view holds a
summary, its timeline across nodes and stages, the evidence (extensions, passwords, numbers,
tools and User-Agents), the detection events about it, and the attackers linked to it by
information sharing (detect/sharing.py): an event of kind 'sharing' is about the source that
used what others found, and names the others in data.discovered_by. Links are shown in both
directions: whom it learnt from, and who used what it found.
All queries filter on src (the messages_src index serves them) and are portable SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from sipwatch.report import geo
from sipwatch.report.fleet import ATTACK, node_label
from sipwatch.report.tables import NONE, Queryable, Table, _stage_order, utc

_EXTENSION = "CASE WHEN ruri_user <> '' THEN ruri_user ELSE to_user END"
_ACCOUNT = "CASE WHEN auth_user <> '' THEN auth_user ELSE to_user END"


@dataclass(slots=True)
class AttackerView:
    src: str
    summary: Table
    timeline: Table
    extensions: Table
    passwords: Table
    numbers: Table
    tools: Table
    events: Table
    linked: Table

    def tables(self) -> list[Table]:
        return [
            self.summary, self.timeline, self.extensions, self.passwords, self.numbers,
            self.tools, self.events, self.linked,
        ]  # fmt: skip


def attacker(db: Queryable, src: str, limit: int = 100) -> AttackerView:
    """The per-attacker view; evidence tables keep the `limit` most used values."""
    timeline = _timeline(db, src)
    events = _events(db, src, limit)
    linked = _linked(db, src, limit)
    return AttackerView(
        src=src,
        summary=_summary(src, timeline, events, linked),
        timeline=timeline,
        extensions=_extensions(db, src, limit),
        passwords=_passwords(db, src, limit),
        numbers=_numbers(db, src, limit),
        tools=_tools(db, src, limit),
        events=events,
        linked=linked,
    )


def _timeline(db: Queryable, src: str) -> Table:
    rows = db.query(
        f"SELECT node, stage, MIN(ts), MAX(ts), COUNT(*) FROM messages WHERE {ATTACK}"
        " AND src = ? GROUP BY node, stage",
        (src,),
    )
    rows.sort(key=lambda r: (r[2], r[0], _stage_order(r[1])))
    return Table(
        "attacker_timeline",
        "Timeline across nodes and stages",
        ["node", "stage", "first", "last", "requests"],
        [(node_label(n), s or NONE, utc(f), utc(la), c) for n, s, f, la, c in rows],
        "its requests per node and stage, in the order it began them",
    )


def _summary(src: str, timeline: Table, events: Table, linked: Table) -> Table:
    country, network = geo.lookup(src)
    nodes = list(dict.fromkeys(r[0] for r in timeline.rows))
    stages = sorted({r[1] for r in timeline.rows if r[1] != NONE}, key=_stage_order)
    firsts = [r[2] for r in timeline.rows]  # utc() text sorts like the time it shows
    lasts = [r[3] for r in timeline.rows]
    rows = [
        ("address", src),
        ("country", country),
        ("network (AS)", network),
        ("requests", sum(r[4] for r in timeline.rows)),
        ("nodes", " ".join(nodes)),
        ("stages", " ".join(stages)),
        ("first", min(firsts, default="")),
        ("last", max(lasts, default="")),
        ("events", len(events.rows)),
        ("linked attackers", len({r[1] for r in linked.rows})),
    ]
    return Table(
        "attacker",
        f"Attacker {src}",
        ["metric", "value"],
        rows,
        "an attacker is a source that sent requests; nodes in the order it reached them",
    )


def _extensions(db: Queryable, src: str, limit: int) -> Table:
    per: dict[str, list] = {}
    for ext, method, n, first in db.query(
        f"SELECT {_EXTENSION}, method, COUNT(*), MIN(ts) FROM messages WHERE {ATTACK}"
        f" AND src = ? AND method IN ('REGISTER', 'INVITE') AND {_EXTENSION} <> ''"
        f" GROUP BY {_EXTENSION}, method",
        (src,),
    ):
        row = per.setdefault(ext, [0, 0, first])
        row[0 if method == "REGISTER" else 1] += n
        row[2] = min(row[2], first)
    ranked = sorted(per.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[1][2], kv[0]))
    return Table(
        "attacker_extensions",
        "Extensions tried",
        ["extension", "REGISTER", "INVITE", "first"],
        [(ext, r, i, utc(f)) for ext, (r, i, f) in ranked[:limit]],
        f"user part of the request-URI (else of To) of its REGISTERs and INVITEs; {len(per)} "
        "distinct, most tried first",
    )


def _passwords(db: Queryable, src: str, limit: int) -> Table:
    rows = db.query(
        f"SELECT {_ACCOUNT}, password, COUNT(*), MIN(ts), MAX(ts),"
        # accepted: answered 2xx (responses go to the attacker and name their request)
        "  SUM(CASE WHEN id IN (SELECT request_id FROM messages WHERE is_request = 0"
        "   AND dst = ? AND status >= 200 AND status < 300) THEN 1 ELSE 0 END)"
        f" FROM messages WHERE {ATTACK} AND src = ? AND password <> ''"
        f" GROUP BY {_ACCOUNT}, password",
        (src, src),
    )
    rows.sort(key=lambda r: (r[3], r[0], r[1]))
    return Table(
        "attacker_passwords",
        "Passwords tried",
        ["account", "password", "tries", "accepted", "first", "last"],
        [(a, p, n, int(ok or 0), utc(f), utc(la)) for a, p, n, f, la, ok in rows[:limit]],
        "passwords recovered from its digest attempts, in the order it tried them; accepted: "
        "tries answered 2xx. Clear-text credentials: treat as sensitive",
    )


def _numbers(db: Queryable, src: str, limit: int) -> Table:
    rows = db.query(
        "SELECT number, number_type, number_country, COUNT(*), MIN(ts) FROM messages"
        f" WHERE {ATTACK} AND src = ? AND number <> ''"
        " GROUP BY number, number_type, number_country",
        (src,),
    )
    rows.sort(key=lambda r: (-r[3], r[0]))
    return Table(
        "attacker_numbers",
        "Numbers dialled",
        ["number", "type", "country", "requests", "first"],
        [(n, t, c, k, utc(f)) for n, t, c, k, f in rows[:limit]],
        "numbers in its INVITEs, classified with phonenumbers; most dialled first",
    )


def _tools(db: Queryable, src: str, limit: int) -> Table:
    out = []
    for kind, column in (("tool", "tool"), ("user-agent", "user_agent")):
        rows = db.query(
            f"SELECT {column}, COUNT(*), MIN(ts), MAX(ts) FROM messages WHERE {ATTACK}"
            f" AND src = ? AND {column} <> '' GROUP BY {column}",
            (src,),
        )
        rows.sort(key=lambda r: (-r[1], r[0]))
        out += [(kind, v, n, utc(f), utc(la)) for v, n, f, la in rows[:limit]]
    return Table(
        "attacker_tools",
        "Tools and User-Agents",
        ["kind", "value", "requests", "first", "last"],
        out,
        "tool fingerprints and the User-Agent headers of its requests",
    )


def _events(db: Queryable, src: str, limit: int) -> Table:
    rows = db.query(
        "SELECT severity, rule, stage, node, count, first, last, summary FROM events"
        " WHERE src = ? ORDER BY first, id LIMIT ?",
        (src, limit),
    )
    return Table(
        "attacker_events",
        "Detection events",
        ["severity", "rule", "stage", "node", "count", "first", "last", "summary"],
        [(sev, r, st, node_label(n), c, utc(f), utc(la), s) for sev, r, st, n, c, f, la, s in rows],
        f"what the rules, attack chains and information-sharing links reported about it; the "
        f"first {limit}",
    )


def _like(text: str) -> str:
    """A LIKE pattern for text inside a JSON string ('!' escapes the wildcards)."""
    escaped = text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f'%"{escaped}"%'


def _items(data: dict, finder: str) -> str:
    """What a sharing event says `finder` found and the other used (all items if not split)."""
    per = data.get("by_discoverer")
    found = per.get(finder) if isinstance(per, dict) else None
    return " ".join(str(i) for i in found or data.get("items") or ())


def _linked(db: Queryable, src: str, limit: int) -> Table:
    out = []
    for other, rule, first, data_text, summary in db.query(
        "SELECT src, rule, first, data, summary FROM events WHERE kind = 'sharing'"
        " AND (src = ? OR data LIKE ? ESCAPE '!') ORDER BY first, id",
        (src, _like(src)),
    ):
        try:
            data = orjson.loads(data_text)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        by = [str(d) for d in data.get("discovered_by") or ()]
        if other == src:
            out += [("learnt from", d, rule, utc(first), _items(data, d), summary) for d in by]
        elif src in by:
            out.append(
                ("its findings used by", other, rule, utc(first), _items(data, src), summary)
            )
    return Table(
        "attacker_linked",
        "Linked attackers (information sharing)",
        ["link", "source", "rule", "when", "items", "summary"],
        out[:limit],
        "learnt from: it went straight for extensions or credentials that source found; "
        "its findings used by: that source used what it found (detect/sharing.py events)",
    )
