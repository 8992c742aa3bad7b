"""Kamailio's siptrace (HEP v3) into sipwatch's HEP collector, SIPp calls through Kamailio.

Kamailio (Debian package) proxies SIPp calls (uac -> Kamailio -> uas) statelessly and mirrors
every SIP message it receives and sends to a `sipwatch sensor` that only collects HEP (no
honeypot listeners). A tcpdump capture of the same traffic, analysed by `sipwatch analyze`,
is the reference: the same messages with the same addresses, ports and (within a few ms,
Kamailio stamps the copy when it handles the message) timestamps.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from sensorproc import SensorProcess, free_port, query, terminate, wait_rows

CALLS = 20

KAMAILIO_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
children=1
dns=no
rev_dns=no
auto_aliases=no
disable_tcp=yes
loadmodule "pv.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "siptrace.so"
modparam("siptrace", "duplicate_uri", "sip:127.0.0.1:{hep}")
modparam("siptrace", "hep_mode_on", 1)
modparam("siptrace", "hep_version", 3)
modparam("siptrace", "hep_capture_id", 2001)
modparam("siptrace", "trace_to_database", 0)
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_mode", 1)
request_route {{
	if (method == "REGISTER" || method == "OPTIONS") {{
		sl_send_reply("200", "OK");
		exit;
	}}
	$du = "sip:127.0.0.1:{uas}";
	forward();
	exit;
}}
"""

ROWS = "SELECT ts, transport, src, sport, dst, dport, method, status, call_id, cseq_num, node FROM messages"


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} is not installed (scripts/install-test-deps.sh)")
            pytest.skip(f"{tool} not installed")


def _key(row: tuple) -> tuple:
    ts, transport, src, sport, dst, dport, method, status, call_id, cseq, _node = row
    return (transport, src, sport, dst, dport, method, status, call_id, cseq)


def test_kamailio_siptrace_hep3_matches_tcpdump(tmp_path: Path) -> None:
    _need("kamailio", "sipp", "tcpdump")
    import os

    if os.geteuid() != 0:
        print("SKIP: tcpdump on lo needs root")
        pytest.skip("needs root for tcpdump")
    hep, kam, uas, uac = (free_port() for _ in range(4))
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(KAMAILIO_CFG.format(hep=hep, uas=uas))
    sensor = SensorProcess(
        f'[sensor]\nname = "hep-test"\nstore = "hep.sqlite"\n\n[hep]\nlisten = ["127.0.0.1:{hep}"]\n'
        'nodes = { 2001 = "kamailio-1" }\n',
        tmp_path, listeners=2,
    ).start()  # fmt: skip
    pcap = tmp_path / "ref.pcap"
    ports = " or ".join(f"port {p}" for p in (kam, uas, uac))
    procs: list[subprocess.Popen] = []
    try:
        dump = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-s0", "-w", str(pcap), f"udp and ({ports})"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(dump)
        kamailio = subprocess.Popen(
            ["kamailio", "-f", str(cfg), "-l", f"udp:127.0.0.1:{kam}", "-DD", "-E", "-n", "1",
             "-Y", str(tmp_path), "-P", str(tmp_path / "k.pid")],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        procs.append(kamailio)
        time.sleep(1.0)
        assert kamailio.poll() is None, kamailio.stderr.read() if kamailio.stderr else ""
        server = subprocess.Popen(
            ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(uas), "-m", str(CALLS),
             "-nostdin", "-timeout", "30"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(server)
        client = subprocess.run(
            ["sipp", "-sn", "uac", f"127.0.0.1:{kam}", "-i", "127.0.0.1", "-p", str(uac),
             "-m", str(CALLS), "-r", "10", "-nostdin", "-timeout", "30"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        )  # fmt: skip
        assert client.returncode == 0, "SIPp calls through Kamailio failed"
        server.wait(30)
        time.sleep(1.0)  # the last packets reach tcpdump and the collector
        want = CALLS * 12  # INVITE, 180, 200, ACK, BYE, 200 on both legs
        db = tmp_path / "hep.sqlite"
        hep_rows = wait_rows(db, ROWS, want, timeout=20)
    finally:
        for p in reversed(procs):
            terminate(p, 10)
        code = sensor.stop()
    assert code == 0, sensor.log()
    ref_db = tmp_path / "ref.sqlite"
    subprocess.run(
        ["python", "-m", "sipwatch.cli", "analyze", "-q", str(pcap), "--db", str(ref_db), "--no-detect"],
        check=True, stdout=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    ref_rows = query(ref_db, ROWS)
    hep_rows = query(db, ROWS)
    assert len(ref_rows) == want, f"tcpdump saw {len(ref_rows)} SIP messages"
    assert len(hep_rows) == want, f"collector stored {len(hep_rows)}\n{sensor.log()[-3000:]}"
    assert sorted(map(_key, hep_rows)) == sorted(map(_key, ref_rows))
    ref_ts = {}
    for row in ref_rows:
        ref_ts.setdefault(_key(row), []).append(row[0])
    for row in hep_rows:
        closest = min(abs(row[0] - t) for t in ref_ts[_key(row)])
        assert closest < 0.05, f"HEP timestamp {row[0]} is {closest:.3f} s from the capture's"
    assert {row[-1] for row in hep_rows} == {"kamailio-1"}
    counters = [line for line in sensor.lines if "final counters" in line][-1]
    assert f"hep_records={want}" in counters and "hep_rejected=0" in counters
