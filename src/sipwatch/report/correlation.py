"""Correlation across nodes: who attacks where, how many nodes each attacker reaches, how fast.

The definitions (attacker, node, contact, N) are in report/fleet.py and docs/reports.md. Every
table here is computed from a Fleet (one GROUP BY node, src over the requests); the set logic
(overlaps, orders, groups) runs in Python on its rows. Each table has a function that takes a
store (`nodes(db)`) and one that takes a Fleet (`nodes_table(fleet)`), so a page or report that
shows several tables scans messages once (correlation_tables).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import compress, pairwise, permutations
from operator import itemgetter

from sipwatch.detect.sharing import human_delay
from sipwatch.report import geo
from sipwatch.report.fleet import (
    ALL_NODES,
    ATTACK,
    BEHAVIOURS,
    COUNTS,
    FIRST,
    NO_NODE,
    NODE,
    REQUESTS,
    SRC,
    Contact,
    Fleet,
    contacts,
    node_label,
    percent,
)
from sipwatch.report.tables import Queryable, Table, utc

__all__ = [
    "ALL_NODES", "ATTACK", "BEHAVIOURS", "CORRELATION", "CORRELATION_TOP_N", "NO_NODE",
    "SPEED_BUCKETS", "Fleet", "contacts", "correlation_tables", "countries", "countries_table",
    "deployment_groups", "deployments", "deployments_table", "distribution",
    "distribution_table", "matrix", "matrix_table", "networks", "networks_table", "node_label",
    "nodes", "nodes_table", "percent", "scan_speed", "scan_speed_table", "scan_timing",
    "scan_timing_table",
]  # fmt: skip

# time to cover the nodes an attacker reached, in buckets (upper bound in seconds, label)
SPEED_BUCKETS: tuple[tuple[float, str], ...] = (
    (1.0, "< 1 s"),
    (10.0, "< 10 s"),
    (60.0, "< 1 min"),
    (600.0, "< 10 min"),
    (3600.0, "< 1 h"),
    (86400.0, "< 1 d"),
    (float("inf"), ">= 1 d"),
)


# --- per node ----------------------------------------------------------------------------------
def nodes(db: Queryable) -> Table:
    """Per node: attackers, requests, and per behaviour (SS, ES, RHJ, INVITE, TF) the requests
    and the distinct sources that sent them; a last row over the whole fleet, where sources are
    distinct over all nodes (an attacker at three nodes counts once)."""
    return nodes_table(Fleet.of(db))


def nodes_table(fleet: Fleet) -> Table:
    columns = ["node", "attackers", "requests"]
    for b in BEHAVIOURS:
        columns += [f"{b} messages", f"{b} sources"]
    behaviours = range(COUNTS, COUNTS + len(BEHAVIOURS))
    fleet_sources: dict[int, set[str]] = {i: set() for i in behaviours}
    rows = []
    for node in fleet.nodes:
        cs = fleet.by_node[node]
        srcs = list(map(itemgetter(SRC), cs))
        row: list[object] = [node_label(node), len(cs), sum(map(itemgetter(REQUESTS), cs))]
        for i in behaviours:
            counts = list(map(itemgetter(i), cs))
            row += [sum(counts), len(counts) - counts.count(0)]
            fleet_sources[i].update(compress(srcs, counts))
        rows.append(tuple(row))
    if rows:
        total: list[object] = [ALL_NODES, len(fleet.attackers), sum(r[2] for r in rows)]
        for k, i in enumerate(behaviours):
            total += [sum(r[3 + 2 * k] for r in rows), len(fleet_sources[i])]
        rows.append(tuple(total))
    return Table(
        "nodes",
        "Attacks per node",
        columns,
        rows,
        "attackers: source addresses that sent requests to the node; per behaviour the "
        "requests (SS server scan, ES extension scan, RHJ registration hijacking, TF toll fraud "
        "by stage; INVITE by method, any stage) and the distinct sources that sent them. "
        f"'{ALL_NODES}': sums of requests, sources distinct over the whole fleet",
    )


# --- how many nodes each attacker reaches --------------------------------------------------------
def distribution(db: Queryable) -> Table:
    """For k = 1..N: the attackers seen at exactly k nodes, and their share of all attackers."""
    return distribution_table(Fleet.of(db))


def distribution_table(fleet: Fleet) -> Table:
    reached = Counter(fleet.attackers.values())
    total = len(fleet.attackers)
    rows = [(k, reached[k], percent(reached[k], total)) for k in range(1, len(fleet.nodes) + 1)]
    return Table(
        "distribution",
        "Attackers by number of nodes reached",
        ["nodes", "attackers", "share %"],
        rows,
        f"attackers seen at exactly k of the {len(fleet.nodes)} nodes that saw any; "
        "share of all attackers in %",
    )


def matrix(db: Queryable) -> Table:
    """Square table: cell (a, b), a != b, is the number of attackers seen at both a and b;
    the diagonal (a, a) is the number seen only at a."""
    return matrix_table(Fleet.of(db))


def matrix_table(fleet: Fleet) -> Table:
    size = len(fleet.nodes)
    cells = [[0] * size for _ in range(size)]
    for mask, n in fleet.node_sets().items():
        at = [j for j in range(size) if mask >> j & 1]
        if len(at) == 1:
            cells[at[0]][at[0]] += n
            continue
        for a, b in permutations(at, 2):
            cells[a][b] += n
    labels = [node_label(n) for n in fleet.nodes]
    return Table(
        "matrix",
        "Attackers shared between nodes",
        ["node", *labels],
        [(label, *row) for label, row in zip(labels, cells, strict=True)],
        "row a, column b: attackers seen at both a and b; the diagonal: attackers seen only "
        "at that node",
    )


# --- deployments -------------------------------------------------------------------------------
def deployment_groups(db: Queryable) -> dict[str, list[str]]:
    """Deployments as the sensor registry names them: deployment -> the nodes of its sensors
    (empty when no sensor has a deployment, or the store predates the sensor registry)."""
    version = db.query("SELECT MAX(version) FROM migrations")[0][0]
    if not version or version < 5:
        return {}
    groups: dict[str, set[str]] = {}
    for deployment, node_list in db.query(
        "SELECT deployment, nodes FROM sensors WHERE deployment <> ''"
    ):
        groups.setdefault(deployment, set()).update(
            n.strip() for n in node_list.split(",") if n.strip()
        )
    return {name: sorted(members) for name, members in sorted(groups.items())}


def deployments(db: Queryable, groups: Mapping[str, Sequence[str]] | None = None) -> Table:
    """Compare groups of nodes, e.g. {"distributed": [...], "central": [...]}: per group its
    attackers, those seen in no other group, requests and the sources per behaviour; then the
    attackers seen in every group and in any group, with their behaviour. `groups` defaults to
    the deployments of the sensor registry (deployment_groups)."""
    if groups is None:
        groups = deployment_groups(db)
    return deployments_table(Fleet.of(db), groups)


def deployments_table(fleet: Fleet, groups: Mapping[str, Sequence[str]]) -> Table:
    columns = ["group", "nodes", "attackers", "only here", "requests"]
    columns += [f"{b} sources" for b in BEHAVIOURS]
    members = {name: set(nodes_) for name, nodes_ in groups.items()}
    in_groups: dict[str, list[str]] = {}  # node -> the groups it belongs to
    for name, ns in members.items():
        for n in ns:
            in_groups.setdefault(n, []).append(name)
    seen: dict[str, set[str]] = {name: set() for name in members}
    requests = dict.fromkeys(members, 0)
    sources = {name: [set() for _ in BEHAVIOURS] for name in members}
    # per attacker over all the groups' nodes: requests and a bit mask of its behaviours
    total: dict[str, list[int]] = {}
    for c in fleet.contacts:
        names = in_groups.get(c[NODE])
        if not names:
            continue
        src = c[SRC]
        mask = sum(1 << i for i in range(len(BEHAVIOURS)) if c[COUNTS + i])
        t = total.setdefault(src, [0, 0])
        t[0] += c[REQUESTS]
        t[1] |= mask
        for name in names:
            seen[name].add(src)
            requests[name] += c[REQUESTS]
            for i, srcs in enumerate(sources[name]):
                if mask >> i & 1:
                    srcs.add(src)

    def overall(srcs: Iterable[str]) -> list[int]:
        """Requests and sources per behaviour of these attackers over all groups' nodes."""
        ts = [total[s] for s in srcs]
        per = [sum(1 for t in ts if t[1] >> i & 1) for i in range(len(BEHAVIOURS))]
        return [sum(t[0] for t in ts), *per]

    rows = []
    for name, srcs in seen.items():
        others = set().union(*(s for other, s in seen.items() if other != name))
        listed = ", ".join(node_label(n) for n in sorted(members[name]))
        per = [len(x) for x in sources[name]]
        rows.append((name, listed, len(srcs), len(srcs - others), requests[name], *per))
    if seen:
        every = set.intersection(*seen.values())
        rows.append(("(in every group)", "", len(every), None, *overall(every)))
        rows.append(("(in any group)", "", len(total), None, *overall(total)))
    return Table(
        "deployments",
        "Deployments compared",
        columns,
        rows,
        "groups of nodes (the sensors' deployment in the registry, or as given); attackers: "
        "sources seen at any node of the group; only here: seen in no other group; behaviour "
        "columns: sources that sent requests of that kind to the group's nodes"
        + ("" if rows else ". No deployments are configured"),
    )


