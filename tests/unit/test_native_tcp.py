"""`sipwatch analyze` on the C bulk path with its TCP reassembler stores exactly what the
Python pipeline stores (native/tcp.c, framer.c; the parts: test_native_tcp_parts.py).

In a run on the C bulk path there is one TCP reassembler, the C one: the C batch loop hands it
the plain TCP frames and the Python decoder the segments it decodes itself (VLANs, fragments,
tunnels, IPv6 extension headers), so a flow may take both ways. Each test analyses a capture
both ways (_same from test_native_analyze: every stored row, CaptureStats, stages): every case
of test_capture_tcp.py, the flow table's bound, idle expiry, tunnels and fragments mixed with
plain TCP of the same flows, IPv6, other link types, hypothesis-made captures, generated
traffic made rough.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcpcases import CASES, conn, msgs, roughen, scenarios, to_frames

import pcapgen as g
from sipwatch.capture import decode
from sipwatch.capture import tcp as pytcp
from sipwatch.native import part

if part("TcpReassembler") is None or part("BulkAnalyzer") is None:
    pytest.skip("the C bulk path (sipwatch._native) is not built", allow_module_level=True)

from test_native_analyze import _same  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- analyze level


def _pcap(path: Path, frames: list[tuple[float, bytes]], linktype: int = 1) -> Path:
    path.write_bytes(g.pcap(frames, linktype=linktype))
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_analyze_case(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = sorted(CASES[name], key=lambda e: e[0])
    _same(_pcap(tmp_path / f"{name}.pcap", to_frames(events)), tmp_path, monkeypatch)


def test_flow_table_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More flows than the table holds: the oldest are evicted, their unfinished messages kept."""
    msg = msgs(1)[0]
    events = []
    for i in range(pytcp.MAX_FLOWS + 150):
        sport = 1024 + i
        events += conn(msg[:200], sport=sport, t=100.0 + i * 0.001, end=0, step=0.0001)
        if i % 97 == 0:  # a few go on later: their flow moved to the end of the LRU
            events += conn(msg, sport=sport, syn=False, t=100.5 + i * 0.001, end=0)
    events.sort(key=lambda e: e[0])
    cap = _pcap(tmp_path / "many.pcap", to_frames(events))
    _same(cap, tmp_path, monkeypatch)


@pytest.mark.parametrize("linktype", [113, 276, 101])
def test_other_link_types(linktype: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = sorted(CASES["out_of_order"] + CASES["ipv6"] + CASES["seq_wrap"], key=lambda e: e[0])
    frames = []
    for ts, frame in to_frames([e for e in events if e[1] == "plain" or e[1] == "ext"]):
        et = struct.unpack_from("!H", frame, 12)[0]
        ip = frame[14:]
        frames.append((ts, {113: g.sll, 276: g.sll2}.get(linktype, lambda p, _e: p)(ip, et)))
    _same(_pcap(tmp_path / "link.pcap", frames, linktype), tmp_path, monkeypatch)


def test_plain_tcp_frames_stay_in_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C batch loop takes plain TCP frames; only the other shapes reach the Python decoder."""
    events = sorted(CASES["paths_mixed_in_one_flow"], key=lambda e: e[0])
    frames = to_frames(events)
    cap = _pcap(tmp_path / "mixed.pcap", frames)
    calls: list[int] = []
    real = decode.PacketDecoder.frame_at

    def frame_at(self, *a):  # noqa: ANN001, ANN002
        calls.append(1)
        return real(self, *a)

    monkeypatch.setattr(decode.PacketDecoder, "frame_at", frame_at)
    _same(cap, tmp_path, monkeypatch)

    def python_shape(frame: bytes) -> bool:  # VLAN tags, IPv4 fragments
        et = struct.unpack_from("!H", frame, 12)[0]
        return et in (0x8100, 0x88A8) or struct.unpack_from("!H", frame, 20)[0] & 0x3FFF != 0

    python_shapes = sum(python_shape(f) for _, f in frames)
    assert 0 < python_shapes < len(frames)
    assert len(calls) == 2 * python_shapes  # the two native runs of _same


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=scenarios(max_flows=5), seed=st.integers(0, 3))
def test_analyze_hypothesis(
    events: list, seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _same(_pcap(tmp_path / "hyp.pcap", to_frames(events, seed)), tmp_path, monkeypatch)


# --------------------------------------------------------------------------- generated traffic


def test_generated_traffic_roughened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = tmp_path / "gen.pcap"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "gen_capture.py"),
            "--packets",
            "20000",
            "--seed",
            "11",
            "--out",
            str(gen),
        ],
        check=True,
        capture_output=True,
    )
    frames = roughen(gen.read_bytes(), 3)
    _same(_pcap(tmp_path / "rough.pcap", frames), tmp_path, monkeypatch)
    _same(gen, tmp_path, monkeypatch)
