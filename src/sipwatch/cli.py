"""`sipwatch ...`: the command line. Thin: arguments, progress and printing only."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sipwatch import __version__

app = typer.Typer(
    help="sipwatch: find and explain attacks on SIP/VoIP infrastructure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

DEFAULT_DB = "sipwatch.sqlite"
FORMATS = ("table", "csv", "json", "html")


def setup_logging(verbose: bool) -> None:
    """Log lines for the long-running commands (sensor, central, run)."""
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per uplink request otherwise


def fail(message: str, code: int = 2) -> typer.Exit:
    """One clear line for an error the user can fix; no traceback."""
    one_line = " ".join(message.split())  # library messages (libpcap) may carry newlines
    err.print("[bold red]error:[/] ", end="")
    err.print(one_line, highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(code)


@app.command()
def analyze(
    captures: Annotated[
        list[str],
        typer.Argument(help="pcap/pcapng files (gzip ok), folders, or - for standard input"),
    ],
    db: Annotated[
        str, typer.Option("--db", help="trace store: SQLite file or postgresql:// URL")
    ] = DEFAULT_DB,
    report: Annotated[
        Path | None, typer.Option("--report", help="also write a self-contained HTML report")
    ] = None,
    bpf: Annotated[
        str | None, typer.Option("--filter", help="BPF filter, e.g. 'udp port 5060'")
    ] = None,
    sensor: Annotated[str, typer.Option(help="sensor name stored with every message")] = "",
    node: Annotated[str, typer.Option(help="node name stored with every message")] = "",
    region: Annotated[
        str | None,
        typer.Option(help="country of the observed network (e.g. DE): classifies national numbers"),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="analysis processes (default: one per core for captures over 64 MB)"),
    ] = None,
    wordlist: Annotated[
        str | None,
        typer.Option(
            "--wordlist",
            metavar="FILE",
            help="extra candidate passwords (one a line) for recovering tried passwords",
        ),
    ] = None,
    rules: Annotated[
        list[str] | None,
        typer.Option(
            "--rules",
            metavar="FILE",
            help="extra rule pack (YAML) besides the default (repeatable)",
        ),
    ] = None,
    detect: Annotated[
        bool,
        typer.Option(
            "--detect/--no-detect",
            help="run the rules and attack chains (one process); --no-detect: labels only",
        ),
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Read captures, store every SIP message with its attack stage, print a summary."""
    from sipwatch.analyze import AnalyzeError, run_analyze
    from sipwatch.progress import progress_for

    show_progress = not quiet and err.is_terminal
    try:
        with progress_for(err, captures, enabled=show_progress) as progress:
            result = run_analyze(
                captures,
                db=db,
                bpf=bpf,
                sensor=sensor,
                node=node,
                region=region,
                workers=workers,
                wordlist=wordlist,
                detect=detect,
                rules=rules or (),
                on_progress=progress.update,
                on_warning=lambda msg: err.print(f"[yellow]warning:[/] {msg}", highlight=False),
            )
    except AnalyzeError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted; what was read so far is stored", code=130) from None

    from sipwatch.summary import print_summary

    print_summary(out, result)
    if report is not None:
        _write_html(db, report)


@app.command("report")
def report_cmd(
    db: Annotated[
        str, typer.Option("--db", help="trace store: SQLite file or postgresql:// URL")
    ] = DEFAULT_DB,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv, json or html")] = "table",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="output file; for csv a folder gets one file per table"
        ),
    ] = None,
    table: Annotated[
        list[str] | None, typer.Option("--table", "-t", help="only these tables (repeatable)")
    ] = None,
    top: Annotated[int, typer.Option(help="rows in top-N tables")] = 20,
) -> None:
    """Report on a trace store without re-reading the captures."""
    from sipwatch.report import render
    from sipwatch.report.catalog import report_tables
    from sipwatch.report.html import write_html
    from sipwatch.store.base import StoreError, open_store

    if fmt not in FORMATS:
        raise fail(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    try:
        with open_store(db, readonly=True) as store:
            tables = report_tables(store, table, top=top)
    except StoreError as exc:
        raise fail(str(exc)) from None
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    try:
        if fmt == "table":
            render.print_tables(tables, out)
        elif fmt == "json":
            _emit(render.json_all(tables), output)
        elif fmt == "html":
            path = write_html(tables, output or Path("report.html"), source=db)
            err.print(f"wrote {path}")
        elif output is not None and (output.is_dir() or not output.suffix):
            paths = render.write_csv_files(tables, output)
            err.print(f"wrote {len(paths)} CSV files to {output}")
        else:
            _emit(render.csv_all(tables), output)
    except OSError as exc:
        raise fail(f"cannot write {exc.filename or output}: {exc.strerror}") from None


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")


def _write_html(db: str, path: Path) -> None:
    from sipwatch.report.catalog import report_tables
    from sipwatch.report.html import write_html
    from sipwatch.store.base import StoreError, open_store

    try:
        with open_store(db, readonly=True) as store:
            tables = report_tables(store)
        write_html(tables, path, source=db)
    except StoreError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror}") from None
    err.print(f"wrote {path}")


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"sipwatch {__version__}")


from sipwatch.central_cli import central, rulepack_app, sensors_app, users_app  # noqa: E402
from sipwatch.deploy_cli import nodes_app, tunnel_app  # noqa: E402
from sipwatch.evaluate_cli import evaluate  # noqa: E402  (its imports are lazy)
from sipwatch.run_cli import run  # noqa: E402
from sipwatch.sensor_cli import sensor  # noqa: E402  (its imports are lazy)

app.command()(sensor)
app.command()(evaluate)
app.command()(central)
app.command()(run)
app.add_typer(sensors_app, name="sensors")
app.add_typer(users_app, name="users")
app.add_typer(rulepack_app, name="rulepack")
app.add_typer(nodes_app, name="nodes")
app.add_typer(tunnel_app, name="tunnel")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
