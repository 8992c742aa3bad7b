"""The parts of the C TCP reassembler (native/framer.c, tcp.c) against their Python models.

The framer against sip/framing.py StreamFramer and is_foreign against capture/decode.py, on
hypothesis input and the shapes at their bounds; the whole reassembler inside the decoder:
PacketDecoder with the C TcpReassembler (the frames the C batch loop takes go to it first, the
rest through the decoder, as BulkAnalyzer.batch does) against PacketDecoder alone, on
hypothesis-made segment sequences with small bounds, hand cases and odd frames. The same
messages in the same order with the same seen fields, the same counters.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcpcases import C4, ENCAPS, S4, W, cut, odd_frames, pieces, scenarios, to_frames

import pcapgen as g
from sipwatch import analyze_native
from sipwatch.capture import decode
from sipwatch.capture import tcp as pytcp
from sipwatch.capture.stats import CaptureStats
from sipwatch.native import part
from sipwatch.sip import framing
from sipwatch.sip.framing import StreamFramer

if part("TcpReassembler") is None:
    pytest.skip("the C bulk path (sipwatch._native) is not built", allow_module_level=True)

CTcp, CFramer, c_is_foreign = part("TcpReassembler"), part("Framer"), part("is_foreign")


@contextmanager
def _max_head(n: int):
    """StreamFramer reads framing.MAX_HEAD at run time."""
    old = framing.MAX_HEAD
    framing.MAX_HEAD = n
    try:
        yield
    finally:
        framing.MAX_HEAD = old


# --------------------------------------------------------------------------- framer, is_foreign


@settings(max_examples=400, deadline=None)
@given(
    stream=st.lists(pieces(), max_size=8).map(b"".join),
    cuts=st.lists(st.integers(0, 3000), max_size=12),
    max_body=st.sampled_from([65536, 7, 64]),
    max_head=st.sampled_from([65536, 40, 300]),
)
def test_framer_mirrors_streamframer(
    stream: bytes, cuts: list[int], max_body: int, max_head: int
) -> None:
    with _max_head(max_head):
        py = StreamFramer(max_body=max_body)
        c = CFramer(max_body=max_body, max_head=max_head)
        for chunk in cut(stream, cuts):
            assert c.feed(chunk) == py.feed(chunk)
            assert (c.buffered, c.dropped_bytes) == (py.buffered, py.dropped_bytes)
        assert c.close() == py.close()
        assert c.dropped_bytes == py.dropped_bytes


def test_framer_edges() -> None:
    """Hand-picked shapes: the resync search, huge and 20-digit lengths, heads over the cap."""
    req = g.sip_request("INVITE", body=b"abc")
    cases = [
        b"junk\r\n" + req,
        b"junk" + req,
        b"x\nSIP/2.0 200 OK\r\n\r\n",
        b"x\nSIP/2.0 2000 OK\r\n\r\n",
        b"x\nINVITE a SIP/2.0\rINVITE a SIP/2.0\r\n\r\n",
        req.replace(b"Content-Length: 3", b"Content-Length: 99999999999999999999"),
        req.replace(b"Content-Length: 3", b"Content-Length: 9999999999999999999") + req * 3,
        req.replace(b"Content-Length: 3", b"Content\rLength: 3"),
        req.replace(b"Content-Length: 3", b"l: 3 \r"),
        req.replace(b"Content-Length: 3", b"L: 3") + req,
        req.replace(b"Content-Length: 3", b"Content-Length: 3\r x") + req,
        req.replace(b"Content-Length: 3", b"Content-Length: 3 \t\r") + req,
        b"INVITE sip:a SIP/2.0\r\n" + b"X: " + b"y" * 70000,
        b"I" * 70000 + b"\n" + req,
        b"\r\n\r\n" + req + b"\r\n",
        req[:-5],
        b"OPTIONS sip:x SIP/2.0\r\n",
    ]
    for data in cases:
        for step in (1, 7, 1000, len(data)):
            py, c = StreamFramer(), CFramer()
            for k in range(0, len(data), step):
                assert c.feed(data[k : k + step]) == py.feed(data[k : k + step])
            assert c.close() == py.close()
            assert c.dropped_bytes == py.dropped_bytes
    # the caps at their exact bounds; a status line ends in SP, CR or LF only
    start = b"INVITE sip:a SIP/2.0\r\n"
    for n in range(30, 50):
        for first, then in [
            (b"A" * n, b"\n" + req),
            (b"A\n" + b"B" * n, b"\r\n" + req),
            (start + b"X: " + b"y" * (n - len(start) - 3), b"\r\n\r\n" + req),
            (b"x\nSIP/2.0 200\tOK\r\n" + b"z" * n, b"\r\nSIP/2.0 200\tOK\r\n\r\n"),
        ]:
            with _max_head(40):
                py, c = StreamFramer(max_body=20), CFramer(max_body=20, max_head=40)
                assert c.feed(first) == py.feed(first)
                assert c.feed(then) == py.feed(then)
                assert c.close() == py.close()
                assert c.dropped_bytes == py.dropped_bytes


@settings(max_examples=500, deadline=None)
@given(
    st.tuples(
        st.sampled_from(
            [
                b"",
                b"\r\n",
                b"\x16\x03",
                b"\x17\xfe",
                b"\x01\x00\x00\x08\x21\x12\xa4\x42",
                b"GET ",
                b"HTTP/1",
                b"RTSP/",
                b"NOTIFY * HTTP/1.1",
                b"A_B-C x RTSP/",
                b"GET  / HTTP/",
                b"Get / HTTP/1.1",
                b"\n\rHTTP/2",
            ]
        ),
        st.binary(max_size=300),
    )
    .map(b"".join)
    .filter(bool)
)
def test_is_foreign_mirrors_python(data: bytes) -> None:
    assert c_is_foreign(data) == decode.is_foreign(data)


def test_is_foreign_at_its_256_byte_window() -> None:
    for n in range(235, 262):
        for data in (
            b"GET /" + b"a" * n + b" HTTP/1.1",
            b"\r\n" * (n // 2) + b"HTTP/1.0 200",
            b"A" * n + b" x HTTP/",
            b"\x01\x00\x00\x08\x21\x12\xa4\x42" + b"s" * (n - 240),
        ):
            assert c_is_foreign(data) == decode.is_foreign(data), data


# --------------------------------------------------------------------------- decoder level


def _recorder(out: list):
    def make(raw, ts, transport, src, sport, dst, dport, tunnel="", vlan=""):  # noqa: ANN001
        out.append((raw, ts, transport, src, sport, dst, dport, tunnel, vlan))

    return make


def _decode_both(frames: list[tuple[float, bytes]], dlt: int = 1, **bounds: float):
    """The frames through PacketDecoder alone and through PacketDecoder + the C reassembler
    (frames the C batch loop would take go to it first, as BulkAnalyzer.batch does)."""
    max_head = int(bounds.pop("max_head", framing.MAX_HEAD))
    max_body = int(bounds.pop("max_body", 65536))
    ref: list = []
    ref_stats = CaptureStats()
    with _max_head(max_head):
        dec = decode.PacketDecoder(dlt, ref_stats, _recorder(ref))
        dec.tcp = pytcp.TcpReassembler(
            ref_stats,
            lambda: StreamFramer(max_body=max_body),
            dec._emit_tcp,
            decode.is_foreign,
            **bounds,
        )
        for ts, frame in frames:
            dec.decode_frame(ts, frame)
        dec.flush()
    nat: list = []
    nat_stats = CaptureStats()
    ctcp = CTcp(_recorder(nat), max_head=max_head, max_body=max_body, **bounds)
    dec = decode.PacketDecoder(dlt, nat_stats, _recorder(nat), tcp=ctcp)
    taken = 0
    for ts, frame in frames:
        if ctcp.take_frame(frame, dlt, ts):
            nat_stats.packets += 1
            nat_stats.bytes += len(frame)
            taken += 1
        else:
            dec.decode_frame(ts, frame)
    dec.flush()
    assert len(ctcp) == 0
    analyze_native.add_counts(nat_stats, ctcp.counts())
    assert nat == ref
    assert nat_stats.as_dict() == ref_stats.as_dict()
    assert nat_stats.warnings == ref_stats.warnings
    return ref, ref_stats, taken


_bounds = st.fixed_dictionaries(
    {},
    optional={
        "max_flows": st.sampled_from([1, 2, 3]),
        "max_ooo_segments": st.sampled_from([0, 1, 2, 5]),
        "max_ooo_bytes": st.sampled_from([0, 100, 1000]),
        "max_total_ooo_bytes": st.sampled_from([0, 300, 3000]),
        "idle_timeout": st.sampled_from([0.0, 0.5, 5.0]),
        "max_head": st.sampled_from([40, 300]),
        "max_body": st.sampled_from([7, 64]),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=scenarios(), bounds=_bounds, seed=st.integers(0, 3))
def test_decoder_hypothesis(events: list, bounds: dict, seed: int) -> None:
    _decode_both(to_frames(events, seed), **bounds)


def test_decoder_hand_cases() -> None:
    msgs = [g.sip_request("INVITE", call_id=f"d{i}", body=b"v=0\r\n") for i in range(4)]
    stream = b"".join(msgs)

    def seg(seq: int, data: bytes = b"", flags: int = 0x18, **kw: object) -> tuple:
        return (
            kw.get("src", C4),
            kw.get("dst", S4),
            kw.get("sport", 40000),
            kw.get("dport", 5060),
            seq,
            flags,
            data,
        )

    isn = W - 30  # the stream wraps around 2**32
    evs = [
        seg(isn, flags=g.SYN),
        seg(isn + 1, stream[:100]),
        seg(isn + 201, stream[200:300]),
        seg(isn + 101, stream[100:200]),
        seg(isn + 301, stream[300:]),
        seg(isn + 1 + len(stream), flags=g.FIN | g.ACK),
    ]
    events = [(1.0 + i, "plain", e) for i, e in enumerate(evs)]
    ref, stats, taken = _decode_both(to_frames(events))
    assert [r[0] for r in ref] == msgs and taken == len(events)
    assert stats.tcp_out_of_order == 1 and stats.tcp_gaps == 0
    # the same segments, each over another path
    for encap in ENCAPS:
        ref, stats, _ = _decode_both(to_frames([(t, encap, e) for t, _, e in events]))
        assert stats.sip_messages == len(ref)
    # the reorder buffer's bounds, exactly reached and passed: a hole, then 50-byte segments
    cut = [seg(1 + k, stream[k : k + 50]) for k in range(0, len(stream), 50)]
    del cut[1]
    events = [(1.0 + i, "plain", e) for i, e in enumerate([seg(0, flags=g.SYN), *cut])]
    gaps = set()
    for bound in range(8):
        for name, scale in (
            ("max_ooo_segments", 1),
            ("max_ooo_bytes", 50),
            ("max_total_ooo_bytes", 50),
        ):
            _, stats, _ = _decode_both(to_frames(events), **{name: bound * scale})
            gaps.add(stats.tcp_gaps)
    assert gaps == {1}


@pytest.mark.parametrize("dlt", [1, 113, 101, 228, 229])
def test_decoder_odd_frames(dlt: int) -> None:
    frames = [(100.0 + i, f) for i, f in enumerate(odd_frames(dlt))]
    ref, stats, taken = _decode_both(frames, dlt)
    assert 0 < taken < len(frames) and stats.decode_errors > 0


# --------------------------------------------------------------------------- the object itself


def test_sink_errors_and_reentry() -> None:
    msg = g.sip_request("INVITE", call_id="e", body=b"v=0\r\n")

    def boom(*a):  # noqa: ANN002
        raise ValueError("sink failed")

    t = CTcp(boom)
    src, dst = bytes([198, 51, 100, 7]), bytes([192, 0, 2, 1])
    with pytest.raises(ValueError, match="sink failed"):
        t.packet(1.0, src, 40000, dst, 5060, "", "", 1, 0x18, msg + msg)
    t.flush()  # nothing left that reaches the sink
    assert len(t) == 0

    def again(*a):  # noqa: ANN002
        t2.packet(1.0, src, 40001, dst, 5060, "", "", 1, 0x18, msg)

    t2 = CTcp(again)
    with pytest.raises(RuntimeError, match="own sink"):
        t2.packet(1.0, src, 40000, dst, 5060, "", "", 1, 0x18, msg)
    with pytest.raises(ValueError):
        t2.packet(1.0, src, 40000, dst + b"\0", 5060, "", "", 1, 0x18, msg)
    with pytest.raises(TypeError):
        CTcp(42)
    with pytest.raises(ValueError):
        CTcp(print, max_flows=0)
