"""The summary `sipwatch analyze` prints: what this run read, then the store's key tables."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from rich.console import Console
from rich.table import Table as RichTable

from sipwatch.analyze import AnalyzeResult

STAGE_ORDER = ("SS", "ES", "RHJ", "TF", "")
_READER_CACHE_KIB = 2048  # per summary connection (sorts spill to temporary files beyond it)


def run_table(result: AnalyzeResult) -> RichTable:
    cap = result.capture
    t = RichTable(title="This run", show_header=False, title_justify="left")
    t.add_column("what")
    t.add_column("count", justify="right")
    rate = cap.packets / result.elapsed if result.elapsed > 0 else 0.0
    rows = [
        ("capture files", f"{cap.files:,}"),
        ("packets read", f"{cap.packets:,}"),
        ("SIP messages", f"{result.pipeline.records:,}"),
        ("new in the store", f"{result.inserted:,}"),
        ("already stored (skipped)", f"{result.duplicates:,}"),
        ("time", f"{result.elapsed:,.1f} s ({rate:,.0f} packets/s)"),
    ]
    for stage in STAGE_ORDER:
        n = result.stages.get(stage, 0)
        if n:
            rows.append((f"stage {stage or 'none'}", f"{n:,}"))
    shown = {"files", "packets", "bytes", "sip_messages"}
    for name, value in cap.as_dict().items():
        if value and name not in shown:
            rows.append((name.replace("_", " "), f"{value:,}"))
    if result.events:
        rows.append(("detection events", f"{result.events:,}"))
    if result.pipeline.dropped:
        rows.append(("dropped (queue full)", f"{result.pipeline.dropped:,}"))
    for t_row in rows:
        t.add_row(*t_row)
    return t


def tally_tables(result: AnalyzeResult, names: list[str], top: int) -> list | None:
    """The named tables from the run's own counts (AnalyzeResult.tally), or None when they are
    not the store's: the store held messages before the run, a message was not stored (a
    duplicate inside the capture), another writer added rows, or the tally passed its bounds.
    Same rows as the SQL."""
    from sipwatch.report import tables as rt

    tally = result.tally
    if tally is None or set(names) - set(rt.COUNTED_TABLES):
        return None
    if result.inserted != tally.messages or result.duplicates:  # type: ignore[attr-defined]
        return None
    # and nothing else wrote to the store meanwhile (a sensor on the same file): the count is
    # cheap (the primary key's index), the scans it saves are not
    if result.store is None or result.store.query("SELECT COUNT(*) FROM messages")[0][0] != (
        tally.messages  # type: ignore[attr-defined]
    ):
        return None
    counted = tally.tables()  # type: ignore[attr-defined]
    return None if counted is None else rt.counted_tables(counted, names, top)


def store_tables(result: AnalyzeResult, names: list[str], top: int) -> list:
    """The named report tables of the run's store, each read on its own read-only connection
    at the same time: they are full scans of the messages table that run in the database
    engine without the GIL, and on a large store they are most of the wait after the run."""
    from sipwatch.report.tables import all_tables
    from sipwatch.store.base import open_store

    def one(name: str):  # noqa: ANN202
        store = open_store(result.db, readonly=True)
        if store.engine == "sqlite":  # a full scan gains nothing from a big page cache
            store.query(f"PRAGMA cache_size=-{_READER_CACHE_KIB}")
        try:
            return all_tables(store, [name], top=top)[0]
        finally:
            store.close()

    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(one, names))


def print_summary(console: Console, result: AnalyzeResult, top: int = 10) -> None:
    from sipwatch.report import render

    console.print(run_table(result))
    if result.store is None:
        return
    try:
        result.store.flush()  # every row is committed before the readers look
        names = ["stages", "top_sources", "tools"] + (["events"] if result.events else [])
        tables = tally_tables(result, names, top) or store_tables(result, names, top)
        render.print_tables(tables, console)
    finally:
        result.store.close()
    console.print(
        f"store: {result.db}  (more: sipwatch report --db {result.db} [--format html -o report.html])",
        highlight=False,
    )
