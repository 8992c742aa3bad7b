"""Attacker bytes never make the decoder raise; damage is counted, not fatal."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pcapgen as g  # noqa: E402
from sipwatch.capture import CaptureStats, PacketDecoder  # noqa: E402
from sipwatch.capture.decode import is_foreign  # noqa: E402
from sipwatch.capture.tcp import Flow, TcpReassembler  # noqa: E402
from sipwatch.sip.framing import StreamFramer  # noqa: E402

A, B = "198.51.100.7", "192.0.2.1"
SEEDS = [
    g.ether_of(g.udp_packet(A, B, 5060, 5060, g.sip_request())),
    g.ether_of(g.tcp_packet(A, B, 4000, 5060, 1, g.sip_request())),
    g.ether(g.ipv4_fragments(A, B, g.UDP, g.udp(5060, 5060, g.sip_request() * 9), size=256)[1]),
    g.ether_of(g.udp_packet("2001:db8::1", "2001:db8::2", 5060, 5060, g.sip_request())),
    g.ether_of(
        g.udp_packet(A, B, 1, 4789, g.vxlan(1, g.ether_of(g.udp_packet(A, B, 1, 5060, b"x"))))
    ),
    g.ether_of(g.ipv4(A, B, g.GRE, g.gre(g.udp_packet(A, B, 5060, 5060, b"INVITE"), key=1))),
    g.ether(g.udp_packet(A, B, 5060, 5060, g.sip_request()), vlans=[1, 2], qinq=True),
]


def _mutate(seed: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    b = bytearray(seed[: max(0, len(seed) - cut)])
    for pos, val in flips:
        if b:
            b[pos % len(b)] = val
    return bytes(b)


def _batch(frames: list[bytes]) -> tuple[bytes, bytes]:
    meta, off = b"", 0
    for i, f in enumerate(frames):
        meta += struct.pack("=IIII", 1000 + i, 0, off, len(f))
        off += len(f)
    return b"".join(frames), meta


@settings(max_examples=300, deadline=None)
@given(
    seed=st.sampled_from(SEEDS),
    cut=st.integers(0, 80),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    dlt=st.sampled_from([1, 0, 12, 108, 113, 276]),
)
def test_mutated_frames_never_raise(seed: bytes, cut: int, flips: list, dlt: int) -> None:
    stats = CaptureStats()
    dec = PacketDecoder(dlt, stats)
    frame = _mutate(seed, cut, flips)
    dec.decode_frame(1.0, frame)
    dec.decode_batch(*_batch([frame, seed, frame]))
    dec.flush()
    assert stats.internal_errors == 0, stats.warnings


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=8), st.sampled_from([1, 0, 101, 113, 276]))
def test_random_bytes_never_raise(frames: list[bytes], dlt: int) -> None:
    stats = CaptureStats()
    dec = PacketDecoder(dlt, stats)
    dec.decode_batch(*_batch(frames))
    dec.flush()
    assert stats.internal_errors == 0, stats.warnings


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 0x3F), st.binary(max_size=64)),
        max_size=40,
    )
)
def test_tcp_reassembler_survives_any_segment_sequence(segs: list) -> None:
    """Any order, overlap, wrap-around or flag mix: no exception, state stays bounded."""
    stats = CaptureStats()
    out: list[bytes] = []
    r = TcpReassembler(
        stats, StreamFramer, lambda f, ts, m: out.append(m), is_foreign, max_ooo_segments=4
    )
    r.open("k", 0.0, Flow(A, 1, B, 5060, "", ""))
    for i, (seq, flags, data) in enumerate(segs):
        if "k" not in r:
            r.open("k", float(i), Flow(A, 1, B, 5060, "", ""))
        r.segment("k", float(i), seq, flags, data)
        for flow in r.flows.values():
            assert len(flow.ooo) <= 4
    r.flush()
    assert r.total_ooo == 0
