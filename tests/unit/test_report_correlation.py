"""Correlation reports on a store with a known plan, on SQLite and on a real PostgreSQL.

The plan: four nodes (oslo, essen, tromso and messages without a node), sources that hit one
to four of them with known stages and times, responses and garbage that must not count, and
information-sharing events. Every table is compared with what the test computes from its plan
directly (plain Python over the planned messages), not with what the store says.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from storedata import DAY1, request, response

from sipwatch.detect.events import Event
from sipwatch.detect.sharing import human_delay
from sipwatch.record import Record
from sipwatch.report import correlation as c
from sipwatch.report import geo
from sipwatch.report.attacker import attacker
from sipwatch.report.html import render_html
from sipwatch.report.tables import all_tables, utc
from sipwatch.store import schema
from sipwatch.store.base import open_store
from sipwatch.store.eventrows import event_row
from sipwatch.store.rows import message_row

NODES = {"oslo": "192.0.2.11", "essen": "192.0.2.12", "tromso": "192.0.2.13", "": "192.0.2.14"}
KINDS = [
    ("OPTIONS", "SS"), ("REGISTER", "ES"), ("REGISTER", "RHJ"), ("INVITE", "TF"),
    ("INVITE", "ES"), ("INVITE", ""), ("OPTIONS", ""),
]  # fmt: skip
GAPS = [0.3, 4.0, 30.0, 300.0, 3000.0, 50000.0, 200000.0]  # one in every speed bucket
WATCHED = "198.51.100.200"  # the attacker of the per-attacker view
BEHAVIOURS = ("SS", "ES", "RHJ", "INVITE", "TF")
GROUPS = {"distributed": ["oslo", "essen"], "central": ["tromso", ""]}


@dataclass
class Msg:
    node: str
    src: str
    ts: float
    method: str
    stage: str
    user: str = "100"
    auth: str = ""
    password: str = ""
    number: str = ""
    reply: int = 0  # status of the node's answer (0: none)
    tool: str = ""
    ua: str = ""

    def has(self, behaviour: str) -> bool:
        return self.method == "INVITE" if behaviour == "INVITE" else self.stage == behaviour


def plan() -> list[Msg]:
    """The planned requests (every one an attack message: parsed, is_request = 1)."""
    rng = random.Random(5)
    msgs: list[Msg] = []
    sources = [f"198.51.100.{i}" for i in range(1, 41)] + ["8.8.8.8", "1.1.1.1", "9.9.9.9"]
    for src in sources:
        k = rng.choices([1, 2, 3, 4], weights=[4, 3, 2, 2])[0]
        t = DAY1 + rng.uniform(0, 86400)
        for node in rng.sample(list(NODES), k):
            for j in range(rng.randint(1, 4)):
                method, stage = rng.choice(KINDS)
                reply = rng.choice([0, 200, 401, 404])
                msgs.append(Msg(node, src, t + j * 0.01, method, stage, reply=reply))
            t += rng.choice(GAPS) + rng.random()
    t0 = DAY1 + 5000.0
    sv = {"tool": "sipvicious", "ua": "friendly-scanner"}
    msgs += [
        Msg("oslo", WATCHED, t0, "OPTIONS", "SS", reply=200, **sv),
        Msg("oslo", WATCHED, t0 + 1, "REGISTER", "ES", user="101", reply=404, **sv),
        Msg("oslo", WATCHED, t0 + 2, "REGISTER", "ES", user="102", reply=401, **sv),
        Msg("essen", WATCHED, t0 + 50, "REGISTER", "RHJ", "102", "102", "secret1", reply=403),
        Msg("essen", WATCHED, t0 + 51, "REGISTER", "RHJ", "102", "102", "letmein", reply=200),
        Msg("essen", WATCHED, t0 + 60, "INVITE", "TF", "0046701234567", number="+46701234567"),
    ]
    return msgs


def records(msgs: Sequence[Msg]) -> list[Record]:
    out = []
    for n, m in enumerate(msgs, start=1):
        addr = NODES[m.node]
        ruri = f"sip:{m.user}@{addr}" if m.method in ("INVITE", "OPTIONS") else f"sip:{addr}"
        raw = request(m.method, ruri, m.user, n, m.src, m.ua, m.auth)
        req = Record.from_bytes(raw, m.ts, "udp", m.src, 5060, addr, 5060, node=m.node)
        req.stage, req.tool, req.password, req.number = m.stage, m.tool, m.password, m.number
        if m.number:
            req.number_type, req.number_country = "mobile", "SE"
        out.append(req)
        if m.reply:  # the node's answer: a response, never an attack message
            raw = response(m.reply, "X", m.method, m.user, n, m.src)
            rsp = Record.from_bytes(raw, m.ts + 0.001, "udp", addr, 5060, m.src, 5060, node=m.node)
            rsp.stage, rsp.request_id, rsp.password = m.stage, req.id, m.password
            out.append(rsp)
    # payloads that do not parse make nobody an attacker, and no node a node
    for i, node in enumerate(["oslo", "bergen"]):
        junk = Record.from_bytes(
            b"\x00 not sip", DAY1 + i, "udp", "203.0.113.99", 5060, "192.0.2.20", 5060, node=node
        )
        out.append(junk)
    return out


def events() -> list[Event]:
    def sharing(n: int, src: str, rule: str, first: float, by: list[str], **data: Any) -> Event:
        return Event(
            id=n, rule=rule, kind="sharing", severity="high",
            stage="ES", src=src, targets=("102",), node="essen", sensor="s1", first=first,
            last=first + 1, count=1, summary=f"{src} used what {by[0]} found",
            data={"discovered_by": by, "items": ["102", "103"], **data},
        )  # fmt: skip

    return [
        sharing(1, WATCHED, "sharing.extensions", DAY1 + 6000, ["198.51.100.51", "203.0.113.52"],
                by_discoverer={"198.51.100.51": ["102"], "203.0.113.52": ["103"]}),
        sharing(2, "203.0.113.60", "sharing.credentials", DAY1 + 7000, [WATCHED]),
        sharing(3, "203.0.113.61", "sharing.credentials", DAY1 + 7100, ["198.51.100.20"]),
        Event(id=77, rule="es.extension-scan", kind="threshold", severity="medium", stage="ES",
              src=WATCHED, targets=(), node="oslo", sensor="s1", first=DAY1 + 5001,
              last=DAY1 + 5002, count=2, summary="probed 2 extensions"),
    ]  # fmt: skip


# --- the stores ------------------------------------------------------------------------------
class PgQuery:
    """A Queryable over a psycopg connection ('?' placeholders, like the stores)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(schema.placeholders(sql, "postgresql"), params)
            return cur.fetchall()


