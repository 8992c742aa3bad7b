"""sip.message: parse(), looks_like_sip(), anomalies, caps, serializer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sipwatch.sip import message as message_mod
from sipwatch.sip.message import MAX_BODY, MAX_HEADERS, MAX_LINE, looks_like_sip, parse

OPTIONS = (
    b"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1725983917;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "sipvicious"<sip:100@1.1.1.1>\r\n'
    b'From: "sipvicious"<sip:100@1.1.1.1>;tag=66383264\r\n'
    b"User-Agent: friendly-scanner\r\n"
    b"Call-ID: 597349181036424716447315\r\n"
    b"Contact: sip:100@198.51.100.7:5060\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def msg_with(*headers: str, start: str = "OPTIONS sip:a@b SIP/2.0", body: bytes = b"") -> bytes:
    base = [
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
        "From: <sip:a@b>;tag=1",
        "To: <sip:a@b>",
        "Call-ID: x1",
        "CSeq: 1 " + start.split()[0],
    ]
    names = {h.split(":")[0].lower() for h in headers}
    lines = [start] + [h for h in base if h.split(":")[0].lower() not in names] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def test_sipvicious_options():
    msg = parse(OPTIONS)
    assert msg.error == "" and msg.anomalies == []
    assert msg.is_request and msg.method == "OPTIONS" and msg.status == 0
    assert msg.version == "SIP/2.0"
    assert msg.from_.display == "sipvicious" and msg.from_.tag == "66383264"
    assert msg.to.uri.host == "1.1.1.1" and msg.to.user == "100"
    assert msg.user_agent == "friendly-scanner"
    assert msg.contacts[0].uri.port == 5060 and not msg.contacts[0].angle
    assert msg.vias[0].branch == "z9hG4bK-1725983917" and msg.vias[0].rport == 0
    assert msg.content_length == 0 and msg.body == b""
    assert msg.raw is OPTIONS


def test_response_fields():
    data = (
        b"SIP/2.0 401 Unauthorized\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKx;received=203.0.113.9;rport=5071\r\n"
        b"From: <sip:1001@192.0.2.10>;tag=a\r\nTo: <sip:1001@192.0.2.10>;tag=b\r\n"
        b"Call-ID: c\r\nCSeq: 1 REGISTER\r\nServer: Asterisk PBX\r\n"
        b'WWW-Authenticate: Digest realm="asterisk", nonce="n1", algorithm=MD5, qop="auth"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse(data)
    assert (msg.is_request, msg.status, msg.reason, msg.method) == (False, 401, "Unauthorized", "")
    assert msg.cseq_method == "REGISTER" and "cseq_method_mismatch" not in msg.anomalies
    via = msg.vias[0]
    assert (via.received, via.rport, via.port) == ("203.0.113.9", 5071, 5060)
    assert msg.user_agent == "Asterisk PBX"  # Server when no User-Agent
    assert msg.challenge.realm == "asterisk" and msg.challenge.qop == "auth"


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_line_endings(eol):
    data = OPTIONS.replace(b"\r\n", eol)
    msg = parse(data)
    assert msg.error == "" and msg.anomalies == []
    assert msg.call_id == "597349181036424716447315" and msg.cseq_num == 1


def test_mixed_line_endings_and_body():
    data = (
        b"INVITE sip:x@y SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\n"
        b"To: <sip:x@y>\r\nCall-ID: m\nCSeq: 2 INVITE\r\nContent-Length: 4\n\r\nv=0\n"
    )
    msg = parse(data)
    assert msg.error == "" and msg.anomalies == []
    assert msg.body == b"v=0\n" and msg.get("to") == "<sip:x@y>"


def test_folding_continuation_lines():
    data = msg_with("Subject: first\r\n second\r\n\tthird")
    assert parse(data).get("subject") == "first second third"


def test_compact_names_map_to_long_names():
    data = (
        b"INVITE sip:x@y SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK3\r\nf: <sip:a@b>;tag=9\r\n"
        b"t: <sip:x@y>\r\ni: cid\r\nCSeq: 1 INVITE\r\nm: <sip:a@h>\r\nc: application/sdp\r\n"
        b"k: timer\r\ns: hi\r\ne: gzip\r\no: presence\r\nu: refer\r\nr: <sip:z@y>\r\n"
        b"b: <sip:q@y>\r\nx: 90\r\ny: abc\r\na: *;audio\r\nj: *;video\r\nd: proxy\r\nl: 0\r\n\r\n"
    )
    msg = parse(data)
    assert msg.error == "" and msg.anomalies == []
    for key in [
        "via",
        "from",
        "to",
        "call-id",
        "contact",
        "content-type",
        "supported",
        "subject",
        "content-encoding",
        "event",
        "allow-events",
        "refer-to",
        "referred-by",
        "session-expires",
        "identity",
        "accept-contact",
        "reject-contact",
        "request-disposition",
        "content-length",
    ]:
        assert key in msg.headers, key
    assert msg.from_.tag == "9" and msg.call_id == "cid" and msg.content_type == "application/sdp"


def test_header_names_are_case_insensitive_and_padded():
    msg = parse(msg_with("cOnTeNt-LeNgTh   :   0", "X-Custom:value:with:colons"))
    assert msg.content_length == 0
    assert msg.get("x-custom") == "value:with:colons"
    assert msg.get("X-CUSTOM") == "value:with:colons"


def test_repeated_headers_and_comma_lists():
    data = msg_with(
        "Via: SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bK2",
        "Via: SIP/2.0/UDP c.example:5062;branch=z9hG4bK3",
        'Contact: "Doe, John" <sip:j@h;transport=tcp>;expires=60, <sip:k@h>',
        "Allow: INVITE, ACK,OPTIONS",
        "Allow: BYE",
    )
    msg = parse(data)
    assert len(msg.headers["via"]) == 2  # one entry per header line
    assert [v.host for v in msg.vias] == ["a.example", "2001:db8::1", "c.example"]
    assert msg.vias[1].port == 5061 and msg.vias[1].transport == "TCP"
    assert [c.display for c in msg.contacts] == ["Doe, John", ""]
    assert msg.contacts[0].params == {"expires": "60"}
    assert msg.contacts[0].uri.params == {"transport": "tcp"}
    assert msg.values("allow") == ["INVITE", "ACK", "OPTIONS", "BYE"]
    # Authorization is not a list header: its commas stay
    data = msg_with('Authorization: Digest username="a", realm="b"')
    assert parse(data).values("authorization") == ['Digest username="a", realm="b"']


def test_addr_spec_params_belong_to_header():
    msg = parse(msg_with("From: sip:alice@example.com;tag=xyz;transport=tcp"))
    assert msg.from_.tag == "xyz"
    assert msg.from_.params == {"tag": "xyz", "transport": "tcp"}
    assert msg.from_.uri.params == {}


def test_display_name_utf8_and_non_utf8():
    msg = parse(msg_with('From: "Jürgen" <sip:j@b>;tag=1'.encode().decode("latin-1")))
    assert msg.from_.display == "Jürgen"
    raw = msg_with("From: x", "User-Agent: Z").replace(b"From: x", b'From: "\xff\xfe" <sip:a@b>')
    msg = parse(raw)
    assert msg.from_.display == "\xff\xfe"  # not UTF-8: latin-1, lossless
    assert msg.to_bytes().count(b'"\xff\xfe"') == 1


def test_ssdp_is_not_sip():
    for data in (
        b"NOTIFY * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\n\r\n",
        b'M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\nMan: "ssdp:discover"\r\n\r\n',
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
    ):
        assert not looks_like_sip(data)
        assert parse(data).error == "not_sip"


def test_looks_like_sip():
    assert looks_like_sip(OPTIONS)
    assert looks_like_sip(b"\r\n\r\n" + OPTIONS)
    assert looks_like_sip(b"SIP/2.0 200 OK\r\n\r\n")
    assert looks_like_sip(b"FOO sip:x SIP/2.0\n")
    assert not looks_like_sip(b"")
    assert not looks_like_sip(b"\x00\x00\x00\x00")
    assert not looks_like_sip(b"INVITE")


@pytest.mark.parametrize(
    "data,error",
    [
        (b"", "empty"),
        (b"\r\n\r\n", "keepalive"),
        (b"\x00\x01\x02garbage", "not_sip"),
        (b"INVITE sip:x@y SIP/2.0 extra words\r\n\r\n", "bad_start_line"),
        (b"SIP/2.0 20x OK\r\n\r\n", "bad_status"),
    ],
)
def test_errors(data, error):
    msg = parse(data)
    assert msg.error == error and msg.raw == data


def anomalies_of(data: bytes) -> list[str]:
    return parse(data).anomalies


def test_anomaly_codes():
    long = "x" * 300
    assert "long_request_uri" in anomalies_of(msg_with(start=f"OPTIONS sip:{long}@b SIP/2.0"))
    assert "long_call_id" in anomalies_of(msg_with(f"Call-ID: {long}"))
    assert "long_from" in anomalies_of(msg_with(f"From: <sip:{long}@b>;tag=1"))
    assert "long_to" in anomalies_of(msg_with(f"To: <sip:{long}@b>"))
    assert "long_via" in anomalies_of(msg_with("Via: SIP/2.0/UDP h;branch=" + "b" * 1100))
    assert "long_contact" in anomalies_of(msg_with(f"Contact: <sip:{long}@b>"))
    assert "cseq_negative" in anomalies_of(msg_with("CSeq: -5 OPTIONS"))
    assert "cseq_invalid" in anomalies_of(msg_with("CSeq: abc OPTIONS"))
    assert "cseq_invalid" in anomalies_of(msg_with("CSeq: 5"))
    assert "cseq_too_large" in anomalies_of(msg_with("CSeq: 4294967296 OPTIONS"))
    assert "cseq_method_mismatch" in anomalies_of(msg_with("CSeq: 1 INVITE"))
    assert "content_length_invalid" in anomalies_of(msg_with("Content-Length: abc"))
    assert "content_length_missing" in anomalies_of(msg_with(body=b"v=0\r\n"))
    assert "content_length_missing" not in anomalies_of(msg_with())
    assert "content_length_mismatch" in anomalies_of(msg_with("Content-Length: 10", body=b"v=0"))
    assert "content_length_mismatch" in anomalies_of(msg_with("Content-Length: 1", body=b"v=0"))
    assert "invalid_version" in anomalies_of(msg_with(start="OPTIONS sip:a@b SIP/3.0"))
    assert "invalid_version" in anomalies_of(b"SIP/1.0 200 OK\r\n\r\n")
    assert "status_out_of_range" in anomalies_of(b"SIP/2.0 999 Odd\r\n\r\n")
    assert "junk_before_start_line" in anomalies_of(b"\xff\xfe" + msg_with())
    assert "junk_before_start_line" not in anomalies_of(b"\r\n\r\n" + msg_with())
    assert "duplicate_header" in anomalies_of(msg_with("Call-ID: a", "Call-ID: b"))
    assert "header_no_colon" in anomalies_of(msg_with("this line has no colon"))
    assert "bad_header_name" in anomalies_of(msg_with("Bad Name: x"))
    assert "no_end_of_headers" in anomalies_of(msg_with().rstrip(b"\r\n") + b"\r\n")
    assert "missing_via" in anomalies_of(b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n")
    assert "missing_cseq" in anomalies_of(b"SIP/2.0 200 OK\r\n\r\n")
    assert "bad_request_uri" in anomalies_of(msg_with(start="OPTIONS nocolon SIP/2.0"))
    assert "long_method" in anomalies_of(msg_with(start="A" * 40 + " sip:a@b SIP/2.0"))


def test_every_documented_code_is_used_by_the_parser():
    src = Path(message_mod.__file__).read_text()
    doc = message_mod.__doc__
    codes = set(re.findall(r"^\| ([a-z_]+)", doc, re.M)) - {"code"}
    codes |= {"missing_via", "missing_from", "missing_to", "missing_call_id", "long_to"}
    code_src = src[src.index('"""', 10) :]
    for code in codes:
        quoted = f'"{code}"' in code_src or f'"{code.removeprefix("missing_")}"' in code_src
        assert quoted, code


