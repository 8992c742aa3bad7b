"""Tool fingerprints: User-Agent tokens and SIPVicious' From-tag encoding."""

from __future__ import annotations

import pytest

from sipwatch.detect.fingerprints import (
    decode_sipvicious_tag,
    fingerprint,
    from_user_agent,
    svmap_target,
)


def sv_tag(data: str, rnd: int = 3912345678) -> str:
    """A From tag the way SIPVicious builds it: hex of data, 0x01, random decimal."""
    return (data.encode() + b"\x01" + str(rnd).encode()).hex()


@pytest.mark.parametrize(
    "ua, tool",
    [
        ("friendly-scanner", "sipvicious"),
        ("SIPVicious 0.3.8", "sipvicious"),
        ("sipcli/v1.8", "sipcli"),
        ("sundayddr", "sundayddr"),
        ("pplsip", "sippts"),
        ("sipsak 0.9.6", "sipsak"),
        ("VaxSIPUserAgent/3.1", "vaxsip"),
        ("Nmap NSE", "nmap"),
        ("sip-scan", "sip-scan"),
        ("iWar", "iwar"),
        ("smap 0.6.0", "smap"),
        ("SIVuS", "sivus"),
        # legitimate software and look-alikes are not tools
        ("Linphone/5.0 (belle-sip/5.0)", ""),
        ("Asterisk PBX 18.0", ""),
        ("Zoiper rv2.10", ""),
        ("bismapper", ""),  # "smap" only as a whole token
        ("", ""),
    ],
)
def test_user_agent(ua: str, tool: str) -> None:
    assert from_user_agent(ua) == tool


def test_svwar_extension_survives_a_renamed_user_agent() -> None:
    fp = fingerprint(sv_tag("2000"), "Linphone/5.0", '"2000"', to_user="2000")
    assert fp == ("sipvicious", "2000")


def test_svcrack_user_password() -> None:
    assert fingerprint(sv_tag("101:secret"), "", "", to_user="101") == ("sipvicious", "101:secret")


def test_svmap_target_address() -> None:
    # 127.0.0.1 port 5060, as svmap encodes its target
    tag = sv_tag("7f00000113c4")
    assert fingerprint(tag, "friendly-scanner", '"sipvicious"', to_user="100") == (
        "sipvicious",
        "127.0.0.1:5060",
    )
    assert svmap_target("c0000201ffff") == "192.0.2.1:65535"
    assert svmap_target("101") is None


def test_twelve_digit_extension_is_not_read_as_address() -> None:
    # svwar with a dictionary of phone numbers: the tag data equals the To user
    assert fingerprint(sv_tag("441234567890"), to_user="441234567890") == (
        "sipvicious",
        "441234567890",
    )


def test_svcrack_fixed_first_tag_and_display_name() -> None:
    assert fingerprint("3206210844") == ("sipvicious", "")
    assert fingerprint("a1b2c3", "", '"sipvicious"') == ("sipvicious", "")


@pytest.mark.parametrize(
    "tag",
    [
        "",
        "as3dfe9",  # not hex
        "1234567",  # odd length
        "a5b2c3d4e5f6",  # random hex, no 0x01
        (b"\x01123").hex(),  # empty data
        (b"100\x01abc").hex(),  # random part not decimal
        (b"100\x0112345678901").hex(),  # random part too long
        (b"\xff\xfe\x01123").hex(),  # data not UTF-8
        (b"a\x01b\x01123").hex(),  # two separators
        "ab" * 300,  # too long
    ],
)
def test_other_tags_are_not_sipvicious(tag: str) -> None:
    assert decode_sipvicious_tag(tag) is None


def test_unknown_request_has_no_fingerprint() -> None:
    assert fingerprint("as9fj3k2", "Yealink SIP-T46S", '"Alice"', to_user="bob") is None
