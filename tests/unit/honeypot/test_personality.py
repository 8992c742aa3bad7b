"""Personalities: the built-ins load, user files are checked with one-line messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipwatch.honeypot.personality import (
    BUILTIN_PERSONALITIES,
    Personality,
    PersonalityError,
    load_personality,
)

MINIMAL = """
server = "Acme PBX 2.1"
header = "Server"
realm = "acme"
allow = ["INVITE", "ACK", "REGISTER", "OPTIONS", "BYE", "CANCEL"]
invite_challenge = 407
invite_final = [183, 503]
register_expires = 1800
to_tag = "as-hex"
"""


@pytest.mark.parametrize("name", BUILTIN_PERSONALITIES)
def test_builtins_load(name):
    p = load_personality(name)
    assert isinstance(p, Personality) and p.name == name
    assert p.header in ("Server", "User-Agent") and p.server
    assert {"INVITE", "REGISTER", "OPTIONS", "ACK"} <= set(p.allow)
    assert p.invite_challenge in (401, 407) and p.invite_final[-1] >= 300


def test_builtins_differ_where_the_products_do():
    ast, fs, kam = (load_personality(n) for n in ("asterisk", "freeswitch", "kamailio"))
    assert (ast.header, fs.header, kam.header) == ("Server", "User-Agent", "Server")
    assert (ast.invite_challenge, kam.invite_challenge) == (401, 407)
    assert ast.realm == "asterisk" and fs.realm == "{dst}"
    assert kam.reason(100) == "trying -- your call is important to us"
    assert ast.reason(100) is None


def test_user_file_minimal_gets_defaults(tmp_path: Path):
    path = tmp_path / "acme.toml"
    path.write_text(MINIMAL)
    p = load_personality(path)
    assert p.name == "acme" and p.server == "Acme PBX 2.1"
    assert p.accept == ("application/sdp",) and p.supported == () and p.events == ()
    assert p.invite_final == (183, 503) and p.to_tag == "as-hex"
    assert load_personality(str(path)) == p  # a str path works too


def test_user_file_based_on_a_builtin(tmp_path: Path):
    path = tmp_path / "mine.toml"
    path.write_text('base = "asterisk"\nserver = "Asterisk PBX 13.38.3"\n')
    p = load_personality(path)
    ast = load_personality("asterisk")
    assert p.name == "mine" and p.server == "Asterisk PBX 13.38.3"
    assert p.allow == ast.allow and p.realm == ast.realm


def test_with_realm():
    p = load_personality("kamailio").with_realm("sip.example.com")
    assert p.realm == "sip.example.com" and p.name == "kamailio"
    with pytest.raises(PersonalityError, match="quotes"):
        p.with_realm('a"b')


@pytest.mark.parametrize(
    "change,message",
    [
        ('server = "Acme, Inc PBX"', "server: must not contain a comma"),
        ('server = "two\\nlines"', "server: must not contain control characters"),
        ('header = "X-Product"', "header: must be 'Server' or 'User-Agent'"),
        ("invite_challenge = 403", "invite_challenge: must be 401 or 407"),
        ("invite_final = [486, 183]", "invite_final: only the last status may be final"),
        ("invite_final = [183, 200]", "invite_final: must end with a failure status"),
        ("invite_final = []", "invite_final: must be a non-empty list"),
        ('invite_final = ["486"]', "invite_final: must be a whole number"),
        ("register_expires = 5", "register_expires: must be between 60 and 604800"),
        ('to_tag = "random"', "to_tag: must be one of uuid, as-hex, alnum, md5-crc, digits"),
        ('allow = ["invite"]', "allow: 'invite' is not an upper-case SIP method name"),
        ('allow = ["OPTIONS"]', "allow: must include REGISTER and INVITE"),
        ('realm = "a\\"b"', "realm: must not contain quotes"),
        ("opaque = 1", "opaque: must be true or false"),
        ('colour = "blue"', "colour: unknown key"),
        ("min_expires = 3600", "min_expires: 3600 is more than register_expires (1800)"),
        ('[options_headers]\nVia = "x"', "options_headers: 'Via' is written by the responder"),
        ('[reasons]\n486 = "Busy\\r\\nX: y"', "reasons: 486: must not contain control"),
        ('[reasons]\n86 = "x"', "reasons: '86' is not a status code"),
    ],
)
def test_user_file_errors_are_one_line_naming_file_and_key(tmp_path: Path, change, message):
    key = change.split("=")[0].strip()
    lines = [line for line in MINIMAL.splitlines() if not line.startswith(key + " ")]
    path = tmp_path / "bad.toml"
    path.write_text("\n".join(lines) + "\n" + change + "\n")
    with pytest.raises(PersonalityError) as err:
        load_personality(path)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: ") and message in text, text


def test_missing_key_bad_toml_unknown_name_bad_base(tmp_path: Path):
    path = tmp_path / "p.toml"
    path.write_text(MINIMAL.replace('realm = "acme"\n', ""))
    with pytest.raises(PersonalityError, match=r"p\.toml: realm: missing"):
        load_personality(path)
    path.write_text("server = [")
    with pytest.raises(PersonalityError, match="not valid TOML"):
        load_personality(path)
    path.write_bytes(b"server = \xff")
    with pytest.raises(PersonalityError, match="not UTF-8"):
        load_personality(path)
    path.write_text('base = "yate"\n')
    with pytest.raises(PersonalityError, match="base: must be one of asterisk"):
        load_personality(path)
    with pytest.raises(PersonalityError, match="not a built-in .* and not a file"):
        load_personality("sipxecs")
    assert issubclass(PersonalityError, ValueError)
