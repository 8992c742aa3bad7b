"""Flat fields (from_user, to_tag, top_branch, ...) equal the structured parser's fields.

Store rows and labels read the flat fields; they are computed by the C fast path when it is
built. With or without it, they must say what the structured fields (From/To name-addrs, Via,
digest credentials, request-URI) say.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sipwatch.sip.message import SipMessage, parse

ROOT = Path(__file__).resolve().parents[2]
RFC4475 = ROOT / "tests" / "data" / "rfc4475"


def structured(m: SipMessage) -> dict:
    fr, to, cred, uri = m.from_, m.to, m.credentials, m.ruri_uri
    vias = m.vias
    return {
        "from_display": fr.display if fr else "",
        "from_user": (fr.uri.user if fr and fr.uri else "") or "",
        "from_tag": fr.tag if fr else "",
        "to_user": (to.uri.user if to and to.uri else "") or "",
        "to_tag": to.tag if to else "",
        "ruri_user": (uri.user if uri else "") or "",
        "top_branch": (vias[0].branch if vias else "") or "",
        "auth_user_realm": ((cred.username or "", cred.realm or "") if cred else ("", "")),
    }


def flat(m: SipMessage) -> dict:
    return {k: getattr(m, k) for k in structured(m)}


def same(data: bytes) -> None:
    # flat first (the C path), then structured on a fresh parse (no shared cache)
    assert flat(parse(data)) == structured(parse(data)), data[:300]


def test_rfc4475_corpus() -> None:
    files = sorted(RFC4475.glob("*.sip"))
    assert files
    for path in files:
        same(path.read_bytes())


USERS = st.sampled_from(["100", "alice", "+4930123", "a%20b", "", "j.doe", "0900123"])
HOSTS = st.sampled_from(
    ["192.0.2.1", "pbx.example.com", "[2001:db8::1]", "h:5060", "[::1]:5062", "[::1", "[x]"]
)
DISPLAYS = st.sampled_from(["", '"100"', '"sipvicious"', "Bob", '"a \\"q\\" b"', '"\xc3\xa9"'])
PARAMS = st.sampled_from(["", ";tag=abc", ";tag=3431", ";tag", ";x=1;tag=z", ";TAG=Q", ";lr"])


@st.composite
def name_addrs(draw) -> str:
    user = draw(USERS)
    uri = f"{draw(st.sampled_from(['sip', 'sips', 'tel', 'SIP']))}:"
    uri += f"{user}@{draw(HOSTS)}" if user else draw(HOSTS)
    uri += draw(st.sampled_from(["", ";transport=udp", ";user=phone"]))
    display = draw(DISPLAYS)
    if draw(st.booleans()) or display:
        sp = draw(st.sampled_from(["", " "]))
        return f"{display}{sp}<{uri}>{draw(PARAMS)}"
    return uri + draw(PARAMS)


VIAS = st.sampled_from([
    "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1;rport",
    "SIP/2.0/TCP h;rport=5;branch=z9hG4bKx,SIP/2.0/UDP other;branch=2",
    "SIP/2.0/UDP [2001:db8::1]:5060;received=1.2.3.4;branch=Z9HG4BK",
    "SIP/2.0/UDP [2001:db8::1]:5060;branch=v6;received=2001:db8::1, SIP/2.0/TCP h;branch=2",
    ", SIP/2.0/UDP h;branch=after-empty,",
    "garbage, SIP/2.0/UDP h;branch=after-garbage",
    "SIP/2.0/UDP [2001:db8::1;branch=unclosed",
    "SIP/2.0/UDP h ; branch = spaced",
    "SIP/2.0/UDP h;BRANCH=upper",
    "SIP/2.0/UDP h",
    "garbage",
])  # fmt: skip
AUTHS = st.sampled_from([
    'Digest username="101", realm="asterisk", nonce="n", uri="sip:h", response="00"',
    'Digest realm="r",username="u"',
    "Digest username=unquoted, realm=r2",
    'Digest username="a\\"b", realm="x"',
    "Basic dXNlcjpwYXNz",
    "",
])  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["INVITE sip:{u}@192.0.2.1 SIP/2.0", "REGISTER sip:192.0.2.1 SIP/2.0",
                     "SIP/2.0 401 Unauthorized", "OPTIONS sip:{u}@h;transport=udp SIP/2.0",
                     "INVITE sip:{u}@[2001:db8::1]:5060;user=phone SIP/2.0",
                     "REGISTER sip:[2001:db8::1] SIP/2.0"]),
    USERS, name_addrs(), name_addrs(), VIAS, AUTHS,
    st.sampled_from(["Authorization", "Proxy-Authorization", "X-None"]),
)  # fmt: skip
def test_generated_messages(start, user, frm, to, via, auth, auth_name) -> None:
    lines = [
        start.format(u=user), f"Via: {via}", f"From: {frm}", f"To: {to}",
        "Call-ID: c1", "CSeq: 1 INVITE", f"{auth_name}: {auth}", "Content-Length: 0", "", "",
    ]  # fmt: skip
    same("\r\n".join(lines).encode("utf-8"))
