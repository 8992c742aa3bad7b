"""The sensor with passive sources: [hep] / [capture] config, CLI merge, HEP in and out."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

from sipwatch.capture.hep import HepDecoder
from sipwatch.capture.hep_collector import HepCollector
from sipwatch.capture.hep_encode import encode_record
from sipwatch.honeypot.config import ConfigError, SensorConfig, parse_config
from sipwatch.honeypot.config_passive import with_passive
from sipwatch.honeypot.sensor import Sensor, serve
from sipwatch.record import Record


def _problems(text: str) -> list[str]:
    try:
        parse_config(text, "f")
    except ConfigError as exc:
        return exc.problems
    return []


def test_passive_config_sections() -> None:
    cfg = parse_config('listen = []\n[hep]\nlisten = ["127.0.0.1:9060", "[::1]:9060"]\n'
                       'auth_key = "k"\nnodes = { 2001 = "berlin" }\n')  # fmt: skip
    assert cfg.listen == () and cfg.hep.listen == ("127.0.0.1:9060", "[::1]:9060")
    assert cfg.hep.nodes == {"2001": "berlin"} and cfg.hep.auth_key == "k"
    cfg = parse_config('listen = []\n[capture]\ninterface = "any"\nfilter = "port 5060"\n')
    assert (cfg.capture.interface, cfg.capture.filter) == ("any", "port 5060")
    assert _problems("listen = []\n") == [
        "f: [[listen]]: no listeners: give at least one [[listen]] table"
    ]
    assert _problems('[hep]\nlisten = ["homer:9060"]\nfoo = 1\n') == [
        "f: [hep] listen: expected \"ADDRESS:PORT\" with an IP address (got 'homer:9060')",
        "f: [hep] foo: unknown key (known: listen, auth_key, max_connections, nodes)",
    ]
    assert _problems('[capture]\nfilter = "udp"\nsnaplen = 10\n') == [
        "f: [capture] snaplen: expected an integer from 64 to 262144 (got 10)",
        "f: [capture] filter: set, but [capture] interface is not",
    ]
    assert _problems('[actions.hep]\naddress = "nohost"\n') == [
        "f: [actions.hep] address: must be HOST:PORT, e.g. 192.0.2.10:9060, not 'nohost'"
    ]


def test_command_line_options() -> None:
    cfg = with_passive(SensorConfig(), hep_listen=["127.0.0.1:9060"], from_file=False)
    assert cfg.listen == () and cfg.hep.listen == ("127.0.0.1:9060",)
    cfg = with_passive(SensorConfig(), capture="eth0", bpf="port 5060", from_file=True)
    assert cfg.listen and cfg.capture.interface == "eth0"
    cfg = with_passive(SensorConfig(), hep_export="homer.example:9060", hep_id=7, hep_key="s")
    assert cfg.actions["hep"] == {"address": "homer.example:9060", "agent_id": 7, "auth_key": "s"}
    with pytest.raises(ConfigError) as err:
        with_passive(SensorConfig(), hep_listen=["x"], hep_transport="sctp", hep_export="h:1")
    assert len(err.value.problems) == 2


def test_hep_only_sensor_stores_exports_and_counts(tmp_path: Path) -> None:
    exported: list[Record] = []

    async def main() -> dict:
        homer = HepCollector(["127.0.0.1:0"], HepDecoder(), exported.append)
        await homer.start()
        with socket.socket() as probe, socket.socket() as probe2:
            probe.bind(("127.0.0.1", 0))
            probe2.bind(("127.0.0.1", 0))
            port, mport = probe.getsockname()[1], probe2.getsockname()[1]
        cfg = parse_config(
            f'listen = []\n[sensor]\nname = "s1"\nstore = "{tmp_path / "s.sqlite"}"\n'
            f'metrics = "127.0.0.1:{mport}"\n'
            f'[hep]\nlisten = ["127.0.0.1:{port}"]\nnodes = {{ 2001 = "berlin" }}\n'
            f'[actions.hep]\naddress = "127.0.0.1:{homer.ports[0]}"\nagent_id = 9\n'
        )  # fmt: skip
        sensor = Sensor(cfg)
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve(sensor, stop, ready))
        await asyncio.wait_for(ready.wait(), 10)
        raw = (b"OPTIONS sip:100@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bK1\r\n"
               b"From: <sip:a@b>;tag=1\r\nTo: <sip:100@192.0.2.1>\r\nCall-ID: %d\r\n"
               b"CSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            for i in range(40):
                rec = Record.from_bytes(raw % i, 1_700_000_000 + i, "udp", "203.0.113.9", 5060,
                                        "192.0.2.1", 5060)  # fmt: skip
                u.sendto(encode_record(rec, 2001), ("127.0.0.1", port))
        deadline = time.monotonic() + 10
        while len(exported) < 40 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        counters = sensor.counters()
        url = f"http://127.0.0.1:{mport}/metrics"
        counters["metrics"] = await asyncio.to_thread(
            lambda: urlopen(url, timeout=5).read().decode()
        )
        stop.set()
        await task
        await homer.close()
        return counters

    counters = asyncio.run(main())
    rows = (
        sqlite3.connect(tmp_path / "s.sqlite")
        .execute("SELECT src, dst, node, sensor, method FROM messages")
        .fetchall()
    )
    assert len(rows) == 40
    assert set(rows) == {("203.0.113.9", "192.0.2.1", "berlin", "s1", "OPTIONS")}
    assert len(exported) == 40 and {r.node for r in exported} == {"berlin"}
    assert counters["hep_records"] == 40 and counters["hep_agent_berlin"] == 40
    assert counters["hep_udp_packets"] == 40 and counters["hep_export_sent"] == 40
    assert "sipwatch_sensor_hep_records_total 40.0" in counters["metrics"]
    assert "sipwatch_sensor_hep_agent_berlin_total 40.0" in counters["metrics"]
