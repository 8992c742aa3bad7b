"""`sipwatch sensor` as a user runs it: example config, --check-config, errors, dropping root."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
from pathlib import Path

import pytest

from sensorproc import SIPWATCH, SensorProcess, free_port, wait_rows
from sipwatch.sip.build import build_request
from sipwatch.sip.message import parse


def _sipwatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIPWATCH, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_example_config_is_valid_and_checks_ok(tmp_path: Path):
    res = _sipwatch("sensor", "--example-config", cwd=tmp_path)
    assert res.returncode == 0 and "[[listen]]" in res.stdout
    (tmp_path / "sensor.toml").write_text(res.stdout)
    res = _sipwatch("sensor", "--check-config", "--config", "sensor.toml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stderr


def test_check_config_gives_one_line_per_problem(tmp_path: Path):
    (tmp_path / "bad.toml").write_text(
        "[safety]\nreply_rate = -1\namplification_factor = 10\n"
        '[[listen]]\ntransport = "udp"\naddress = "not-an-ip"\nport = 5060\n'
        '[acounts]\nextensions = ["100"]\n'
    )
    res = _sipwatch("sensor", "--check-config", "--config", "bad.toml", cwd=tmp_path)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) >= 4, res.stderr
    assert all(ln.startswith("error:") for ln in lines), res.stderr
    text = res.stderr
    for needle in ("reply_rate", "amplification_factor", "not-an-ip", "acounts"):
        assert needle in text
    assert "Traceback" not in text


def test_unknown_personality_is_one_clear_line(tmp_path: Path):
    (tmp_path / "p.toml").write_text('[personality]\nname = "nosuchpbx"\n')
    res = _sipwatch("sensor", "--check-config", "--config", "p.toml", cwd=tmp_path)
    assert res.returncode == 2
    assert "nosuchpbx" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def _config(tmp: Path, port: int, extra: str = "") -> str:
    return f"""
[sensor]
store = "{tmp / "s.sqlite"}"
{extra}
[[listen]]
transport = "udp"
address = "127.0.0.1"
port = {port}
"""


def test_port_in_use_is_one_clear_line(tmp_path: Path):
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", port))
        (tmp_path / "s.toml").write_text(_config(tmp_path, port))
        res = _sipwatch("sensor", "--config", "s.toml", cwd=tmp_path)
    assert res.returncode == 2
    assert f"cannot listen on udp 127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr


def _low_port() -> int:
    for port in range(1000, 600, -1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 1024")


def test_binds_a_low_port_as_root_then_runs_as_nobody(tmp_path: Path):
    if os.geteuid() != 0:
        print("SKIP: binding a port below 1024 and switching user needs root")
        pytest.skip("needs root")
    nobody = pwd.getpwnam("nobody")
    os.chmod(tmp_path, 0o755)
    port = _low_port()
    proc = SensorProcess(
        _config(tmp_path, port, 'user = "nobody"\nlog_interval = 1'), tmp_path, listeners=1
    ).start()
    try:
        status = Path(f"/proc/{proc.proc.pid}/status").read_text()
        uids = next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1:]
        assert uids == [str(nobody.pw_uid)] * 4  # real, effective, saved, filesystem
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.bind(("127.0.0.1", 0))
            s.sendto(
                build_request(
                    "OPTIONS",
                    "sip:100@127.0.0.1",
                    via=f"SIP/2.0/UDP 127.0.0.1:{s.getsockname()[1]};branch=z9hG4bK-nobody",
                    from_="<sip:p@127.0.0.1>;tag=1",
                    to="<sip:100@127.0.0.1>",
                    call_id="as-nobody",
                    cseq=1,
                ).to_bytes(),  # fmt: skip
                ("127.0.0.1", port),
            )
            assert parse(s.recvfrom(65535)[0]).status == 200
        rows = wait_rows(
            tmp_path / "s.sqlite", "SELECT 1 FROM messages WHERE call_id='as-nobody'", 2
        )
        assert len(rows) == 2  # the request and our reply, stored by the unprivileged process
    finally:
        assert proc.stop() == 0, proc.log()