# --- scan timing -------------------------------------------------------------------------------
def _sweeps(fleet: Fleet) -> list[tuple[str, list[Contact], float]]:
    """Attackers at >= 2 nodes: (src, contacts by first contact, time to cover them)."""
    return [
        (src, cs, cs[-1][FIRST] - cs[0][FIRST]) for src, cs in fleet.by_src.items() if len(cs) > 1
    ]


def scan_timing(db: Queryable, limit: int = 50) -> Table:
    """Attackers seen at two nodes or more: the nodes in the order of first contact, the time
    between consecutive first contacts, the time to cover every node they reached (first contact
    at the last of them minus first contact at the first) and whether they reached all N nodes.
    The `limit` rows with the most nodes come first, the fastest first among equals."""
    return scan_timing_table(Fleet.of(db), limit)


def scan_timing_table(fleet: Fleet, limit: int = 50) -> Table:
    n_nodes = len(fleet.nodes)
    sweeps = _sweeps(fleet)
    sweeps.sort(key=lambda s: (-len(s[1]), s[2], s[0]))
    rows = []
    for src, ordered, cover in sweeps[:limit]:
        gaps = [b[FIRST] - a[FIRST] for a, b in pairwise(ordered)]
        rows.append(
            (
                src,
                len(ordered),
                "yes" if len(ordered) == n_nodes else "no",
                " > ".join(node_label(c[NODE]) for c in ordered),
                " ".join(f"{g:.1f}" for g in gaps),
                round(cover, 3),
                human_delay(cover),
                utc(ordered[0][FIRST]),
            )
        )
    return Table(
        "scan_timing",
        "Scan timing across nodes",
        ["source", "nodes", "all nodes", "order", "gaps s", "cover s", "cover", "first"],
        rows,
        "attackers seen at two nodes or more, most nodes first, fastest first among equals "
        f"({len(sweeps)} in all, {min(limit, len(sweeps))} shown); order: nodes by first "
        "contact; gaps s: seconds between consecutive first contacts; cover: first contact at "
        "the last node minus first contact at the first; all nodes: reached all "
        f"{n_nodes} nodes",
    )


