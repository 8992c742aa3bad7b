"""PcapWriter: what the sensor writes, our reader and tshark read back as the same SIP messages."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from sipwatch.capture.api import iter_packets, read_captures
from sipwatch.pipeline import Pipeline
from sipwatch.record import IN, OUT, Record
from sipwatch.store.pcapwriter import (
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    MAX_SEGMENT,
    PcapWriter,
    PcapWriterError,
    checksum,
)

T0 = 1_700_000_000.0


def request(method: str = "OPTIONS", cseq: int = 1, body: bytes = b"", via: str = "UDP") -> bytes:
    head = (
        f"{method} sip:100@192.0.2.10 SIP/2.0\r\n"
        f"Via: SIP/2.0/{via} 198.51.100.7:5070;branch=z9hG4bK-{cseq}\r\n"
        "From: <sip:100@192.0.2.10>;tag=31303030\r\n"
        "To: <sip:100@192.0.2.10>\r\n"
        "Call-ID: c1@198.51.100.7\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "User-Agent: friendly-scanner\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def response(cseq: int = 1, via: str = "UDP") -> bytes:
    return (
        "SIP/2.0 200 OK\r\n"
        f"Via: SIP/2.0/{via} 198.51.100.7:5070;branch=z9hG4bK-{cseq};received=198.51.100.7\r\n"
        "From: <sip:100@192.0.2.10>;tag=31303030\r\n"
        "To: <sip:100@192.0.2.10>;tag=as1234\r\n"
        "Call-ID: c1@198.51.100.7\r\n"
        f"CSeq: {cseq} OPTIONS\r\n"
        "Server: Asterisk PBX 18.0.0\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def rec(raw: bytes, ts: float, transport: str, src: str, sport: int, dst: str, dport: int,
        direction: str = IN) -> Record:  # fmt: skip
    return Record.from_bytes(raw, ts, transport, src, sport, dst, dport, direction=direction)


def mixed() -> list[Record]:
    """UDP over IPv4 and IPv6, one TCP connection with two requests and a reply, TLS."""
    return [
        rec(request(), T0 + 0.123456, "udp", "198.51.100.7", 5070, "192.0.2.10", 5060),
        rec(response(), T0 + 0.2, "udp", "192.0.2.10", 5060, "198.51.100.7", 5070, OUT),
        rec(request(), T0 + 1.5, "udp", "2001:db8::7", 5070, "2001:db8::10", 5060),
        rec(request(cseq=1, via="TCP"), T0 + 2.1, "tcp", "198.51.100.7", 40000, "192.0.2.10", 5060),
        rec(response(1, "TCP"), T0 + 2.2, "tcp", "192.0.2.10", 5060, "198.51.100.7", 40000, OUT),
        rec(request(cseq=2, via="TCP"), T0 + 2.3, "tcp", "198.51.100.7", 40000, "192.0.2.10", 5060),
        rec(request(via="TLS"), T0 + 3.25, "tls", "2001:db8::7", 40001, "2001:db8::10", 5061),
    ]  # fmt: skip


def write(path: Path, records: list[Record], **kw: object) -> PcapWriter:
    w = PcapWriter(path, **kw)  # type: ignore[arg-type]
    w.handle(records)
    w.close()
    return w


def seen(r: Record) -> tuple:
    # TLS is written decrypted as TCP: it reads back as SIP over TCP on the TLS port
    transport = "tcp" if r.transport == "tls" else r.transport
    return (transport, r.src, r.sport, r.dst, r.dport, r.raw)


@pytest.mark.parametrize("linktype", [LINKTYPE_RAW, LINKTYPE_ETHERNET])
@pytest.mark.parametrize("nano", [False, True], ids=["usec", "nsec"])
def test_reader_gets_back_what_was_written(tmp_path: Path, linktype: int, nano: bool) -> None:
    records = mixed()
    w = write(tmp_path, records, linktype=linktype, nanosecond=nano)
    assert w.path is not None and w.stats.files == 1
    assert w.stats.packets == len(records) and w.stats.skipped == 0
    assert w.stats.bytes == w.path.stat().st_size
    back = list(read_captures([str(w.path)]))
    assert [seen(r) for r in back] == [seen(r) for r in records]
    for a, b in zip(records, back, strict=True):
        assert abs(a.ts - b.ts) < 1e-6
        assert not b.msg.error
    head = w.path.read_bytes()[:24]
    magic, major, minor, _, _, snaplen, lt = struct.unpack("<IHHiIII", head)
    assert (magic, major, minor, lt) == (0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, linktype)


def test_message_larger_than_one_ip_packet_is_split_over_tcp_segments(tmp_path: Path) -> None:
    big = request("MESSAGE", body=b"x" * 65_500, via="TCP")  # over 64 KiB with its headers
    assert len(big) > MAX_SEGMENT
    reply = response(via="TCP")
    records = [
        rec(big, T0, "tcp", "198.51.100.7", 40000, "192.0.2.10", 5060),
        rec(reply, T0 + 1, "tcp", "192.0.2.10", 5060, "198.51.100.7", 40000, OUT),
    ]
    w = write(tmp_path, records)
    assert w.stats.packets == 3
    assert [r.raw for r in read_captures([str(w.path)])] == [big, reply]


def test_udp_too_large_for_a_datagram_is_skipped_and_counted(tmp_path: Path) -> None:
    too_big = request("MESSAGE", body=b"y" * 65_500)
    n = 65_000 + 65_527 - len(request("MESSAGE", body=b"z" * 65_000))
    fits6 = request("MESSAGE", body=b"z" * n)  # the largest UDP payload IPv6 can carry
    assert len(fits6) == 65_527
    records = [
        rec(too_big, T0, "udp", "198.51.100.7", 5070, "192.0.2.10", 5060),
        rec(fits6, T0 + 1, "udp", "2001:db8::7", 5070, "2001:db8::10", 5060),  # IPv6: fits
        rec(request(), T0 + 2, "sctp", "198.51.100.7", 5070, "192.0.2.10", 5060),
        rec(request(), T0 + 3, "udp", "not-an-address", 5070, "192.0.2.10", 5060),
        rec(request(), T0 + 4, "udp", "198.51.100.7", 5070, "2001:db8::10", 5060),
    ]
    w = write(tmp_path, records)
    assert w.stats.packets == 1
    assert (w.stats.skipped, w.stats.skipped_oversize) == (4, 1)
    assert (w.stats.skipped_transport, w.stats.skipped_address) == (1, 2)
    assert [len(r.raw) for r in read_captures([str(w.path)])] == [65_527]


def test_ipv4_mapped_addresses_are_written_as_ipv4(tmp_path: Path) -> None:
    r = rec(request(), T0, "udp", "::ffff:198.51.100.7", 5070, "192.0.2.10", 5060)
    w = write(tmp_path, [r])
    ((_, lt, frame),) = list(iter_packets(str(w.path)))
    assert lt in (12, LINKTYPE_RAW) and frame[0] >> 4 == 4  # libpcap reports DLT_RAW (12)
    (back,) = read_captures([str(w.path)])
    assert (back.src, back.dst) == ("198.51.100.7", "192.0.2.10")


def test_checksums_verify(tmp_path: Path) -> None:
    """Each IPv4 header and each UDP/TCP segment (with its pseudo-header) sums to zero."""
    w = write(tmp_path, mixed())
    for _, _, frame in iter_packets(str(w.path)):
        if frame[0] >> 4 == 4:
            ihl = (frame[0] & 15) * 4
            assert checksum(frame[:ihl]) == 0
            src, dst, proto, l4 = frame[12:16], frame[16:20], frame[9], frame[ihl:]
            pseudo = src + dst + struct.pack("!xBH", proto, len(l4))
        else:
            src, dst, proto, l4 = frame[8:24], frame[24:40], frame[6], frame[40:]
            pseudo = src + dst + struct.pack("!IxxxB", len(l4), proto)
        assert checksum(pseudo + l4) == 0


def test_tcp_sequence_numbers_continue_and_ack_the_peer(tmp_path: Path) -> None:
    w = write(tmp_path, mixed())
    segs = []
    for _, _, frame in iter_packets(str(w.path)):
        if frame[0] >> 4 == 4 and frame[9] == 6:
            sport, dport, seq, ack, _, flags = struct.unpack_from("!HHIIBB", frame, 20)
            segs.append((sport, seq, ack, flags, len(frame) - 40))
    (c1, s1, c2) = segs
    assert {f for *_, f, _ in segs} == {0x18}  # PSH|ACK
    assert c2[1] == (c1[1] + c1[4]) & 0xFFFFFFFF  # client's second request follows its first
    assert s1[2] == c2[1]  # the server's reply acknowledges everything the client sent
    assert c2[2] == (s1[1] + s1[4]) & 0xFFFFFFFF  # and the client acknowledges the reply


def test_rotation_keeps_the_newest_files_and_only_ours(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("analyst notes")
    (tmp_path / "other.pcap").write_bytes(b"\xd4\xc3\xb2\xa1")
    (tmp_path / "sipwatch-notes.pcap").write_bytes(b"")  # our prefix, not our name form
    records = [
        rec(request(), T0 + i, "udp", "198.51.100.7", 5070, "192.0.2.10", 5060) for i in range(200)
    ]
    packet = 16 + 20 + 8 + len(records[0].raw)  # pcap record header, IPv4, UDP, SIP
    w = PcapWriter(tmp_path, rotate_bytes=24 + 10 * packet, keep=3)  # 10 packets a file
    for r in records:  # one record per batch, as a live sensor delivers them
        w.handle([r])
    w.close()
    assert w.stats.files == 20 and w.stats.rotations == 19 and w.stats.deleted == 17
    ours = sorted(p.name for p in tmp_path.glob("sipwatch-2*.pcap"))
    assert len(ours) == 3
    assert ours[-1] == w.path.name and ours[-1].endswith("-20.pcap")
    assert {"notes.txt", "other.pcap", "sipwatch-notes.pcap"} <= set(os.listdir(tmp_path))
    back = list(read_captures([str(tmp_path / n) for n in ours]))
    assert [r.ts for r in back] == [r.ts for r in records[-30:]]
    first = time.strftime("%Y%m%dT%H%M%S", time.gmtime(records[-30].ts))
    assert ours[0] == f"sipwatch-{first}-18.pcap"  # UTC time of its first packet, counter


def test_restart_does_not_overwrite_a_file_of_an_earlier_run(tmp_path: Path) -> None:
    r = rec(request(), T0, "udp", "198.51.100.7", 5070, "192.0.2.10", 5060)
    first = write(tmp_path, [r])
    second = write(tmp_path, [r])
    assert first.path != second.path
    assert len(list(read_captures([str(tmp_path)]))) == 2


def test_flush_makes_the_current_file_readable(tmp_path: Path) -> None:
    w = PcapWriter(tmp_path)
    w.handle(mixed()[:2])
    w.flush()
    assert len(list(read_captures([str(w.path)]))) == 2
    w.close()


def test_flow_table_is_bounded(tmp_path: Path) -> None:
    records = [
        rec(request(via="TCP"), T0 + i, "tcp", "198.51.100.7", 40000 + i, "192.0.2.10", 5060)
        for i in range(50)
    ]
    w = write(tmp_path, records, max_flows=8)
    assert len(w._flows) <= 8
    assert [r.raw for r in read_captures([str(w.path)])] == [r.raw for r in records]


def test_as_a_pipeline_action(tmp_path: Path) -> None:
    w = PcapWriter(tmp_path)
    pipe = Pipeline([], [w])
    pipe.run(mixed())
    pipe.close()
    assert w.stats.packets == len(mixed())
    assert pipe.stats.action_errors == {}


def test_unusable_folder_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PcapWriterError, match="cannot create"):
        PcapWriter(blocker / "pcaps")
    with pytest.raises(ValueError, match="link type"):
        PcapWriter(tmp_path, linktype=113)


def test_prefix_is_made_safe_for_file_names(tmp_path: Path) -> None:
    w = write(tmp_path, mixed()[:1], prefix="../honey pot/1")
    assert w.path is not None and w.path.parent == tmp_path
    assert w.path.name.startswith("_honey_pot_1-")


@pytest.mark.tools
@pytest.mark.parametrize("linktype", [LINKTYPE_RAW, LINKTYPE_ETHERNET])
def test_tshark_decodes_sip_with_good_checksums(tmp_path: Path, linktype: int) -> None:
    if shutil.which("tshark") is None:
        print("tshark is not installed (apt-get install tshark)")
        pytest.skip("tshark is not installed")
    records = mixed()
    w = write(tmp_path, records, linktype=linktype)
    checks = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
              "-o", "tcp.check_checksum:TRUE"]  # fmt: skip
    fields = ["-T", "fields", "-e", "ip.checksum.status", "-e", "udp.checksum.status",
              "-e", "tcp.checksum.status", "-e", "sip.CSeq"]  # fmt: skip
    out = subprocess.run(
        ["tshark", "-n", "-r", str(w.path), "-Y", "sip", *checks, *fields],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    rows = [line.split("\t") for line in out.splitlines()]
    assert len(rows) == len(records)  # every packet, the TLS one (TCP to 5061) too, is SIP
    for ip_ok, udp_ok, tcp_ok, cseq in rows:
        assert ip_ok in ("", "1") and (udp_ok or tcp_ok) == "1"  # 1 = checksum good
        assert cseq
    verbose = subprocess.run(
        ["tshark", "-n", "-V", "-r", str(w.path), *checks],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "[bad" not in verbose.lower() and "Checksum Status: Bad" not in verbose
    assert "Checksum Status: Good" in verbose
