"""HEP codec (capture/hep.py): the spec's chunk layout, round trips, rejections, fuzzing."""

from __future__ import annotations

import gzip
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipwatch.capture import hep
from sipwatch.capture.hep import HepDecoder, HepError, HepMessage, decode
from sipwatch.capture.hep_encode import encode, encode_v2

SIP = (
    b"OPTIONS sip:100@192.168.1.2 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.1:5060;branch=z9hG4bK-1\r\n"
    b"From: <sip:scan@192.168.1.1>;tag=1\r\nTo: <sip:100@192.168.1.2>\r\n"
    b"Call-ID: c1@x\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def chunk(ctype: int, value: bytes, vendor: int = 0) -> bytes:
    """vendor id (2 bytes), chunk type (2), chunk length incl. this header (2), value."""
    return (
        vendor.to_bytes(2, "big")
        + ctype.to_bytes(2, "big")
        + (6 + len(value)).to_bytes(2, "big")
        + value
    )


def packet(*chunks: bytes) -> bytes:
    body = b"".join(chunks)
    return b"HEP3" + (6 + len(body)).to_bytes(2, "big") + body


def spec_packet(payload: bytes = SIP) -> bytes:
    """The HEP3 example, written from the spec's chunk table: an IPv4/UDP SIP message
    192.168.1.1:5060 -> 192.168.1.2:5060 captured at 1433719443.000979 by agent 2001 with the
    password "myHep"."""
    return packet(
        chunk(0x0001, b"\x02"),  # IP protocol family: IPv4
        chunk(0x0002, b"\x11"),  # IP protocol id: UDP (17)
        chunk(0x0003, bytes([192, 168, 1, 1])),  # IPv4 source address
        chunk(0x0004, bytes([192, 168, 1, 2])),  # IPv4 destination address
        chunk(0x0007, b"\x13\xc4"),  # source port 5060
        chunk(0x0008, b"\x13\xc4"),  # destination port 5060
        chunk(0x0009, (1433719443).to_bytes(4, "big")),  # timestamp, seconds
        chunk(0x000A, (979).to_bytes(4, "big")),  # timestamp, microseconds offset
        chunk(0x000B, b"\x01"),  # protocol type: SIP
        chunk(0x000C, (2001).to_bytes(4, "big")),  # capture agent id
        chunk(0x000E, b"myHep"),  # authentication key
        chunk(0x000F, payload),  # captured payload
    )


def test_spec_example_decodes_to_its_fields() -> None:
    data = spec_packet()
    assert data[:4] == b"HEP3" and int.from_bytes(data[4:6], "big") == len(data)
    m = decode(data)
    assert (m.version, m.family, m.ip_proto, m.transport) == (3, 2, 17, "udp")
    assert (m.src, m.sport, m.dst, m.dport) == ("192.168.1.1", 5060, "192.168.1.2", 5060)
    assert (m.ts_sec, m.ts_usec, m.proto_type) == (1433719443, 979, 1)
    assert (m.agent_id, m.auth_key, m.payload) == (2001, b"myHep", SIP)
    rec = HepDecoder(sensor="s1").record(data)
    assert rec is not None
    assert (rec.src, rec.sport, rec.dst, rec.dport, rec.transport) == (
        "192.168.1.1", 5060, "192.168.1.2", 5060, "udp",
    )  # fmt: skip
    assert rec.ts == pytest.approx(1433719443.000979, abs=1e-7)
    assert rec.msg.method == "OPTIONS" and rec.raw == SIP
    assert (rec.sensor, rec.node) == ("s1", "2001")


def test_all_chunks_ipv6_and_unknown_ones_skipped() -> None:
    src6 = bytes.fromhex("20010db8000000000000000000000001")
    dst6 = bytes.fromhex("20010db8000000000000000000000002")
    data = packet(
        chunk(1, b"\x0a"), chunk(2, b"\x06"), chunk(5, src6), chunk(6, dst6),
        chunk(7, struct.pack("!H", 40000)), chunk(8, struct.pack("!H", 5060)),
        chunk(9, struct.pack("!I", 1_700_000_000)), chunk(10, struct.pack("!I", 5)),
        chunk(11, b"\x01"), chunk(12, struct.pack("!I", 7)), chunk(13, struct.pack("!H", 30)),
        chunk(17, b"corr-1"), chunk(18, struct.pack("!H", 100)), chunk(19, b"edge-1"),
        chunk(0x20, b"future generic chunk"), chunk(0x10, b"vendor chunk", vendor=0x0008),
        chunk(16, gzip.compress(SIP)),
    )  # fmt: skip
    m = decode(data)
    assert (m.family, m.transport, m.src, m.dst) == (10, "tcp", "2001:db8::1", "2001:db8::2")
    assert (m.sport, m.dport, m.ts, m.agent_id, m.keepalive) == (
        40000, 5060, pytest.approx(1_700_000_000.000005), 7, 30,
    )  # fmt: skip
    assert (m.correlation_id, m.vlan, m.node_name, m.compressed) == (b"corr-1", 100, "edge-1", True)
    assert m.payload == SIP
    assert m.extra == [(0, 0x20, b"future generic chunk"), (8, 0x10, b"vendor chunk")]
    rec = HepDecoder(nodes={"edge-1": "berlin"}).record(data)
    assert rec is not None and (rec.transport, rec.node, rec.vlan) == ("tcp", "berlin", "100")


def test_zlib_compressed_payload() -> None:
    body = spec_packet()[6:]
    body = body[: body.rindex(b"\x00\x00\x00\x0f")] + chunk(16, zlib.compress(SIP))
    m = decode(b"HEP3" + (6 + len(body)).to_bytes(2, "big") + body)
    assert m.payload == SIP and m.compressed


def test_round_trip_every_field() -> None:
    m = HepMessage(
        ip_proto=6, src="203.0.113.5", dst="198.51.100.9", sport=5061, dport=5060,
        ts_sec=1_800_000_000, ts_usec=999_999, agent_id=0xFFFFFFFF, keepalive=10,
        auth_key=b"k", payload=SIP, compressed=True, correlation_id=b"x", vlan=4095,
        node_name="n\u00e9", extra=[(9, 1, b"v")],
    )  # fmt: skip
    back = decode(encode(m))
    assert back == m


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("src,dst", [("192.0.2.1", "192.0.2.2"), ("2001:db8::1", "2001:db8::2")])
def test_hep_v1_v2(version: int, src: str, dst: str) -> None:
    m = HepMessage(version=version, src=src, dst=dst, sport=5060, dport=5062, ts_sec=1_700_000_001,
                   ts_usec=20, agent_id=99, payload=SIP)  # fmt: skip
    back = decode(encode_v2(m))
    assert (back.version, back.src, back.dst, back.sport, back.dport, back.payload) == (
        version, src, dst, 5060, 5062, SIP,
    )  # fmt: skip
    if version == 2:
        assert (back.ts_sec, back.ts_usec, back.agent_id) == (1_700_000_001, 20, 99)
    d = HepDecoder()
    rec = d.record(encode_v2(m))
    assert rec is not None and rec.msg.method == "OPTIONS"
    assert getattr(d.stats, f"v{version}") == 1


def _bad(reason: str, data: bytes, **kw) -> None:
    with pytest.raises(HepError) as err:
        decode(data)
    assert err.value.reason == reason
    d = HepDecoder(**kw)
    assert d.record(data) is None
    assert d.stats.rejected == {reason: 1}


def test_rejections_are_counted_by_reason() -> None:
    good = spec_packet()
    _bad("short", b"HEP")
    _bad("bad_magic", b"XEP3" + good[4:])
    _bad("length_mismatch", good + b"x")
    _bad("length_mismatch", good[:-1])
    cut = packet(chunk(1, b"\x02")) + b"\x00\x00\x00"
    _bad("chunk_truncated", b"HEP3" + len(cut).to_bytes(2, "big") + cut[6:])
    over = packet(b"\x00\x00\x00\x03\x00\x40" + b"\x00" * 4)
    _bad("chunk_truncated", over)
    _bad("chunk_length", packet(b"\x00\x00\x00\x03\x00\x05" + b"\x00" * 4))
    _bad("chunk_size", packet(chunk(3, b"\x01\x02\x03"), chunk(15, SIP)))
    _bad("chunk_size", packet(chunk(9, b"\x00" * 8), chunk(15, SIP)))
    _bad("bad_family", packet(chunk(1, b"\x0a"), chunk(3, bytes(4)), chunk(4, bytes(4)),
                              chunk(15, SIP)))  # fmt: skip
    _bad("bad_compressed", packet(chunk(16, b"not compressed at all")))


def test_missing_chunks_auth_and_keepalive() -> None:
    d = HepDecoder()
    assert d.record(packet(chunk(15, SIP))) is None  # no addresses, ports or time
    assert d.stats.rejected == {"missing_chunk": 1}
    d = HepDecoder(auth_key="secret")
    assert d.record(spec_packet()) is None
    assert d.stats.rejected == {"auth": 1}
    assert HepDecoder(auth_key="myHep").record(spec_packet()) is not None
    d = HepDecoder()
    assert d.record(spec_packet(b"")) is None
    assert d.stats.keepalives == 1 and not d.stats.rejected
    rtcp = spec_packet()[: -6 - len(SIP)]
    rtcp = rtcp.replace(chunk(11, b"\x01"), chunk(11, b"\x05")) + chunk(15, b"{}")
    rtcp = b"HEP3" + len(rtcp).to_bytes(2, "big") + rtcp[6:]
    assert d.record(rtcp) is None and d.stats.not_sip == 1


def test_tcp_framing_length() -> None:
    data = spec_packet()
    assert hep.frame_length(data) == len(data)
    assert hep.frame_length(data[:5]) == 0
    assert hep.frame_length(b"GET / HTTP/1.1\r\n") == -1


@settings(max_examples=300, deadline=None)
@given(
    src=st.ip_addresses(v=4).map(str), dst=st.ip_addresses(v=4).map(str),
    sport=st.integers(0, 65535), dport=st.integers(0, 65535),
    sec=st.integers(0, 2**32 - 1), usec=st.integers(0, 999_999),
    agent=st.none() | st.integers(0, 2**32 - 1), payload=st.binary(min_size=1, max_size=2000),
    proto=st.sampled_from([6, 17, 132]), compressed=st.booleans(),
    name=st.none() | st.text(min_size=1, max_size=20),
)  # fmt: skip
def test_round_trip_hypothesis(src, dst, sport, dport, sec, usec, agent, payload, proto,
                               compressed, name) -> None:  # fmt: skip
    m = HepMessage(ip_proto=proto, src=src, dst=dst, sport=sport, dport=dport, ts_sec=sec,
                   ts_usec=usec, agent_id=agent, payload=payload, compressed=compressed,
                   node_name=name)  # fmt: skip
    data = encode(m)
    assert decode(data) == m
    rec = HepDecoder().record(data)
    assert rec is not None
    assert (rec.src, rec.dst, rec.sport, rec.dport, rec.raw) == (src, dst, sport, dport, payload)
    assert rec.ts == pytest.approx(sec + usec * 1e-6, abs=1e-6)


def _mutations(base: bytes):
    return st.one_of(
        st.binary(max_size=600),
        st.binary(max_size=300).map(lambda b: b"HEP3" + b),
        st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)).map(
            lambda t: base[: t[0]] + bytes([t[1]]) + base[t[0] + 1 :]
        ),
        st.integers(0, len(base)).map(lambda k: base[:k]),
        st.binary(max_size=200).map(lambda b: bytes([2, 16, 2, 17]) + b),
    )


@settings(max_examples=2000, deadline=None)
@given(data=_mutations(spec_packet()))
def test_fuzz_never_raises(data: bytes) -> None:
    d = HepDecoder(nodes={"2001": "n"})
    rec = d.record(data)
    s = d.stats
    assert s.packets == 1
    outcome = s.records + s.keepalives + s.not_sip + s.rejected_total
    assert outcome == 1
    if rec is not None:
        assert isinstance(rec.raw, bytes) and rec.raw and rec.msg is not None
    try:
        decode(data)
    except HepError as exc:
        assert exc.reason in hep.REASONS


@pytest.mark.skipif(not hep.ACCELERATED, reason="C accelerator not built")
@settings(max_examples=2000, deadline=None)
@given(data=_mutations(spec_packet()))
def test_c_walk_equals_python_walk(data: bytes) -> None:
    from sipwatch.capture._hep import scan3

    py = hep._scan3_py(data)
    c = scan3(data)
    if isinstance(py, int):
        assert c == py
    else:
        assert list(c[1:]) == py[1:]