def scan_speed(db: Queryable) -> Table:
    """Distribution of the time attackers at >= 2 nodes took to cover the nodes they reached."""
    return scan_speed_table(Fleet.of(db))


def scan_speed_table(fleet: Fleet) -> Table:
    n_nodes = len(fleet.nodes)
    counts = [0] * len(SPEED_BUCKETS)
    complete = [0] * len(SPEED_BUCKETS)
    sweeps = _sweeps(fleet)
    bounds = [bound for bound, _ in SPEED_BUCKETS]
    for _src, ordered, cover in sweeps:
        i = bisect_right(bounds, cover)  # the first bucket whose bound exceeds cover
        counts[i] += 1
        complete[i] += len(ordered) == n_nodes
    rows = [
        (label, counts[i], percent(counts[i], len(sweeps)), complete[i])
        for i, (_, label) in enumerate(SPEED_BUCKETS)
    ]
    return Table(
        "scan_speed",
        "Time to cover the nodes reached",
        ["time", "attackers", "share %", "reached all nodes"],
        rows,
        "attackers seen at two nodes or more, by the time from their first contact at the "
        "first node to their first contact at the last node they reached; reached all nodes: "
        f"those of them that reached all {n_nodes}",
    )


# --- geography and networks --------------------------------------------------------------------
def _by_origin(fleet: Fleet, name: str, title: str, key: str, pick: int, limit: int) -> Table:
    # per origin: attackers, requests, nodes, attackers per behaviour
    groups: dict[str, tuple[set[str], list[int], set[str], list[set[str]]]] = {}
    origins = fleet.origins
    for c in fleet.contacts:
        found = origins[c[SRC]]
        origin = found[pick] or (geo.PRIVATE if found[0] == geo.PRIVATE else "(unknown)")
        g = groups.get(origin)
        if g is None:
            g = groups[origin] = (set(), [0], set(), [set() for _ in BEHAVIOURS])
        g[0].add(c[SRC])
        g[1][0] += c[REQUESTS]
        g[2].add(c[NODE])
        for i, srcs in enumerate(g[3]):
            if c[COUNTS + i]:
                srcs.add(c[SRC])
    counted = {
        k: (len(a), r[0], len(ns), *(len(s) for s in per)) for k, (a, r, ns, per) in groups.items()
    }
    ranked = sorted(counted.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:limit]
    rows = [(k, *numbers) for k, numbers in ranked]
    return Table(
        name,
        title,
        [key, "attackers", "requests", "nodes", *(f"{b} sources" for b in BEHAVIOURS)],
        rows,
        "attackers by the origin of their address (offline geoip2fast data; 'private' for "
        "non-public addresses), most attackers first; nodes: nodes that saw any of them; "
        "behaviour columns: attackers that sent requests of that kind anywhere",
    )


