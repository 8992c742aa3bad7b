"""The records a component benchmark runs on: a capture given, or one bench/gen_capture.py makes."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from sipwatch.capture.api import read_captures
from sipwatch.record import Record

HERE = Path(__file__).resolve().parent


def capture_records(packets: int, capture: Path | None = None) -> list[Record]:
    """Every SIP message of `capture`, or of a fresh `gen_capture.py --packets N` capture."""
    with tempfile.TemporaryDirectory() as tmp:
        if capture is None:
            capture = Path(tmp) / "attack.pcap"
            gen = [sys.executable, str(HERE / "gen_capture.py"), "--packets", str(packets)]
            subprocess.run([*gen, "--out", str(capture)], check=True, capture_output=True)
        return list(read_captures([str(capture)]))