def test_multiple_messages_in_buffer():
    data = msg_with("Content-Length: 0") + msg_with("Call-ID: second", "Content-Length: 0")
    msg = parse(data)
    assert msg.call_id == "x1" and "multiple_messages" in msg.anomalies


def test_caps():
    many = [f"X-H{i}: {i}" for i in range(MAX_HEADERS + 50)]
    msg = parse(msg_with(*many))
    assert "too_many_headers" in msg.anomalies
    assert sum(len(v) for v in msg.headers.values()) <= MAX_HEADERS

    msg = parse(msg_with("X-Long: " + "a" * (MAX_LINE * 2)))
    assert "header_too_long" in msg.anomalies
    assert len(msg.get("x-long")) < MAX_LINE

    body = b"a" * (MAX_BODY + 100)
    msg = parse(msg_with(f"Content-Length: {len(body)}", body=body))
    assert "body_too_large" in msg.anomalies and len(msg.body) == MAX_BODY
    assert msg.raw.endswith(body)


def test_body_kept_as_bytes():
    sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=\xff\r\n"
    msg = parse(msg_with(f"Content-Length: {len(sdp)}", "Content-Type: application/sdp", body=sdp))
    assert msg.body == sdp and msg.anomalies == []


def test_to_bytes_round_trip():
    msg = parse(OPTIONS)
    again = parse(msg.to_bytes())
    assert again.headers == msg.headers
    assert (again.method, again.ruri, again.body, again.anomalies) == (
        msg.method,
        msg.ruri,
        msg.body,
        msg.anomalies,
    )
    assert b'From: "sipvicious"<sip:100@1.1.1.1>;tag=66383264\r\n' in msg.to_bytes()


