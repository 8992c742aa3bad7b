"""Plotly figures of the correlation tables (HTML report and dashboard draw the same ones).

Each takes the Table that report/correlation.py built, so a chart shows exactly the numbers of
its table. Labels are HTML-escaped: Plotly renders a subset of HTML in text, and node names
reach the store from sensors.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go

from sipwatch.report.render import visible
from sipwatch.report.tables import Table


def _label(value: object) -> str:
    return html.escape(visible(value, 60))


def distribution_figure(table: Table) -> go.Figure:
    """Bar chart: attackers that reached exactly k nodes."""
    fig = go.Figure(
        go.Bar(
            x=[str(r[0]) for r in table.rows],
            y=[r[1] for r in table.rows],
            customdata=[r[2] for r in table.rows],
            hovertemplate="%{y} attackers at %{x} node(s) (%{customdata}%)<extra></extra>",
        )
    )
    fig.update_layout(
        title=html.escape(table.title),
        xaxis={"title": "nodes reached", "type": "category"},
        yaxis={"title": "attackers"},
    )
    return fig


def matrix_figure(table: Table) -> go.Figure:
    """Heatmap of the node matrix: off the diagonal attackers at both, on it only at one."""
    labels = [_label(r[0]) for r in table.rows]
    z = [list(r[1:]) for r in table.rows]
    hover = [
        [
            f"only at {a}: {v}" if i == j else f"at {a} and {b}: {v}"
            for j, (b, v) in enumerate(zip(labels, row, strict=True))
        ]
        for i, (a, row) in enumerate(zip(labels, z, strict=True))
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            text=hover,
            texttemplate="%{z}",
            hovertemplate="%{text}<extra></extra>",
            colorscale="Blues",
        )
    )
    fig.update_layout(
        title=html.escape(table.title),
        xaxis={"type": "category", "side": "top"},
        yaxis={"type": "category", "autorange": "reversed"},
    )
    return fig


def scan_speed_figure(table: Table) -> go.Figure:
    """Histogram (pre-binned) of the time attackers took to cover the nodes they reached."""
    x = [r[0] for r in table.rows]
    fig = go.Figure()
    fig.add_bar(name="all attackers at 2+ nodes", x=x, y=[r[1] for r in table.rows])
    fig.add_bar(name="reached all nodes", x=x, y=[r[3] for r in table.rows])
    fig.update_layout(
        title=html.escape(table.title),
        barmode="group",
        xaxis={"title": "time to cover", "type": "category"},
        yaxis={"title": "attackers"},
    )
    return fig


def nodes_figure(table: Table) -> go.Figure:
    """Grouped bars per node: distinct sources per behaviour (the fleet total row left out)."""
    rows = table.rows[:-1]  # the last row sums the fleet
    fig = go.Figure()
    for i, column in enumerate(table.columns):
        if column.endswith(" sources"):
            fig.add_bar(
                name=column.removesuffix(" sources"),
                x=[_label(r[0]) for r in rows],
                y=[r[i] for r in rows],
            )
    fig.update_layout(
        title="Sources per node and behaviour",
        barmode="group",
        xaxis={"type": "category"},
        yaxis={"title": "sources"},
    )
    return fig


FIGURES = {
    "nodes": nodes_figure,
    "distribution": distribution_figure,
    "matrix": matrix_figure,
    "scan_speed": scan_speed_figure,
}
