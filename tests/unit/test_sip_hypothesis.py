"""Property tests: parse() and the framers never raise; built messages round-trip."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sipwatch.sip.build import build_request
from sipwatch.sip.framing import StreamFramer, split_datagram
from sipwatch.sip.message import SipMessage, looks_like_sip, parse

SEED = (
    b"INVITE sip:100@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bK1;rport\r\n"
    b'From: "a"<sip:a@b>;tag=1\r\nTo: <sip:100@192.0.2.1>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n'
    b'Contact: <sip:a@h>\r\nAuthorization: Digest username="a", realm="r", nonce="n"\r\n'
    b"Content-Length: 3\r\n\r\nv=0"
)


def touch_everything(msg: SipMessage) -> None:
    """Every lazily parsed field must be computable without an exception."""
    _ = (msg.call_id, msg.from_, msg.to, msg.contacts, msg.vias, msg.credentials)
    _ = (msg.challenge, msg.ruri_uri, msg.user_agent, msg.content_type, msg.reason_text)
    for na in [msg.from_, msg.to, *msg.contacts]:
        if na is not None:
            _ = (na.uri, na.tag, na.user, str(na))
    for via in msg.vias:
        _ = (via.branch, via.rport, via.received, str(via))
    for name in list(msg.headers):
        msg.values(name)
    parse(msg.to_bytes())


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes(data):
    msg = parse(data)
    assert msg.raw == data
    assert isinstance(msg.error, str) and isinstance(msg.anomalies, list)
    touch_everything(msg)
    looks_like_sip(data)
    split_datagram(data)
    StreamFramer().feed(data)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.binary(max_size=8)), max_size=8))
def test_mutated_messages(edits):
    data = bytearray(SEED)
    for pos, repl in edits:
        data[pos : pos + len(repl)] = repl
    data = bytes(data)
    msg = parse(data)
    assert msg.raw == data
    touch_everything(msg)


token = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
user = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
host = st.sampled_from(["192.0.2.1", "example.com", "[2001:db8::1]", "pbx.example.net"])
display = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'), max_size=12
)


@settings(max_examples=300, deadline=None)
@given(
    method=token,
    ruser=user,
    rhost=host,
    port=st.one_of(st.none(), st.integers(1, 65535)),
    disp=display,
    tag=token,
    call_id=token,
    cseq=st.integers(0, 2**31 - 1),
    branch=token,
    ua=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20).map(str.strip),
    body=st.binary(max_size=64),
)
def test_round_trip_of_generated_messages(
    method, ruser, rhost, port, disp, tag, call_id, cseq, branch, ua, body
):
    hostport = rhost if port is None else f"{rhost}:{port}"
    from_ = f'"{disp}" <sip:{ruser}@{hostport}>;tag={tag}' if disp else f"<sip:{ruser}@x>;tag={tag}"
    built = build_request(
        method, f"sip:{ruser}@{hostport}", via=f"SIP/2.0/UDP {hostport};branch={branch};rport",
        from_=from_, to=f"sip:{ruser}@{hostport}", call_id=call_id, cseq=cseq,
        headers=[("User-Agent", ua)], body=body, content_type="application/octet-stream",
    )  # fmt: skip
    assert built.error == "" and built.anomalies == []
    assert built.method == method and built.cseq_num == cseq and built.cseq_method == method
    assert built.ruri_uri.user == ruser and built.ruri_uri.port == port
    assert built.from_.tag == tag and built.from_.display == disp
    assert built.vias[0].branch == branch and built.vias[0].rport == 0
    assert built.user_agent == ua and built.body == body and built.call_id == call_id
    again = parse(built.to_bytes())
    assert again.to_bytes() == built.to_bytes()
    assert (again.headers, again.body, again.method, again.ruri, again.anomalies) == (
        built.headers,
        built.body,
        built.method,
        built.ruri,
        built.anomalies,
    )
    assert again.from_ == built.from_ and again.to == built.to
