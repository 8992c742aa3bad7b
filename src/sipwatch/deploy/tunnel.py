"""Tunnel plans for the central sensor approach, and applying the central side on this host.

Every command is an argument list built from the checked inventory (names match a strict
pattern, addresses are parsed and re-printed by ``ipaddress``); nothing comes from traffic.
``plan_*`` return shell scripts (the same argument lists, quoted with ``shlex.join``);
``central_up`` / ``central_down`` run the central side's lists without a shell.

What sipwatch adds is tagged so ``down`` removes exactly that: tunnel devices carry the link
alias ``sipwatch:NODE``, policy rules the routing protocol number ``RULE_PROTO`` (routes in a
node's table go with its device); on the sites, the nft table is ``sipwatch_NODE`` and the
iptables rules carry the comment ``sipwatch:NODE``.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable

from sipwatch.deploy.nodes import Inventory, Node

SIP_PORT = 5060
VXLAN_PORT = 4789
RULE_PROTO = "245"  # ip rule ... protocol: marks the rules sipwatch added
TUNNEL_MTU = 1500  # the underlay fragments the outer packets, so full-size SIP datagrams pass
OVERHEAD = {"vxlan": 50, "gre": 28}  # outer IPv4 + VXLAN/UDP/Ethernet, or IPv4 + GRE with key

Command = list[str]


class TunnelError(Exception):
    """A command failed or the host state conflicts with the inventory; the text says which."""


def tag(node: Node) -> str:
    return f"sipwatch:{node.name}"


def mss(node: Node) -> int:
    """TCP MSS that fits one underlay packet (1500 bytes) without fragmenting."""
    return TUNNEL_MTU - OVERHEAD[node.tunnel] - 40


def _tunnel_link(node: Node, local: str, remote: str, userspace: bool = False) -> list[Command]:
    dev = node.device
    setup = ["ip", "link", "set", "dev", dev, "mtu", str(TUNNEL_MTU), "alias", tag(node), "up"]
    if node.tunnel == "gre" and userspace:  # the device is the TUN of `sipwatch tunnel gre`
        return [setup]
    if node.tunnel == "vxlan":
        add = ["ip", "link", "add", dev, "type", "vxlan", "id", str(node.id), "remote", remote,
               "local", local, "dstport", str(VXLAN_PORT)]  # fmt: skip
    else:  # no fixed ttl: path MTU discovery off lets the underlay fragment
        add = ["ip", "link", "add", dev, "type", "gre", "remote", remote, "local", local,
               "key", str(node.id), "nopmtudisc"]  # fmt: skip
    return [add, setup]


# ------------------------------------------------------------------------- central host
def central_commands(node: Node, userspace: bool = False) -> list[Command]:
    """The central side of one node: tunnel end, tunnel address, rule + table for replies."""
    dev = node.device
    table = str(node.table)
    return [
        *_tunnel_link(node, node.central_underlay, node.site_underlay, userspace),
        ["ip", "addr", "add", f"{node.central_tunnel}/{node.prefixlen}", "dev", dev],
        [
            "ip",
            "route",
            "replace",
            "default",
            "via",
            node.site_tunnel,
            "dev",
            dev,
            "table",
            table,
        ],  # fmt: skip
        [
            "ip",
            "rule",
            "add",
            "from",
            node.central_tunnel,
            "lookup",
            table,
            "priority",
            table,
            "protocol",
            RULE_PROTO,
        ],  # fmt: skip
    ]


def central_down_commands(node: Node) -> list[Command]:
    """What ``down`` runs for one node when its device and rule are there (for the plan)."""
    return [
        [
            "ip",
            "rule",
            "del",
            "from",
            node.central_tunnel,
            "lookup",
            str(node.table),
            "priority",
            str(node.table),
            "protocol",
            RULE_PROTO,
        ],  # fmt: skip
        ["ip", "link", "del", "dev", node.device],  # its addresses and routes go with it
    ]


# ------------------------------------------------------------------------------ sites
def site_commands(node: Node, firewall: str = "nft", userspace: bool = False) -> list[Command]:
    """A site router's part: tunnel to the central host, DNAT 5060 to the node's central
    tunnel address, MSS clamping on the tunnel; nothing else."""
    dev = node.device
    cmds = [
        ["sysctl", "-w", "net.ipv4.ip_forward=1"],
        *_tunnel_link(node, node.site_underlay, node.central_underlay, userspace),
        ["ip", "addr", "add", f"{node.site_tunnel}/{node.prefixlen}", "dev", dev],
    ]
    size = str(mss(node))
    if firewall == "nft":
        t = f"sipwatch_{node.name}"
        cmds += [
            ["nft", "add", "table", "ip", t],
            [
                "nft",
                "add",
                "chain",
                "ip",
                t,
                "prerouting",
                "{ type nat hook prerouting priority dstnat; policy accept; }",
            ],  # fmt: skip
            [
                "nft",
                "add",
                "chain",
                "ip",
                t,
                "forward",
                "{ type filter hook forward priority mangle; policy accept; }",
            ],  # fmt: skip
        ]
        for addr in node.public:
            for proto in ("udp", "tcp"):
                cmds.append(["nft", "add", "rule", "ip", t, "prerouting", "ip", "daddr", addr,
                             proto, "dport", str(SIP_PORT), "dnat", "to", node.central_tunnel])  # fmt: skip
        for way in ("oifname", "iifname"):
            cmds.append(["nft", "add", "rule", "ip", t, "forward", way, dev, "tcp", "flags",
                         "syn", "tcp", "option", "maxseg", "size", "set", size])  # fmt: skip
    else:
        cmds += _iptables_rules(node, "-A")
    return cmds


def _iptables_rules(node: Node, verb: str) -> list[Command]:
    """The site's iptables rules with verb -A (add) or -D (delete)."""
    note = ["-m", "comment", "--comment", tag(node)]
    rules: list[Command] = []
    for addr in node.public:
        for proto in ("udp", "tcp"):
            rules.append(["iptables", "-t", "nat", verb, "PREROUTING", "-d", addr, "-p", proto,
                          "--dport", str(SIP_PORT), *note, "-j", "DNAT", "--to-destination",
                          node.central_tunnel])  # fmt: skip
    for way in ("-o", "-i"):
        rules.append(["iptables", "-t", "mangle", verb, "FORWARD", way, node.device, "-p",
                      "tcp", "--tcp-flags", "SYN,RST", "SYN", *note, "-j", "TCPMSS",
                      "--set-mss", str(mss(node))])  # fmt: skip
    return rules


