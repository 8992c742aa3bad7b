"""Attribution: each record the sensor takes carries the node of the local address it hit."""

from __future__ import annotations

import pytest

from sipwatch.honeypot.config import ConfigError, load_config
from sipwatch.honeypot.nodes_attribution import NodeAttribution, with_nodes
from sipwatch.honeypot.sensor import Sensor, SensorError
from sipwatch.honeypot.server import Inbound
from sipwatch.record import IN, OUT

INV = """
[[node]]
name = "berlin"
public = ["203.0.113.10"]
tunnel = "vxlan"
id = 101
site_underlay = "198.51.100.2"
central_underlay = "198.51.100.1"
tunnel_subnet = "10.99.1.0/30"
central_tunnel = "10.99.1.2"

[[node]]
name = "paris"
public = ["203.0.113.20"]
id = 102
site_underlay = "198.51.100.6"
central_underlay = "198.51.100.5"
tunnel_subnet = "10.99.2.0/30"
central_tunnel = "10.99.2.2"
"""

OPTIONS = (
    b"OPTIONS sip:100@x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1\r\n"
    b"From: <sip:a@192.0.2.7>;tag=1\r\nTo: <sip:100@x>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


class Collect:
    def __init__(self) -> None:
        self.records = []

    def offer(self, rec) -> None:
        self.records.append(rec)


@pytest.fixture
def nodes(tmp_path):
    p = tmp_path / "nodes.toml"
    p.write_text(INV)
    return p


def test_attribution_lookup(nodes):
    a = NodeAttribution.from_inventory(str(nodes))
    assert a.node("10.99.1.2") == "berlin" and a.node("::ffff:10.99.2.2") == "paris"
    assert a.node("203.0.113.10") == ""  # a public address never reaches the sensor as dst
    assert a.node("127.0.0.1") == "" and len(a) == 4


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sensor_records_carry_the_node(nodes, transport):
    sensor = Sensor(with_nodes(load_config(None), nodes))
    collect = Collect()
    sensor.pipeline = collect  # only .offer is used on the per-message path
    for dst in ("10.99.1.2", "10.99.2.2", "192.0.2.1"):
        replies = sensor.handle(Inbound(OPTIONS, transport, "192.0.2.7", 5060, dst, 5060, 1.0))
        assert replies
    got = [(r.direction, r.dst if r.direction == IN else r.src, r.node, r.sensor)
           for r in collect.records]  # fmt: skip
    name = sensor.name
    assert got == [
        (IN, "10.99.1.2", "berlin", name),
        (OUT, "10.99.1.2", "berlin", name),
        (IN, "10.99.2.2", "paris", name),
        (OUT, "10.99.2.2", "paris", name),
        (IN, "192.0.2.1", "", name),  # no node's address: the sensor itself
        (OUT, "192.0.2.1", "", name),
    ]
    sensor.pipeline = None


def test_without_inventory_node_stays_empty():
    sensor = Sensor(load_config(None))
    collect = Collect()
    sensor.pipeline = collect
    sensor.handle(Inbound(OPTIONS, "udp", "192.0.2.7", 5060, "10.99.1.2", 5060, 1.0))
    assert {r.node for r in collect.records} == {""}
    sensor.pipeline = None


def test_bad_inventory_is_a_config_error(tmp_path, nodes):
    bad = tmp_path / "bad.toml"
    bad.write_text(INV.replace("id = 102", "id = 101"))
    with pytest.raises(ConfigError) as exc:
        with_nodes(load_config(None), bad)
    assert exc.value.problems == [
        f"--nodes: {bad}: node paris id: 101 is already the id of node berlin"
    ]
    cfg_file = tmp_path / "sensor.toml"
    cfg_file.write_text(f'[sensor]\nnodes = "{bad}"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(cfg_file)
    assert any("[sensor] nodes" in p and "already the id" in p for p in exc.value.problems)
    cfg_file.write_text(f'[sensor]\nnodes = "{nodes}"\n')
    assert load_config(cfg_file).sensor.nodes == str(nodes)
    bad.unlink()  # vanished after the check: the sensor says so, no traceback
    cfg = with_nodes(load_config(None), nodes)
    nodes.unlink()
    with pytest.raises(SensorError, match="cannot read"):
        Sensor(cfg)
