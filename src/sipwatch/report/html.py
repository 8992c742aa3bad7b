"""Self-contained HTML report: plotly.js inlined once, the plots, and every table.

Opens offline (no external script, style or font). Every string that reaches the page is
HTML-escaped: methods, User-Agents, extensions and tags come from attackers. Plot labels are
escaped too, because Plotly renders a subset of HTML (links, tags) in text.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from sipwatch import __version__
from sipwatch.report.correlation import CORRELATION
from sipwatch.report.correlation_figures import FIGURES
from sipwatch.report.render import visible
from sipwatch.report.tables import NONE, STAGES, Table

STAGE_COLOURS = {
    "SS": "#4c78a8",
    "ES": "#f58518",
    "RHJ": "#e45756",
    "TF": "#b279a2",
    NONE: "#bab0ac",
}
_CONFIG = {"displaylogo": False, "responsive": True}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{margin-bottom:0}.meta{color:#666;margin-top:.3em}
table{border-collapse:collapse;margin:1em 0 .3em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
p.note{color:#666;font-size:.9em;margin-top:0;max-width:60em}
h2.part{margin-top:2em;border-top:2px solid #ccc;padding-top:.8em}
.plots{display:flex;flex-wrap:wrap;gap:1em}
.plots>div{flex:0 0 calc(50% - .5em);min-width:0}
@media (max-width:70em){.plots>div{flex-basis:100%}}
"""


def _label(value: object) -> str:
    """A plot label: bounded, control characters visible, HTML-escaped for Plotly."""
    return html.escape(visible(value, 60))


def _figure_json(fig: go.Figure, title: str, height: int = 420) -> str:
    fig.update_layout(
        title=html.escape(title), template="plotly_white", height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
    )  # fmt: skip
    return fig.to_json()


def _by_name(tables: Sequence[Table]) -> dict[str, Table]:
    return {t.name: t for t in tables}


def _plots(t: dict[str, Table]) -> list[str]:
    out = []
    if (day := t.get("per_day")) and day.rows:
        fig = go.Figure()
        for i, stage in enumerate([*STAGES, NONE], start=1):
            fig.add_bar(
                name=stage, x=[r[0] for r in day.rows], y=[r[i] for r in day.rows],
                marker_color=STAGE_COLOURS[stage],
            )  # fmt: skip
        fig.update_layout(barmode="stack", xaxis_type="category")
        out.append(_figure_json(fig, day.title))
    if (st := t.get("stages")) and st.rows:
        fig = go.Figure()
        fig.add_bar(name="messages", x=[r[0] for r in st.rows], y=[r[1] for r in st.rows])
        fig.add_bar(name="sources", x=[r[0] for r in st.rows], y=[r[4] for r in st.rows])
        fig.update_layout(barmode="group", yaxis_type="log")
        out.append(_figure_json(fig, "Messages and sources per stage (log scale)"))
    if (me := t.get("methods")) and me.rows:
        fig = go.Figure(go.Bar(x=[_label(r[0]) for r in me.rows], y=[r[1] for r in me.rows]))
        fig.update_layout(xaxis_type="category")
        out.append(_figure_json(fig, me.title))
    if (co := t.get("codes")) and co.rows:
        per_code: dict[int, int] = {}
        for code, _method, n in co.rows:
            per_code[code] = per_code.get(code, 0) + n
        fig = go.Figure(go.Bar(x=[str(c) for c in per_code], y=list(per_code.values())))
        fig.update_layout(xaxis_type="category")
        out.append(_figure_json(fig, co.title))
    if (so := t.get("top_sources")) and so.rows:
        rows = list(reversed(so.rows))  # largest at the top of a horizontal bar chart
        fig = go.Figure(
            go.Bar(
                orientation="h", y=[_label(r[0]) for r in rows], x=[r[1] for r in rows],
                hovertext=[_label(f"{r[3]} {r[4]}") for r in rows],
            )
        )  # fmt: skip
        fig.update_layout(yaxis_type="category", height=max(420, 22 * len(rows)))
        out.append(_figure_json(fig, so.title))
    return out


def _correlation_plots(t: dict[str, Table]) -> list[str]:
    """Per-node sources, distribution, node matrix and scan speed, for the tables present."""
    out = []
    for name, figure in FIGURES.items():
        table = t.get(name)
        if table is None or not table.rows:
            continue
        title = "Sources per node and behaviour" if name == "nodes" else table.title
        height = max(420, 60 + 36 * len(table.rows)) if name == "matrix" else 420
        out.append(_figure_json(figure(table), title, height))
    return out


def _plot_divs(first: int, count: int) -> str:
    divs = "".join(f'<div><div id="plot-{i}"></div></div>' for i in range(first, first + count))
    return f'<div class="plots">{divs}</div>'


def _table_html(table: Table) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        cells = []
        for v in row:
            if isinstance(v, int | float) and not isinstance(v, bool):
                cells.append(f'<td class="n">{v:,}</td>')
            else:
                full, shown = str(v), visible(v)
                title = (
                    f' title="{esc(visible(full, 2000))}"' if shown != visible(full, 10**9) else ""
                )
                cells.append(f"<td{title}>{esc(shown)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = f'<p class="note">{esc(table.note)}</p>' if table.note else ""
    empty = "" if table.rows else '<p class="note">(nothing)</p>'
    return (
        f'<section id="{esc(table.name)}"><h2>{esc(table.title)}</h2>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"{empty}{note}</section>"
    )


def render_html(tables: Sequence[Table], source: str = "") -> str:
    """The whole report page as one string.

    Tables of report/correlation.py (pass correlation_tables(db): none for a single node) go
    into a section of their own, "Correlation across nodes", with their charts.
    """
    main = [x for x in tables if x.name not in CORRELATION]
    fleet = [x for x in tables if x.name in CORRELATION]
    plots = _plots(_by_name(main))
    fleet_plots = _correlation_plots(_by_name(fleet))
    section = []
    if fleet:  # correlation tables are passed only for a store with several nodes
        section = [
            '<h2 id="correlation" class="part">Correlation across nodes</h2>',
            _plot_divs(len(plots), len(fleet_plots)),
            *(_table_html(x) for x in fleet),
        ]
    meta = f"sipwatch {html.escape(__version__)}, written {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime())}"
    if source:
        meta += f", store {html.escape(source)}"
    # the library may not contain '</script' (it does not); guard so a future one cannot break out
    plotly_js = get_plotlyjs().replace("</script", "<\\/script")
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>sipwatch report</title>",
            f"<style>{_STYLE}</style>",
            f'<script type="text/javascript">{plotly_js}</script>',
            "</head><body><h1>sipwatch report</h1>",
            f'<p class="meta">{meta}</p>',
            _plot_divs(0, len(plots)),
            *(_table_html(x) for x in main),
            *section,
            _plot_script(plots + fleet_plots),
            "</body></html>\n",
        ]
    )


def _plot_script(figures: list[str]) -> str:
    """Draw the plots once the page is laid out, so each takes the width of its column.

    The figures are JSON inside a script: '</' is written '<\\/' (the same string in JSON) so
    no value can end the script element.
    """
    data = ",".join(figures).replace("</", "<\\/")
    config = json.dumps(_CONFIG)
    return (
        "<script>window.addEventListener('DOMContentLoaded',function(){"
        f"[{data}].forEach(function(f,i){{"
        f"f.layout.autosize=true;Plotly.newPlot('plot-'+i,f.data,f.layout,{config});}});}});"
        "</script>"
    )


def write_html(tables: Sequence[Table], path: Path, source: str = "") -> Path:
    path.write_text(render_html(tables, source), encoding="utf-8")
    return path
