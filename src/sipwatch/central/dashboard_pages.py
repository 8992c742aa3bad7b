"""What each dashboard page shows: build(central, ...) -> the template's context.

Store reads run through Central.db (the store lock); a page's correlation tables share one
scan of messages (report/correlation.py's Fleet).
"""

from __future__ import annotations

from typing import Any

from sipwatch.central import dashboard_data as data
from sipwatch.central import rulepacks
from sipwatch.central.api_admin import sensor_out
from sipwatch.central.dashboard_view import (
    figure_json,
    per_day_figure,
    sites_figure,
    table_view,
    timeline_figure,
)
from sipwatch.central.state import Central
from sipwatch.report import correlation as corr
from sipwatch.report.attacker import attacker as attacker_view
from sipwatch.report.correlation_figures import (
    distribution_figure,
    matrix_figure,
    nodes_figure,
    scan_speed_figure,
)
from sipwatch.report.tables import STAGES, per_day, utc


def _sensor_states(c: Central) -> tuple[int, int]:
    """(up, stale) among sensors that are not revoked."""
    outs = [sensor_out(s, c.config.stale_after) for s in c.db(c.registry.sensors)]
    live = [o for o in outs if o.revoked is None]
    stale = sum(o.stale for o in live)
    return len(live) - stale, stale


def overview(c: Central) -> dict[str, Any]:
    counts = c.report(data.counters)
    up, stale = _sensor_states(c)
    days = c.report(per_day)
    cards = [
        ("messages", "messages", counts["messages"]),
        ("requests", "requests", counts["requests"]),
        ("attackers", "attackers", counts["attackers"]),
        ("nodes", "nodes", counts["nodes"]),
        ("events", "events", counts["events"]),
        ("sensors-up", "sensors up", up),
        ("sensors-stale", "sensors stale", stale),
    ]
    return {
        "title": "Overview",
        "cards": cards,
        "stale": stale,
        "per_day": figure_json(per_day_figure(days), days.title) if days.rows else "",
        "events": table_view(c.report(data.newest_events)),
    }


def nodes(c: Central) -> dict[str, Any]:
    fleet = c.report(corr.Fleet.of)
    table = corr.nodes_table(fleet)
    attackers = {row[0]: row[1] for row in table.rows}
    sites = dict(c.config.nodes)
    site_rows = [
        (name, site.label, site.latitude, site.longitude, attackers.get(name, 0))
        for name, site in sorted(sites.items())
    ]
    return {
        "title": "Nodes",
        "table": table_view(table, ["total" if r[0] == corr.ALL_NODES else "" for r in table.rows]),
        "figure": figure_json(nodes_figure(table)) if len(table.rows) > 1 else "",
        "map": figure_json(sites_figure(sites, attackers), "Node sites", 460) if sites else "",
        "sites": site_rows,
    }


def attackers(c: Central, q: str, country: str, stage: str) -> dict[str, Any]:
    context: dict[str, Any] = {
        "title": "Attackers",
        "q": q,
        "country": country,
        "stage": stage,
        "stages": STAGES,
        "error": "",
        "table": None,
    }
    try:
        search = data.Search.parse(q, country, stage)
    except data.SearchError as exc:
        context.update(error=str(exc), status=422)
        return context
    context["table"] = table_view(c.report(data.search_attackers, search))
    return context


def attacker(c: Central, address: str) -> dict[str, Any]:
    src = data.valid_address(address)
    if src is None:
        return {"title": "Attacker", "src": address, "found": False, "status": 404}
    view = c.report(attacker_view, src)
    found = bool(view.timeline.rows) or bool(view.events.rows)
    tables = [table_view(t) for t in view.tables()[1:]]  # the summary is shown as a list
    return {
        "title": f"Attacker {src}",
        "src": src,
        "found": found,
        "summary": view.summary.rows,
        "timeline": figure_json(timeline_figure(view.timeline), view.timeline.title)
        if view.timeline.rows
        else "",
        "tables": tables,
        "status": 200 if found else 404,
    }


def correlation(c: Central) -> dict[str, Any]:
    fleet = c.report(corr.Fleet.of)
    groups = dict(c.config.deployments) or c.report(corr.deployment_groups)
    dist = corr.distribution_table(fleet)
    matrix = corr.matrix_table(fleet)
    speed = corr.scan_speed_table(fleet)
    deployments = corr.deployments_table(fleet, groups) if groups else None
    return {
        "title": "Correlation",
        "n_nodes": len(fleet.nodes),
        "distribution": table_view(dist),
        "distribution_fig": figure_json(distribution_figure(dist)) if dist.rows else "",
        "matrix": table_view(matrix),
        "matrix_fig": figure_json(
            matrix_figure(matrix), height=max(380, 120 + 40 * len(matrix.rows))
        )
        if matrix.rows
        else "",
        "deployments": table_view(deployments) if deployments else None,
        "timing": table_view(corr.scan_timing_table(fleet)),
        "speed": table_view(speed),
        "speed_fig": figure_json(scan_speed_figure(speed)) if any(r[1] for r in speed.rows) else "",
        "geo": [
            table_view(corr.countries_table(fleet)),
            table_view(corr.networks_table(fleet)),
        ],
    }


def sensors(c: Central) -> dict[str, Any]:
    pack = c.db(rulepacks.active, c.store)
    active = f"central:{pack.version}" if pack else ""
    table, classes = data.sensors_table(
        c.db(c.registry.sensors),
        c.config.stale_after,
        c.report(data.uplink_totals),
        active,
    )
    return {
        "title": "Sensors",
        "table": table_view(table, classes),
        "stale": classes.count("stale"),
    }


def rules(c: Central) -> dict[str, Any]:
    pack = c.db(rulepacks.active, c.store)
    return {
        "title": "Rules",
        "pack": pack,
        "created": utc(pack.created) if pack else "",
        "history": table_view(c.report(data.rule_history)),
    }
