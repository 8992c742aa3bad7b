"""sip.build: responses echo what scanners need; requests carry the mandatory headers."""

from __future__ import annotations

from sipwatch.sip.build import build_request, build_response
from sipwatch.sip.digest import build_challenge
from sipwatch.sip.message import parse

REQ = (
    b"REGISTER sip:192.0.2.10 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1;rport\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-0\r\n"
    b'f: "1001"<sip:1001@192.0.2.10>;tag=3130303101\xff\r\n'
    b"t: <sip:1001@192.0.2.10>\r\ni: abc@198.51.100.7\r\nCSeq: 7 REGISTER\r\nl: 0\r\n\r\n"
)


def test_response_echoes_and_adds_to_tag():
    req = parse(REQ)
    resp = build_response(
        req, 401, to_tag="as12", headers=[("WWW-Authenticate", build_challenge("pbx", "n1"))]
    )
    data = resp.to_bytes()
    assert data.startswith(b"SIP/2.0 401 Unauthorized\r\n")
    assert resp.error == "" and resp.anomalies == []
    assert resp.headers["via"] == req.headers["via"]
    assert b'From: "1001"<sip:1001@192.0.2.10>;tag=3130303101\xff\r\n' in data  # byte-exact
    assert resp.to.tag == "as12" and resp.call_id == req.call_id
    assert (resp.cseq_num, resp.cseq_method) == (7, "REGISTER")
    assert resp.challenge.realm == "pbx"
    assert resp.content_length == 0


def test_response_keeps_existing_to_tag_and_100_has_none():
    req = parse(REQ.replace(b"t: <sip:1001@192.0.2.10>", b"t: <sip:1001@192.0.2.10>;tag=old"))
    assert build_response(req, 200, to_tag="new").to.tag == "old"
    assert build_response(parse(REQ), 100, to_tag="new").to.tag == ""
    assert build_response(parse(REQ), 499).reason == "Unknown"
    assert build_response(parse(REQ), 404, "Nope").reason == "Nope"


def test_response_with_body():
    sdp = b"v=0\r\n"
    resp = build_response(parse(REQ), 200, body=sdp, content_type="application/sdp")
    assert resp.body == sdp and resp.content_type == "application/sdp" and resp.anomalies == []


def test_build_request():
    req = build_request(
        "INVITE", "sip:0046812345678@192.0.2.10",
        via="SIP/2.0/UDP 198.51.100.7:5071;branch=z9hG4bKq;rport",
        from_='"Jürgen" <sip:1001@192.0.2.10>;tag=a1', to="<sip:0046812345678@192.0.2.10>",
        call_id="c1@h", cseq=3, headers=[("User-Agent", "test")], body=b"v=0\r\n",
        content_type="application/sdp",
    )  # fmt: skip
    assert req.error == "" and req.anomalies == []
    assert req.method == "INVITE" and req.cseq_num == 3 and req.cseq_method == "INVITE"
    assert req.from_.display == "Jürgen"  # sent as UTF-8
    assert "Jürgen".encode() in req.to_bytes()
    assert req.get("max-forwards") == "70" and req.user_agent == "test"
    assert req.content_length == 5 and req.body == b"v=0\r\n"
    again = parse(req.to_bytes())
    assert again.headers == req.headers and again.body == req.body
