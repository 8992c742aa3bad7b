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
    capture: Annotated[
        str | None,
        typer.Option("--capture", help="capture live on this interface ('any' = all); passive"),
    ] = None,
    bpf: Annotated[
        str | None, typer.Option("--filter", help="BPF filter for --capture, e.g. 'port 5060'")
    ] = None,
    hep_listen: Annotated[
        list[str] | None,
        typer.Option("--hep-listen", help="collect HEP on ADDRESS:PORT (UDP and TCP); repeatable"),
    ] = None,
    hep_export: Annotated[
        str | None, typer.Option("--hep-export", help="send every message as HEP v3 to HOST:PORT")
    ] = None,
    hep_id: Annotated[
        int | None, typer.Option("--hep-id", help="capture agent id for --hep-export")
    ] = None,
    hep_key: Annotated[
        str | None,
        typer.Option(
            "--hep-key", help="HEP auth key: sent by --hep-export, else required by --hep-listen"
        ),
    ] = None,
    hep_transport: Annotated[
        str | None, typer.Option("--hep-transport", help="udp (default) or tcp for --hep-export")
    ] = None,
    nodes: Annotated[
        Path | None,
        typer.Option("--nodes", help="node inventory (TOML): attribute traffic to nodes"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Run the SIP honeypot sensor: listeners, live analysis and the trace store."""
    from sipwatch.cli import err, fail, setup_logging
    from sipwatch.honeypot.config import EXAMPLE_CONFIG, ConfigError, load_config, with_central
    from sipwatch.honeypot.config_passive import with_passive

    if example_config:
        sys.stdout.write(EXAMPLE_CONFIG)
        return
    try:
        cfg = with_central(load_config(config), central, token, ca)
        cfg = with_passive(
            cfg, capture=capture, bpf=bpf, hep_listen=hep_listen, hep_export=hep_export,
            hep_id=hep_id, hep_key=hep_key, hep_transport=hep_transport,
            from_file=config is not None,
        )  # fmt: skip
        if nodes is not None:
            from sipwatch.honeypot.nodes_attribution import with_nodes

            cfg = with_nodes(cfg, nodes)
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
