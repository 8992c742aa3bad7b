"""Correlation reports on a store with a known plan, on SQLite and on a real PostgreSQL.

The plan: four nodes (oslo, essen, tromso and messages without a node), sources that hit one
to four of them with known stages and times, responses and garbage that must not count, and
information-sharing events. Every table is compared with what the test computes from its plan
directly (plain Python over the planned messages), not with what the store says.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from storedata import DAY1
from storeengines import fresh_store_url, pg_database

from corrplan import BEHAVIOURS, GROUPS, WATCHED, events, plan, records
from sipwatch.detect.events import Event
from sipwatch.detect.sharing import human_delay
from sipwatch.record import Record
from sipwatch.report import correlation as c
from sipwatch.report import geo, render
from sipwatch.report.attacker import attacker
from sipwatch.report.html import render_html
from sipwatch.report.tables import all_tables, utc
from sipwatch.store import schema
from sipwatch.store.base import open_store
from sipwatch.store.eventrows import event_row
from sipwatch.store.rows import message_row


# --- the stores ------------------------------------------------------------------------------
class PgQuery:
    """A bare Queryable over psycopg ('?' placeholders): the SQL itself ports, without the
    PostgreSQL store's help (its numeric loader, its connection settings)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(schema.placeholders(sql, "postgresql"), params)
            return cur.fetchall()


