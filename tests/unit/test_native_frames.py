"""The C bulk path's frame rules (native/fastudp.c) against their Python definitions.

looks_like_sip (message.py), split_datagram's "one message" (framing.py) and the frames the C
path takes (capture/decode.py: the IPv4 fast path, the IPv6 general path): for any input the C
answer is the Python one, or the frame is left to Python.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pcapgen as g  # noqa: E402
from sipwatch.capture.decode import PacketDecoder  # noqa: E402
from sipwatch.capture.stats import CaptureStats  # noqa: E402
from sipwatch.native import part  # noqa: E402
from sipwatch.sip.framing import split_datagram  # noqa: E402
from sipwatch.sip.message import looks_like_sip  # noqa: E402

if part("classify_frame") is None:
    pytest.skip("the C bulk path (sipwatch._native) is not built", allow_module_level=True)

looks_c = part("looks_like_sip")
one_c = part("one_message")
classify = part("classify_frame")

REQ = g.sip_request()
RESP = g.sip_response()
INVITE = g.sip_request("INVITE", body=b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n")

# pieces attackers and real stacks put together: start lines, line ends, Content-Length forms
PIECES = [
    b"OPTIONS sip:100@1.2.3.4 SIP/2.0",
    b"SIP/2.0 200 OK",
    b"SIP/2.0 2000 OK",
    b"sip/2.0 404",
    b"NOTIFY * HTTP/1.1",
    b"INVITE  sip:x  SIP/2.0 ",
    b"REGISTER sip:a\tSIP/2.0",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b"Content-Length: 0",
    b"content-length:12",
    b"l: 4",
    b"L :  99999999999999999999",
    b"Content-Length: 5 \r",
    b"Content\rLength: 7",
    b"Via: SIP/2.0/UDP h",
    b"SIP/2",
    b".0 100",
    b"x",
    b"\x00\xff",
]
pieced = st.lists(st.sampled_from(PIECES), max_size=12).map(b"".join)
datagrams = st.one_of(
    st.binary(max_size=300),
    pieced,
    st.tuples(
        st.sampled_from([REQ, RESP, INVITE]),
        st.sampled_from([b"", REQ, RESP, b"\r\n"]),
        st.binary(max_size=20),
    ).map(b"".join),  # fmt: skip
    st.tuples(st.sampled_from([REQ, INVITE]), st.integers(0, 400)).map(lambda t: t[0][: t[1]]),
)


@settings(max_examples=3000, deadline=None)
@given(datagrams)
def test_looks_like_sip(data: bytes) -> None:
    assert looks_c(data) == looks_like_sip(data)


def test_looks_like_sip_reads_only_4096_bytes() -> None:
    long_line = b"OPTIONS sip:" + b"a" * 5000 + b" SIP/2.0\r\n\r\n"
    assert looks_c(long_line) is looks_like_sip(long_line) is False
    status = b"SIP/2.0 200" + b" " * 4085
    assert len(status) == 4096
    assert looks_c(status + b"x") == looks_like_sip(status + b"x")


@settings(max_examples=3000, deadline=None)
@given(datagrams)
def test_one_message(data: bytes) -> None:
    assert one_c(data) == (bool(data) and split_datagram(data) == [data] and data[0] not in b"\r\n")


@pytest.mark.parametrize(
    "data",
    [REQ, RESP, INVITE, REQ + REQ, INVITE + RESP, REQ + b"\r\n", INVITE + b"junk", b"\r\n" + REQ,
     INVITE.replace(b"Content-Length: 30", b"Content-Length: 300"),
     INVITE.replace(b"Content-Length: 30", b"l:0") + REQ,
     REQ.replace(b"Max-Forwards: 70", b"Content\rLength: 99") + REQ],
)  # fmt: skip
def test_one_message_cases(data: bytes) -> None:
    assert one_c(data) == (split_datagram(data) == [data] and data[0] not in b"\r\n")


def _python_frame(frame: bytes, dlt: int) -> list[tuple]:
    """What the Python decoder makes of one frame: the UDP messages it would record."""
    out: list[tuple] = []

    def make(raw, ts, transport, src, sport, dst, dport, **kw):  # noqa: ANN001, ANN003
        out.append((raw, src, sport, dst, dport, transport, kw))

    dec = PacketDecoder(dlt, CaptureStats(), make)
    meta = (
        (1).to_bytes(4, sys.byteorder) + bytes(4) + bytes(4) + len(frame).to_bytes(4, sys.byteorder)
    )
    dec.decode_batch(frame, meta)
    return out


A, B, A6, B6 = "198.51.100.7", "192.0.2.1", "2001:db8::7", "2001:db8::1"
frames = st.one_of(
    st.tuples(st.sampled_from([(A, B), (A6, B6)]), st.sampled_from([5060, 5061, 4789, 30000]),
              st.sampled_from([5060, 40000]), datagrams).map(
        lambda t: g.ether_of(g.udp_packet(t[0][0], t[0][1], t[2], t[1], t[3]))),
    st.tuples(st.sampled_from([(A, B), (A6, B6)]), datagrams).map(
        lambda t: g.ether_of(g.tcp_packet(t[0][0], t[0][1], 5060, 5060, 1, t[1]))),
    st.binary(max_size=120),
)  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(frames, st.integers(0, 60))
def test_classify_frame_agrees_with_the_decoder(frame: bytes, cut: int) -> None:
    for f in (frame, frame[: len(frame) - cut]):
        kind, got = classify(f, 1)
        if kind != 1:
            continue  # left to Python (0) or not SIP (2): the Python decoder decides or agrees
        want = _python_frame(f, 1)
        assert len(want) == 1, "the C path took a frame Python does not record as one message"
        raw, src, sport, dst, dport, transport, kw = want[0]
        assert (transport, kw) == ("udp", {})
        assert got == (raw, src, sport, dst, dport)


@settings(max_examples=1000, deadline=None)
@given(frames)
def test_frames_the_c_path_calls_other_are_not_sip(frame: bytes) -> None:
    kind, _ = classify(frame, 1)
    if kind == 2:
        stats = CaptureStats()
        dec = PacketDecoder(1, stats, lambda *a, **k: pytest.fail("recorded"))
        meta = (1).to_bytes(4, sys.byteorder) + bytes(8) + len(frame).to_bytes(4, sys.byteorder)
        dec.decode_batch(frame, meta)
        assert stats.non_sip == 1