def countries(db: Queryable, limit: int = 20) -> Table:
    """Attackers per country of their address, with requests, nodes reached and behaviour."""
    return countries_table(Fleet.of(db), limit)


def countries_table(fleet: Fleet, limit: int = 20) -> Table:
    return _by_origin(fleet, "countries", "Attackers by country", "country", 0, limit)


def networks(db: Queryable, limit: int = 20) -> Table:
    """Attackers per network (autonomous system name) of their address."""
    return networks_table(Fleet.of(db), limit)


def networks_table(fleet: Fleet, limit: int = 20) -> Table:
    return _by_origin(fleet, "networks", "Attackers by network (AS)", "as", 1, limit)


# --- registry ----------------------------------------------------------------------------------
CORRELATION: dict[str, Callable[..., Table]] = {
    "nodes": nodes,
    "distribution": distribution,
    "matrix": matrix,
    "deployments": deployments,
    "scan_timing": scan_timing,
    "scan_speed": scan_speed,
    "countries": countries,
    "networks": networks,
}

# tables whose second argument is a row limit (like tables.TOP_N)
CORRELATION_TOP_N = {"scan_timing", "countries", "networks"}


def correlation_tables(
    db: Queryable,
    names: Sequence[str] | None = None,
    top: int | None = None,
    min_nodes: int = 2,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> list[Table]:
    """The correlation tables (all, or those named) from one scan of messages.

    Without names: [] when fewer than `min_nodes` nodes saw attackers (the HTML report shows
    the correlation section only for a fleet), and the deployments table only when there are
    groups (`groups`, else the sensor registry's deployments). An unknown name raises KeyError
    with a message that lists the known ones.
    """
    unknown = [n for n in names or () if n not in CORRELATION]
    if unknown:
        raise KeyError(f"unknown table {unknown[0]!r}; tables: {', '.join(CORRELATION)}")
    fleet = Fleet.of(db)
    if not names and len(fleet.nodes) < min_nodes:
        return []
    if groups is None:
        groups = deployment_groups(db)
    limit = {} if top is None else {"limit": top}
    build: dict[str, Callable[[], Table]] = {
        "nodes": lambda: nodes_table(fleet),
        "distribution": lambda: distribution_table(fleet),
        "matrix": lambda: matrix_table(fleet),
        "deployments": lambda: deployments_table(fleet, groups),
        "scan_timing": lambda: scan_timing_table(fleet, **limit),
        "scan_speed": lambda: scan_speed_table(fleet),
        "countries": lambda: countries_table(fleet, **limit),
        "networks": lambda: networks_table(fleet, **limit),
    }
    if not names:
        names = [n for n in CORRELATION if n != "deployments" or groups]
    return [build[name]() for name in names]
