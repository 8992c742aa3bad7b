"""RFC 4475 torture messages (hand-written in tests/data/rfc4475): valid ones parse with the
right fields, invalid ones give an error or an anomaly code, none raises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sipwatch.sip.framing import split_datagram
from sipwatch.sip.message import parse

DATA = Path(__file__).resolve().parents[1] / "data" / "rfc4475"

_HEX = re.compile(rb"<hex:([0-9A-Fa-f]*)>")
_REPEAT = re.compile(rb"<repeat count=([0-9]+)>(.*?)</repeat>", re.S)


def load(name: str) -> bytes:
    raw = (DATA / name).read_bytes()
    if not name.endswith(".lf.sip"):
        raw = raw.replace(b"\n", b"\r\n")
    raw = _REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), raw)
    return _HEX.sub(lambda m: bytes.fromhex(m.group(1).decode()), raw)


def test_every_file_parses_without_internal_error():
    names = sorted(p.name for p in DATA.glob("*.sip"))
    assert len(names) >= 25
    for name in names:
        msg = parse(load(name))
        assert msg.error != "internal", name
        assert msg.raw == load(name)


def test_wsinv_short_tortuous_invite():
    msg = parse(load("wsinv.sip"))
    assert msg.error == "" and msg.anomalies == []
    assert msg.method == "INVITE"
    assert msg.ruri_uri.user == "vivekg"
    assert msg.ruri_uri.params == {"unknownparam": None}
    assert msg.to.tag == "1918181833n"
    assert msg.from_.display == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert msg.get("Max-Forwards") == "0068"
    assert (msg.cseq_num, msg.cseq_method) == (9, "INVITE")  # folded over two lines
    assert [(v.transport, v.host, v.branch) for v in msg.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.vias[0].rport == 0  # flag without value
    assert msg.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.get("subject") == ""  # s: with an empty value
    (contact,) = msg.contacts
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert msg.content_length == 150 and len(msg.body) == 150
    assert msg.body.startswith(b"v=0\r\n")


def test_intmeth_unusual_method_and_characters():
    msg = parse(load("intmeth.sip"))
    assert msg.error == ""
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.method == method and msg.cseq_method == method
    assert "cseq_method_mismatch" not in msg.anomalies
    assert msg.anomalies == ["long_method"]  # longer than our limit, still valid
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.ruri_uri.host == "example.com"
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"


def test_esc01_escaped_uris():
    msg = parse(load("esc01.sip"))
    assert msg.error == "" and msg.anomalies == []
    assert msg.ruri_uri.user == "sips:user@example.com"
    assert msg.ruri_uri.host == "example.net"
    assert msg.to.user == "user"
    assert msg.from_.user == "I have spaces"
    assert msg.contacts[0].user == "caller"
    assert msg.content_type == "application/sdp"  # compact "C:"


def test_escnull_escaped_nul_in_user():
    msg = parse(load("escnull.sip"))
    assert msg.anomalies == []
    assert msg.to.user == "null-\x00-null"
    assert [c.user for c in msg.contacts] == ["\x00", "\x00\x00"]
    assert msg.content_length == 0


def test_lwsdisp_token_display_name_without_space():
    msg = parse(load("lwsdisp.sip"))
    assert msg.from_.display == "caller"
    assert msg.from_.uri.user == "caller"


def test_semiuri_params_in_user_part_and_folded_list():
    msg = parse(load("semiuri.sip"))
    assert msg.ruri_uri.user == "user;par=u@example.net"
    assert msg.ruri_uri.host == "example.com"
    assert msg.values("accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports():
    msg = parse(load("transports.sip"))
    assert [v.transport for v in msg.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_unreason_utf8_reason_phrase():
    msg = parse(load("unreason.sip"))
    assert msg.status == 200
    assert msg.reason_text.endswith("простое")


def test_noreason_empty_reason_phrase():
    msg = parse(load("noreason.sip"))
    assert (msg.error, msg.status, msg.reason) == ("", 100, "")


def test_lf_only_line_ends():
    msg = parse(load("lf-only.lf.sip"))
    assert msg.error == "" and msg.anomalies == []
    assert msg.from_.display == "lf" and msg.cseq_num == 1


def test_dblreq_second_message_in_datagram():
    data = load("dblreq.sip")
    msg = parse(data)
    assert msg.method == "REGISTER"
    assert "multiple_messages" in msg.anomalies
    parts = split_datagram(data)
    assert [parse(p).method for p in parts] == ["REGISTER", "INVITE"]


INVALID = {
    "badinv01.sip": ("", "content_length_mismatch"),
    "clerr.sip": ("", "content_length_mismatch"),
    "ncl.sip": ("", "content_length_invalid"),
    "scalar02.sip": ("", "cseq_too_large"),
    "quotbal.sip": ("", "unbalanced_quotes"),
    "ltgtruri.sip": ("", "bad_request_uri"),
    "lwsruri.sip": ("bad_start_line", None),
    "lwsstart.sip": ("", "start_line_whitespace"),
    "trws.sip": ("", "start_line_whitespace"),
    "escruri.sip": ("", "bad_request_uri"),
    "badvers.sip": ("", "invalid_version"),
    "mismatch01.sip": ("", "cseq_method_mismatch"),
    "mismatch02.sip": ("", "cseq_method_mismatch"),
    "multi01.sip": ("", "duplicate_header"),
    "insuf.sip": ("", "missing_from"),
    "bigcode.sip": ("bad_status", None),
    "junk.sip": ("", "junk_before_start_line"),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_messages_are_flagged(name):
    error, anomaly = INVALID[name]
    msg = parse(load(name))
    assert msg.error == error
    if anomaly:
        assert anomaly in msg.anomalies


def test_insuf_names_each_missing_header():
    msg = parse(load("insuf.sip"))
    assert {"missing_from", "missing_to", "missing_call_id"} <= set(msg.anomalies)
    assert "missing_via" not in msg.anomalies


def test_junk_request_still_read():
    msg = parse(load("junk.sip"))
    assert msg.method == "REGISTER" and msg.call_id == "junk.1"
