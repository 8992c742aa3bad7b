"""IP fragment reassembly (IPv4, IPv6) with bounded state, and which payloads become Records."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pcapgen as g  # noqa: E402
from sipwatch.capture import CaptureStats, PacketDecoder, read_captures  # noqa: E402
from sipwatch.capture.defrag import Defragmenter  # noqa: E402

A, B = "198.51.100.7", "192.0.2.1"
A6, B6 = "2001:db8::7", "2001:db8::1"
BIG = g.sip_request("INVITE", call_id="big", body=b"a=candidate:1 1 UDP 2130706431\r\n" * 150)


def _read(tmp_path: Path, pkts: list[tuple[float, bytes]]):
    path = tmp_path / "f.pcap"
    path.write_bytes(g.pcap(pkts))
    stats = CaptureStats()
    return list(read_captures([str(path)], stats=stats)), stats


def _frames(ips: list[bytes], t0: float = 10.0) -> list[tuple[float, bytes]]:
    return [(t0 + i * 0.001, g.ether_of(p)) for i, p in enumerate(ips)]


def test_ipv4_fragments_are_reassembled(tmp_path: Path) -> None:
    frags = g.ipv4_fragments(A, B, g.UDP, g.udp(5060, 5060, BIG, A, B))
    assert len(frags) >= 4
    recs, stats = _read(tmp_path, _frames(frags))
    assert [r.raw for r in recs] == [BIG]
    assert recs[0].src == A and recs[0].msg.method == "INVITE"
    assert stats.fragments == len(frags) and stats.fragments_reassembled == 1


def test_ipv4_fragments_out_of_order_and_duplicated(tmp_path: Path) -> None:
    frags = g.ipv4_fragments(A, B, g.UDP, g.udp(5060, 5060, BIG, A, B))
    shuffled = [frags[-1], frags[2], frags[0], frags[2], *frags[3:-1], frags[1]]
    recs, _ = _read(tmp_path, _frames(shuffled))
    assert [r.raw for r in recs] == [BIG]


def test_ipv6_fragments_are_reassembled(tmp_path: Path) -> None:
    frags = g.ipv6_fragments(A6, B6, g.UDP, g.udp(5060, 5060, BIG, A6, B6))
    recs, stats = _read(tmp_path, _frames(list(reversed(frags))))
    assert [(r.src, r.raw) for r in recs] == [(A6, BIG)]
    assert stats.fragments_reassembled == 1


def test_missing_fragment_is_dropped_and_counted(tmp_path: Path) -> None:
    frags = g.ipv4_fragments(A, B, g.UDP, g.udp(5060, 5060, BIG, A, B))
    other = g.udp_packet(A, B, 5060, 5060, g.sip_request())
    recs, stats = _read(tmp_path, _frames([*frags[:1], *frags[2:], other]))
    assert [r.msg.method for r in recs] == ["OPTIONS"]
    assert stats.fragments_dropped == len(frags) - 1


def test_fragments_time_out_by_packet_time(tmp_path: Path) -> None:
    frags = g.ipv4_fragments(A, B, g.UDP, g.udp(5060, 5060, BIG, A, B))
    pkts = [
        (10.0, g.ether_of(frags[0])),
        *((100.0 + i, g.ether_of(f)) for i, f in enumerate(frags[1:])),
    ]
    recs, stats = _read(tmp_path, pkts)
    assert recs == []  # the first fragment expired before the rest arrived
    assert stats.fragments_dropped == len(frags)


def test_fragment_table_is_bounded() -> None:
    stats = CaptureStats()
    d = Defragmenter(stats, max_datagrams=10)
    for i in range(50):
        d.add((b"a", b"b", i, 17), 1.0, 0, True, b"x" * 8)
    assert len(d) == 10 and stats.fragments_dropped == 40
    for _ in range(100):
        d.add((b"a", b"b", 999, 17), 1.0, 8, True, b"y" * 8)
    assert stats.fragments_dropped > 40 and len(d) <= 10


def test_overlapping_last_fragments_do_not_raise() -> None:
    stats = CaptureStats()
    d = Defragmenter(stats)
    assert d.add("k", 1.0, 16, False, b"z" * 8) is None
    assert d.add("k", 1.0, 8, False, b"z" * 8) is None  # a second, different "last" fragment
    assert stats.fragments_dropped == 2


# ----------------------------------------------------------------- what becomes a Record


def _udp_frame(payload: bytes, sport: int = 5060, dport: int = 5060) -> bytes:
    return g.ether_of(g.udp_packet(A, B, sport, dport, payload))


def _decode(frames: list[bytes], batch: bool = False):
    stats = CaptureStats()
    dec = PacketDecoder(1, stats)
    out = []
    for i, f in enumerate(frames):
        out += dec.decode_frame(float(i), f)
    return out + dec.flush(), stats


def test_sip_on_any_port_is_recognised_by_content() -> None:
    recs, _ = _decode([_udp_frame(g.sip_request(), 33333, 1234)])
    assert [(r.sport, r.dport) for r in recs] == [(33333, 1234)]


def test_ssdp_and_http_are_never_sip() -> None:
    ssdp = b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNTS: ssdp:alive\r\n\r\n"
    msearch = b'M-SEARCH * HTTP/1.1\r\nMAN: "ssdp:discover"\r\n\r\n'
    http = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    frames = [_udp_frame(p, 1900, 5060) for p in (ssdp, msearch, http)]
    frames += [_udp_frame(ssdp, 1900, 1900)]
    recs, stats = _decode(frames)
    assert recs == [] and stats.non_sip == 4


def test_garbage_on_sip_port_is_kept_as_fuzzing_evidence() -> None:
    junk = b"\x00\xffINVITE\x01 sip:\xfe\r\n" * 3
    recs, stats = _decode([_udp_frame(junk), _udp_frame(junk, 4000, 4001)])
    assert len(recs) == 1 and recs[0].raw == junk and recs[0].msg.error != ""
    assert stats.unparsable == 1


def test_keepalives_and_stun_tls_on_sip_port_are_not_records() -> None:
    stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b"\x00" * 12
    dtls = b"\x16\xfe\xfd" + b"\x00" * 30
    recs, stats = _decode([_udp_frame(b"\r\n\r\n"), _udp_frame(stun), _udp_frame(dtls)])
    assert recs == [] and stats.keepalives == 1 and stats.non_sip == 2


def test_two_messages_in_one_datagram() -> None:
    one = g.sip_request(call_id="one")
    two = g.sip_request(call_id="two", cseq=2)
    recs, _ = _decode([_udp_frame(one + two)])
    assert [r.msg.call_id for r in recs] == ["one", "two"]


def test_batch_and_frame_paths_agree(tmp_path: Path) -> None:
    """The fast path (Ethernet/IPv4/UDP) and the general path give the same Records."""
    frames = [_udp_frame(g.sip_request(call_id=f"c{i}"), 5060 + i % 3, 5060) for i in range(20)] + [
        _udp_frame(b"\r\n" + g.sip_request()),
        _udp_frame(b"junk on the sip port"),
    ]
    by_frame, _ = _decode(frames)
    recs, _ = _read(tmp_path, [(float(i), f) for i, f in enumerate(frames)])
    key = [(r.ts, r.src, r.sport, r.dst, r.dport, r.raw) for r in recs]
    assert key == [(r.ts, r.src, r.sport, r.dst, r.dport, r.raw) for r in by_frame]
    assert len(recs) == 22
