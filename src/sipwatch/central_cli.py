"""`sipwatch central`, `sipwatch sensors ...`, `sipwatch users ...`, `sipwatch rulepack ...`."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="central config (TOML), docs/central.md")
]
DbOpt = Annotated[
    str | None, typer.Option("--db", help="store: a SQLite file or postgresql://... URL")
]


def _config(config: Path | None, **overrides):
    from sipwatch.central.config import load_central_config
    from sipwatch.cli import err
    from sipwatch.honeypot.config import ConfigError

    try:
        return load_central_config(config, **overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print("[bold red]error:[/] ", end="")
            err.print(problem, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _registry(config: Path | None, db: str | None):
    """The registry over the configured store (closed at exit)."""
    import atexit

    from sipwatch.central.registry import Registry
    from sipwatch.central.server import CentralError, open_central_store
    from sipwatch.cli import fail

    cfg = _config(config, db=db)
    try:
        store = open_central_store(cfg)
    except CentralError as exc:
        raise fail(str(exc)) from None
    atexit.register(store.close)
    return Registry(store)


def central(
    config: ConfigOpt = None,
    db: DbOpt = None,
    listen: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8080)")] = None,
    tls_cert: Annotated[str | None, typer.Option(help="PEM certificate: serve HTTPS")] = None,
    tls_key: Annotated[str | None, typer.Option(help="PEM private key for --tls-cert")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Run the central service: sensor API, reports, blocklist feed and dashboard."""
    from sipwatch.central.server import CentralError, open_central_store, serve_central
    from sipwatch.cli import fail, setup_logging

    cfg = _config(config, db=db, listen=listen, port=port, tls_cert=tls_cert, tls_key=tls_key)
    setup_logging(verbose)
    try:
        store = open_central_store(cfg)
    except CentralError as exc:
        raise fail(str(exc)) from None
    try:
        asyncio.run(serve_central(cfg, store))
    except OSError as exc:  # the port is taken, or not ours to bind
        raise fail(f"cannot listen on {cfg.listen}:{cfg.port}: {exc.strerror or exc}") from None
    finally:
        store.close()


# --------------------------------------------------------------------------- sensors
sensors_app = typer.Typer(help="Register sensors and manage their tokens.", no_args_is_help=True)


@sensors_app.command("add")
def sensors_add(
    name: str,
    node: Annotated[
        list[str] | None,
        typer.Option("--node", help="node it reports for (repeat; default: its name)"),
    ] = None,
    deployment: Annotated[str, typer.Option(help="deployment group, e.g. central")] = "",
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Register a sensor and print its token (shown once)."""
    from sipwatch.central.registry import RegistryError
    from sipwatch.cli import err, fail

    reg = _registry(config, db)
    try:
        token = reg.add_sensor(name, node or None, deployment)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    err.print(f"sensor {name} registered; its token (shown once, keep it secret):")
    print(token)


@sensors_app.command("list")
def sensors_list(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Every sensor: nodes, deployment, last heartbeat, revoked or stale."""
    import time

    from rich.table import Table

    from sipwatch.central.api_admin import sensor_out
    from sipwatch.cli import out
    from sipwatch.report.tables import utc

    cfg = _config(config, db=db)
    reg = _registry(config, db)
    table = Table("sensor", "nodes", "deployment", "last seen", "state", "version", "spool")
    now = time.time()
    for s in reg.sensors():
        o = sensor_out(s, cfg.stale_after, now)
        state = "revoked" if o.revoked else "stale" if o.stale else "ok"
        table.add_row(
            o.name, ",".join(o.nodes), o.deployment, utc(o.last_seen), state,
            str(o.status.get("version", "")), str(o.status.get("spool_batches", "")),
        )  # fmt: skip
    out.print(table)


@sensors_app.command("revoke")
def sensors_revoke(name: str, config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Revoke a sensor's token at once (its data stays)."""
    from sipwatch.central.registry import RegistryError
    from sipwatch.cli import err, fail

    try:
        _registry(config, db).revoke_sensor(name)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    err.print(f"sensor {name}: token revoked")


@sensors_app.command("token")
def sensors_token(name: str, config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Issue a new token for a sensor (the old one stops working) and print it."""
    from sipwatch.central.registry import RegistryError
    from sipwatch.cli import fail

    try:
        print(_registry(config, db).rotate_token(name))
    except RegistryError as exc:
        raise fail(str(exc)) from None


# --------------------------------------------------------------------------- users
users_app = typer.Typer(help="Dashboard and API users (admin or viewer).", no_args_is_help=True)


def read_password(password_file: Path | None) -> str:
    """From a file, the SIPWATCH_PASSWORD variable, or a prompt (never an argument)."""
    from sipwatch.cli import fail

    if password_file is not None:
        try:
            return password_file.read_text().strip()
        except OSError as exc:
            raise fail(f"cannot read {password_file}: {exc.strerror or exc}") from None
    if os.environ.get("SIPWATCH_PASSWORD"):
        return os.environ["SIPWATCH_PASSWORD"]
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise fail("the passwords differ")
    return first


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[str, typer.Option(help="admin or viewer")] = "viewer",
    password_file: Annotated[
        Path | None, typer.Option(help="read the password from a file")
    ] = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Add a user (or set an existing user's role and password)."""
    from sipwatch.central.registry import RegistryError
    from sipwatch.cli import err, fail

    reg = _registry(config, db)
    try:
        reg.add_user(name, read_password(password_file), role)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    err.print(f"user {name} ({role}) saved")


@users_app.command("list")
def users_list(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Users and their roles (tab-separated: name, role, created)."""
    from sipwatch.report.tables import utc

    for name, role, created in _registry(config, db).users():
        print(f"{name}\t{role}\t{utc(created)}")


@users_app.command("remove")
def users_remove(name: str, config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Remove a user."""
    from sipwatch.central.registry import RegistryError
    from sipwatch.cli import err, fail

    try:
        _registry(config, db).remove_user(name)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    err.print(f"user {name} removed")


# --------------------------------------------------------------------------- rule packs
rulepack_app = typer.Typer(
    help="The rule pack the central hands to its sensors.", no_args_is_help=True
)


@rulepack_app.command("publish")
def rulepack_publish(file: Path, config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Validate a rule pack (YAML) and make it the active one; sensors apply it live."""
    from sipwatch.central import rulepacks
    from sipwatch.cli import err, fail
    from sipwatch.detect.rules import RuleError

    reg = _registry(config, db)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {file}: {exc}") from None
    try:
        pack = rulepacks.publish(reg.store, text, str(file))
    except RuleError as exc:
        for problem in exc.problems:
            err.print("[bold red]error:[/] ", end="")
            err.print(problem, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    err.print(f"rule pack {pack.name!r} is active as version {pack.version} ({pack.sha256[:12]})")


@rulepack_app.command("show")
def rulepack_show(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Print the active rule pack."""
    from sipwatch.central import rulepacks

    pack = rulepacks.ensure_default(_registry(config, db).store)
    print(f"# version {pack.version}, sha256 {pack.sha256}")
    sys.stdout.write(pack.text)
