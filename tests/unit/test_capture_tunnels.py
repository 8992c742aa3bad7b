"""VXLAN and GRE decapsulation: inner SIP with inner addresses and the tunnel it came through."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pcapgen as g  # noqa: E402
from sipwatch.capture import CaptureStats, read_captures  # noqa: E402

SITE, CENTRAL = "203.0.113.1", "203.0.113.99"  # tunnel endpoints (underlay)
ATTACKER, NODE = "198.51.100.7", "192.0.2.10"  # inner addresses


def _inner(src: str = ATTACKER, dst: str = NODE) -> bytes:
    return g.udp_packet(src, dst, 5060, 5060, g.sip_request())


def _read(tmp_path: Path, frames: list[bytes]):
    path = tmp_path / "t.pcap"
    path.write_bytes(g.pcap([(1.0 + i, f) for i, f in enumerate(frames)]))
    stats = CaptureStats()
    return list(read_captures([str(path)], stats=stats)), stats


def test_vxlan(tmp_path: Path) -> None:
    outer = g.udp_packet(SITE, CENTRAL, 49152, 4789, g.vxlan(4242, g.ether_of(_inner())))
    recs, stats = _read(tmp_path, [g.ether_of(outer)])
    (r,) = recs
    assert (r.src, r.dst, r.sport, r.dport) == (ATTACKER, NODE, 5060, 5060)
    assert r.tunnel == f"vxlan:4242 {SITE}>{CENTRAL}"
    assert stats.tunnels_vxlan == 1


def test_vxlan_with_inner_vlan_and_ipv6(tmp_path: Path) -> None:
    inner = g.ether_of(_inner("2001:db8::7", "2001:db8::1"), vlans=[30])
    outer = g.udp_packet(SITE, CENTRAL, 49152, 4789, g.vxlan(7, inner))
    (r,) = _read(tmp_path, [g.ether_of(outer, vlans=[5])])[0]
    assert r.src == "2001:db8::7" and r.vlan == "30" and r.tunnel.startswith("vxlan:7 ")


def test_vxlan_over_ipv6_underlay(tmp_path: Path) -> None:
    outer = g.udp_packet(
        "2001:db8:1::1", "2001:db8:1::2", 1, 4789, g.vxlan(9, g.ether_of(_inner()))
    )
    (r,) = _read(tmp_path, [g.ether_of(outer)])[0]
    assert r.tunnel == "vxlan:9 2001:db8:1::1>2001:db8:1::2" and r.src == ATTACKER


@pytest.mark.parametrize(
    "kw, label",
    [
        ({"key": 17}, f"gre:17 {SITE}>{CENTRAL}"),
        ({}, f"gre {SITE}>{CENTRAL}"),
        ({"key": 5, "seq": 99, "csum": True}, f"gre:5 {SITE}>{CENTRAL}"),
    ],
)
def test_gre_ipv4_payload(tmp_path: Path, kw: dict, label: str) -> None:
    outer = g.ipv4(SITE, CENTRAL, g.GRE, g.gre(_inner(), g.ETH_IPV4, **kw))
    recs, stats = _read(tmp_path, [g.ether_of(outer)])
    assert [(r.src, r.dst, r.tunnel) for r in recs] == [(ATTACKER, NODE, label)]
    assert stats.tunnels_gre == 1


def test_gre_ipv6_payload_and_bridged_ethernet(tmp_path: Path) -> None:
    v6 = _inner("2001:db8::7", "2001:db8::1")
    frames = [
        g.ether_of(g.ipv4(SITE, CENTRAL, g.GRE, g.gre(v6, g.ETH_IPV6, key=1))),
        g.ether_of(g.ipv4(SITE, CENTRAL, g.GRE, g.gre(g.ether_of(_inner(), vlans=[12]), 0x6558))),
    ]
    recs, _ = _read(tmp_path, frames)
    assert [(r.src, r.vlan, r.tunnel.split(" ")[0]) for r in recs] == [
        ("2001:db8::7", "", "gre:1"),
        (ATTACKER, "12", "gre"),
    ]


def test_sip_over_tcp_inside_gre(tmp_path: Path) -> None:
    msg = g.sip_request("REGISTER")
    inner_syn = g.tcp_packet(ATTACKER, NODE, 40000, 5060, 1, flags=g.SYN)
    inner_data = g.tcp_packet(ATTACKER, NODE, 40000, 5060, 2, msg)
    frames = [
        g.ether_of(g.ipv4(SITE, CENTRAL, g.GRE, g.gre(p, key=3))) for p in (inner_syn, inner_data)
    ]
    recs, _ = _read(tmp_path, frames)
    assert [(r.transport, r.src, r.raw, r.tunnel) for r in recs] == [
        ("tcp", ATTACKER, msg, f"gre:3 {SITE}>{CENTRAL}")
    ]


def test_fragmented_underlay(tmp_path: Path) -> None:
    """A full-size inner datagram makes the VXLAN underlay fragment."""
    big = g.sip_request("INVITE", body=b"a=x\r\n" * 300)
    inner = g.ether_of(g.udp_packet(ATTACKER, NODE, 5060, 5060, big))
    seg = g.udp(49152, 4789, g.vxlan(1, inner), SITE, CENTRAL)
    frames = [g.ether_of(f) for f in g.ipv4_fragments(SITE, CENTRAL, g.UDP, seg)]
    recs, _ = _read(tmp_path, frames)
    assert [r.raw for r in recs] == [big]


def test_not_vxlan_on_4789_and_gre_version_1_are_counted(tmp_path: Path) -> None:
    frames = [
        g.ether_of(g.udp_packet(SITE, CENTRAL, 1, 4789, b"\x00" * 40)),
        g.ether_of(g.ipv4(SITE, CENTRAL, g.GRE, b"\x30\x01\x88\x0b" + b"\x00" * 20)),
    ]
    recs, stats = _read(tmp_path, frames)
    assert recs == [] and stats.non_sip == 1 and stats.other_proto == 1


def test_tunnel_nesting_is_bounded(tmp_path: Path) -> None:
    pkt = _inner()
    for _ in range(10):
        pkt = g.ipv4(SITE, CENTRAL, g.GRE, g.gre(pkt, key=1))
    recs, stats = _read(tmp_path, [g.ether_of(pkt)])
    assert recs == [] and stats.tunnels_gre == 4
