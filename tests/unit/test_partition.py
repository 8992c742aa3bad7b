"""Partitioning by client address: a request and its response go to the same worker."""

from __future__ import annotations

from socket import inet_aton

from sipwatch.partition import client_of, partitioned
from sipwatch.record import Record

REQ = b"OPTIONS sip:100@192.0.2.1 SIP/2.0\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n\r\n"
RESP = b"SIP/2.0 200 OK\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n\r\n"
JUNK = b"\x00\x01garbage"


def record(raw: bytes, src: str, dst: str) -> Record:
    return Record.from_bytes(raw, 1.0, "udp", src, 5060, dst, 5060)


def test_client_is_the_requester() -> None:
    assert client_of(record(REQ, "203.0.113.9", "192.0.2.1")) == "203.0.113.9"
    assert client_of(record(RESP, "192.0.2.1", "203.0.113.9")) == "203.0.113.9"
    assert client_of(record(JUNK, "203.0.113.9", "192.0.2.1")) == "203.0.113.9"


def test_every_message_has_exactly_one_worker_and_pairs_stay_together() -> None:
    clients = [f"198.51.100.{i}" for i in range(64)]
    pairs = [(c, REQ, c, "192.0.2.1") for c in clients] + [
        (c, RESP, "192.0.2.1", c) for c in clients
    ]
    where: dict[str, set[int]] = {}
    for index in range(3):
        make = partitioned(Record.from_bytes, index, 3)
        for client, raw, src, dst in pairs:
            rec = make(raw, 1.0, "udp", src, 5060, dst, 5060)
            if rec is not None:
                where.setdefault(client, set()).add(index)
    assert set(where) == set(clients)
    assert all(len(workers) == 1 for workers in where.values())  # request and response together
    assert len({w for ws in where.values() for w in ws}) == 3  # the work is spread


def test_route_ipv4_agrees_with_the_factory() -> None:
    for index in range(2):
        make = partitioned(Record.from_bytes, index, 2)
        for i in range(32):
            client = f"198.51.100.{i}"
            for raw, src, dst in ((REQ, client, "192.0.2.1"), (RESP, "192.0.2.1", client)):
                route = make.route_ipv4(raw, inet_aton(src), inet_aton(dst))
                kept = make(raw, 1.0, "udp", src, 5060, dst, 5060) is not None
                assert (route is not None) == kept
        assert make.route_ipv4(JUNK, inet_aton("198.51.100.1"), inet_aton("192.0.2.1")) is make
