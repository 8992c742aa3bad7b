"""Live capture on a veth interface in network namespaces made by the test, SIPVicious scanning.

Two namespaces joined by a veth pair: the attacker (198.51.100.1) runs svmap and svwar
against a small SIP responder at 198.51.100.2 in the target namespace, where a passive
`sipwatch sensor --capture` (no honeypot listeners) and tcpdump watch the same interface.
The sensor's store must hold the same messages (count, addresses, ports, methods and
statuses) as `sipwatch analyze` of the tcpdump capture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sensorproc import query, terminate

ROOT = Path(__file__).resolve().parents[2]
ATTACKER, TARGET = "198.51.100.1", "198.51.100.2"
ROWS = "SELECT transport, src, sport, dst, dport, method, status, call_id, cseq_num FROM messages"
RESPONDER = (
    "import sys, time\nfrom tests.sipresponder import SipResponder\n"
    "with SipResponder(sys.argv[1], 5060):\n    print('ready', flush=True)\n    sys.stdin.read()\n"
)


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture
def namespaces():
    if os.geteuid() != 0:
        print("SKIP: network namespaces and capture need root")
        pytest.skip("needs root")
    for tool in ("ip", "tcpdump", "sipvicious_svmap", "sipvicious_svwar"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} is not installed (scripts/install-test-deps.sh)")
            pytest.skip(f"{tool} not installed")
    tag = f"swlc{os.getpid() % 100000}"
    a, t = f"{tag}a", f"{tag}t"
    try:
        _sh("ip", "netns", "add", a)
        _sh("ip", "netns", "add", t)
        _sh(
            "ip",
            "link",
            "add",
            "lca",
            "netns",
            a,
            "type",
            "veth",
            "peer",
            "name",
            "lct",
            "netns",
            t,
        )
        for ns, dev, addr in ((a, "lca", ATTACKER), (t, "lct", TARGET)):
            _sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield a, t
    finally:
        for ns in (a, t):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)


def test_live_capture_sees_what_tcpdump_sees(namespaces, tmp_path: Path) -> None:
    a, t = namespaces
    inns = ["ip", "netns", "exec", t]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=f"{ROOT}:{ROOT / 'src'}",
               HOME=str(tmp_path))  # fmt: skip
    (tmp_path / "sensor.toml").write_text(
        '[sensor]\nname = "passive"\nstore = "live.sqlite"\nlog_interval = 1\n\n'
        '[capture]\ninterface = "lct"\nfilter = "udp port 5060"\n'
        f'pcap_dir = "{tmp_path / "frames"}"\n\n[detection]\nenabled = false\n'
    )
    procs: list[subprocess.Popen] = []
    sensor = None
    try:
        responder = subprocess.Popen([*inns, sys.executable, "-c", RESPONDER, TARGET], cwd=ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)  # fmt: skip
        procs.append(responder)
        assert responder.stdout is not None and responder.stdout.readline().strip() == "ready"
        pcap = tmp_path / "ref.pcap"
        dump = subprocess.Popen([*inns, "tcpdump", "-i", "lct", "-U", "--immediate-mode", "-s0",
                                 "-w", str(pcap), "udp port 5060"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        procs.append(dump)
        sensor = subprocess.Popen(
            [*inns, sys.executable, "-m", "sipwatch.cli", "sensor", "--config", "sensor.toml"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        lines: list[str] = []
        assert sensor.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = sensor.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "listening on capture lct" in line:
                break
        assert any("listening on capture lct" in x for x in lines), "".join(lines)
        assert dump.stderr is not None and "listening on" in dump.stderr.readline()
        scan = ["ip", "netns", "exec", a]
        r1 = subprocess.run([*scan, "sipvicious_svmap", "-p", "5060", TARGET], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
        r2 = subprocess.run([*scan, "sipvicious_svwar", "-p", "5060", "-e", "100-120", TARGET],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert "198.51.100.2" in r1.stdout, r1.stdout + r1.stderr
        assert "101" in r2.stdout, r2.stdout + r2.stderr
        time.sleep(1.0)  # the last packets reach tcpdump and the sensor
    finally:
        code = terminate(sensor, 30) if sensor is not None else None
        rest = sensor.stderr.read() if sensor is not None and sensor.stderr else ""
        for p in reversed(procs):
            if p.stdin is not None:
                p.stdin.close()
            terminate(p, 10)
    assert code == 0, rest
    ref_db = tmp_path / "ref.sqlite"
    subprocess.run([sys.executable, "-m", "sipwatch.cli", "analyze", "-q", str(pcap), "--db",
                    str(ref_db), "--no-detect"], check=True, stdout=subprocess.DEVNULL,
                   env=env, timeout=120)  # fmt: skip
    ref = sorted(query(ref_db, ROWS))
    live = sorted(query(tmp_path / "live.sqlite", ROWS))
    assert len(ref) > 20  # svmap's OPTIONS, svwar's REGISTERs and the replies
    assert live == ref
    assert {(r[1], r[3]) for r in live} == {(ATTACKER, TARGET), (TARGET, ATTACKER)}
    assert {r[5] for r in live if r[5]} >= {"OPTIONS", "REGISTER"}
    final = [x for x in rest.splitlines() if "final counters" in x][-1]
    assert "capture_kernel_dropped=0" in final and f"capture_sip_messages={len(ref)}" in final
    assert list((tmp_path / "frames").glob("*.pcap")), "the rotating frame capture was not written"
