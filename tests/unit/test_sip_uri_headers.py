"""sip.uri and sip.headers: URIs, name-addr, Via, CSeq, comma lists."""

from __future__ import annotations

import pytest

from sipwatch.sip.headers import parse_cseq, parse_name_addr, parse_via, split_commas
from sipwatch.sip.uri import Uri, parse_uri


@pytest.mark.parametrize(
    "text,scheme,user,password,host,port",
    [
        ("sip:1001@192.0.2.10", "sip", "1001", "", "192.0.2.10", None),
        ("sip:192.0.2.10:5060", "sip", "", "", "192.0.2.10", 5060),
        ("sips:alice:secret@example.com:5061", "sips", "alice", "secret", "example.com", 5061),
        ("sip:bob@[2001:db8::1]:5070", "sip", "bob", "", "2001:db8::1", 5070),
        ("sip:[::1]", "sip", "", "", "::1", None),
        ("SIP:Carol@Example.COM", "sip", "Carol", "", "Example.COM", None),
        ("sip:%61lice@h", "sip", "alice", "", "h", None),
        ("tel:+1-201-555-0123", "tel", "+1-201-555-0123", "", "", None),
        ("sip:u@h:99999", "sip", "u", "", "h", None),
    ],
)
def test_parse_uri(text, scheme, user, password, host, port):
    uri = parse_uri(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        scheme,
        user,
        password,
        host,
        port,
    )
    assert str(uri) == text


def test_uri_params_and_headers():
    uri = parse_uri("sip:alice@atlanta.com;transport=TCP;lr?subject=project%20x&priority=urgent")
    assert uri.params == {"transport": "TCP", "lr": None}
    assert uri.headers == {"subject": "project x", "priority": "urgent"}
    tel = parse_uri("tel:7042;phone-context=example.com")
    assert tel.user == "7042" and tel.params == {"phone-context": "example.com"}


def test_uri_without_scheme_and_other_schemes():
    assert parse_uri("no-scheme-here") is None
    assert parse_uri("") is None
    mail = parse_uri("mailto:someone@example.com")
    assert mail.scheme == "mailto" and mail.opaque == "someone@example.com"


def test_uri_built_in_code_serializes():
    uri = Uri("sip", "a b", "2001:db8::2", 5060, params={"transport": "udp"})
    assert str(uri) == "sip:a%20b@[2001:db8::2]:5060;transport=udp"
    assert parse_uri(str(uri)) == uri


@pytest.mark.parametrize(
    "value,display,uri_text,tag",
    [
        ('"sipvicious"<sip:100@1.1.1.1>;tag=abc', "sipvicious", "sip:100@1.1.1.1", "abc"),
        ('"sipvicious" <sip:100@1.1.1.1>', "sipvicious", "sip:100@1.1.1.1", ""),
        ("Bob <sips:bob@biloxi.com>;tag=a6c85cf", "Bob", "sips:bob@biloxi.com", "a6c85cf"),
        ("<sip:x@y>;TAG=Up", "", "sip:x@y", "Up"),
        ("sip:x@y;tag=1", "", "sip:x@y", "1"),
        ('"A \\"quoted\\" name" <sip:q@y>', 'A "quoted" name', "sip:q@y", ""),
        ('"semi;colon, comma" <sip:q@y;lr>;tag=t', "semi;colon, comma", "sip:q@y;lr", "t"),
        ("The Operator <tel:+15551234>", "The Operator", "tel:+15551234", ""),
    ],
)
def test_name_addr(value, display, uri_text, tag):
    na = parse_name_addr(value)
    assert (na.display, na.uri_text, na.tag) == (display, uri_text, tag)
    again = parse_name_addr(str(na))
    assert (again.display, again.uri_text, again.params) == (na.display, na.uri_text, na.params)


def test_name_addr_edge_cases():
    assert parse_name_addr("") is None
    assert parse_name_addr("*").wildcard
    broken = parse_name_addr('"never closed <sip:a@b>')
    assert broken.display.startswith("never closed") and broken.uri is None
    na = parse_name_addr('<sip:a@b>;+sip.instance="<urn:uuid:1;x>";expires=30')
    assert na.params == {"+sip.instance": '"<urn:uuid:1;x>"', "expires": "30"}


def test_via():
    via = parse_via("SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1;rport;received=192.0.2.1")
    assert (via.protocol, via.transport, via.host, via.port) == (
        "SIP/2.0",
        "UDP",
        "198.51.100.7",
        5060,
    )
    assert (via.branch, via.rport, via.received) == ("z9hG4bK-1", 0, "192.0.2.1")
    via = parse_via("SIP / 2.0 / tcp [2001:db8::9]:5061 ; branch = z9hG4bK2 ; rport = 4000")
    assert (via.transport, via.host, via.port, via.branch, via.rport) == (
        "TCP",
        "2001:db8::9",
        5061,
        "z9hG4bK2",
        4000,
    )
    assert parse_via("SIP/2.0/UDP host").rport is None
    assert parse_via("garbage") is None
    assert parse_via(str(via)).branch == "z9hG4bK2"


def test_cseq_and_commas():
    assert parse_cseq("42 INVITE") == (42, "INVITE")
    assert parse_cseq("-1 ACK") == (-1, "ACK")
    assert parse_cseq("x BYE") == (None, "BYE")
    assert parse_cseq("") == (None, "")
    assert split_commas('a, "b,c" <sip:x>, <sip:y,z>') == ["a", '"b,c" <sip:x>', "<sip:y,z>"]
    assert split_commas(" , a,, ") == ["a"]