def site_down_commands(node: Node, firewall: str = "nft") -> list[Command]:
    cmds: list[Command] = []
    if firewall == "nft":
        cmds.append(["nft", "delete", "table", "ip", f"sipwatch_{node.name}"])
    else:
        cmds += _iptables_rules(node, "-D")
    cmds.append(["ip", "link", "del", "dev", node.device])
    return cmds


# ------------------------------------------------------------------------------ scripts
def _script(title: list[str], cmds: list[Command], undo: list[Command]) -> str:
    lines = ["#!/bin/sh", *(f"# {t}" for t in title), "set -e"]
    lines += [shlex.join(c) for c in cmds]
    lines.append("# to remove it again:")
    lines += [f"#   {shlex.join(c)}" for c in undo]
    return "\n".join(lines) + "\n"


def plan_site(node: Node, firewall: str = "nft", userspace: bool = False) -> str:
    cmds = site_commands(node, firewall, userspace)
    title = [
        f"sipwatch tunnel plan: site of node {node.name} ({node.site}), {firewall} variant",
        f"{node.tunnel} tunnel {node.site_underlay} -> central {node.central_underlay};",
        f"SIP (udp+tcp {SIP_PORT}) to {', '.join(node.public)} is DNATed to {node.central_tunnel}.",
    ]
    if userspace and node.tunnel == "gre":
        title.append(f"First start the GRE endpoint: sipwatch tunnel gre INVENTORY --side site "
                     f"--node {node.name}")  # fmt: skip
    return _script(title, cmds, site_down_commands(node, firewall))


def plan_central(nodes: list[Node], userspace: bool = False) -> str:
    cmds = [c for n in nodes for c in central_commands(n, userspace)]
    undo = [c for n in nodes for c in central_down_commands(n)]
    title = [
        "sipwatch tunnel plan: central host (what `sipwatch tunnel up` does)",
        "run the sensor listening on 0.0.0.0 (or on each central_tunnel address) with",
        "  sipwatch sensor --nodes INVENTORY",
    ]
    if userspace and any(n.tunnel == "gre" for n in nodes):
        title.append("First start the GRE endpoint: sipwatch tunnel gre INVENTORY --side central")
    return _script(title, cmds, undo)