def _postgres(recs: list[Record], evs: list[Event]) -> Iterator[PgQuery]:
    try:
        import psycopg

        admin = psycopg.connect("postgresql://postgres@127.0.0.1/test", autocommit=True)
    except Exception as exc:  # no server here: the SQLite half still runs
        print(f"PostgreSQL not reachable ({exc}); skipping the PostgreSQL run")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    name = f"sw_corr_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1/{name}", autocommit=True) as conn:
            for ddl in (schema.MIGRATIONS_DDL, schema.MESSAGES_DDL, schema.PASSWORD_DDL,
                        schema.EVENTS_DDL, schema.SENSORS_DDL, schema.INGEST_DDL):  # fmt: skip
                conn.execute(schema.ddl(ddl, "postgresql"))
            conn.execute("INSERT INTO migrations VALUES (5, 'test', 0)")
            with conn.cursor() as cur:
                cur.executemany(schema.insert_sql("postgresql"), [message_row(r) for r in recs])
                cur.executemany(schema.upsert_events_sql("postgresql"), [event_row(e) for e in evs])
            yield PgQuery(conn)
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    recs, evs = records(plan()), events()
    if request.param == "postgresql":
        yield from _postgres(recs, evs)
        return
    path = Path(tmp_path_factory.mktemp("corr")) / "t.sqlite"
    with open_store(path) as s:
        s.add(recs)
        s.flush()
        s.add_events(evs)
    with open_store(path, readonly=True) as s:
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


def test_correlation_tables(db) -> None:
    names = [t.name for t in c.correlation_tables(db)]
    assert names == [n for n in c.CORRELATION if n != "deployments"]
    assert [t.rows for t in c.correlation_tables(db, ["matrix", "nodes"])] == [
        c.matrix(db).rows,
        c.nodes(db).rows,
    ]
    assert len(c.correlation_tables(db, ["scan_timing"], top=2)[0].rows) == 2
    with pytest.raises(KeyError, match="unknown table 'nope'"):
        c.correlation_tables(db, ["nope"])


def test_deployments_from_the_sensor_registry(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite") as s:
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
