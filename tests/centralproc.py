"""Run `sipwatch central` as a real process for integration tests (loopback only)."""

from __future__ import annotations

import os
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx

from sensorproc import SIPWATCH, free_port, terminate


class CentralProcess:
    """`sipwatch central --db DB --port P`; kill() is a crash, stop() a clean SIGTERM."""

    def __init__(
        self, db: str, workdir: Path, port: int | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        """tls: (certificate, key) PEM files: serve HTTPS."""
        self.db = db
        self.workdir = workdir
        self.port = port or free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20.0) -> CentralProcess:
        cmd = [*SIPWATCH, "central", "--db", self.db, "--port", str(self.port)]
        if self.tls:
            cmd += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                verify = ssl.create_default_context(cafile=self.tls[0]) if self.tls else True
                r = httpx.get(f"{self.url}/metrics", timeout=1, verify=verify)
                if r.status_code in (200, 401):
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("central did not start:\n" + "\n".join(self.lines[-30:]))

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def kill(self) -> None:
        """A crash: SIGKILL, no clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> int:
        return terminate(self.proc, timeout)

    def log(self) -> str:
        return "\n".join(self.lines)
