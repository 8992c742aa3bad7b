"""The central's command line: sensors and users, HTTPS with a sensor verifying the certificate,
and `sipwatch run` (sensor + central + dashboard in one process)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from centralproc import CentralProcess
from sensorproc import SIPWATCH, SensorProcess, free_port
from sipwatch.honeypot.tlscert import ensure_certificate
from sipwatch.store.base import open_store


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIPWATCH, *args], capture_output=True, text=True, timeout=60, check=False,
        env=dict(os.environ, **(env or {})),
    )  # fmt: skip


def test_sensors_and_users_from_the_command_line(tmp_path: Path) -> None:
    db = str(tmp_path / "c.sqlite")
    r = _cli("sensors", "add", "oslo-1", "--node", "oslo", "--node", "oslo-b", "--db", db)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("swt_") and "shown once" in r.stderr
    r = _cli("sensors", "add", "oslo-1", "--db", db)
    assert r.returncode == 2 and "exists already" in r.stderr and "Traceback" not in r.stderr
    r = _cli("sensors", "add", "bad name!", "--db", db)
    assert r.returncode == 2 and "bad sensor name" in r.stderr
    r = _cli("sensors", "list", "--db", db)
    assert "oslo-1" in r.stdout and "oslo,oslo-b" in r.stdout and "stale" in r.stdout
    r = _cli(
        "users",
        "add",
        "ann",
        "--role",
        "admin",
        "--db",
        db,
        env={"SIPWATCH_PASSWORD": "long-enough"},
    )
    assert r.returncode == 0, r.stderr
    r = _cli("users", "add", "bob", "--db", db, env={"SIPWATCH_PASSWORD": "short"})
    assert r.returncode == 2 and "at least 8" in r.stderr
    assert "ann\tadmin" in _cli("users", "list", "--db", db).stdout
    r = _cli("sensors", "token", "oslo-1", "--db", db)
    new_token = r.stdout.strip()
    assert new_token.startswith("swt_") and new_token != token
    assert _cli("sensors", "revoke", "oslo-1", "--db", db).returncode == 0
    assert "revoked" in _cli("sensors", "list", "--db", db).stdout
    r = _cli("sensors", "revoke", "nobody", "--db", db)
    assert r.returncode == 2 and "no sensor 'nobody'" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("pack: x\nrules: [{id: a}]\n")
    r = _cli("rulepack", "publish", str(bad), "--db", db)
    assert r.returncode == 2 and "bad.yaml" in r.stderr and "Traceback" not in r.stderr
    r = _cli("central", "--db", "postgresql://nobody@127.0.0.1:1/none", "--port", "1")
    assert r.returncode == 2 and "cannot open the store" in r.stderr


def test_sensor_reports_over_https_and_checks_the_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert, key, common_name="127.0.0.1")
    db = str(tmp_path / "c.sqlite")
    token = _cli("sensors", "add", "s1", "--db", db).stdout.strip()
    central = CentralProcess(db, tmp_path, tls=(cert, key)).start()
    port = free_port()
    base = f"""[sensor]
name = "s1"
store = "{tmp_path / "s.sqlite"}"
[[listen]]
transport = "udp"
address = "127.0.0.1"
port = {port}
[central]
url = "{central.url}"
token = "{token}"
batch_seconds = 0.2
heartbeat_seconds = 0.3
"""
    try:
        # without the CA the sensor refuses the certificate and keeps its batches
        work = tmp_path / "untrusting"
        work.mkdir()
        sensor = SensorProcess(base, work, listeners=1).start()
        _options(port)
        time.sleep(2)
        assert sensor.stop() == 0
        assert "CERTIFICATE_VERIFY_FAILED" in sensor.log()
        assert list((tmp_path / "sipwatch-spool").glob("*.batch"))
        # with the CA it delivers them, and what it records next
        sensor = SensorProcess(base + f'ca = "{cert}"\n', work, listeners=1).start()
        _options(port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _count(db) < 4:
            time.sleep(0.2)
        assert _count(db) == 4, sensor.log()
        assert sensor.stop() == 0
    finally:
        central.stop()


def _options(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.61", 0))
        sport = s.getsockname()[1]
        n = time.monotonic_ns()
        s.sendto(
            f"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.61:{sport};branch=z9hG4bK{n}\r\n"
            f"From: <sip:a@127.0.0.61>;tag={n}\r\nTo: <sip:127.0.0.1>\r\nCall-ID: {n}\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".encode(),
            ("127.0.0.1", port),
        )


def _count(db: str) -> int:
    with open_store(db, readonly=True) as store:
        return store.query("SELECT COUNT(*) FROM messages")[0][0]


def test_run_starts_sensor_central_and_dashboard_together(tmp_path: Path) -> None:
    port, sip_port = free_port(), free_port()
    (tmp_path / "s.toml").write_text(
        f'[[listen]]\ntransport = "udp"\naddress = "127.0.0.1"\nport = {sip_port}\n'
    )
    proc = subprocess.Popen(
        [*SIPWATCH, "run", "--data", str(tmp_path / "data"), "--port", str(port),
         "--sensor-config", str(tmp_path / "s.toml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        password_file = tmp_path / "data" / "admin-password"
        deadline = time.monotonic() + 30
        ready = False
        while time.monotonic() < deadline and not ready:
            try:
                ready = password_file.exists() and httpx.get(f"{url}/login").status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready
        assert oct(password_file.stat().st_mode & 0o777) == "0o600"
        auth = ("admin", password_file.read_text().strip())
        _options(sip_port)
        deadline = time.monotonic() + 20
        totals: dict = {}
        while time.monotonic() < deadline:
            rows = httpx.get(f"{url}/api/v1/reports/totals", auth=auth).json()["rows"]
            totals = {r["metric"]: r["value"] for r in rows}
            if totals.get("messages") == 2:
                break
            time.sleep(0.3)
        assert totals.get("messages") == 2  # the OPTIONS and the honeypot's answer
        sensors = httpx.get(f"{url}/api/v1/sensors", auth=auth).json()
        assert [s["name"] for s in sensors] == ["local"] and not sensors[0]["stale"]
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "dashboard: http://127.0.0.1" in stderr
