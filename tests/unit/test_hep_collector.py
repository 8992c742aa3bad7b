"""HEP collector (UDP + TCP framing, auth, bounds) and the HEP exporter into it, on loopback."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from sipwatch.actions import build_sinks, check_sinks
from sipwatch.actions.hep_export import HepExporter
from sipwatch.capture.hep import HepDecoder, HepMessage
from sipwatch.capture.hep_collector import HepCollector
from sipwatch.capture.hep_encode import encode, encode_record
from sipwatch.record import OUT, Record

SIP = (
    b"REGISTER sip:192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-%d\r\n"
    b"From: <sip:100@192.0.2.1>;tag=a\r\nTo: <sip:100@192.0.2.1>\r\nCall-ID: %d@x\r\n"
    b"CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
)


def rec(i: int, transport: str = "udp") -> Record:
    raw = SIP % (i, i)
    return Record.from_bytes(raw, 1_700_000_000 + i / 1000, transport, "198.51.100.7", 5060 + i,
                             "192.0.2.1", 5060, node="n1")  # fmt: skip


async def _until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def test_udp_and_tcp_framing_auth_and_bad_streams() -> None:
    async def main() -> None:
        got: list[Record] = []
        dec = HepDecoder("s", {"7": "paris"}, auth_key="k")
        col = HepCollector(["127.0.0.1:0"], dec, got.append, max_connections=2)
        await col.start()
        port = col.ports[0]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                for i in range(20):
                    u.sendto(encode_record(rec(i), 7, b"k"), ("127.0.0.1", port))
                u.sendto(encode_record(rec(99), 7, b"wrong"), ("127.0.0.1", port))
            await _until(lambda: len(got) >= 20)
            # TCP: 30 packets in one stream, cut at awkward places
            stream = b"".join(encode_record(rec(100 + i, "tcp"), 7, b"k") for i in range(30))
            _, w = await asyncio.open_connection("127.0.0.1", port)
            for cut in range(0, len(stream), 333):
                w.write(stream[cut : cut + 333])
                await w.drain()
            await _until(lambda: len(got) >= 50)
            # garbage on a stream closes it (counted)
            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            w2.write(b"GET / HTTP/1.1\r\n\r\n")
            await w2.drain()
            assert await asyncio.wait_for(r2.read(), 5) == b""
            w.close()
            w2.close()
        finally:
            await col.close()
        assert len(got) == 50
        assert [r.sport for r in got[:20]] == [5060 + i for i in range(20)]
        assert {r.transport for r in got[20:]} == {"tcp"}
        assert all(r.node == "paris" and r.sensor == "s" for r in got)
        assert got[0].ts == pytest.approx(1_700_000_000.0) and got[0].msg.method == "REGISTER"
        assert dec.stats.rejected == {"auth": 1, "bad_magic": 1}
        assert col.stats.tcp_framing_errors == 1 and col.stats.udp_packets == 21
        c = col.counters()
        assert c["hep_records"] == 50 and c["hep_rejected_auth"] == 1

    asyncio.run(main())


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_exporter_into_collector(transport: str) -> None:
    async def main() -> None:
        got: list[Record] = []
        col = HepCollector(["127.0.0.1:0"], HepDecoder(), got.append)
        await col.start()
        port = col.ports[0]
        (exp,) = build_sinks({"hep": {"address": f"127.0.0.1:{port}", "transport": transport,
                                      "agent_id": 2001, "auth_key": "x", "compress": True}})  # fmt: skip
        assert isinstance(exp, HepExporter)
        records = [rec(i) for i in range(200)]
        records[5].direction = OUT
        try:
            for i in range(0, 200, 50):
                exp.handle(records[i : i + 50])
            await _until(lambda: len(got) >= 200)
        finally:
            await asyncio.to_thread(exp.close)
            await col.close()
        assert len(got) == 200
        want = [(r.ts, r.src, r.sport, r.dst, r.dport, r.raw) for r in records]
        have = sorted((r.ts, r.src, r.sport, r.dst, r.dport, r.raw) for r in got)
        assert [(round(a[0], 6), *a[1:]) for a in have] == [(round(w[0], 6), *w[1:]) for w in want]
        assert {r.node for r in got} == {"n1"}  # the record's node travels as node name
        assert exp.stats.delivered == 200 and exp.stats.dropped == 0

    asyncio.run(main())


def test_exporter_reconnects_and_counts_drops() -> None:
    async def main() -> None:
        got: list[Record] = []
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        exp = HepExporter(address=f"127.0.0.1:{port}", transport="tcp", retries=0, max_queue=10)
        exp.handle([rec(i) for i in range(25)])  # nobody listens yet; 15 do not fit
        assert exp.stats.dropped == 15
        await asyncio.to_thread(exp.flush, 10)
        assert exp.stats.failed == 10  # connection refused: counted, not raised
        col = HepCollector([f"127.0.0.1:{port}"], HepDecoder(), got.append)
        await col.start()
        try:
            exp.handle([rec(i) for i in range(5)])
            await _until(lambda: len(got) >= 5)
            await col.close()  # the collector goes away and comes back: the exporter reconnects
            col = HepCollector([f"127.0.0.1:{port}"], HepDecoder(), got.append)
            await col.start()
            for _ in range(50):  # the first send after a peer reset may still "succeed"
                exp.handle([rec(1000)])
                await asyncio.sleep(0.05)
                if len(got) > 5:
                    break
            await _until(lambda: len(got) > 5)
        finally:
            await asyncio.to_thread(exp.close)
            await col.close()
        assert len(got) > 5 and exp.connects >= 2

    asyncio.run(main())


def test_config_check_of_actions_hep() -> None:
    assert check_sinks({"hep": {"address": "127.0.0.1:9060", "transport": "sctp"}}) == [
        "[actions.hep] transport: must be one of 'udp', 'tcp', not 'sctp'"
    ]
    assert check_sinks({"hep": {}}) == ["[actions.hep] address: is required"]


def test_not_sip_and_keepalive_are_not_records() -> None:
    async def main() -> None:
        got: list[Record] = []
        col = HepCollector(["127.0.0.1:0"], HepDecoder(), got.append)
        await col.start()
        m = HepMessage(src="192.0.2.1", dst="192.0.2.2", sport=1, dport=2, ts_sec=5)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(encode(m), ("127.0.0.1", col.ports[0]))  # no payload: keep-alive
            m.payload, m.proto_type = b"{}", 5
            u.sendto(encode(m), ("127.0.0.1", col.ports[0]))  # RTCP report
        await _until(lambda: col.decoder.stats.packets >= 2)
        await col.close()
        assert not got
        assert (col.decoder.stats.keepalives, col.decoder.stats.not_sip) == (1, 1)

    asyncio.run(main())
