"""`sipwatch nodes check` and `sipwatch tunnel plan|up|down`: the central sensor approach."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

nodes_app = typer.Typer(help="The node inventory (central sensor approach).", no_args_is_help=True)
tunnel_app = typer.Typer(
    help="Tunnels from the sites to the central sensor: plans, and the central side.",
    no_args_is_help=True,
)

Inventory = Annotated[Path, typer.Argument(help="node inventory (TOML)")]


def _load(path: Path):
    from sipwatch.cli import err
    from sipwatch.deploy.nodes import InventoryError, load_inventory

    try:
        return load_inventory(path)
    except InventoryError as exc:
        for problem in exc.problems:
            err.print("[bold red]error:[/] ", end="")
            err.print(problem, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


@nodes_app.command("check")
def nodes_check(inventory: Inventory) -> None:
    """Validate the inventory: every problem, one line each."""
    from sipwatch.cli import err

    inv = _load(inventory)
    err.print(f"{inventory}: OK, {len(inv.nodes)} nodes ({', '.join(inv.names())})")


@tunnel_app.command("plan")
def tunnel_plan(
    inventory: Inventory,
    node: Annotated[str | None, typer.Option("--node", help="only this node")] = None,
    firewall: Annotated[
        str, typer.Option("--firewall", help="site firewall commands: nft or iptables")
    ] = "nft",
    side: Annotated[
        str, typer.Option("--side", help="all, site (the site scripts) or central")
    ] = "all",
    userspace_gre: Annotated[
        bool, typer.Option("--userspace-gre", help="GRE devices come from `sipwatch tunnel gre`")
    ] = False,
) -> None:
    """Print shell scripts: one per site, then the central host's."""
    from sipwatch.cli import fail
    from sipwatch.deploy.nodes import InventoryError
    from sipwatch.deploy.tunnel import plan

    if firewall not in ("nft", "iptables"):
        raise fail(f"--firewall: expected nft or iptables (got {firewall!r})")
    if side not in ("all", "site", "central"):
        raise fail(f"--side: expected all, site or central (got {side!r})")
    inv = _load(inventory)
    try:
        sys.stdout.write(plan(inv, node, firewall, side, userspace_gre))
    except InventoryError as exc:
        raise fail(exc.problems[0]) from None


def _apply(inventory: Path, up: bool, userspace: bool = False) -> None:
    from sipwatch.cli import err, fail
    from sipwatch.deploy.tunnel import TunnelError, central_down, central_up

    inv = _load(inventory)
    try:
        done = central_up(inv, userspace=userspace) if up else central_down(inv)
    except TunnelError as exc:
        raise fail(str(exc)) from None
    except FileNotFoundError as exc:
        raise fail(f"{exc.filename}: not installed (iproute2 is needed)") from None
    for line in done:
        err.print(line, highlight=False, markup=False)
    if not done:
        err.print("nothing to do")


@tunnel_app.command("up")
def tunnel_up(
    inventory: Inventory,
    userspace_gre: Annotated[
        bool, typer.Option("--userspace-gre", help="GRE devices come from `sipwatch tunnel gre`")
    ] = False,
) -> None:
    """Create the central side on this host (tunnel ends, addresses, reply routing)."""
    _apply(inventory, True, userspace_gre)


@tunnel_app.command("down")
def tunnel_down(inventory: Inventory) -> None:
    """Remove exactly what `tunnel up` added on this host."""
    _apply(inventory, False)


@tunnel_app.command("gre")
def tunnel_gre(
    inventory: Inventory,
    side: Annotated[str, typer.Option("--side", help="central or site")] = "central",
    node: Annotated[str | None, typer.Option("--node", help="only this node")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Terminate GRE in userspace (no kernel GRE module): TUN devices sw-NODE; runs until
    SIGTERM or Ctrl-C."""
    import signal

    from sipwatch.cli import err, fail, setup_logging
    from sipwatch.deploy.greu import GreEndpoint, GreError, links_for
    from sipwatch.deploy.nodes import InventoryError

    if side not in ("central", "site"):
        raise fail(f"--side: expected central or site (got {side!r})")
    setup_logging(verbose)
    inv = _load(inventory)
    try:
        endpoint = GreEndpoint(links_for(inv, side, node))
        endpoint.open()
    except (GreError, InventoryError) as exc:
        raise fail(str(exc)) from None
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: endpoint.stop())
    names = ", ".join(
        f"{lk.device} ({lk.local} <-> {lk.remote} key {lk.key})" for lk in endpoint.links
    )
    err.print(f"GRE endpoint ready: {names}", highlight=False, markup=False)
    try:
        endpoint.run()
    finally:
        stats = dict(endpoint.stats)
        endpoint.close()
    err.print(f"GRE endpoint stopped: {stats}", highlight=False, markup=False)
