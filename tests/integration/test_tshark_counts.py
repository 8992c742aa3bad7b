"""Every public capture decodes, and we find as many SIP messages per file as tshark does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sipwatch.capture import CaptureStats, read_captures

PCAPS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pcaps"
FILES = sorted(p for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))


def tshark_count(path: Path) -> int:
    """SIP messages (not frames) tshark sees: one Method or Status-Code per message.

    SIP quoted inside ICMP errors is left out: it is a copy of a message already counted.
    """
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "sip && !icmp && !icmpv6", "-T", "fields",
         "-e", "sip.Method", "-e", "sip.Status-Code", "-E", "occurrence=a", "-E", "aggregator=;"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    return sum(1 for line in out.splitlines() for v in line.replace("\t", ";").split(";") if v)


def test_public_captures_are_there() -> None:
    assert len(FILES) >= 10, f"expected the public captures in {PCAPS}"


@pytest.mark.tools
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_capture_has_as_many_sip_messages_as_tshark_counts(path: Path) -> None:
    if shutil.which("tshark") is None:
        print("tshark is not installed (apt-get install tshark)")
        pytest.skip("tshark is not installed")
    stats = CaptureStats()
    records = list(read_captures([str(path)], stats=stats))
    assert stats.internal_errors == 0 and not stats.warnings
    assert len(records) == tshark_count(path)


def test_ssdp_capture_gives_no_sip() -> None:
    path = PCAPS / "suricata-verify" / "sip-ssdp-pm.pcap"
    assert list(read_captures([str(path)])) == []


def test_generated_capture_matches_tshark(tmp_path: Path) -> None:
    """Our own writer's tunnels, fragments, VLANs and TCP streams, checked against tshark."""
    if shutil.which("tshark") is None:
        print("tshark is not installed (apt-get install tshark)")
        pytest.skip("tshark is not installed")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pcapgen as g

    a, b, a6, b6 = "198.51.100.7", "192.0.2.1", "2001:db8::7", "2001:db8::1"
    big = g.sip_request("INVITE", call_id="big", body=b"a=x-candidate:1 1 UDP 2130706431\r\n" * 90)
    inner = g.udp_packet(a, b, 5060, 5060, g.sip_request(call_id="inner"))
    stream = b"".join(g.sip_request("REGISTER", call_id=f"t{i}", cseq=i + 1) for i in range(3))
    ips = [
        g.udp_packet("203.0.113.1", "203.0.113.2", 1, 4789, g.vxlan(9, g.ether_of(inner))),
        g.ipv4("203.0.113.1", "203.0.113.2", g.GRE, g.gre(inner, key=77)),
        *g.ipv4_fragments(a, b, g.UDP, g.udp(5060, 5060, big, a, b)),
        *g.ipv6_fragments(a6, b6, g.UDP, g.udp(5060, 5060, big, a6, b6)),
        g.tcp_packet(a, b, 40000, 5060, 100, flags=g.SYN),
        g.tcp_packet(a, b, 40000, 5060, 101, stream[:300]),
        g.tcp_packet(a, b, 40000, 5060, 401, stream[300:]),
    ]
    frames = [g.ether_of(p, vlans=[100, 200] if i % 2 else []) for i, p in enumerate(ips)]
    path = tmp_path / "mixed.pcap"
    path.write_bytes(g.pcap([(1.0 + i / 10, f) for i, f in enumerate(frames)]))
    records = list(read_captures([str(path)]))
    # (tshark reads one message per UDP datagram; we split several: not compared here)
    assert len(records) == tshark_count(path) == 7
