"""Report tables as terminal tables (Rich), CSV and JSON.

Cell values come from attackers (User-Agents, extensions, methods). The terminal renderer
turns control characters into visible escapes (no ANSI injection) and never interprets Rich
markup; CSV and JSON keep the values exactly (they are data, quoted by their writers).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from sipwatch.report.tables import Table

SHOW_MAX = 120  # characters of one cell shown in a terminal or HTML table
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def visible(value: object, limit: int = SHOW_MAX) -> str:
    """A cell as safe, bounded display text: control characters as \\xNN, long values cut."""
    s = "" if value is None else str(value)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)


def rich_table(table: Table) -> RichTable:
    out = RichTable(title=Text(table.title), caption=Text(table.note) if table.note else None)
    for i, col in enumerate(table.columns):
        numeric = bool(table.rows) and all(isinstance(r[i], int | float) for r in table.rows)
        out.add_column(Text(col), justify="right" if numeric else "left", overflow="fold")
    for row in table.rows:
        out.add_row(*(Text(visible(v)) for v in row))  # Text: markup in values stays literal
    return out


def print_tables(tables: Iterable[Table], console: Console | None = None) -> None:
    console = console or Console()
    for table in tables:
        console.print(rich_table(table))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula gets a leading ' (OWASP's advice):
    attackers choose User-Agents, extensions and numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_text(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows([_cell(v) for v in row] for row in table.rows)
    return buf.getvalue()


def csv_all(tables: Sequence[Table]) -> str:
    """All tables in one CSV stream: each block starts with a '# name: title' line."""
    return "\n".join(f"# {t.name}: {t.title}\n{csv_text(t)}" for t in tables)


def write_csv_files(tables: Sequence[Table], folder: Path) -> list[Path]:
    """One NAME.csv per table in `folder` (created); returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in tables:
        path = folder / f"{t.name}.csv"
        path.write_text(csv_text(t), encoding="utf-8")
        paths.append(path)
    return paths


def table_dict(table: Table) -> dict:
    return {
        "title": table.title,
        "columns": table.columns,
        "rows": [dict(zip(table.columns, row, strict=True)) for row in table.rows],
        "note": table.note,
    }


def json_all(tables: Sequence[Table]) -> str:
    """{table name: {title, columns, rows: [{column: value}], note}} as indented JSON."""
    return orjson.dumps(
        {t.name: table_dict(t) for t in tables}, option=orjson.OPT_INDENT_2
    ).decode()
