"""Capture files: formats, link layers, errors, gzip, stdin, folders, damage."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pcapgen as g  # noqa: E402
from sipwatch.capture import CaptureError, CaptureStats, read_captures  # noqa: E402

A, B = "198.51.100.7", "192.0.2.1"
A6, B6 = "2001:db8::7", "2001:db8::1"


def _udp_ip(src: str = A, dst: str = B, payload: bytes | None = None, sport: int = 5060) -> bytes:
    return g.udp_packet(src, dst, sport, 5060, payload or g.sip_request())


def _read(tmp_path: Path, data: bytes, name: str = "c.pcap", **kw):
    path = tmp_path / name
    path.write_bytes(data)
    stats = CaptureStats()
    warnings: list[str] = []
    recs = list(read_captures([str(path)], stats=stats, on_warning=warnings.append, **kw))
    return recs, stats, warnings


def test_pcap_microseconds_gives_record_with_addresses_and_time(tmp_path: Path) -> None:
    recs, stats, _ = _read(tmp_path, g.pcap([(1700000000.25, g.ether_of(_udp_ip()))]))
    (r,) = recs
    assert (r.transport, r.src, r.sport, r.dst, r.dport) == ("udp", A, 5060, B, 5060)
    assert r.ts == pytest.approx(1700000000.25)
    assert r.msg.method == "OPTIONS"
    assert r.raw == g.sip_request()
    assert r.vlan == "" and r.tunnel == ""
    assert stats.packets == 1 and stats.sip_messages == 1


def test_pcap_nanoseconds(tmp_path: Path) -> None:
    recs, _, _ = _read(tmp_path, g.pcap([(1700000000.123456, g.ether_of(_udp_ip()))], nano=True))
    assert recs[0].ts == pytest.approx(1700000000.123456, abs=1e-6)


def test_pcap_big_endian(tmp_path: Path) -> None:
    recs, _, _ = _read(tmp_path, g.pcap([(5.0, g.ether_of(_udp_ip()))], big_endian=True))
    assert len(recs) == 1


@pytest.mark.parametrize("nano", [False, True])
def test_pcapng(tmp_path: Path, nano: bool) -> None:
    pkts = [(1700000000.5 + i, g.ether_of(_udp_ip())) for i in range(3)]
    recs, _, _ = _read(tmp_path, g.pcapng(pkts, nano=nano), "c.pcapng")
    assert [r.ts for r in recs] == pytest.approx([1700000000.5, 1700000001.5, 1700000002.5])


def test_vlan_and_qinq(tmp_path: Path) -> None:
    pkts = [
        (1.0, g.ether(_udp_ip(), vlans=[100])),
        (2.0, g.ether(_udp_ip(), vlans=[100, 200], qinq=True)),
        (3.0, g.ether(_udp_ip(A6, B6), g.ETH_IPV6, vlans=[7, 8])),
    ]
    recs, _, _ = _read(tmp_path, g.pcap(pkts))
    assert [r.vlan for r in recs] == ["100", "100.200", "7.8"]
    assert recs[2].src == A6


@pytest.mark.parametrize(
    "linktype, frame",
    [
        (g.LT_SLL, g.sll(_udp_ip())),
        (g.LT_SLL2, g.sll2(_udp_ip())),
        (g.LT_SLL2, g.sll2(_udp_ip(A6, B6), proto=g.ETH_IPV6)),
        (g.LT_RAW, _udp_ip()),
        (g.LT_RAW, _udp_ip(A6, B6)),
        (228, _udp_ip()),
        (g.LT_NULL, g.null(_udp_ip())),
        (g.LT_NULL, g.null(_udp_ip(), big_endian=True)),
        (g.LT_NULL, g.null(_udp_ip(A6, B6), af=30)),
        (g.LT_LOOP, g.loop(_udp_ip())),
        (g.LT_LOOP, g.loop(_udp_ip(A6, B6), af=24)),
    ],
    ids=[
        "sll",
        "sll2",
        "sll2-v6",
        "raw",
        "raw-v6",
        "ipv4",
        "null",
        "null-be",
        "null-v6",
        "loop",
        "loop-v6",
    ],
)
def test_link_types(tmp_path: Path, linktype: int, frame: bytes) -> None:
    recs, stats, _ = _read(tmp_path, g.pcap([(1.0, frame)], linktype=linktype))
    assert len(recs) == 1, stats
    assert recs[0].msg.method == "OPTIONS"
    assert recs[0].dport == 5060


def test_ipv6_extension_headers(tmp_path: Path) -> None:
    seg = g.udp(5060, 5060, g.sip_request(), A6, B6)
    ext = g.ipv6_ext(60, b"\x01\x02\x00\x00") + g.ipv6_ext(17, b"\x01\x02\x00\x00")
    pkt = g.ipv6(A6, B6, 0, ext + seg)  # hop-by-hop -> destination options -> UDP
    recs, _, _ = _read(tmp_path, g.pcap([(1.0, g.ether_of(pkt))]))
    assert [(r.src, r.dst) for r in recs] == [(A6, B6)]


def test_non_ip_frames_are_counted(tmp_path: Path) -> None:
    arp = g.ether(b"\x00" * 28, g.ETH_ARP)
    recs, stats, _ = _read(tmp_path, g.pcap([(1.0, arp), (2.0, g.ether_of(_udp_ip()))]))
    assert len(recs) == 1 and stats.non_ip == 1


def test_cut_headers_count_as_decode_errors(tmp_path: Path) -> None:
    good = g.ether_of(_udp_ip())
    pkts = [(1.0, good[:20]), (2.0, good[:40]), (3.0, good)]
    recs, stats, _ = _read(tmp_path, g.pcap(pkts))
    assert len(recs) == 1 and stats.decode_errors == 2


def test_snapped_packet_keeps_what_was_captured(tmp_path: Path) -> None:
    frame = g.ether_of(_udp_ip())
    recs, _, _ = _read(tmp_path, g.pcap([(1.0, frame)], snaplen=200))
    assert recs[0].raw == frame[42:200]


def test_unsupported_link_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"link type 105 \(IEEE 802\.11\) is not supported"):
        _read(tmp_path, g.pcap([(1.0, b"\x00" * 40)], linktype=g.LT_IEEE802_11))


def test_missing_file_and_not_a_capture(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        list(read_captures([str(tmp_path / "nope.pcap")]))
    (tmp_path / "notes.pcap").write_text("hello, not a capture\n")
    with pytest.raises(CaptureError, match="not a capture file"):
        list(read_captures([str(tmp_path / "notes.pcap")]))


def test_bad_filter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="filter"):
        _read(tmp_path, g.pcap([(1.0, g.ether_of(_udp_ip()))]), bpf="udp port banana")


def test_bpf_filter_applies(tmp_path: Path) -> None:
    pkts = [(1.0, g.ether_of(_udp_ip(A))), (2.0, g.ether_of(_udp_ip("203.0.113.9")))]
    recs, _, _ = _read(tmp_path, g.pcap(pkts), bpf="src host 203.0.113.9")
    assert [r.src for r in recs] == ["203.0.113.9"]


def _numbered(n: int) -> list[tuple[float, bytes]]:
    return [
        (1000.0 + i, g.ether_of(_udp_ip(payload=g.sip_request(call_id=f"call-{i}"))))
        for i in range(n)
    ]


def test_truncated_capture_reads_up_to_the_damage_and_warns(tmp_path: Path) -> None:
    data = g.pcap(_numbered(5))
    recs, stats, warnings = _read(tmp_path, data[:-50], "cut.pcap")
    assert [r.msg.call_id for r in recs] == [f"call-{i}" for i in range(4)]
    (w,) = warnings
    frame_len = len(g.ether_of(_udp_ip(payload=g.sip_request(call_id="call-0"))))
    assert "cut.pcap" in w and "packet 5" in w and f"byte offset {24 + 4 * (16 + frame_len)}" in w
    assert stats.truncated_files == 1


def test_truncated_pcapng_warns(tmp_path: Path) -> None:
    data = g.pcapng(_numbered(3))
    recs, _, warnings = _read(tmp_path, data[:-30], "cut.pcapng")
    assert len(recs) == 2
    assert len(warnings) == 1 and "packet 3" in warnings[0]


def test_gzip_capture_is_read_directly(tmp_path: Path) -> None:
    recs, stats, _ = _read(tmp_path, gzip.compress(g.pcap(_numbered(50))), "trace.pcap.gz")
    assert len(recs) == 50 and stats.files == 1


def test_truncated_gzip_warns(tmp_path: Path) -> None:
    raw = g.pcap(_numbered(400))
    data = gzip.compress(raw)
    recs, _, warnings = _read(tmp_path, data[: len(data) // 2], "cut.pcap.gz")
    assert 0 < len(recs) < 400
    assert len(warnings) == 1 and "cut.pcap.gz" in warnings[0]


def test_folder_is_read_recursively_in_timestamp_order(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    early = [
        (1000.0 + 2 * i, g.ether_of(_udp_ip(payload=g.sip_request(cseq=2 * i)))) for i in range(5)
    ]
    late = [
        (1001.0 + 2 * i, g.ether_of(_udp_ip(payload=g.sip_request(cseq=2 * i + 1))))
        for i in range(5)
    ]
    (tmp_path / "a.cap").write_bytes(g.pcapng(late))  # names do not matter, magic does
    (tmp_path / "sub" / "b.bin.gz").write_bytes(gzip.compress(g.pcap(early)))
    (tmp_path / "README.txt").write_text("not a capture")
    stats = CaptureStats()
    recs = list(read_captures([str(tmp_path)], stats=stats))
    assert [r.msg.cseq_num for r in recs] == list(range(10))
    assert stats.files == 2


def test_several_files_merge_by_time(tmp_path: Path) -> None:
    one = tmp_path / "one.pcap"
    two = tmp_path / "two.pcap"
    one.write_bytes(g.pcap([(t, g.ether_of(_udp_ip(A))) for t in (1.0, 4.0, 5.0)]))
    two.write_bytes(g.pcap([(t, g.ether_of(_udp_ip("203.0.113.9"))) for t in (2.0, 3.0, 6.0)]))
    recs = list(read_captures([str(two), str(one)]))
    assert [r.ts for r in recs] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert [r.src == A for r in recs] == [True, False, False, True, True, False]


def _stdin_count(data: bytes) -> str:
    code = (
        "from sipwatch.capture import read_captures\nprint(sum(1 for _ in read_captures(['-'])))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, timeout=60, check=True
    )
    return proc.stdout.decode().strip()


def test_stdin_plain_and_gzip() -> None:
    data = g.pcap(_numbered(30))
    assert _stdin_count(data) == "30"
    assert _stdin_count(gzip.compress(data)) == "30"


def test_stdin_not_a_capture_is_an_error() -> None:
    code = (
        "from sipwatch.capture import read_captures, CaptureError\n"
        "try:\n    list(read_captures(['-']))\nexcept CaptureError as e:\n    print(e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], input=b"GET / HTTP/1.0\r\n\r\n" * 10,
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert "standard input" in proc.stdout.decode() and "not a capture" in proc.stdout.decode()


def test_iter_packets_gives_raw_frames(tmp_path: Path) -> None:
    from sipwatch.capture import iter_packets

    frames = [g.ether_of(_udp_ip()), g.ether(b"\x00" * 28, g.ETH_ARP)]
    path = tmp_path / "p.pcap"
    path.write_bytes(g.pcap([(1.5, frames[0]), (2.5, frames[1])]))
    assert list(iter_packets(str(path))) == [(1.5, 1, frames[0]), (2.5, 1, frames[1])]


def test_stdin_merges_with_files(tmp_path: Path) -> None:
    f = tmp_path / "f.pcap"
    f.write_bytes(g.pcap([(t, g.ether_of(_udp_ip(A))) for t in (1.0, 3.0)]))
    code = (
        "import sys\nfrom sipwatch.capture import read_captures\n"
        "print([r.ts for r in read_captures(['-', sys.argv[1]])])\n"
    )
    data = g.pcap([(t, g.ether_of(_udp_ip(B))) for t in (2.0, 4.0)])
    proc = subprocess.run(
        [sys.executable, "-c", code, str(f)],
        input=data,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.decode().strip() == "[1.0, 2.0, 3.0, 4.0]"
