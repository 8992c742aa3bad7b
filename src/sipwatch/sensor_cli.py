"""`sipwatch sensor`: run the honeypot sensor, print the example config, check a config."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def sensor(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="sensor config (TOML); default: safe embedded one"),
    ] = None,
    example_config: Annotated[
        bool, typer.Option("--example-config", help="print a fully commented config and exit")
    ] = False,
    check_config: Annotated[
        bool, typer.Option("--check-config", help="validate the config and exit")
    ] = False,
    central: Annotated[
        str | None, typer.Option("--central", help="report to this central service URL")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="SIPWATCH_TOKEN", help="the sensor's token (or $SIPWATCH_TOKEN)"
        ),
    ] = None,
    ca: Annotated[
        Path | None, typer.Option("--ca", help="PEM bundle that signs the central's certificate")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Run the SIP honeypot sensor: listeners, live analysis and the trace store."""
    from sipwatch.cli import err, fail, setup_logging
    from sipwatch.honeypot.config import EXAMPLE_CONFIG, ConfigError, load_config, with_central

    if example_config:
        sys.stdout.write(EXAMPLE_CONFIG)
        return
    try:
        cfg = with_central(load_config(config), central, token, ca)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print("[bold red]error:[/] ", end="")
            err.print(problem, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    from sipwatch.honeypot.sensor import Sensor, SensorError, run_sensor

    if check_config:
        try:
            Sensor(cfg)  # personality and accounts are checked when the sensor is built
        except SensorError as exc:
            raise fail(f"{config or 'default config'}: {exc}") from None
        err.print(f"{config or 'default config'}: OK")
        return
    setup_logging(verbose)
    try:
        run_sensor(cfg)
    except SensorError as exc:
        raise fail(str(exc)) from None
