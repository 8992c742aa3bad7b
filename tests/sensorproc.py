"""Run `sipwatch sensor` as a real process for integration tests, on loopback only."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

SIPWATCH = [sys.executable, "-m", "sipwatch.cli"]


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` (as free as a test can know)."""
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            with socket.socket(family, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def terminate(proc: subprocess.Popen | None, timeout: float = 30.0) -> int:
    """SIGTERM, wait (SIGKILL after `timeout`); the exit code (0 when never started)."""
    if proc is None:
        return 0
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class SensorProcess:
    """`sipwatch sensor --config FILE` in the background; stop() sends SIGTERM and waits."""

    def __init__(self, config_text: str, workdir: Path, listeners: int) -> None:
        self.workdir = workdir
        self.config = workdir / "sensor.toml"
        self.config.write_text(config_text)
        self.listeners = listeners
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()

    def start(self, timeout: float = 20.0) -> SensorProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [*SIPWATCH, "sensor", "--config", str(self.config)],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.1):
                return self
            if self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError("sensor did not start:\n" + "\n".join(self.lines[-30:]))

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if sum("sipwatch.sensor: listening on" in x for x in self.lines) >= self.listeners:
                self._ready.set()

    def stop(self, timeout: float = 30.0) -> int:
        code = terminate(self.proc, timeout)
        time.sleep(0.05)  # the reader thread takes the last lines
        return code

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return "\n".join(self.lines)


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Read the sensor's store while it runs (WAL: readers do not block the writer)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_rows(db: Path, sql: str, want: int, timeout: float = 10.0) -> list[tuple]:
    """Poll until ``sql`` returns at least ``want`` rows (the pipeline stores in batches)."""
    deadline = time.monotonic() + timeout
    rows: list[tuple] = []
    while time.monotonic() < deadline:
        # busy or not created yet: keep what the last read saw
        with contextlib.suppress(sqlite3.OperationalError):
            rows = query(db, sql)
        if len(rows) >= want:
            return rows
        time.sleep(0.1)
    return rows
