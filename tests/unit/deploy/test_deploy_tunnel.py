"""Tunnel plans (argument lists, scripts) and `up`/`down` against a recorded fake `ip`."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from sipwatch.deploy.nodes import parse_inventory
from sipwatch.deploy.tunnel import (
    TunnelError,
    central_commands,
    central_down,
    central_up,
    plan,
    site_commands,
)

INV = """
[[node]]
name = "berlin"
public = ["203.0.113.10"]
tunnel = "vxlan"
id = 101
site_underlay = "198.51.100.2"
central_underlay = "198.51.100.1"
tunnel_subnet = "10.99.1.0/30"
central_tunnel = "10.99.1.2"

[[node]]
name = "paris"
public = ["203.0.113.20", "203.0.113.21"]
id = 102
site_underlay = "198.51.100.6"
central_underlay = "198.51.100.5"
tunnel_subnet = "10.99.2.0/30"
central_tunnel = "10.99.2.2"
"""


@pytest.fixture
def inv():
    return parse_inventory(INV)


def test_site_nft_dnats_only_5060_of_the_public_addresses(inv):
    cmds = [shlex.join(c) for c in site_commands(inv.node("paris"))]
    dnat = [c for c in cmds if "dnat to" in c]
    assert dnat == [
        f"nft add rule ip sipwatch_paris prerouting ip daddr {a} {p} dport 5060 dnat to 10.99.2.2"
        for a in ("203.0.113.20", "203.0.113.21")
        for p in ("udp", "tcp")
    ]
    assert (
        "ip link add sw-paris type gre remote 198.51.100.5 local 198.51.100.6 key 102 nopmtudisc"
        in cmds
    )
    assert "ip link set dev sw-paris mtu 1500 alias sipwatch:paris up" in cmds
    assert any("maxseg size set 1432" in c and "oifname sw-paris" in c for c in cmds)


def test_site_iptables_variant_is_tagged(inv):
    cmds = site_commands(inv.node("berlin"), "iptables")
    ipt = [c for c in cmds if c[0] == "iptables"]
    assert len(ipt) == 4 and all("sipwatch:berlin" in c for c in ipt)
    assert ipt[0][1:5] == ["-t", "nat", "-A", "PREROUTING"]
    assert "--to-destination" in ipt[0] and ipt[0][-1] == "10.99.1.2"
    assert any("TCPMSS" in c and "1410" in c for c in ipt)  # 1500 - 50 (VXLAN) - 40


def test_central_commands(inv):
    cmds = [shlex.join(c) for c in central_commands(inv.node("berlin"))]
    assert cmds == [
        "ip link add sw-berlin type vxlan id 101 remote 198.51.100.2 local 198.51.100.1 "
        "dstport 4789",
        "ip link set dev sw-berlin mtu 1500 alias sipwatch:berlin up",
        "ip addr add 10.99.1.2/30 dev sw-berlin",
        "ip route replace default via 10.99.1.1 dev sw-berlin table 10101",
        "ip rule add from 10.99.1.2 lookup 10101 priority 10101 protocol 245",
    ]


def test_plan_scripts(inv):
    full = plan(inv)
    assert full.count("#!/bin/sh") == 3  # two sites, the central host
    one = plan(inv, "berlin", side="site")
    assert one.count("#!/bin/sh") == 1 and "sipwatch_berlin" in one and "paris" not in one
    central = plan(inv, side="central")
    assert "dnat" not in central and central.count("ip rule add") == 2
    assert "set -e" in one and "# to remove it again:" in one
    assert "iptables -t nat -A PREROUTING" in plan(inv, "berlin", "iptables")


class FakeIp:
    """Records the commands; keeps devices (name -> alias) and rules like the kernel would."""

    def __init__(self) -> None:
        self.links: dict[str, str] = {}
        self.rules: list[dict] = [{"priority": 0, "src": "all", "table": "local"}]
        self.ran: list[list[str]] = []

    def __call__(self, cmd: list[str]) -> subprocess.CompletedProcess:
        self.ran.append(cmd)
        ok = subprocess.CompletedProcess(cmd, 0, "", "")
        if cmd[:4] == ["ip", "-j", "link", "show"]:
            dev = cmd[-1]
            if dev not in self.links:
                return subprocess.CompletedProcess(cmd, 1, "", "Device does not exist")
            return subprocess.CompletedProcess(
                cmd, 0, json.dumps([{"ifname": dev, "ifalias": self.links[dev]}]), ""
            )
        if cmd[:4] == ["ip", "-j", "rule", "show"]:
            return subprocess.CompletedProcess(cmd, 0, json.dumps(self.rules), "")
        if cmd[:3] == ["ip", "link", "add"]:
            if cmd[3] in self.links:
                return subprocess.CompletedProcess(cmd, 2, "", "RTNETLINK: File exists")
            self.links[cmd[3]] = ""
        elif cmd[:3] == ["ip", "link", "set"]:
            self.links[cmd[4]] = cmd[cmd.index("alias") + 1]
        elif cmd[:3] == ["ip", "link", "del"]:
            del self.links[cmd[-1]]
        elif cmd[:3] == ["ip", "rule", "add"]:
            self.rules.append({"priority": int(cmd[8]), "src": cmd[4], "table": cmd[6],
                               "protocol": cmd[10]})  # fmt: skip
        elif cmd[:3] == ["ip", "rule", "del"]:
            self.rules = [r for r in self.rules if not (r["src"] == cmd[4] and
                          str(r["priority"]) == cmd[8])]  # fmt: skip
        return ok


def test_up_is_idempotent_and_down_removes_exactly_what_up_added(inv):
    ip = FakeIp()
    ip.links["eth0"] = ""
    ip.rules.append({"priority": 100, "src": "10.0.0.1", "table": "7"})  # not ours
    before = json.dumps(ip.rules)
    assert len(central_up(inv, ip)) == 2
    assert ip.links == {"eth0": "", "sw-berlin": "sipwatch:berlin", "sw-paris": "sipwatch:paris"}
    assert sum(r.get("protocol") == "245" for r in ip.rules) == 2
    central_up(inv, ip)  # again: the same state, not doubled
    assert sum(r.get("protocol") == "245" for r in ip.rules) == 2
    assert len(ip.links) == 3
    assert len(central_down(inv, ip)) == 4
    assert ip.links == {"eth0": ""} and json.dumps(ip.rules) == before
    assert central_down(inv, ip) == []  # nothing left to remove


def test_up_refuses_a_device_it_did_not_make(inv):
    ip = FakeIp()
    ip.links["sw-paris"] = "someone else's"
    with pytest.raises(TunnelError, match="sw-paris exists and was not made by sipwatch"):
        central_up(inv, ip)
    assert not any(c[:3] == ["ip", "link", "add"] for c in ip.ran)  # nothing changed
    central_down(inv, ip)
    assert ip.links == {"sw-paris": "someone else's"}  # down leaves it alone too


def test_a_failing_command_is_one_line(inv):
    def broken(cmd):
        if cmd[:3] == ["ip", "link", "add"]:
            return subprocess.CompletedProcess(cmd, 2, "", "Error: Unknown device type.\n")
        return FakeIp()(cmd)

    with pytest.raises(TunnelError) as exc:
        central_up(inv, broken)
    assert str(exc.value).startswith("ip link add sw-berlin type vxlan")
    assert str(exc.value).endswith("Error: Unknown device type.")


def test_up_with_userspace_gre_configures_the_endpoints_device(inv):
    ip = FakeIp()
    with pytest.raises(TunnelError, match="sw-paris is missing: start sipwatch tunnel gre"):
        central_up(inv, ip, userspace=True)
    ip.links["sw-paris"] = ""  # the TUN device of `sipwatch tunnel gre`
    central_up(inv, ip, userspace=True)
    assert ip.links["sw-paris"] == "sipwatch:paris"
    assert not any(c[:4] == ["ip", "link", "add", "sw-paris"] for c in ip.ran)
    central_up(inv, ip, userspace=True)  # again: addresses flushed and re-added, device kept
    assert ["ip", "addr", "flush", "dev", "sw-paris"] in ip.ran
    assert sum(r.get("protocol") == "245" for r in ip.rules) == 2
    central_down(inv, ip)
    assert ip.links == {} and all(r.get("protocol") != "245" for r in ip.rules)