def test_public_capture_payloads_with_tshark():
    """looks_like_sip agrees with tshark on which UDP payloads of the public captures are SIP."""
    import shutil
    import subprocess

    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    pcaps = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pcaps"
    if not pcaps.is_dir():
        pytest.skip(f"public captures not found at {pcaps}")
    checked = 0
    for pcap in sorted(pcaps.glob("*/*.pcap")):
        out = subprocess.run(
            ["tshark", "-n", "-r", str(pcap), "-Y", "udp", "-T", "fields", "-e", "udp.payload",
             "-e", "sip"],  # fmt: skip
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        for line in out.stdout.splitlines():
            payload_hex, _, is_sip = line.partition("\t")
            if not payload_hex:
                continue
            payload = bytes.fromhex(payload_hex.replace(":", ""))
            msg = parse(payload)
            assert msg.raw == payload
            assert looks_like_sip(payload) == bool(is_sip), (pcap.name, payload[:60])
            checked += 1
    assert checked > 100


def test_unicode_digits_are_not_numbers():
    # latin-1 decodes byte 0xB3 to a superscript three, which str.isdigit() accepts
    assert parse(b"SIP/2.0 10\xb3 OK\r\n\r\n").error == "bad_status"
    assert "cseq_invalid" in parse(msg_with("CSeq: 1\xb2 OPTIONS")).anomalies
    msg = parse(msg_with("Content-Length: \xb9"))
    assert "content_length_invalid" in msg.anomalies
