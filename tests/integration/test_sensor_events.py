"""Detection on the live sensor: alerts reach the JSON lines output quickly, and replaying a
capture of the same traffic with `sipwatch analyze` gives the same events."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sensorproc import SIPWATCH, SensorProcess, free_port, query
from sipwatch.sip.build import build_request


def _config(tmp: Path, port: int) -> str:
    return f"""
[sensor]
name = "events"
store = "{tmp / "live.sqlite"}"
log_interval = 1

[[listen]]
transport = "udp"
address = "127.0.0.1"
port = {port}

[safety]
reply_rate = 2000
reply_burst = 4000

[actions.jsonl]
path = "{tmp / "events.jsonl"}"
min_severity = "info"
"""


def _options(sock: socket.socket, port: int, call_id: str) -> float:
    req = build_request(
        "OPTIONS", "sip:100@127.0.0.1",
        via=f"SIP/2.0/UDP 127.0.0.1:{sock.getsockname()[1]};branch=z9hG4bK-{call_id}",
        from_="<sip:scan@127.0.0.1>;tag=1", to="<sip:100@127.0.0.1>", call_id=call_id, cseq=1,
        headers=[("User-Agent", "friendly-scanner")],
    ).to_bytes()  # fmt: skip
    sent = time.monotonic()
    sock.sendto(req, ("127.0.0.1", port))
    return sent


def test_an_alert_reaches_the_json_output_within_one_second(tmp_path: Path):
    port = free_port()
    proc = SensorProcess(_config(tmp_path, port), tmp_path, listeners=1).start()
    jsonl = tmp_path / "events.jsonl"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.9", 0))
            sent = _options(s, port, "latency-1")
            seen = None
            while time.monotonic() - sent < 5:
                if jsonl.exists() and "tool.attack-tool" in jsonl.read_text():
                    seen = time.monotonic()
                    break
                time.sleep(0.005)
    finally:
        assert proc.stop() == 0, proc.log()
    assert seen is not None, proc.log()
    # the figure (issue goal: under 1 s) is recorded in bench/BENCHMARKS.md, not asserted:
    # tests make no timing assertions; this one checks that the alert arrives at all
    print(f"alert latency: {(seen - sent) * 1000:.0f} ms")
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    first = next(e for e in events if e["rule"] == "tool.attack-tool")
    assert first["src"] == "127.0.0.9" and first["severity"] and first["evidence"]


def _events(db: Path) -> set[tuple]:
    return {
        (rule, src, count)
        for rule, src, count in query(
            db, "SELECT rule, src, count FROM events WHERE rule NOT LIKE 'chain.%'"
        )
    }


def test_live_and_offline_give_the_same_events(tmp_path: Path):
    missing = [
        t for t in ("tcpdump", "sipvicious_svwar", "sipvicious_svcrack") if not shutil.which(t)
    ]
    if missing or os.geteuid() != 0:
        why = f"needs {', '.join(missing)}" if missing else "tcpdump on lo needs root"
        print(f"SKIP: {why}")
        pytest.skip(why)
    port = free_port()
    pcap = tmp_path / "live.pcap"
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-s0", "-w", str(pcap),
         f"udp port {port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)
    proc = SensorProcess(_config(tmp_path, port), tmp_path, listeners=1).start()
    env = dict(os.environ, HOME=str(tmp_path))
    try:
        (tmp_path / "w.txt").write_text("0000\n1111\n1234\n")
        for cmd in (
            ["sipvicious_svwar", "-e100-140", "-p", str(port), "-P", str(free_port()), "127.0.0.1"],
            ["sipvicious_svcrack", "-u101", "-d", str(tmp_path / "w.txt"), "-p", str(port),
             "-P", str(free_port()), "127.0.0.1"],
        ):  # fmt: skip
            subprocess.run(
                cmd, cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False
            )
        time.sleep(1.0)
    finally:
        assert proc.stop() == 0, proc.log()
        time.sleep(0.5)
        dump.send_signal(signal.SIGINT)
        dump.wait(10)
    res = subprocess.run(
        [*SIPWATCH, "analyze", "-q", str(pcap), "--db", str(tmp_path / "offline.sqlite")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    live, offline = _events(tmp_path / "live.sqlite"), _events(tmp_path / "offline.sqlite")
    assert live, "the tools raised no event"
    assert live == offline
