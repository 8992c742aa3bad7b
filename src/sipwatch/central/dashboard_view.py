"""How the dashboard shows report data: Table -> cells for the templates, Plotly figures -> JSON.

Values come from attackers (User-Agents, extensions, node names reported by sensors). Templates
autoescape every cell; Plotly renders a subset of HTML inside labels, so plot labels are
HTML-escaped here as well; figure JSON is embedded in a non-executed script element with '<',
'>' and '&' written as JSON escapes, so no value can end that element.
"""

from __future__ import annotations

import html
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import plotly.graph_objects as go

from sipwatch.central.config import NodeSite
from sipwatch.report.html import STAGE_COLOURS
from sipwatch.report.render import visible
from sipwatch.report.tables import NONE, STAGES, Table

# columns whose values are attacker addresses: shown as links to the attacker's page
LINK_COLUMNS = frozenset({"source", "address"})


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    numeric: bool = False
    title: str = ""  # the full value when `text` was cut
    href: str = ""


@dataclass(frozen=True, slots=True)
class TableView:
    name: str
    title: str
    note: str
    columns: list[tuple[str, bool]]  # (name, numeric)
    rows: list[list[Cell]]
    row_classes: list[str]


def attacker_href(value: object) -> str:
    """The attacker page of an address, '' when the value is not an address."""
    try:
        return f"/attackers/{ipaddress.ip_address(str(value))}"
    except ValueError:
        return ""


def cell(value: object, column: str = "") -> Cell:
    if isinstance(value, bool):
        return Cell("yes" if value else "no")
    if isinstance(value, int):
        return Cell(f"{value:,}", numeric=True)
    if isinstance(value, float):
        return Cell(f"{value:,}", numeric=True)
    if value is None:
        return Cell("")
    shown = visible(value)
    full = visible(value, 2000)
    href = attacker_href(value) if column in LINK_COLUMNS else ""
    return Cell(shown, title=full if full != shown else "", href=href)


def table_view(table: Table, row_classes: Iterable[str] | None = None) -> TableView:
    """A Table ready for the `table` macro; a column is numeric when every value in it is."""
    numeric = [
        bool(table.rows)
        and all(isinstance(r[i], int | float) or r[i] is None for r in table.rows)
        and any(r[i] is not None for r in table.rows)
        for i in range(len(table.columns))
    ]
    rows = [[cell(v, c) for v, c in zip(row, table.columns, strict=True)] for row in table.rows]
    classes = list(row_classes) if row_classes is not None else [""] * len(rows)
    return TableView(
        table.name,
        table.title,
        table.note,
        list(zip(table.columns, numeric, strict=True)),
        rows,
        classes,
    )


def label(value: object) -> str:
    """A plot label: bounded, control characters visible, HTML-escaped for Plotly."""
    return html.escape(visible(value, 60))


# a small template of our own: plotly.py's named ones add ~10 kB of JSON to every figure
_TEMPLATE = {
    "layout": {
        "font": {"family": "system-ui, sans-serif"},
        "colorway": ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#b279a2"],
        "hovermode": "closest",
        "xaxis": {"automargin": True, "gridcolor": "#eee"},
        "yaxis": {"automargin": True, "gridcolor": "#eee"},
    }
}


def figure_json(fig: go.Figure, title: str = "", height: int = 380) -> str:
    """The figure as JSON that is safe inside <script type="application/json">."""
    fig.layout.template = _TEMPLATE  # assigned, not merged into the default one
    layout: dict = {
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    }
    if title:
        layout["title"] = html.escape(title)
    fig.update_layout(**layout)
    text = fig.to_json()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def per_day_figure(table: Table) -> go.Figure:
    """Stacked bars of messages per day and stage (the report's per_day table)."""
    fig = go.Figure()
    days = [r[0] for r in table.rows]
    for i, stage in enumerate([*STAGES, NONE], start=1):
        fig.add_bar(
            name=stage, x=days, y=[r[i] for r in table.rows], marker_color=STAGE_COLOURS[stage]
        )
    fig.update_layout(barmode="stack", xaxis={"type": "category"}, yaxis={"title": "messages"})
    return fig


def sites_figure(sites: Mapping[str, NodeSite], attackers: Mapping[str, int]) -> go.Figure:
    """Node sites on plain longitude/latitude axes.

    A geographic map trace would make plotly.js fetch its world outline from a CDN; the
    dashboard loads nothing from outside, so the sites are a scatter with the attackers each
    node saw as the marker size.
    """
    names = sorted(sites)
    counts = [attackers.get(n, 0) for n in names]
    biggest = max(counts, default=0) or 1
    lons = [sites[n].longitude for n in names]
    lats = [sites[n].latitude for n in names]
    fig = go.Figure(
        go.Scatter(
            x=lons,
            y=lats,
            mode="markers+text",
            text=[label(sites[n].label or n) for n in names],
            textposition="top center",
            customdata=[[label(n), c] for n, c in zip(names, counts, strict=True)],
            hovertemplate="%{text} (node %{customdata[0]}): %{customdata[1]} attackers"
            "<extra></extra>",
            marker={"size": [12 + 28 * c / biggest for c in counts], "color": "#e45756"},
        )
    )
    pad = 5.0
    fig.update_layout(
        xaxis={
            "title": "longitude",
            "range": [max(-180, min(lons) - pad), min(180, max(lons) + pad)],
        },
        yaxis={
            "title": "latitude",
            "range": [max(-90, min(lats) - pad), min(90, max(lats) + pad)],
            "scaleanchor": "x",
        },
        showlegend=False,
    )
    return fig


def timeline_figure(table: Table) -> go.Figure:
    """One segment per (node, stage) from first to last request: where the attacker was when."""
    fig = go.Figure()
    for stage in [*STAGES, NONE]:
        xs: list[str | None] = []
        ys: list[str | None] = []
        hover: list[str | None] = []
        for node, st, first, last, n in table.rows:
            if st != stage:
                continue
            text = f"{label(node)} {stage}: {n} requests"
            xs += [first.rstrip("Z"), last.rstrip("Z"), None]
            ys += [label(node), label(node), None]
            hover += [text, text, None]
        if xs:
            fig.add_scatter(
                name=stage, x=xs, y=ys, mode="lines+markers", hovertext=hover,
                hoverinfo="text+x", line={"width": 8, "color": STAGE_COLOURS[stage]},
                marker={"size": 12},
            )  # fmt: skip
    fig.update_layout(xaxis={"type": "date", "title": "UTC"}, yaxis={"type": "category"})
    return fig
