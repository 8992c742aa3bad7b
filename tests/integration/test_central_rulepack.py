"""Rule-pack distribution: a pack published at the central reaches a running sensor, which
applies it without a restart (its events then carry the new rule)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from centralproc import CentralProcess
from sensorproc import SensorProcess, free_port
from sipwatch.central.registry import Registry
from sipwatch.store.base import open_store

PACK = """pack: site
version: 7
description: one rule, to see it arrive
rules:
  - id: site.swap-probe
    kind: signature
    stage: SS
    severity: high
    description: an OPTIONS from the probe this test sends
    match: {is_request: true, method: OPTIONS, user_agent: {prefix: swap-probe}}
    key: client
    summary: "{client} sent the swap probe"
"""


def _probe(port: int, n: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.41", 0))
        sport = s.getsockname()[1]
        msg = (
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.41:{sport};branch=z9hG4bK-p{n};rport\r\n"
            f"From: <sip:probe@127.0.0.41>;tag=p{n}\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: probe-{n}@127.0.0.41\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            "User-Agent: swap-probe/1.0\r\nContent-Length: 0\r\n\r\n"
        )
        s.sendto(msg.encode(), ("127.0.0.1", port))


def _events(db: str, rule: str) -> int:
    with open_store(db, readonly=True) as store:
        return store.query("SELECT COUNT(*) FROM events WHERE rule = ?", (rule,))[0][0]


def _wait(check, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_a_published_pack_is_applied_live(tmp_path: Path) -> None:
    db = str(tmp_path / "central.sqlite")
    with open_store(db) as store:
        reg = Registry(store)
        token = reg.add_sensor("s1")
        reg.add_user("ops", "ops-password", "admin")
    central = CentralProcess(db, tmp_path).start()
    port = free_port()
    metrics_port = free_port()
    config = f"""[sensor]
name = "s1"
store = "{tmp_path / "sensor.sqlite"}"
metrics = "127.0.0.1:{metrics_port}"
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
    sensor = SensorProcess(config, tmp_path, listeners=1).start()
    auth = ("ops", "ops-password")
    try:
        sensors = f"{central.url}/api/v1/sensors"
        assert _wait(lambda: httpx.get(sensors, auth=auth).json()[0]["status"].get("rule_pack")
                     == "central:1")  # fmt: skip
        _probe(port, 1)
        assert _wait(lambda: _count_messages(db) >= 2)
        assert _events(db, "site.swap-probe") == 0  # not a rule of the default pack
        r = httpx.put(
            f"{central.url}/api/v1/rulepack", content=PACK, auth=auth,
            headers={"Content-Type": "application/yaml"},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2
        assert _wait(lambda: httpx.get(sensors, auth=auth).json()[0]["status"].get("rule_pack")
                     == "central:2"), sensor.log()  # fmt: skip
        _probe(port, 2)
        assert _wait(lambda: _events(db, "site.swap-probe") == 1), sensor.log()
        assert sensor.alive  # no restart
        # Prometheus on both sides: the sensor counts what it saw, the central what it stored
        mine = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'sipwatch_events_total{rule="site.swap-probe"} 1.0' in mine
        assert 'sipwatch_requests_total{method="OPTIONS",node="",stage="SS"} 2.0' in mine
        assert "sipwatch_sensor_spool_batches 0.0" in mine
        theirs = httpx.get(f"{central.url}/metrics", auth=auth).text
        assert 'sipwatch_messages_total{method="OPTIONS",node="s1",stage="SS"} 2.0' in theirs
        assert 'sipwatch_events_total{rule="site.swap-probe"} 1.0' in theirs
        assert httpx.get(f"{central.url}/metrics").status_code == 401
    finally:
        sensor.stop()
        central.stop()


def _count_messages(db: str) -> int:
    with open_store(db, readonly=True) as store:
        return store.query("SELECT COUNT(*) FROM messages")[0][0]
