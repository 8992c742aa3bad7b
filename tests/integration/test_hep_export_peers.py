"""The HEP exporter's packets read by an independent HEP decoder: Kamailio's sipcapture.

The issue names tshark's HEP dissector, but Debian 12's tshark 4.0 has none (`tshark -G
protocols` lists no hep), so Kamailio's sipcapture module (Debian package) is the peer: it
decapsulates each HEP packet and runs the SIP message through its routing script, which logs
what it read.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from sensorproc import free_port, terminate
from sipwatch.actions.hep_export import HepExporter
from sipwatch.record import Record

N = 30


def records() -> list[Record]:
    out = []
    for i in range(N):
        raw = (
            f"OPTIONS sip:{100 + i}@192.0.2.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 198.51.100.7:{6000 + i};branch=z9hG4bK-{i}\r\n"
            f"From: <sip:scan@198.51.100.7>;tag={i}\r\nTo: <sip:{100 + i}@192.0.2.1>\r\n"
            f"Call-ID: export-{i}@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        out.append(Record.from_bytes(raw, 1_700_000_000 + i + 0.125, "udp", "198.51.100.7",
                                     6000 + i, "192.0.2.1", 5060))  # fmt: skip
    return out


def _export(port: int) -> None:
    exp = HepExporter(address=f"127.0.0.1:{port}", agent_id=2001, auth_key="myHep")
    recs = records()
    for i in range(0, N, 10):
        exp.handle(recs[i : i + 10])
        exp.flush(10)
        time.sleep(0.05)
    exp.close()
    assert exp.stats.delivered == N


SIPCAPTURE_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
children=1
dns=no
rev_dns=no
auto_aliases=no
disable_tcp=yes
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "db_text.so"
loadmodule "sipcapture.so"
modparam("sipcapture", "db_url", "text://{db}")
modparam("sipcapture", "capture_on", 1)
modparam("sipcapture", "hep_capture_on", 1)
request_route {{
	xlog("L_ALERT", "HEPPEER $rm $si $sp $ci $cs\\n");
	drop;
}}
"""


def test_kamailio_sipcapture_decodes_exported_hep(tmp_path: Path) -> None:
    if shutil.which("kamailio") is None:
        print("SKIP: kamailio is not installed (scripts/install-test-deps.sh)")
        pytest.skip("kamailio not installed")
    port = free_port()
    (tmp_path / "db").mkdir()
    cfg = tmp_path / "sipcapture.cfg"
    cfg.write_text(SIPCAPTURE_CFG.format(db=tmp_path / "db"))
    kam = subprocess.Popen(
        ["kamailio", "-f", str(cfg), "-l", f"udp:127.0.0.1:{port}", "-DD", "-E", "-n", "1",
         "-Y", str(tmp_path), "-P", str(tmp_path / "k.pid")],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        time.sleep(1.0)
        assert kam.poll() is None, kam.stderr.read() if kam.stderr else ""
        _export(port)
        time.sleep(1.0)
    finally:
        terminate(kam, 10)
        lines = (kam.stderr.read() if kam.stderr else "").splitlines()
    seen = [
        m.groups()
        for m in (re.search(r"HEPPEER (\S+) (\S+) (\d+) (\S+) (\d+)", x) for x in lines)
        if m
    ]
    assert len(seen) == N, "\n".join(lines[-20:])
    assert sorted(seen, key=lambda s: int(s[2])) == [
        ("OPTIONS", "198.51.100.7", str(6000 + i), f"export-{i}@x", "1") for i in range(N)
    ]
