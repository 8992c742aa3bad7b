"""Report outputs: terminal, CSV, JSON and the offline HTML page, with attacker strings."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from storedata import EVIL_UA, trace

from sipwatch.report import render
from sipwatch.report.html import render_html, write_html
from sipwatch.report.tables import Table, all_tables
from sipwatch.store.base import open_store


@pytest.fixture(scope="module")
def tables() -> list[Table]:
    db = Path(__import__("tempfile").mkdtemp()) / "t.sqlite"
    with open_store(db) as s:
        s.add(trace())
        s.flush()
        return all_tables(s)


def test_csv_every_table(tables: list[Table], tmp_path: Path) -> None:
    paths = render.write_csv_files(tables, tmp_path / "csv")
    assert [p.name for p in paths] == [f"{x.name}.csv" for x in tables]
    rows = list(csv.reader(io.StringIO((tmp_path / "csv" / "user_agents.csv").read_text())))
    assert rows == [
        ["user_agent", "requests", "sources"],
        [EVIL_UA, "3", "1"],
        ["friendly-scanner", "3", "1"],
    ]
    stream = render.csv_all(tables)
    assert stream.count("# ") >= len(tables) and "# per_day: SIP packets per day by stage" in stream


def test_json_every_table(tables: list[Table]) -> None:
    data = json.loads(render.json_all(tables))
    assert list(data) == [x.name for x in tables]
    assert data["stages"]["rows"][0] == {
        "stage": "SS",
        "messages": 2,
        "requests": 1,
        "responses": 1,
        "sources": 1,
    }
    assert data["user_agents"]["rows"][0]["user_agent"] == EVIL_UA


def test_terminal_shows_markup_and_control_characters_literally() -> None:
    table = Table("x", "X", ["value"], [("[bold]hi[/bold]",), ("\x1b[31mred",)])
    console = Console(file=io.StringIO(), width=100, color_system=None)
    render.print_tables([table], console)
    out = console.file.getvalue()
    assert "[bold]hi[/bold]" in out  # not interpreted as Rich markup
    assert "\x1b" not in out and "\\x1b[31mred" in out


def test_html_is_offline_escaped_and_complete(tables: list[Table], tmp_path: Path) -> None:
    page = write_html(tables, tmp_path / "r.html", source="<db>").read_text()
    assert page.count("plotly.js v") == 1  # the library inlined once
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+https?:", page)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text in its table
    assert "&lt;db&gt;" in page
    for x in tables:
        assert f'<section id="{x.name}">' in page
    assert page.count('id="plot-') == 5  # per day, stages, methods, codes, sources
    assert page.count("</script>") == 2  # the library and the plots: no value ends a script


def test_html_of_empty_store(tmp_path: Path) -> None:
    with open_store(tmp_path / "e.sqlite") as s:
        page = render_html(all_tables(s))
    assert page.count("plotly.js v") == 1 and "(nothing)" in page


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted_as_text() -> None:
    from sipwatch.report.render import csv_text
    from sipwatch.report.tables import Table

    t = Table("x", "X", ["ua", "n"], [('=HYPERLINK("http://e")', -5), ("@SUM(1)", 3), ("ok", 1)])
    lines = csv_text(t).splitlines()
    assert lines[1] == '"\'=HYPERLINK(""http://e"")",-5'  # numbers stay numbers
    assert lines[2] == "'@SUM(1),3" and lines[3] == "ok,1"