def _bare_postgres(recs: list[Record], evs: list[Event]) -> Iterator[PgQuery]:
    import psycopg

    with pg_database() as url, psycopg.connect(url, autocommit=True) as conn:
        for ddl in (schema.MIGRATIONS_DDL, schema.MESSAGES_DDL, schema.PASSWORD_DDL,
                    schema.EVENTS_DDL, schema.SENSORS_DDL, schema.INGEST_DDL):  # fmt: skip
            conn.execute(schema.ddl(ddl, "postgresql"))
        conn.execute("INSERT INTO migrations VALUES (5, 'test', 0)")
        with conn.cursor() as cur:
            cur.executemany(schema.insert_sql("postgresql"), [message_row(r) for r in recs])
            cur.executemany(schema.upsert_events_sql("postgresql"), [event_row(e) for e in evs])
        yield PgQuery(conn)


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "bare-psycopg"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The plan in a store: SQLite, the PostgreSQL store, and bare tables on PostgreSQL."""
    recs, evs = records(plan()), events()
    if request.param == "bare-psycopg":
        yield from _bare_postgres(recs, evs)
        return
    if request.param == "postgresql":
        where = pg_database()
    else:
        where = contextlib.nullcontext(str(tmp_path_factory.mktemp("corr") / "t.sqlite"))
    with where as url:
        with open_store(url) as s:
            s.add(recs)
            s.flush()
            s.add_events(evs)
        with open_store(url, readonly=True) as s:
            yield s


# --- what the plan says ------------------------------------------------------------------------
MSGS = plan()
NODE_NAMES = sorted({m.node for m in MSGS})
SOURCES = sorted({m.src for m in MSGS})
REACHED = {s: {m.node for m in MSGS if m.src == s} for s in SOURCES}
FIRST = {
    (m.node, m.src): min(x.ts for x in MSGS if (x.node, x.src) == (m.node, m.src)) for m in MSGS
}


def label(node: str) -> str:
    return node or "(none)"


def pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1)


def sources_with(behaviour: str, where: set[str], among: set[str] | None = None) -> int:
    found = {m.src for m in MSGS if m.node in where and m.has(behaviour)}
    return len(found if among is None else found & among)


def test_plan_covers_the_cases() -> None:
    assert NODE_NAMES == ["", "essen", "oslo", "tromso"]
    assert {len(r) for r in REACHED.values()} == {1, 2, 3, 4}


def test_nodes(db) -> None:
    rows = []
    for node in NODE_NAMES:
        at = [m for m in MSGS if m.node == node]
        row: list[object] = [label(node), len({m.src for m in at}), len(at)]
        for b in BEHAVIOURS:
            row += [sum(m.has(b) for m in at), sources_with(b, {node})]
        rows.append(tuple(row))
    total: list[object] = ["(all nodes)", len(SOURCES), len(MSGS)]
    for b in BEHAVIOURS:
        total += [sum(m.has(b) for m in MSGS), sources_with(b, set(NODE_NAMES))]
    table = c.nodes(db)
    assert table.columns[:5] == ["node", "attackers", "requests", "SS messages", "SS sources"]
    assert table.rows == [*rows, tuple(total)]


def test_distribution(db) -> None:
    counts = [sum(len(r) == k for r in REACHED.values()) for k in range(1, 5)]
    assert c.distribution(db).rows == [
        (k, n, pct(n, len(SOURCES))) for k, n in zip(range(1, 5), counts, strict=True)
    ]


def test_matrix(db) -> None:
    expected = []
    for a in NODE_NAMES:
        row = [label(a)]
        for b in NODE_NAMES:
            if a == b:
                row.append(sum(r == {a} for r in REACHED.values()))
            else:
                row.append(sum({a, b} <= r for r in REACHED.values()))
        expected.append(tuple(row))
    table = c.matrix(db)
    assert table.columns == ["node", "(none)", "essen", "oslo", "tromso"]
    assert table.rows == expected


def test_deployments(db) -> None:
    seen = {g: {m.src for m in MSGS if m.node in ns} for g, ns in GROUPS.items()}
    rows = []
    for g, ns in GROUPS.items():
        other = set().union(*(s for h, s in seen.items() if h != g))
        rows.append((
            g, ", ".join(label(n) for n in sorted(ns)), len(seen[g]), len(seen[g] - other),
            sum(m.node in ns for m in MSGS),
            *(sources_with(b, set(ns)) for b in BEHAVIOURS),
        ))  # fmt: skip
    every = seen["distributed"] & seen["central"]
    rows.append((
        "(in every group)", "", len(every), None, sum(m.src in every for m in MSGS),
        *(sources_with(b, set(NODE_NAMES), every) for b in BEHAVIOURS),
    ))  # fmt: skip
    rows.append(("(in any group)", "", len(SOURCES), None, len(MSGS),
                 *(sources_with(b, set(NODE_NAMES)) for b in BEHAVIOURS)))  # fmt: skip
    assert c.deployments(db, GROUPS).rows == rows
    assert c.deployments(db).rows == []  # no sensor registry entries in this store


def sweeps() -> list[tuple[str, list[str], float]]:
    out = []
    for src, nodes in REACHED.items():
        if len(nodes) >= 2:
            order = sorted(nodes, key=lambda n: (FIRST[(n, src)], n))
            out.append((src, order, FIRST[(order[-1], src)] - FIRST[(order[0], src)]))
    return out


def test_scan_timing(db) -> None:
    expected = []
    for src, order, cover in sorted(sweeps(), key=lambda s: (-len(s[1]), s[2], s[0]))[:10]:
        gaps = [FIRST[(b, src)] - FIRST[(a, src)] for a, b in pairwise(order)]
        expected.append((
            src, len(order), "yes" if len(order) == 4 else "no",
            " > ".join(label(n) for n in order), " ".join(f"{g:.1f}" for g in gaps),
            round(cover, 3), human_delay(cover), utc(FIRST[(order[0], src)]),
        ))  # fmt: skip
    table = c.scan_timing(db, limit=10)
    assert table.rows == expected
    assert table.rows[0][2] == "yes"  # sources that reached every node come first
    assert len(c.scan_timing(db, limit=1000).rows) == len(sweeps())


def test_scan_speed(db) -> None:
    bounds = [1, 10, 60, 600, 3600, 86400, float("inf")]
    found = sweeps()
    counts, complete = [0] * 7, [0] * 7
    for _src, order, cover in found:
        i = next(i for i, b in enumerate(bounds) if cover < b)
        counts[i] += 1
        complete[i] += len(order) == 4
    table = c.scan_speed(db)
    assert [r[0] for r in table.rows] == [
        "< 1 s", "< 10 s", "< 1 min", "< 10 min", "< 1 h", "< 1 d", ">= 1 d",
    ]  # fmt: skip
    assert [r[1:] for r in table.rows] == [
        (n, pct(n, len(found)), a) for n, a in zip(counts, complete, strict=True)
    ]
    assert all(counts[1:])  # the plan's gaps reach every bucket from 1 s up


@pytest.mark.parametrize(("fn", "pick"), [(c.countries, 0), (c.networks, 1)])
def test_geography_and_networks(db, fn, pick) -> None:
    per: dict[str, set[str]] = {}
    for src in SOURCES:
        country, network = geo.lookup(src)
        key = (country, network)[pick] or ("private" if country == "private" else "(unknown)")
        per.setdefault(key, set()).add(src)
    expected = []
    for key, srcs in per.items():
        at = [m for m in MSGS if m.src in srcs]
        expected.append((
            key, len(srcs), len(at), len({m.node for m in at}),
            *(len({m.src for m in at if m.has(b)}) for b in BEHAVIOURS),
        ))  # fmt: skip
    expected.sort(key=lambda r: (-r[1], -r[2], r[0]))
    assert fn(db).rows == expected
    assert ("US" if pick == 0 else "GOOGLE") in [r[0] for r in expected]


def test_attacker_view(db) -> None:
    t0 = DAY1 + 5000.0
    view = attacker(db, WATCHED)
    assert view.timeline.rows == [
        ("oslo", "SS", utc(t0), utc(t0), 1),
        ("oslo", "ES", utc(t0 + 1), utc(t0 + 2), 2),
        ("essen", "RHJ", utc(t0 + 50), utc(t0 + 51), 2),
        ("essen", "TF", utc(t0 + 60), utc(t0 + 60), 1),
    ]
    summary = dict(view.summary.rows)
    assert summary["nodes"] == "oslo essen" and summary["stages"] == "SS ES RHJ TF"
    assert summary["requests"] == 6 and summary["events"] == 2
    assert view.extensions.rows == [
        ("102", 3, 0, utc(t0 + 2)),
        ("101", 1, 0, utc(t0 + 1)),
        ("0046701234567", 0, 1, utc(t0 + 60)),
    ]
    assert view.passwords.rows == [
        ("102", "secret1", 1, 0, utc(t0 + 50), utc(t0 + 50)),
        ("102", "letmein", 1, 1, utc(t0 + 51), utc(t0 + 51)),
    ]
    assert view.numbers.rows == [("+46701234567", "mobile", "SE", 1, utc(t0 + 60))]
    assert view.tools.rows == [
        ("tool", "sipvicious", 3, utc(t0), utc(t0 + 2)),
        ("user-agent", "friendly-scanner", 3, utc(t0), utc(t0 + 2)),
    ]
    assert [(r[1], r[3]) for r in view.events.rows] == [
        ("es.extension-scan", "oslo"),
        ("sharing.extensions", "essen"),
    ]
    assert [r[:3] + r[4:5] for r in view.linked.rows] == [
        ("learnt from", "198.51.100.51", "sharing.extensions", "102"),
        ("learnt from", "203.0.113.52", "sharing.extensions", "103"),
        ("its findings used by", "203.0.113.60", "sharing.credentials", "102 103"),
    ]  # 203.0.113.61 used what 198.51.100.20 found: a prefix of WATCHED's address, no link
    assert summary["linked attackers"] == 3
    other = attacker(db, "198.51.100.20").linked.rows
    assert [r[:2] for r in other] == [("its findings used by", "203.0.113.61")]


def test_unknown_attacker_is_empty(db) -> None:
    view = attacker(db, "192.0.2.250")
    assert all(not t.rows for t in view.tables()[1:])
    assert dict(view.summary.rows)["requests"] == 0


def test_correlation_tables(db, tmp_path: Path) -> None:
    names = [t.name for t in c.correlation_tables(db)]
    assert names == [n for n in c.CORRELATION if n != "deployments"]
    assert [t.rows for t in c.correlation_tables(db, ["matrix", "nodes"])] == [
        c.matrix(db).rows,
        c.nodes(db).rows,
    ]
    assert len(c.correlation_tables(db, ["scan_timing"], top=2)[0].rows) == 2
    (given,) = [t for t in c.correlation_tables(db, groups=GROUPS) if t.name == "deployments"]
    assert given.rows == c.deployments(db, GROUPS).rows
    with pytest.raises(KeyError, match="unknown table 'nope'"):
        c.correlation_tables(db, ["nope"])
    # exportable: plain ints and floats from both engines (orjson refuses Decimal)
    exported = json.loads(render.json_all(c.correlation_tables(db, list(c.CORRELATION))))
    assert exported["matrix"]["rows"][0]["node"] == "(none)"
    written = render.write_csv_files(c.correlation_tables(db), tmp_path)
    assert "distribution.csv" in {p.name for p in written}


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_deployments_from_the_sensor_registry(engine: str, tmp_path: Path) -> None:
    with fresh_store_url(engine, tmp_path) as url, open_store(url) as s:
        s.add(records(plan()))
        s.flush()
        for name, nodes, deployment in [
            ("a", "oslo,essen", "distributed"), ("b", "tromso", "central"),
            ("c", ",", "central"), ("d", "oslo", ""),
        ]:  # fmt: skip
            s.execute(
                "INSERT INTO sensors (name, nodes, deployment, token_hash, created)"
                " VALUES (?, ?, ?, ?, 0)",
                (name, nodes, deployment, name),
            )
        assert c.deployment_groups(s) == {"central": ["tromso"], "distributed": ["essen", "oslo"]}
        names = [t.name for t in c.correlation_tables(s)]
        assert "deployments" in names
        assert [r[0] for r in c.deployments(s).rows] == [
            "central", "distributed", "(in every group)", "(in any group)",
        ]  # fmt: skip


def test_single_node_store_has_no_correlation_section(tmp_path: Path) -> None:
    one = [m for m in plan() if m.node == "oslo"]
    with open_store(tmp_path / "one.sqlite") as s:
        s.add(records(one))
        s.flush()
        assert c.correlation_tables(s) == []
        assert c.distribution(s).rows == [(1, len({m.src for m in one}), 100.0)]
        page = render_html(all_tables(s) + c.correlation_tables(s))
    assert 'id="correlation"' not in page


def test_empty_store(tmp_path: Path) -> None:
    with open_store(tmp_path / "e.sqlite") as s:
        assert c.nodes(s).rows == [] and c.matrix(s).rows == []
        assert c.distribution(s).rows == [] and c.scan_speed(s).rows[0] == ("< 1 s", 0, 0.0, 0)


def test_html_correlation_section(db) -> None:
    page = render_html(all_tables(db) + c.correlation_tables(db))
    assert page.count('id="correlation"') == 1
    for name in ("nodes", "distribution", "matrix", "scan_timing", "scan_speed"):
        assert f'<section id="{name}">' in page
    # five report plots, then per-node sources, distribution, heatmap and scan speed
    assert page.count('id="plot-') == 9
    script = page.rsplit("<script>", 1)[1]  # "...{[fig, fig, ...].forEach(..."
    figures = json.loads(script[script.index("[") : script.rindex("].forEach") + 1])
    heatmap = next(f for f in figures if f["data"][0]["type"] == "heatmap")
    assert heatmap["data"][0]["z"] == [list(r[1:]) for r in c.matrix(db).rows]
