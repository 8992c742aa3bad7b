"""`sipwatch evaluate`: score the analyzer on labelled captures; Rich tables or JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer


def evaluate(
    captures: Annotated[list[str], typer.Argument(help="pcap/pcapng files (gzip ok) or folders")],
    labels: Annotated[
        Path, typer.Option("--labels", "-l", help="CSV of source_ip,label (header optional)")
    ],
    rules: Annotated[
        list[str] | None, typer.Option("--rules", help="extra rule pack (YAML); repeatable")
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(help="country of the observed network (e.g. DE): classifies national numbers"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the scores as JSON")] = False,
) -> None:
    """Score the rules on captures whose sources are labelled: precision, recall, F1 per label."""
    from sipwatch.cli import fail, out
    from sipwatch.evaluate import EvaluateError
    from sipwatch.evaluate import evaluate as run

    try:
        result = run(captures, labels, rules=rules or (), region=region)
    except EvaluateError as exc:
        raise fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    from sipwatch.evaluate_render import render

    for table in render(result):
        out.print(table)
