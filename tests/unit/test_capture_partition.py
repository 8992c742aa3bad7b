"""Decoding for one worker of several: the same records and counters as a plain run's share."""

from __future__ import annotations

import functools
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pcapgen as g  # noqa: E402
from sipwatch.capture import CaptureStats, read_captures  # noqa: E402
from sipwatch.partition import partitioned  # noqa: E402
from sipwatch.record import Record  # noqa: E402

SERVER = "192.0.2.1"


def _capture(tmp_path: Path) -> Path:
    frames = []
    for i in range(40):
        client = f"198.51.100.{i}"
        call = f"c{i}@test"
        frames.append(g.udp_packet(client, SERVER, 5060, 5060, g.sip_request(call_id=call)))
        frames.append(g.udp_packet(SERVER, client, 5060, 5060, g.sip_response(call_id=call)))
        # with a body (split path), junk that starts with no letter, two messages in one
        body = g.sip_request("INVITE", call_id=call, body=b"v=0\r\n")
        frames.append(g.udp_packet(client, SERVER, 5060, 5060, body))
        frames.append(g.udp_packet(client, SERVER, 5060, 5060, b"\x00\x01junk"))
        both = g.sip_response(call_id=call) + g.sip_request("ACK", call_id=call)
        frames.append(g.udp_packet(SERVER, client, 5060, 5060, both))
    path = tmp_path / "c.pcap"
    path.write_bytes(g.pcap([(1700000000.0 + n, g.ether_of(f)) for n, f in enumerate(frames)]))
    return path


def _run(path: Path, factory: Any) -> tuple[list[int], dict[str, Any]]:
    stats = CaptureStats()
    ids = [rec.id for rec in read_captures([str(path)], stats=stats, make_record=factory)]
    return ids, asdict(stats)


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_share_the_records_and_each_counts_the_whole_capture(
    tmp_path: Path, workers: int
) -> None:
    path = _capture(tmp_path)
    all_ids, all_stats = _run(path, Record.from_bytes)
    shares = []
    for index in range(workers):
        ids, stats = _run(path, partitioned(Record.from_bytes, index, workers))
        assert stats == all_stats
        # the decoder's shortcut keeps exactly what the factory alone keeps
        factory = partitioned(Record.from_bytes, index, workers)
        assert _run(path, functools.partial(factory)) == (ids, stats)  # no route_ipv4
        assert ids
        shares += ids
    assert sorted(shares) == sorted(all_ids)
