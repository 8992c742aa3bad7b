"""The userspace GRE endpoint's codec and link selection (the wire is tested in netns)."""

from __future__ import annotations

import socket
import struct

from sipwatch.deploy.greu import decapsulate, encapsulate, links_for
from sipwatch.deploy.nodes import parse_inventory
from sipwatch.deploy.tunnel import central_commands, plan, site_commands

INV = """
[[node]]
name = "berlin"
public = ["203.0.113.10"]
id = 101
site_underlay = "198.51.100.2"
central_underlay = "198.51.100.1"
tunnel_subnet = "10.99.1.0/30"
central_tunnel = "10.99.1.2"

[[node]]
name = "paris"
public = ["203.0.113.20"]
tunnel = "vxlan"
id = 102
site_underlay = "198.51.100.6"
central_underlay = "198.51.100.5"
tunnel_subnet = "10.99.2.0/30"
central_tunnel = "10.99.2.2"
"""


def ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))  # fmt: skip
    return header + payload


INNER = ipv4("192.0.2.100", "10.99.1.2", 17, b"\x13\xc4\x13\xc4\x00\x0c\x00\x00SIP!")


def test_encapsulate_is_rfc2890_with_key():
    gre = encapsulate(101, INNER)
    assert gre[:8] == bytes.fromhex("20000800") + (101).to_bytes(4, "big")
    assert gre[8:] == INNER


def test_decapsulate_roundtrip_and_options():
    outer = ipv4("198.51.100.2", "198.51.100.1", 47, encapsulate(101, INNER))
    assert decapsulate(outer) == ("198.51.100.2", 101, INNER)
    # checksum and sequence number present: skipped; no key: None
    both = struct.pack("!HHHHII", 0xB000, 0x0800, 0, 0, 7, 9) + INNER
    assert decapsulate(ipv4("198.51.100.2", "198.51.100.1", 47, both)) == (
        "198.51.100.2", 7, INNER,
    )  # fmt: skip
    keyless = struct.pack("!HH", 0, 0x0800) + INNER
    assert decapsulate(ipv4("198.51.100.2", "198.51.100.1", 47, keyless))[1] is None


def test_decapsulate_drops_what_it_does_not_carry():
    def gre(flags: int, proto: int, inner: bytes = INNER) -> bytes:
        return ipv4("198.51.100.2", "198.51.100.1", 47, struct.pack("!HH", flags, proto) + inner)

    assert decapsulate(gre(0x0001, 0x0800)) is None  # GRE version 1 (PPTP)
    assert decapsulate(gre(0, 0x86DD)) is None  # IPv6 payload
    assert decapsulate(gre(0, 0x0800, b"\x60" + INNER[1:])) is None  # not IPv4 inside
    assert decapsulate(gre(0x2000, 0x0800, b"")) is None  # key flag, no key
    assert decapsulate(b"\x45" + b"\x00" * 10) is None  # truncated
    assert decapsulate(b"") is None


def test_links_for_each_side_only_gre_nodes():
    inv = parse_inventory(INV)
    (central,) = links_for(inv, "central")
    assert (central.device, central.local, central.remote, central.key) == (
        "sw-berlin", "198.51.100.1", "198.51.100.2", 101,
    )  # fmt: skip
    (site,) = links_for(inv, "site", "berlin")
    assert (site.local, site.remote) == ("198.51.100.2", "198.51.100.1")
    assert links_for(inv, "site", "paris") == []


def test_userspace_plans_use_the_endpoints_device():
    inv = parse_inventory(INV)
    berlin, paris = inv.nodes
    for cmds in (central_commands(berlin, True), site_commands(berlin, "nft", True)):
        assert not any(c[:3] == ["ip", "link", "add"] for c in cmds)
        assert ["ip", "link", "set", "dev", "sw-berlin", "mtu", "1500", "alias",
                "sipwatch:berlin", "up"] in cmds  # fmt: skip
    assert central_commands(paris, True)[0][:3] == ["ip", "link", "add"]  # VXLAN unchanged
    text = plan(inv, "berlin", userspace=True)
    assert "sipwatch tunnel gre INVENTORY --side site --node berlin" in text
    assert "sipwatch tunnel gre INVENTORY --side central" in text
