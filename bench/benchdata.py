"""The records a component benchmark runs on: a capture given, or one bench/gen_capture.py makes."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from sipwatch.capture.api import read_captures
from sipwatch.record import Record

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def attack_capture(packets: int = 1_000_000, seed: int = 5060) -> Path:
    """bench/out/attack-PACKETS-SEED.pcap, made by gen_capture.py when missing (the capture
    bench_engine and bench_hep share)."""
    path = OUT / f"attack-{packets}-{seed}.pcap"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        gen = [sys.executable, str(HERE / "gen_capture.py")]
        args = ["--packets", str(packets), "--seed", str(seed), "--out", str(path)]
        subprocess.run([*gen, *args], check=True, timeout=3600)
    return path


def capture_records(packets: int, capture: Path | None = None) -> list[Record]:
    """Every SIP message of `capture`, or of a fresh `gen_capture.py --packets N` capture."""
    with tempfile.TemporaryDirectory() as tmp:
        if capture is None:
            capture = Path(tmp) / "attack.pcap"
            gen = [sys.executable, str(HERE / "gen_capture.py"), "--packets", str(packets)]
            subprocess.run([*gen, "--out", str(capture)], check=True, capture_output=True)
        return list(read_captures([str(capture)]))
