"""TCP stream reassembly: messages split over segments, several per segment, loss, reordering."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pcapgen as g  # noqa: E402
from sipwatch.capture import CaptureStats, read_captures  # noqa: E402

C, S = "198.51.100.7", "192.0.2.1"
ISN = 1000


def _msgs(n: int, body: bytes = b"v=0\r\n") -> list[bytes]:
    return [g.sip_request("INVITE", call_id=f"tcp-{i}", body=body) for i in range(n)]


def _segments(stream: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    """(seq, payload) pieces of `stream` cut at the given offsets."""
    bounds = [0, *cuts, len(stream)]
    return [(ISN + 1 + a, stream[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


def _capture(segs: list[tuple[int, bytes]], syn: bool = True, fin: bool = True,
             sport: int = 40000, dport: int = 5060, src: str = C, dst: str = S) -> bytes:  # fmt: skip
    pkts = []
    t = 100.0
    if syn:
        pkts.append((t, g.ether_of(g.tcp_packet(src, dst, sport, dport, ISN, flags=g.SYN))))
    for seq, data in segs:
        t += 0.01
        pkts.append((t, g.ether_of(g.tcp_packet(src, dst, sport, dport, seq, data))))
    if fin and segs:
        end = max(seq + len(data) for seq, data in segs)
        pkts.append((t + 0.01, g.ether_of(g.tcp_packet(src, dst, sport, dport, end, flags=0x11))))
    return g.pcap(pkts)


def _read(tmp_path: Path, data: bytes):
    path = tmp_path / "tcp.pcap"
    path.write_bytes(data)
    stats = CaptureStats()
    return list(read_captures([str(path)], stats=stats)), stats


def test_several_messages_in_one_segment(tmp_path: Path) -> None:
    msgs = _msgs(3)
    recs, _ = _read(tmp_path, _capture([(ISN + 1, b"".join(msgs))]))
    assert [r.raw for r in recs] == msgs
    assert all(r.transport == "tcp" and r.dport == 5060 and r.src == C for r in recs)
    assert all(r.msg.error == "" for r in recs)


def test_one_message_over_several_segments(tmp_path: Path) -> None:
    (msg,) = _msgs(1, body=b"v=0\r\n" * 200)
    recs, _ = _read(tmp_path, _capture(_segments(msg, [10, 100, 101, 700])))
    assert [r.raw for r in recs] == [msg]
    assert recs[0].msg.body == b"v=0\r\n" * 200


def test_messages_straddling_segments(tmp_path: Path) -> None:
    msgs = _msgs(4)
    stream = b"".join(msgs)
    cuts = list(range(37, len(stream), 53))
    recs, _ = _read(tmp_path, _capture(_segments(stream, cuts)))
    assert [r.raw for r in recs] == msgs


def test_out_of_order_segments(tmp_path: Path) -> None:
    msgs = _msgs(3)
    segs = _segments(b"".join(msgs), [50, 260, 400, 600])
    segs = [segs[0], segs[2], segs[1], segs[4], segs[3]]
    recs, stats = _read(tmp_path, _capture(segs))
    assert [r.raw for r in recs] == msgs
    assert stats.tcp_out_of_order >= 2 and stats.tcp_gaps == 0


def test_retransmissions_are_not_duplicated(tmp_path: Path) -> None:
    msgs = _msgs(2)
    segs = _segments(b"".join(msgs), [120])
    segs = [segs[0], segs[0], segs[1], (segs[1][0] - 20, b"".join(msgs)[100:]), segs[1]]
    recs, stats = _read(tmp_path, _capture(segs))
    assert [r.raw for r in recs] == msgs
    assert stats.tcp_retransmissions >= 2


def test_lost_segment_resynchronises_on_next_message(tmp_path: Path) -> None:
    msgs = _msgs(3)
    stream = b"".join(msgs)
    first_end = len(msgs[0])
    segs = _segments(stream, [first_end + 30, first_end + 90])
    del segs[1]  # the middle of the second message never arrives
    recs, stats = _read(tmp_path, _capture(segs))
    raws = [r.raw for r in recs]
    assert raws[0] == msgs[0] and raws[-1] == msgs[2]
    assert msgs[1] not in raws
    assert stats.tcp_gaps == 1 and stats.tcp_gap_bytes == 60


def test_capture_starting_mid_stream(tmp_path: Path) -> None:
    msgs = _msgs(2)
    stream = b"".join(msgs)
    segs = _segments(stream, [40])[1:]  # no SYN, first bytes of message 1 missing
    recs, _ = _read(tmp_path, _capture(segs, syn=False))
    assert [r.raw for r in recs] == [msgs[1]]


def test_sip_over_tcp_on_any_port(tmp_path: Path) -> None:
    msgs = _msgs(2)
    recs, _ = _read(tmp_path, _capture([(ISN + 1, b"".join(msgs))], dport=8888))
    assert [r.dport for r in recs] == [8888, 8888]


def test_both_directions_and_ipv6(tmp_path: Path) -> None:
    c6, s6 = "2001:db8::7", "2001:db8::1"
    req = _msgs(1)[0]
    resp = g.sip_response(200, "OK", call_id="tcp-0")
    pkts = [
        (1.0, g.ether_of(g.tcp_packet(c6, s6, 40000, 5060, 10, flags=g.SYN))),
        (1.1, g.ether_of(g.tcp_packet(s6, c6, 5060, 40000, 50, flags=g.SYN | g.ACK))),
        (1.2, g.ether_of(g.tcp_packet(c6, s6, 40000, 5060, 11, req))),
        (1.3, g.ether_of(g.tcp_packet(s6, c6, 5060, 40000, 51, resp))),
    ]
    recs, _ = _read(tmp_path, g.pcap(pkts))
    assert [(r.src, r.raw) for r in recs] == [(c6, req), (s6, resp)]


def test_tls_on_5061_is_not_taken_for_sip(tmp_path: Path) -> None:
    hello = b"\x16\x03\x01\x00\x50" + b"\x01" * 80
    recs, stats = _read(tmp_path, _capture([(ISN + 1, hello)], dport=5061))
    assert recs == [] and stats.non_sip == 1


def test_http_on_other_ports_is_ignored(tmp_path: Path) -> None:
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    recs, _ = _read(tmp_path, _capture([(ISN + 1, req)], dport=80))
    assert recs == []


def test_unfinished_message_at_end_is_kept_as_evidence(tmp_path: Path) -> None:
    (msg,) = _msgs(1, body=b"x" * 100)
    recs, _ = _read(tmp_path, _capture([(ISN + 1, msg[:-40])], fin=False))
    assert [r.raw for r in recs] == [msg[:-40]]


def _reassembler(**kw):
    from sipwatch.capture.decode import is_foreign
    from sipwatch.capture.tcp import TcpReassembler
    from sipwatch.sip.framing import StreamFramer

    stats = CaptureStats()
    out: list[bytes] = []
    r = TcpReassembler(stats, StreamFramer, lambda f, ts, m: out.append(m), is_foreign, **kw)
    return r, stats, out


def test_flow_table_is_bounded_lru() -> None:
    from sipwatch.capture.tcp import Flow

    r, stats, out = _reassembler(max_flows=3)
    msg = _msgs(1)[0]
    for i in range(10):
        r.open(i, float(i), Flow(C, 40000 + i, S, 5060, "", ""))
        r.segment(i, float(i), 1, 0x18, msg[:50])  # unfinished message in each flow
    assert len(r.flows) == 3 and stats.tcp_flows_evicted == 7
    assert len(out) == 7  # an evicted flow's unfinished message is kept as evidence


def test_hole_is_given_up_when_the_reorder_buffer_fills() -> None:
    from sipwatch.capture.tcp import Flow

    r, stats, out = _reassembler(max_ooo_segments=3)
    msgs = _msgs(6)
    r.open("k", 0.0, Flow(C, 40000, S, 5060, "", ""))
    seq = 1
    for i, m in enumerate(msgs):
        if i != 1:  # message 1 is lost; the stream goes on without FIN
            r.segment("k", float(i), seq, 0x18, m)
        seq += len(m)
    assert out == [msgs[0], msgs[2], msgs[3], msgs[4], msgs[5]][: len(out)]
    assert len(out) >= 3 and stats.tcp_gaps == 1  # delivered before the flow ended
