"""Every report table by name: the store tables (tables.py) and the correlation tables
(correlation.py), so the CLI, the API and the dashboard offer the same names."""

from __future__ import annotations

from collections.abc import Sequence

from sipwatch.report import correlation, tables
from sipwatch.report.tables import Queryable, Table

NAMES: tuple[str, ...] = (*tables.REPORTS, *correlation.CORRELATION)
TOP_N = tables.TOP_N | correlation.CORRELATION_TOP_N


def report_tables(
    db: Queryable, names: Sequence[str] | None = None, top: int | None = None
) -> list[Table]:
    """The named tables in the order given; all of them (correlation only for a fleet of two
    nodes or more) when names is empty. KeyError (listing the known names) for an unknown one."""
    unknown = [n for n in names or () if n not in NAMES]
    if unknown:
        raise KeyError(f"unknown table {unknown[0]!r}; tables: {', '.join(NAMES)}")
    if not names:
        return tables.all_tables(db, top=top) + correlation.correlation_tables(db, top=top)
    base = [n for n in names if n in tables.REPORTS]
    fleet = [n for n in names if n in correlation.CORRELATION]
    made = {t.name: t for t in tables.all_tables(db, base, top=top)} if base else {}
    if fleet:
        made.update({t.name: t for t in correlation.correlation_tables(db, fleet, top=top)})
    return [made[n] for n in names]
