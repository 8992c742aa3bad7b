"""sip.framing: datagrams with several messages, TCP streams split anywhere, resync, caps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sipwatch.sip.framing import _EOH, StreamFramer, _head_end, parse_datagram, split_datagram
from sipwatch.sip.message import parse


def make(call_id: str, body: bytes = b"", method: str = "INVITE") -> bytes:
    head = (
        f"{method} sip:100@192.0.2.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 198.51.100.1:5060;branch=z9hG4bK{call_id}\r\n"
        f"From: <sip:a@b>;tag=1\r\nTo: <sip:100@192.0.2.1>\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


SDP = b"v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\n\r\nblank line above is body\r\n"
RESPONSE = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKr\r\nFrom: <sip:a@b>;tag=1\r\n"
    b"To: <sip:a@b>;tag=2\r\nCall-ID: r\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n"
)


def test_split_datagram_two_messages():
    a, b = make("one", SDP), make("two")
    assert split_datagram(a + b) == [a, b]
    assert split_datagram(a) == [a]
    msgs = parse_datagram(a + b)
    assert [m.call_id for m in msgs] == ["one", "two"]
    assert all("multiple_messages" in m.anomalies for m in msgs)
    assert parse_datagram(a)[0].anomalies == []


def test_split_datagram_keepalives_and_trailing_garbage():
    a = make("one")
    assert split_datagram(b"\r\n\r\n") == []
    assert split_datagram(b"\r\n" + a) == [a]
    # extra bytes that are not a message stay with the message (parse flags them)
    assert split_datagram(a + b"junk") == [a + b"junk"]
    assert "content_length_mismatch" in parse(a + b"junk").anomalies
    # no Content-Length: the whole datagram is one message
    no_cl = a.replace(b"Content-Length: 0\r\n", b"")
    assert split_datagram(no_cl + a) == [no_cl + a]


def stream() -> tuple[bytes, list[bytes]]:
    msgs = [make("one", SDP), RESPONSE, make("three", b"x" * 10, "MESSAGE")]
    return b"\r\n\r\n".join(msgs) + b"\r\n", msgs


def test_stream_split_at_every_byte_position():
    data, msgs = stream()
    for cut in range(len(data) + 1):
        framer = StreamFramer()
        got = framer.feed(data[:cut]) + framer.feed(data[cut:])
        assert got == msgs, cut
        assert framer.dropped_bytes == 0 and framer.buffered == 0


def test_stream_byte_by_byte():
    data, msgs = stream()
    framer = StreamFramer()
    got = []
    for i in range(len(data)):
        got += framer.feed(data[i : i + 1])
    assert got == msgs


def test_stream_resyncs_after_garbage():
    data, msgs = stream()
    garbage = b"\x16\x03\x01 not sip at all\r\nmore junk\r\n"
    framer = StreamFramer()
    got = framer.feed(msgs[0] + garbage + msgs[1])
    assert got == [msgs[0], msgs[1]]
    assert framer.dropped_bytes == len(garbage) and framer.resyncs >= 1
    # garbage at the very start, fed in pieces
    framer = StreamFramer()
    got = []
    for piece in (b"GARBAGE ", b"LINE\r\n", msgs[2][:20], msgs[2][20:]):
        got += framer.feed(piece)
    assert got == [msgs[2]]


def test_stream_caps_oversized_body_and_head():
    framer = StreamFramer(max_body=100)
    big = make("big", b"b" * 1000)
    got = framer.feed(big[:300]) + framer.feed(big[300:]) + framer.feed(RESPONSE)
    assert len(got) == 2 and got[1] == RESPONSE
    assert parse(got[0]).call_id == "big" and len(got[0]) == big.index(b"bbb") + 100
    assert framer.truncated == 1 and framer.dropped_bytes == 900
    # a header block that never ends is not kept forever
    framer = StreamFramer()
    framer.feed(b"INVITE sip:x@y SIP/2.0\r\n")
    for _ in range(100):
        framer.feed(b"X-Filler: " + b"f" * 1000 + b"\r\n")
    assert framer.buffered <= 70000
    assert framer.dropped_bytes > 0


def test_stream_close_returns_partial_message():
    framer = StreamFramer()
    msg = make("cut", b"0123456789")
    assert framer.feed(msg[:-4]) == []
    (rest,) = framer.close()
    assert rest == msg[:-4]
    assert "content_length_mismatch" in parse(rest).anomalies
    assert StreamFramer().close() == []


# --- the regex-free header-end search and the one-message fast path --------------------------

_PIECES = [b"\r", b"\n", b"a", b" ", b":", b"Content-Length: 3", b"l:0", b"SIP/2.0 200 OK"]


@given(st.lists(st.sampled_from(_PIECES), max_size=30).map(b"".join), st.integers(0, 40))
def test_head_end_is_the_regex_match_end(data, pos):
    m = _EOH.search(data, pos)
    assert _head_end(data, pos) == (m.end() if m else -1)


@given(st.lists(st.sampled_from([*_PIECES, make("x")]), max_size=12).map(b"".join))
def test_one_header_block_is_one_message(data):
    """A payload whose first empty line ends it is never cut, whatever Content-Length says."""
    parts = split_datagram(data)
    if data[:1] not in (b"", b"\r", b"\n") and _head_end(data, 0) in (-1, len(data)):
        assert parts == [data]


def test_split_datagram_one_message_without_body_is_not_cut():
    one = make("solo", method="REGISTER")
    assert split_datagram(one) == [one]
    assert split_datagram(b"\r\n" + one) == [one]
    lf = one.replace(b"\r\n", b"\n")
    assert split_datagram(lf) == [lf]
