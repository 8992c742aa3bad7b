"""Differential tests: each parser fast path gives exactly what the general parser gives.

The fast paths (one regex for the usual shape) exist for speed only; a value they accept must
come out field for field as the general parser reads it, and anything unusual must fall back.
The generators mix the usual shapes with quotes, escapes, IPv6, missing angle brackets,
parameters without values, odd case and odd spacing, so both sides of every fast-path
boundary are exercised.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sipwatch.sip.headers import (
    _header_params_general,
    _parse_name_addr_general,
    _parse_via_general,
    header_params,
    parse_name_addr,
    parse_via,
)
from sipwatch.sip.message import parse
from sipwatch.sip.uri import Uri, _parse_uri_general, parse_uri

# --- generators ---------------------------------------------------------------------------
_SPACE = st.sampled_from(["", "", "", " ", "  ", "\t", " \t"])
_WORD = st.text(alphabet="abcXYZ019-_.!~*'+", min_size=1, max_size=6)
_ODD = st.text(alphabet='abc19 \t"\\%@:;?<>[],=()é\r', max_size=6)
_PIECE = st.one_of(_WORD, _WORD, _ODD, st.just(""))
_HOST = st.one_of(
    st.sampled_from(
        ["192.0.2.10", "example.com", "h", "[2001:db8::1]", "2001:db8::1", "[::1", "[::1]]", "[]"]
    ),
    _PIECE,
)
_PORT = st.one_of(
    st.just(""), st.just(""), st.sampled_from([":5060", ":0", ":65535", ":65536", ":99999"]),
    st.sampled_from([":", ":123456", ":5o60", ": 5060", ":٥٠٦٠"]),
)  # fmt: skip


@st.composite
def param_lists(draw: st.DrawFn) -> str:
    """';a=1;b;TAG=x' style parameter text (with its leading ';'), sometimes spaced or quoted."""
    out = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.one_of(st.sampled_from(["tag", "TAG", "branch", "rport", "lr"]), _PIECE))
        value = draw(
            st.one_of(
                st.none(), _WORD, _PIECE, st.just('"q;x"'), st.just('"<urn:a;b>"'), st.just("")
            )
        )
        sep = draw(_SPACE)
        out.append(f";{sep}{name}" if value is None else f";{name}{sep}={sep}{value}")
    return "".join(out)


@st.composite
def uris(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["sip", "sip", "sip", "SIP", "sips", "tel", "mailto", ""]))
    user = draw(st.one_of(st.just(""), _WORD, _WORD, _PIECE, st.just("a%40b"), st.just("a:pw")))
    at = "@" if user or draw(st.booleans()) else ""
    host = draw(_HOST)
    extra = draw(st.sampled_from(["", "", "", "?subject=x", "@second"]))
    return f"{scheme}:{user}{at}{host}{draw(_PORT)}{draw(param_lists())}{extra}"


# URIs the fast path accepts, so name-addr and Via generation spends its examples on the rest
_USUAL_URI = st.builds(
    lambda user, host, port: f"sip:{user}{host}{port}",
    st.sampled_from(["", "100@", "alice@", "@"]),
    st.sampled_from(["192.0.2.10", "example.com", "[2001:db8::10]", "[::ffff:1.2.3.4]"]),
    st.sampled_from(["", ":5060", ":70000"]),
)


@st.composite
def name_addrs(draw: st.DrawFn) -> str:
    uri = draw(st.one_of(_USUAL_URI, uris()))
    display = draw(
        st.one_of(
            st.just(""),
            st.builds(lambda d: f'"{d}"', st.one_of(_WORD, _PIECE, st.just("a b"))),
            st.sampled_from(['"esc\\"aped"', '"a\\\\b"', '"end\\"', '"\\', '""']),
            st.just('"utf8 \xc3\xa9"'),
            st.just('"never closed'),
            _WORD,
            st.just("Plain Name"),
        )
    )
    params = draw(param_lists())
    if draw(st.integers(0, 4)) == 0:
        return f"{draw(_SPACE)}{display}{draw(_SPACE)}{uri}{params}{draw(_SPACE)}"
    return (
        f"{draw(_SPACE)}{display}{draw(_SPACE)}<{draw(_SPACE)}{uri}{draw(_SPACE)}>"
        f"{draw(_SPACE)}{params}{draw(_SPACE)}"
    )


# around the branch/rport shortcut of the Via fast path
_USUAL_VIA_PARAMS = st.sampled_from(
    [
        ";branch=z9hG4bK1;rport", ";branch=z9hG4bK1", ";branch=a;rport;x", ";branch=;rport",
        ";branch=a;rport=", ";branch=a;rport=5;received=h", ";Branch=a;rport", ";branch=a;RPORT",
        ";branch=a=b;rport", ";branch=a;rport;", ";branch=a;;rport", ";branch",
    ]
)  # fmt: skip


@st.composite
def vias(draw: st.DrawFn) -> str:
    proto = draw(st.sampled_from(["SIP/2.0/", "SIP/2.0/", "SIP / 2.0 / ", "sip/2.0/", "SIP/2.1/"]))
    transport = draw(st.sampled_from(["UDP", "tcp", "TLS", "WSS", "U;D", "", "U\tDP"]))
    host = draw(
        st.one_of(
            st.sampled_from(["198.51.100.7", "pbx.example.com", "[2001:db8::7]", "[fe80::1%eth0]"]),
            _HOST,
        )
    )
    comment = draw(st.sampled_from(["", "", " (comment)"]))
    return (
        f"{proto}{transport}{draw(_SPACE) or ' '}{host}{draw(_PORT)}{comment}"
        f"{draw(_SPACE)}{draw(st.one_of(_USUAL_VIA_PARAMS, param_lists()))}{draw(_SPACE)}"
    )


# --- comparisons --------------------------------------------------------------------------
def uri_fields(uri: Uri | None) -> tuple | None:
    if uri is None:
        return None
    return tuple(
        list(v.items()) if isinstance(v, dict) else v
        for v in (getattr(uri, k) for k in Uri.__slots__)
    )


def name_addr_fields(na) -> tuple | None:  # type: ignore[no-untyped-def]
    if na is None:
        return None
    return (
        na.display, na.uri_text, list(na.params.items()), na.angle, na.wildcard, na.tag, na.user,
        uri_fields(na.uri),
    )  # fmt: skip


def via_fields(via) -> tuple | None:  # type: ignore[no-untyped-def]
    if via is None:
        return None
    return (via.protocol, via.transport, via.host, via.port, list(via.params.items()))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(uris(), st.text(max_size=40)))
def test_uri_fast_path_matches_general_parser(text):
    assert uri_fields(parse_uri(text)) == uri_fields(_parse_uri_general(text))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(name_addrs(), st.text(max_size=40)))
def test_name_addr_fast_path_matches_general_parser(value):
    fast = parse_name_addr(value)
    general = _parse_name_addr_general(value.strip(" \t"))
    assert name_addr_fields(fast) == name_addr_fields(general)
    if fast is not None:  # .user before .uri (it has its own fast path) gives the same user
        again = parse_name_addr(value)
        assert again is not None
        assert again.user == general.user


@settings(max_examples=1500, deadline=None)
@given(st.one_of(vias(), st.text(max_size=40)))
def test_via_fast_path_matches_general_parser(value):
    assert via_fields(parse_via(value)) == via_fields(_parse_via_general(value))


@settings(max_examples=1000, deadline=None)
@given(st.one_of(param_lists().map(lambda p: p[1:]), st.text(max_size=30)))
def test_header_params_fast_path_matches_general(value):
    assert list(header_params(value).items()) == list(_header_params_general(value).items())


def test_usual_shapes_give_the_expected_fields():
    na = parse_name_addr('"2967" <sip:2967@192.0.2.10:5070;transport=udp>;tag=3239')
    assert (na.display, na.user, na.tag, na.uri.port, na.uri.params) == (
        "2967", "2967", "3239", 5070, {"transport": "udp"},
    )  # fmt: skip
    assert str(na.uri) == "sip:2967@192.0.2.10:5070;transport=udp"
    plain = parse_name_addr("Bob Smith <sip:bob@h>;TAG=x;expires=30")
    assert (plain.display, plain.params) == ("Bob Smith", {"tag": "x", "expires": "30"})
    via = parse_via("SIP/2.0/udp 198.51.100.7:5060;branch=z9hG4bK-1;rport;received=192.0.2.1")
    assert (via.transport, via.host, via.port, via.branch, via.rport, via.received) == (
        "UDP", "198.51.100.7", 5060, "z9hG4bK-1", 0, "192.0.2.1",
    )  # fmt: skip
    v6 = parse_name_addr('"108" <sip:108@[2001:db8:5060::10]:5062>;tag=ab')
    assert (v6.user, v6.uri.host, v6.uri.port, str(v6.uri)) == (
        "108", "2001:db8:5060::10", 5062, "sip:108@[2001:db8:5060::10]:5062",
    )  # fmt: skip
    via6 = parse_via("SIP/2.0/TCP [2001:db8::7]:45078;branch=z9hG4bKx;rport")
    assert (via6.host, via6.port, via6.branch, str(via6)) == (
        "2001:db8::7", 45078, "z9hG4bKx", "SIP/2.0/TCP [2001:db8::7]:45078;branch=z9hG4bKx;rport",
    )  # fmt: skip
    ruri = parse_uri("sip:100@192.0.2.10")
    assert (ruri.user, ruri.host, ruri.port) == ("100", "192.0.2.10", None)
    assert parse_uri("sip:192.0.2.10:99999").port is None
    first = parse_uri("sip:100@192.0.2.10;lr")
    first.params["x"] = "changed"  # a caller's change must not leak into the next parse
    assert parse_uri("sip:100@192.0.2.10;lr").params == {"lr": None}


def test_message_fields_through_fast_paths():
    msg = parse(
        b"REGISTER sip:192.0.2.10 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 75.85.78.104:23770;branch=z9hG4bKfac0;rport\r\n"
        b'From: "2967" <sip:2967@192.0.2.10>;tag=3239\r\n'
        b'To: "2967" <sip:2967@192.0.2.10>\r\n'
        b"Call-ID: 760163565432\r\nCSeq: 1 REGISTER\r\n"
        b"Contact: <sip:2967@75.85.78.104:23770>\r\nContent-Length: 0\r\n\r\n"
    )
    assert msg.from_.tag == "3239" and msg.from_.user == "2967" and msg.to.tag == ""
    assert msg.to.uri.host == "192.0.2.10" and msg.ruri_uri.user == ""
    assert msg.vias[0].branch == "z9hG4bKfac0" and msg.vias[0].port == 23770
    assert msg.contacts[0].uri.port == 23770