def plan(
    inv: Inventory,
    node: str | None = None,
    firewall: str = "nft",
    side: str = "all",
    userspace: bool = False,
) -> str:
    """The site scripts, then the central host's (``side``: "all", "site" or "central")."""
    nodes = [inv.node(node)] if node else list(inv.nodes)
    parts = [plan_site(n, firewall, userspace) for n in nodes] if side in ("all", "site") else []
    if side in ("all", "central"):
        parts.append(plan_central(nodes, userspace))
    return "\n".join(parts)


# ------------------------------------------------------------------ central up / down
Runner = Callable[[Command], subprocess.CompletedProcess]


def _run(cmd: Command) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def _must(run: Runner, cmd: Command) -> None:
    res = run(cmd)
    if res.returncode != 0:
        detail = (res.stderr or res.stdout or "").strip().splitlines()
        raise TunnelError(f"{shlex.join(cmd)}: {detail[-1] if detail else 'failed'}")


def _link_alias(run: Runner, dev: str) -> str | None:
    """The alias of a device, "" when it has none, None when there is no such device."""
    res = run(["ip", "-j", "link", "show", "dev", dev])
    if res.returncode != 0:
        return None
    try:
        info = json.loads(res.stdout or "[]")
    except ValueError:
        return ""
    return info[0].get("ifalias", "") if info else None


def _our_rules(run: Runner) -> list[dict]:
    res = run(["ip", "-j", "rule", "show"])
    if res.returncode != 0:
        raise TunnelError(f"ip rule show: {(res.stderr or '').strip()}")
    try:
        rules = json.loads(res.stdout or "[]")
    except ValueError:
        raise TunnelError("ip -j rule show: unreadable output") from None
    return [r for r in rules if str(r.get("protocol", "")) == RULE_PROTO]


def _remove_node(run: Runner, node: Node, rules: list[dict], keep_tun: bool = False) -> list[str]:
    """Remove the node's rule and device; ``keep_tun``: only empty a userspace GRE device."""
    done: list[str] = []
    for r in rules:
        if r.get("src") == node.central_tunnel and str(r.get("priority")) == str(node.table):
            _must(run, central_down_commands(node)[0])
            done.append(f"rule from {node.central_tunnel} lookup {node.table}")
    alias = _link_alias(run, node.device)
    if alias == tag(node) and keep_tun:
        _must(run, ["ip", "addr", "flush", "dev", node.device])
    elif alias == tag(node):
        _must(run, ["ip", "link", "del", "dev", node.device])
        done.append(f"device {node.device}")
    return done


def central_up(inv: Inventory, run: Runner = _run, userspace: bool = False) -> list[str]:
    """Create (or re-create) the central side of every node; what was done, one line each.

    ``userspace``: GRE devices are the TUN devices of a running ``sipwatch tunnel gre``."""
    for n in inv.nodes:  # refuse before changing anything
        alias = _link_alias(run, n.device)
        tun = userspace and n.tunnel == "gre"
        if tun and alias is None:
            raise TunnelError(f"device {n.device} is missing: start sipwatch tunnel gre first")
        if alias is not None and alias != tag(n) and not (tun and alias == ""):
            raise TunnelError(f"device {n.device} exists and was not made by sipwatch")
    rules = _our_rules(run)
    done: list[str] = []
    for n in inv.nodes:
        tun = userspace and n.tunnel == "gre"
        _remove_node(run, n, rules, tun)  # idempotent: what an earlier `up` made is replaced
        for cmd in central_commands(n, userspace):
            _must(run, cmd)
        done.append(f"node {n.name}: {n.tunnel} {n.device} {n.central_tunnel} table {n.table}")
    return done


def central_down(inv: Inventory, run: Runner = _run) -> list[str]:
    """Remove what ``central_up`` added for the inventory's nodes (nothing else)."""
    rules = _our_rules(run)
    done: list[str] = []
    for n in inv.nodes:
        done += [f"node {n.name}: removed {d}" for d in _remove_node(run, n, rules)]
    return done
