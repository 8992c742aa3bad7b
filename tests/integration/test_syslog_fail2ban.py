"""The syslog action's real output, through a real syslog daemon, matched by fail2ban.

- fail2ban-regex (Debian package fail2ban) runs the shipped filter on lines the action sent;
- rsyslogd (Debian package rsyslog) receives them on a unix socket, UDP and TCP and writes its
  two usual file formats, which is what fail2ban reads in a real deployment;
- fail2ban-client checks that the shipped jail loads with the filter.
Attacker-controlled fields try to smuggle a second address; only real sources may match.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from actionevents import make_event
from sensorproc import free_port
from sipwatch.actions.syslog import SyslogSink

pytestmark = pytest.mark.tools

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "fail2ban"
F2B_ETC = Path("/etc/fail2ban")
SMUGGLE = 'x" event=a severity=critical stage=RHJ src=192.0.2.99 count=1 targets=1 summary="'


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(
            f"{tool} not installed (Debian package {'rsyslog' if 'rsys' in tool else 'fail2ban'})"
        )


def _events(tag: int) -> tuple[list, set[str], set[str]]:
    """Events of one transport; the sources the default filter bans, and with medium too."""
    hi, crit, med = f"198.51.100.{tag}", f"2001:db8::{tag}", f"192.0.2.{tag}"
    events = [
        make_event(src=hi, severity="high", targets=("a src=192.0.2.98 ",), summary=SMUGGLE),
        make_event(src=crit, severity="critical", stage="", rule="flood.source"),
        make_event(src=med, severity="medium"),
        make_event(src="", severity="critical", rule="flood.target"),  # per-target: no source
        make_event(src="203.0.113.200", severity="low"),
    ]
    return events, {hi, crit}, {hi, crit, med}


@pytest.fixture
def filter_dir(tmp_path: Path) -> Path:
    """A fail2ban config dir holding the distribution's common.conf and our filter."""
    _need("fail2ban-regex")
    (tmp_path / "f2b" / "filter.d").mkdir(parents=True)
    shutil.copy(F2B_ETC / "filter.d" / "common.conf", tmp_path / "f2b" / "filter.d")
    shutil.copy(CONTRIB / "filter.d" / "sipwatch.conf", tmp_path / "f2b" / "filter.d")
    return tmp_path / "f2b"


def _banned(conf: Path, log: Path, spec: str = "sipwatch") -> set[str]:
    out = subprocess.run(["fail2ban-regex", "-c", str(conf), "-o", "ip", str(log), spec],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_filter_matches_the_lines_the_action_sends(tmp_path, filter_dir):
    path = str(tmp_path / "log")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(10)
    events, banned, with_medium = _events(7)
    sink = SyslogSink(socket_path=path)
    sink.emit(events)
    lines = [rx.recv(65536).decode() for _ in events]
    sink.close()
    rx.close()
    # a syslog daemon writes the RFC 3164 line without its <PRI> (and adds the host name)
    log = tmp_path / "auth.log"
    log.write_text("".join(re.sub(r"^<\d+>", "", x) + "\n" for x in lines))
    print(log.read_text())
    assert _banned(filter_dir, log) == banned
    assert _banned(filter_dir, log, 'sipwatch[severity="(?:medium|high|critical)"]') == with_medium


RSYSLOG_CONF = """
global(workDirectory="{d}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{d}/log")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
auth,authpriv.* action(type="omfile" file="{d}/traditional.log" template="RSYSLOG_TraditionalFileFormat")
auth,authpriv.* action(type="omfile" file="{d}/precise.log" template="RSYSLOG_FileFormat")
"""


def _wait_lines(path: Path, n: int, limit: float = 20.0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(
        f"{path}: expected {n} lines, got:\n{path.read_text() if path.exists() else ''}"
    )


def test_through_rsyslog_files_to_fail2ban(tmp_path, filter_dir):
    _need("rsyslogd")
    d = tmp_path / "rs"
    d.mkdir()
    udp, tcp = free_port(), free_port()
    (d / "rsyslog.conf").write_text(RSYSLOG_CONF.format(d=d, udp=udp, tcp=tcp))
    proc = subprocess.Popen(
        ["rsyslogd", "-n", "-f", str(d / "rsyslog.conf"), "-i", str(d / "pid")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_ready(d / "log", tcp, proc)
        sinks = [
            (SyslogSink(socket_path=str(d / "log")), 11),
            (SyslogSink(host="127.0.0.1", port=udp, hostname="sensor-a"), 12),
            (SyslogSink(host="127.0.0.1", port=udp, format="rfc5424"), 13),
            (SyslogSink(host="127.0.0.1", port=tcp, transport="tcp", format="rfc5424"), 14),
            (SyslogSink(host="127.0.0.1", port=tcp, transport="tcp", facility="authpriv"), 15),
        ]
        banned: set[str] = set()
        for sink, tag in sinks:
            events, b, _ = _events(tag)
            sink.emit(events)
            sink.close()
            assert sink.stats.delivered == len(events), sink.stats
            banned |= b
        for name in ("traditional.log", "precise.log"):
            _wait_lines(d / name, 5 * len(sinks))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    for name in ("traditional.log", "precise.log"):
        print((d / name).read_text())
        assert _banned(filter_dir, d / name) == banned, name
    assert "198.51.100.11" in banned and "192.0.2.99" not in banned and "192.0.2.98" not in banned


def _wait_ready(sock: Path, tcp: int, proc: subprocess.Popen) -> None:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()[0]
        if sock.exists():
            try:
                socket.create_connection(("127.0.0.1", tcp), timeout=1).close()
                return
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError("rsyslogd did not come up")


def test_shipped_jail_loads(tmp_path):
    _need("fail2ban-client")
    conf = tmp_path / "etc"
    shutil.copytree(F2B_ETC, conf, ignore=shutil.ignore_patterns("jail.d", "*.local"))
    (conf / "jail.d").mkdir()
    shutil.copy(CONTRIB / "jail.d" / "sipwatch.conf", conf / "jail.d")
    shutil.copy(CONTRIB / "filter.d" / "sipwatch.conf", conf / "filter.d")
    log = tmp_path / "auth.log"
    log.touch()
    (conf / "jail.local").write_text(f"[sipwatch]\nlogpath = {log}\n")  # how users override
    test = subprocess.run(["fail2ban-client", "-c", str(conf), "-t"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert test.returncode == 0, test.stdout + test.stderr
    dump = subprocess.run(["fail2ban-client", "-c", str(conf), "-d"], capture_output=True,
                          text=True, timeout=120).stdout  # fmt: skip
    assert "['add', 'sipwatch', 'auto']" in dump
    assert "severity=(?:high|critical) stage=" in dump
    assert "['set', 'sipwatch', 'maxretry', 1]" in dump
