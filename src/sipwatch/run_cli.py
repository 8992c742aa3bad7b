"""`sipwatch run`: a honeypot sensor and the central service in one process, on SQLite.

Everything lives in one folder (default ./sipwatch-data): the central store, the sensor's own
store and spool, the generated admin password and the sensor's token. The first run creates
them; later runs reuse them, so the dashboard login stays the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

SENSOR_NAME = "local"


def _secret_file(path: Path, make) -> str:
    """Read a one-line secret, or make it and write it readable by the owner only."""
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text().strip()
        if text:
            return text
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def run(
    data: Annotated[Path, typer.Option(help="folder for stores, spool and secrets")] = Path(
        "sipwatch-data"
    ),
    listen: Annotated[str, typer.Option(help="dashboard/API address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="dashboard/API port")] = 8080,
    sensor_config: Annotated[
        Path | None, typer.Option(help="honeypot config (TOML); default: loopback, port 5060")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Run a honeypot sensor and the central service with its dashboard, on SQLite."""
    from sipwatch.central.config import load_central_config
    from sipwatch.central.registry import Registry
    from sipwatch.central.server import CentralError, open_central_store
    from sipwatch.cli import err, fail, setup_logging
    from sipwatch.honeypot.config import ConfigError, load_config
    from sipwatch.honeypot.sensor import Sensor, SensorError

    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"cannot create {data}: {exc.strerror or exc}") from None
    try:
        ccfg = load_central_config(None, db=str(data / "central.sqlite"), listen=listen, port=port)
        scfg = load_config(sensor_config)
    except ConfigError as exc:
        raise fail("; ".join(exc.problems)) from None
    try:
        store = open_central_store(ccfg)
    except CentralError as exc:
        raise fail(str(exc)) from None
    try:
        reg = Registry(store)
        password = _secret_file(data / "admin-password", lambda: secrets.token_urlsafe(12))
        if reg.check_user("admin", password) is None:
            reg.add_user("admin", password, "admin")
        token = _secret_file(data / "sensor-token", lambda: "")
        known = reg.sensor(SENSOR_NAME)
        if known is None or known.revoked or reg.authenticate(token) is None:
            token = reg.add_sensor(SENSOR_NAME) if known is None else reg.rotate_token(SENSOR_NAME)
            (data / "sensor-token").write_text(token + "\n")
        central_url = f"http://{'127.0.0.1' if listen in ('0.0.0.0', '::') else listen}:{port}"
        if ":" in listen and listen != "::":
            central_url = f"http://[{listen}]:{port}"
        sensor_section = scfg.sensor
        if sensor_config is None:  # the default sensor keeps its own store inside the folder
            sensor_section = replace(
                scfg.sensor, name=SENSOR_NAME, store=str(data / "sensor.sqlite")
            )
        scfg = replace(
            scfg,
            sensor=sensor_section,
            central=replace(
                scfg.central, url=central_url, token=token, token_file="",
                spool_dir=str(data / "spool"), heartbeat_seconds=5.0,
            ),
        )  # fmt: skip
        sensor = Sensor(scfg)
    except SensorError as exc:
        store.close()
        raise fail(str(exc)) from None
    setup_logging(verbose)
    err.print(
        f"dashboard: http://{listen}:{port}  user admin, password in {data / 'admin-password'}"
    )
    try:
        asyncio.run(_serve_both(ccfg, store, sensor))
    except SensorError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot listen: {exc.strerror or exc}") from None
    finally:
        store.close()


async def _serve_both(ccfg, store, sensor) -> None:
    from sipwatch.central.server import maintenance_loop, make_server, on_signals
    from sipwatch.honeypot.sensor import serve

    server = make_server(ccfg, store)
    stop = asyncio.Event()

    def shutdown() -> None:
        stop.set()
        server.should_exit = True

    on_signals(shutdown)
    central_task = asyncio.create_task(server.serve())
    retention = asyncio.create_task(maintenance_loop(server.config.app.state.central))
    while not server.started:  # the sensor's uplink needs the API up
        if central_task.done():
            central_task.result()  # raises the bind error
            return
        await asyncio.sleep(0.05)
    try:
        # the whole process serves (sensor and central): the collector settings of both
        await serve(sensor, stop, tune_gc=True)
    finally:
        server.should_exit = True
        retention.cancel()
        await central_task
        server.config.app.state.central.close()
