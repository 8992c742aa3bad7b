"""TCP reassembly and framing: the Python decoder's path vs the C reassembler, per segment.

    python bench/bench_native_tcp.py [--capture FILE] [--packets 100000] [--repeat 5]

The TCP frames of a capture (a gen_capture.py one, written to a temporary folder, unless
--capture is given) are read once; each run hands all of them, in order, to a fresh
reassembler, with a record factory that does nothing, so only decoding, reassembly and framing
are timed (what `sipwatch analyze` paid in Python per TCP segment before the C reassembler,
and pays now):

- PacketDecoder.frame_at      the Python decoder: link, IP, TCP header, TcpReassembler,
                              StreamFramer, _emit_tcp (the bulk path's general path)
- TcpReassembler.take_frame   the C reassembler from the frame on (the C batch loop's hook),
                              one Python call per frame, one call of the sink per message

Best of --repeat runs, CPU time of this process, garbage collector off.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sipwatch import analyze_native
from sipwatch.capture.decode import PacketDecoder
from sipwatch.capture.reader import CaptureFile
from sipwatch.capture.stats import CaptureStats
from sipwatch.native import part

HERE = Path(__file__).resolve().parent


def tcp_frames(path: Path) -> tuple[int, list[tuple[float, bytes]]]:
    """The capture's Ethernet/IPv4/IPv6 TCP frames (link type, [(ts, frame)])."""
    stats = CaptureStats()
    cap = CaptureFile(str(path), "pcap", None, stats, None).open()
    out = []
    try:
        for pkts, meta in cap.batches():
            for i in range(0, len(meta), 16):
                sec, usec, off, caplen = (
                    int.from_bytes(meta[i + k : i + k + 4], sys.byteorder) for k in (0, 4, 8, 12)
                )
                frame = bytes(pkts[off : off + caplen])
                et = frame[12:14]
                proto = frame[23] if et == b"\x08\x00" else frame[20] if et == b"\x86\xdd" else 0
                if proto == 6:
                    out.append((sec + usec * 1e-6, frame))
        return cap.dlt, out
    finally:
        cap.close()


def nothing(*args, **kw) -> None:  # noqa: ANN002, ANN003
    return None


def run_python(dlt: int, frames: list[tuple[float, bytes]]) -> tuple[float, int]:
    stats = CaptureStats()
    dec = PacketDecoder(dlt, stats, nothing)
    frame_at = dec.frame_at
    t0 = time.process_time()
    for ts, f in frames:
        frame_at(ts, f, 0, len(f), 0, 0)
    dec.flush()
    return time.process_time() - t0, stats.sip_messages


def run_c(dlt: int, frames: list[tuple[float, bytes]]) -> tuple[float, int]:
    tcp = analyze_native.tcp_reassembler(nothing)
    take = tcp.take_frame  # type: ignore[union-attr]
    t0 = time.process_time()
    for ts, f in frames:
        take(f, dlt, ts)
    tcp.flush()  # type: ignore[union-attr]
    return time.process_time() - t0, tcp.counts()["sip_messages"]  # type: ignore[union-attr]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capture", type=Path)
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if part("TcpReassembler") is None:
        print("sipwatch._native is not built", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        path = args.capture
        if path is None:
            path = Path(tmp) / "gen.pcap"
            subprocess.run(
                [
                    sys.executable,
                    str(HERE / "gen_capture.py"),
                    "--packets",
                    str(args.packets),
                    "--out",
                    str(path),
                ],
                check=True,
                capture_output=True,
            )
        dlt, frames = tcp_frames(path)
    print(f"{len(frames)} TCP frames")
    gc.disable()
    for name, fn in (("PacketDecoder.frame_at", run_python), ("TcpReassembler.take_frame", run_c)):
        best, msgs = min(fn(dlt, frames) for _ in range(args.repeat))
        print(f"{name:28s} {best * 1e6 / len(frames):6.2f} µs/segment  ({msgs} messages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
