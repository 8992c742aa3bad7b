"""Three honeypot sensors (127.0.0.2/3/4, one node each) report to one central service.

SIPVicious and SIPp attack them in a known plan: some sources hit one node, one hits two, one
sweeps all three. The per-node table, the distribution and the matrix that the central
computes must equal what the test derives from its own plan.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from pathlib import Path

import pytest

from attacktools import call, missing_tools, sipp, sipvicious
from centralproc import CentralProcess
from sensorproc import SIPWATCH, SensorProcess, free_port, query
from sipwatch.central.registry import Registry
from sipwatch.report import correlation
from sipwatch.store.base import open_store

NODES = {"oslo": "127.0.0.2", "essen": "127.0.0.3", "tromso": "127.0.0.4"}
SWEEPER, WAR, CRACK, PROBER, FRAUD = (f"127.0.0.{i}" for i in range(51, 56))
# the plan: attacker -> the nodes it attacks, and the behaviour it shows there
PLAN = {
    SWEEPER: {"oslo", "essen", "tromso"},  # svmap over all three: SS
    WAR: {"oslo"},  # svwar: ES
    CRACK: {"essen"},  # svcrack: RHJ
    PROBER: {"oslo", "tromso"},  # SIPp OPTIONS: SS
    FRAUD: {"tromso"},  # SIPp authenticated INVITEs to an international number: TF
}
STAGE_SOURCES = {  # (node, behaviour) -> sources, where the plan makes them certain
    ("oslo", "ES"): {WAR},
    ("essen", "RHJ"): {CRACK},
    ("tromso", "INVITE"): {FRAUD},
    ("tromso", "TF"): {FRAUD},
    ("oslo", "SS"): {SWEEPER, PROBER},
    ("essen", "SS"): {SWEEPER},
    ("tromso", "SS"): {SWEEPER, PROBER},
}


def _sensor_config(work: Path, node: str, address: str, port: int, url: str, token: str) -> str:
    return f"""[sensor]
name = "{node}"
store = "{work / "sensor.sqlite"}"
log_interval = 3600
[[listen]]
transport = "udp"
address = "{address}"
port = {port}
[accounts]
extensions = ["100-105"]
[accounts.passwords]
101 = "1234"
[safety]
reply_rate = 10000
reply_burst = 10000
[central]
url = "{url}"
token = "{token}"
batch_seconds = 0.2
heartbeat_seconds = 0.5
"""


def _attack(port: int, work: Path) -> None:
    sipvicious("svmap", SWEEPER, port, ["127.0.0.2-4"], work)
    sipvicious("svwar", WAR, port, ["-e100-110", NODES["oslo"]], work)
    words = work / "words.txt"
    words.write_text("0000\npassword\n1234\n")
    sipvicious("svcrack", CRACK, port, ["-u101", "-d", str(words), NODES["essen"]], work)
    for node in ("oslo", "tromso"):
        sipp("options_flood.xml", PROBER, NODES[node], port, ["-r", "20", "-m", "5"], work)
    call(FRAUD, NODES["tromso"], port, "101", "1234", "0046701234567", work, n=2)


def _delivered(db: str, sensors: dict[str, Path]) -> bool:
    with open_store(db, readonly=True) as store:
        got = dict(store.query("SELECT sensor, COUNT(*) FROM messages GROUP BY sensor"))
    return all(
        got.get(name, 0) == query(path, "SELECT COUNT(*) FROM messages")[0][0]
        for name, path in sensors.items()
    )


@pytest.mark.timeout(240)
def test_correlation_across_three_sensors_matches_the_plan(tmp_path: Path) -> None:
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/install-test-deps.sh)")
    db = str(tmp_path / "central.sqlite")
    with open_store(db) as store:
        reg = Registry(store)
        tokens = {node: reg.add_sensor(node, [node]) for node in NODES}
    central = CentralProcess(db, tmp_path).start()
    port = free_port(host="127.0.0.2")
    sensors: list[SensorProcess] = []
    stores: dict[str, Path] = {}
    try:
        for node, address in NODES.items():
            work = tmp_path / node
            work.mkdir()
            text = _sensor_config(work, node, address, port, central.url, tokens[node])
            sensors.append(SensorProcess(text, work, listeners=1).start())
            stores[node] = work / "sensor.sqlite"
        _attack(port, tmp_path)
        deadline = time.monotonic() + 30
        while not _delivered(db, stores) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _delivered(db, stores), [s.log()[-1500:] for s in sensors]
    finally:
        for s in sensors:
            s.stop()
        central.stop()

    with open_store(db, readonly=True) as store:
        nodes = correlation.nodes(store)
        distribution = correlation.distribution(store)
        matrix = correlation.matrix(store)

    # the per-node table: attackers per node, and the certain behaviour sources
    at_node = {n: {a for a, where in PLAN.items() if n in where} for n in NODES}
    rows = {r[0]: dict(zip(nodes.columns, r, strict=True)) for r in nodes.rows}
    for node in NODES:
        assert rows[node]["attackers"] == len(at_node[node]), (node, rows[node])
    assert rows[correlation.ALL_NODES]["attackers"] == len(PLAN)
    for (node, behaviour), srcs in STAGE_SOURCES.items():
        assert rows[node][f"{behaviour} sources"] == len(srcs), (node, behaviour, rows[node])
    # distribution: attackers seen at exactly k nodes
    want = {k: sum(len(w) == k for w in PLAN.values()) for k in (1, 2, 3)}
    assert {r[0]: r[1] for r in distribution.rows} == want
    # matrix: both a and b off the diagonal; only a on it
    labels = matrix.columns[1:]
    cells = {(r[0], b): v for r in matrix.rows for b, v in zip(labels, r[1:], strict=True)}
    for a, b in itertools.product(NODES, NODES):
        if a == b:
            expect = sum(w == {a} for w in PLAN.values())
        else:
            expect = sum({a, b} <= w for w in PLAN.values())
        assert cells[(a, b)] == expect, (a, b, matrix.rows)
    # the CLI shows the same tables
    res = subprocess.run(
        [*SIPWATCH, "report", "--db", db, "-t", "distribution", "-t", "matrix", "-f", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    shown = json.loads(res.stdout)
    assert [[r["nodes"], r["attackers"]] for r in shown["distribution"]["rows"]] == [
        [k, n] for k, n in want.items()
    ]
    assert len(shown["matrix"]["rows"]) == 3
