"""The benchmark's capture generator writes what it says it writes.

The benchmark compares tools on bench/gen_capture.py's file, so the file must be valid pcap,
reproducible from its seed, and every packet in it must be SIP to tshark.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_capture", BENCH / "gen_capture.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_capture"] = mod
    spec.loader.exec_module(mod)
    return mod


gen = _load_generator()


def _generate(tmp_path: Path, name: str, packets: int, seed: int) -> tuple[Path, dict]:
    out = tmp_path / name
    assert gen.main(["--packets", str(packets), "--seed", str(seed), "--sources", "500",
                     "--head", "1000", "--out", str(out)]) == 0  # fmt: skip
    return out, json.loads(Path(f"{out}.json").read_text())


def _records(path: Path) -> list[tuple[float, bytes]]:
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data, 0)
    assert (magic, linktype) == (0xA1B2C3D4, 1)
    out, off = [], 24
    while off < len(data):
        sec, usec, caplen, length = struct.unpack_from("<IIII", data, off)
        assert caplen == length
        out.append((sec + usec / 1e6, data[off + 16 : off + 16 + caplen]))
        off += 16 + caplen
    return out


def test_same_seed_same_file_and_counts_add_up(tmp_path: Path) -> None:
    a, man = _generate(tmp_path, "a.pcap", 3000, 7)
    b, _ = _generate(tmp_path, "b.pcap", 3000, 7)
    c, _ = _generate(tmp_path, "c.pcap", 3000, 8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    recs = _records(a)
    assert len(recs) == man["packets"] == 3000
    times = [t for t, _ in recs]
    assert times == sorted(times)
    assert sum(man["requests"].values()) + sum(man["responses"].values()) == 3000
    assert sum(man["transports"].values()) == 3000
    assert {"REGISTER", "OPTIONS", "INVITE"} <= set(man["requests"])
    assert {"200", "401", "403", "404"} <= set(man["responses"])


def test_every_packet_is_sip_with_a_valid_start_line(tmp_path: Path) -> None:
    path, _ = _generate(tmp_path, "s.pcap", 2000, 3)
    for _, pkt in _records(path):
        ethertype = pkt[12:14]
        ip = pkt[14:]
        if ethertype == b"\x08\x00":
            proto, l4 = ip[9], ip[(ip[0] & 0xF) * 4 :]
        else:
            assert ethertype == b"\x86\xdd"
            proto, l4 = ip[6], ip[40:]
        sport, dport = struct.unpack_from("!HH", l4)
        assert 5060 in (sport, dport)
        payload = l4[8:] if proto == 17 else l4[(l4[12] >> 4) * 4 :]
        first = payload.split(b"\n", 1)[0].rstrip(b"\r")
        assert first.startswith(b"SIP/2.0 ") or first.endswith(b" SIP/2.0"), first


def test_tshark_counts_every_packet_as_sip(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        print("tshark is not installed: skipping the tshark cross-check")
        pytest.skip("tshark not installed")
    path, man = _generate(tmp_path, "t.pcap", 5000, 11)
    res = subprocess.run(["tshark", "-n", "-q", "-r", str(path), "-z", "sip,stat"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert f"Number of SIP messages: {man['packets']}" in res.stdout
    seen: Counter = Counter()
    for m in re.finditer(r"^\s+(?:SIP (\d{3}) .*?|(\S+))\s*:\s*(\d+) Packets", res.stdout, re.M):
        seen[m.group(1) or m.group(2)] += int(m.group(3))
    want: Counter = Counter()
    for k, v in [*man["requests"].items(), *man["responses"].items()]:
        want[k.lstrip("!")] += v  # malformed messages count under their method
    assert seen == want
