"""No lost data: the central crashes and a sensor restarts mid-stream; every record arrives once.

A real `sipwatch central` and a real `sipwatch sensor` (processes, loopback). SIP requests
stream in from five sources while the test kills the central (SIGKILL), starts it again, and
restarts the sensor. At the end the central holds exactly the messages of the sensor's own
store: the same count, each batch stored once (sum of batch sizes = rows), no sequence gaps.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from storeengines import fresh_store_url

from centralproc import CentralProcess
from sensorproc import SensorProcess, free_port, query
from sipwatch.central.registry import Registry
from sipwatch.store.base import open_store

SOURCES = [f"127.0.0.{i}" for i in range(31, 36)]


def _register(db: str, name: str) -> str:
    with open_store(db) as store:
        return Registry(store).add_sensor(name, ["oslo"])


def _sensor_config(work: Path, port: int, url: str, token: str) -> str:
    return f"""[sensor]
name = "s1"
store = "{work / "sensor.sqlite"}"
log_interval = 3600
[[listen]]
transport = "udp"
address = "127.0.0.1"
port = {port}
[safety]
reply_rate = 100000
reply_burst = 100000
[central]
url = "{url}"
token = "{token}"
batch_seconds = 0.2
heartbeat_seconds = 0.5
"""


def _traffic(port: int, count: int, rate: float, stop: threading.Event) -> int:
    """Send `count` OPTIONS round-robin from SOURCES at about `rate` per second."""
    socks = []
    for src in SOURCES:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        socks.append(s)
    sent = 0
    started = time.monotonic()
    try:
        for i in range(count):
            if stop.is_set():
                break
            s = socks[i % len(socks)]
            src, sport = s.getsockname()
            msg = (
                f"OPTIONS sip:100@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {src}:{sport};branch=z9hG4bK-x{i};rport\r\n"
                f"From: <sip:scan@{src}>;tag=t{i}\r\nTo: <sip:100@127.0.0.1>\r\n"
                f"Call-ID: once-{i}@{src}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            s.sendto(msg.encode(), ("127.0.0.1", port))
            sent += 1
            delay = started + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    finally:
        for s in socks:
            s.close()
    return sent


def _central_count(db: str) -> tuple[int, int, list[int]]:
    with open_store(db, readonly=True) as store:
        n = store.query("SELECT COUNT(*) FROM messages")[0][0]
        total = store.query("SELECT COALESCE(SUM(records), 0) FROM uplink_batches")[0][0]
        seqs = [r[0] for r in store.query("SELECT seq FROM uplink_batches ORDER BY seq")]
    return n, total, seqs


def _wait_equal(db: str, local: Path, timeout: float = 30.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    central = mine = -1
    while time.monotonic() < deadline:
        mine = query(local, "SELECT COUNT(*) FROM messages")[0][0]
        central = _central_count(db)[0]
        if central == mine:
            return central, mine
        time.sleep(0.25)
    return central, mine


@pytest.mark.timeout(180)
@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_central_crash_and_sensor_restart_lose_and_double_nothing(
    engine: str, tmp_path: Path
) -> None:
    with fresh_store_url(engine, tmp_path) as db:
        _crash_and_restart(db, tmp_path)


def _crash_and_restart(db: str, tmp_path: Path) -> None:
    token = _register(db, "s1")
    central = CentralProcess(db, tmp_path).start()
    sip_port = free_port()
    config = _sensor_config(tmp_path, sip_port, central.url, token)
    sensor = SensorProcess(config, tmp_path, listeners=1).start()
    stop = threading.Event()
    result: list[int] = []
    sender = threading.Thread(target=lambda: result.append(_traffic(sip_port, 2400, 400, stop)))
    sender.start()
    try:
        time.sleep(1.0)
        central.kill()  # a crash mid-stream: batches wait in the sensor's spool
        time.sleep(1.5)
        assert "central unreachable" in sensor.log()  # the outage was felt, data spooled
        central = CentralProcess(db, tmp_path, port=central.port).start()
        time.sleep(1.0)
        assert sensor.stop() == 0, sensor.log()  # a restart mid-stream
        sensor = SensorProcess(config, tmp_path, listeners=1).start()
        sender.join(30)
        central_n, local_n = _wait_equal(db, tmp_path / "sensor.sqlite")
        assert central_n == local_n, (central_n, local_n, sensor.log()[-3000:])
    finally:
        stop.set()
        sender.join(10)
        assert sensor.stop() == 0, sensor.log()
    try:
        local_n = query(tmp_path / "sensor.sqlite", "SELECT COUNT(*) FROM messages")[0][0]
        n, batch_total, seqs = _central_count(db)
        assert n == local_n > 1000  # requests and replies of most of the 2400 sent
        assert batch_total == n  # no batch stored twice, no row in two batches
        assert seqs == list(range(1, len(seqs) + 1))  # in order, no gaps, across the restart
        spool = tmp_path / "sipwatch-spool"
        assert not list(spool.glob("*.batch")) and not list((spool / "rejected").iterdir())
        with open_store(db, readonly=True) as store:
            assert store.query("SELECT DISTINCT sensor, node FROM messages") == [("s1", "oslo")]
    finally:
        central.stop()
