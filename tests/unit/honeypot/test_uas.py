"""Responder: what an attacker's tools see when they talk to the honeypot.

Requests are built with sipwatch's builders and with SIPVicious' own request and digest
functions (the code svwar and svcrack run), fed as Records, and the replies parsed back.
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sipvicious.libs.svhelper import (
    createTag,
    fingerPrintPacket,
    getAlgorithm,
    getAuthHeader,
    getNonce,
    getQop,
    getRealm,
    getTag,
    makeRequest,
)

from sipwatch.honeypot.accounts import Accounts
from sipwatch.honeypot.personality import load_personality
from sipwatch.honeypot.uas import Responder, UasConfig
from sipwatch.record import Record
from sipwatch.sip.build import build_request
from sipwatch.sip.digest import build_credentials, compute_response
from sipwatch.sip.message import SipMessage, parse

ATTACKER = "198.51.100.7"
APORT = 5062
HONEYPOT = "127.0.0.1"
SECRET = b"test secret, 32 bytes long......"
T0 = 1_700_000_000.0


def responder(personality: str = "asterisk", **config) -> Responder:
    accounts = Accounts.from_config(["100-199", 1000], {"101": "1234", "150": "Xq9!long-pw"})
    return Responder(
        load_personality(personality),
        accounts,
        secret=SECRET,
        config=UasConfig(**config),
        rng=random.Random(7),
    )


def send(
    r: Responder,
    msg: SipMessage | bytes,
    *,
    ts: float = T0,
    src: str = ATTACKER,
    sport: int = APORT,
    transport: str = "udp",
    clean: bool = True,
) -> list[SipMessage]:
    raw = msg if isinstance(msg, bytes) else msg.to_bytes()
    dst = "::1" if ":" in src else HONEYPOT
    out = r.handle(Record.from_bytes(raw, ts, transport, src, sport, dst, 5060))
    replies = [parse(x) for x in out]
    for reply in replies:  # everything we send is a clean response
        assert reply.error == "" and not reply.is_request, reply.raw
        if clean:  # (a 400 echoes a request that lacks a header; it lacks it too)
            assert reply.anomalies == [], (reply.anomalies, reply.raw)
    return replies


def one(r: Responder, msg: SipMessage | bytes, **kw) -> SipMessage:
    replies = send(r, msg, **kw)
    assert len(replies) == 1, [x.status for x in replies]
    return replies[0]


_branch = iter(range(1, 10**9))


def req(
    method: str,
    user: str = "",
    *,
    from_user: str = "101",
    to_user: str | None = None,
    via: str | None = None,
    tag: str = "a1b2c3",
    call_id: str = "call-1@198.51.100.7",
    cseq: int = 1,
    headers: list[tuple[str, str]] | None = None,
) -> SipMessage:
    ruri = f"sip:{user}@{HONEYPOT}" if user else f"sip:{HONEYPOT}"
    to_user = user if to_user is None else to_user
    to = f"<sip:{to_user}@{HONEYPOT}>" if to_user else f"<sip:{HONEYPOT}>"
    return build_request(
        method, ruri,
        via=via or f"SIP/2.0/UDP {ATTACKER}:{APORT};branch=z9hG4bK-{next(_branch)};rport",
        from_=f"<sip:{from_user}@{HONEYPOT}>;tag={tag}", to=to, call_id=call_id, cseq=cseq,
        headers=headers or [],
    )  # fmt: skip


def register(user: str, **kw) -> SipMessage:
    headers = kw.pop("headers", None) or [("Contact", f"<sip:{user}@{ATTACKER}:{APORT}>")]
    return req("REGISTER", "", to_user=user, from_user=user, headers=headers, **kw)


def answer(
    challenge: SipMessage,
    request: SipMessage,
    password: str,
    user: str = "101",
    *,
    qop: str = "auth",
    header: str | None = None,
) -> tuple[str, str]:
    """The Authorization (or Proxy-Authorization) a client sends for this challenge."""
    ch = challenge.challenge
    value = build_credentials(
        user, ch.realm, password, request.method, request.ruri, ch.nonce,
        algorithm=ch.algorithm, qop=qop, cnonce="0a4f113b" if qop else "", opaque=ch.opaque,
    )  # fmt: skip
    if header is None:
        header = "Authorization" if challenge.status == 401 else "Proxy-Authorization"
    return (header, value)


def with_auth(request: SipMessage, auth: tuple[str, str], cseq: int = 2) -> SipMessage:
    raw = request.to_bytes().decode("latin-1")
    raw = raw.replace(f"CSeq: {request.cseq_num} ", f"CSeq: {cseq} ", 1)
    raw = raw.replace("Content-Length:", f"{auth[0]}: {auth[1]}\r\nContent-Length:", 1)
    return parse(raw.encode("latin-1"))


# --- echoed headers ------------------------------------------------------------------------


def test_options_echoes_what_a_client_matches_and_adds_via_received_rport():
    r = responder()
    request = req(
        "OPTIONS", "100", via="SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-o1;rport",
        tag="3130303001313233",
    )  # fmt: skip
    reply = one(r, request)
    assert reply.status == 200 and reply.reason == "OK"
    assert reply.get("via") == (
        f"SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-o1;rport={APORT};received={ATTACKER}"
    )
    assert reply.get("from") == request.get("from")  # byte for byte
    assert reply.from_.tag == "3130303001313233"
    assert reply.to.tag and reply.get("to").startswith(request.get("to"))
    assert reply.call_id == request.call_id
    assert (reply.cseq_num, reply.cseq_method) == (1, "OPTIONS")
    assert reply.get("server") == "Asterisk PBX 18.16.0"
    assert "INVITE" in reply.get("allow") and "REGISTER" in reply.get("allow")
    assert reply.get("supported") == "100rel, timer, replaces, norefersub"
    assert reply.get("accept").startswith("application/sdp")
    assert reply.get("accept-language") == "en"
    assert reply.get("contact") == f"<sip:{HONEYPOT}:5060>"


def test_via_rules_received_only_when_needed_all_vias_kept():
    r = responder()
    # sent-by equals the source and no rport: the Via comes back untouched
    plain = f"SIP/2.0/UDP {ATTACKER}:{APORT};branch=z9hG4bK-p"
    assert one(r, req("OPTIONS", via=plain)).get("via") == plain
    # a host name in sent-by: received is added; an rport with a value is left alone
    named = "SIP/2.0/UDP pc33.example.com;branch=z9hG4bK-n;rport=9"
    assert one(r, req("OPTIONS", via=named)).get("via") == f"{named};received={ATTACKER}"
    # several Vias, in one header line and in two: all echoed, in order, only the top changed
    raw = (
        req("OPTIONS")
        .to_bytes()
        .replace(
            f"Via: SIP/2.0/UDP {ATTACKER}:{APORT}".encode(),
            b"Via: SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bK-top;received=6.6.6.6, "
            b"SIP/2.0/UDP 10.2.2.2;branch=z9hG4bK-mid\r\nVia: SIP/2.0/TCP 10.3.3.3;branch=z9hG4bK-low"
            b"\r\nX-Old: ",
        )
    )
    reply = one(r, raw)
    assert reply.headers["via"] == [
        f"SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bK-top;received={ATTACKER}, "
        "SIP/2.0/UDP 10.2.2.2;branch=z9hG4bK-mid",
        "SIP/2.0/TCP 10.3.3.3;branch=z9hG4bK-low",
    ]


def test_ipv6_source():
    r = responder()
    request = req("OPTIONS", via="SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bK-6;rport")
    reply = one(r, request, src="2001:db8::7", sport=5071)
    assert reply.vias[0].params == {
        "branch": "z9hG4bK-6", "rport": "5071", "received": "2001:db8::7",
    }  # fmt: skip
    same = req("OPTIONS", via="SIP/2.0/UDP [2001:DB8:0::7]:5071;branch=z9hG4bK-7")
    assert one(r, same, src="2001:db8::7", sport=5071).vias[0].received == ""
    assert one(r, req("OPTIONS"), src="::1").get("contact") == "<sip:[::1]:5060>"


_VIA_HOSTS = ["198.51.100.7", "10.1.1.1", "[2001:db8::7]", "[2001:DB8:0::7]", "pbx.example", "::1"]


@given(
    transport=st.sampled_from(["UDP", "tcp", "TLS"]),
    host=st.sampled_from(_VIA_HOSTS),
    port=st.sampled_from(["", ":5060", ":5071", ":99999"]),
    branch=st.text(st.characters(min_codepoint=33, max_codepoint=255), max_size=12),
    tail=st.sampled_from(["", ";rport", ";rport=7", ";received=1.2.3.4", ";rport;x=1"]),
    below=st.sampled_from([[], ["SIP/2.0/UDP 10.9.9.9;branch=z9hG4bK-b"]]),
    src=st.sampled_from(["198.51.100.7", "2001:db8::7", "10.1.1.1"]),
)
def test_usual_top_via_is_stamped_like_the_general_path(
    transport, host, port, branch, tail, below, src
):
    """The responder's shortcut for the usual top Via gives _stamped_vias' result."""
    from sipwatch.honeypot import uas

    via = f"SIP/2.0/{transport} {host}{port};branch={branch}{tail}"
    msg = parse(
        f"OPTIONS sip:h SIP/2.0\r\nVia: {via}\r\n".encode("latin-1")
        + b"".join(f"Via: {v}\r\n".encode() for v in below)
        + b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
    lines = msg.headers.get("via")
    if not lines:
        return
    record = Record.from_bytes(msg.raw, T0, "udp", src, 5071, HONEYPOT, 5060)
    general = uas._stamped_vias(lines, src, 5071)
    expected = None if general is None else "".join(f"Via: {v}\r\n" for v in general)
    assert responder()._vias(msg, record) == expected


def test_to_tag_stable_per_dialog_absent_on_100_kept_when_present():
    r = responder()
    first = one(r, register("101"))
    again = one(r, register("101"))  # a retransmission: same Call-ID and From tag
    assert first.to.tag == again.to.tag
    other = one(r, register("101", call_id="call-2@x"))
    assert other.to.tag != first.to.tag
    tagged = (
        req("OPTIONS", "100")
        .to_bytes()
        .replace(
            f"To: <sip:100@{HONEYPOT}>".encode(), f"To: <sip:100@{HONEYPOT}>;tag=theirs".encode()
        )
    )
    assert one(r, tagged).to.tag == "theirs"


# --- SIPVicious ------------------------------------------------------------------------------


def sv_request(method: str, extension: str, *, compact: bool = False, auth=None, cseq=1,
               callid: str = "4223423") -> bytes:  # fmt: skip
    """A request exactly as svwar / svcrack make it."""
    to = f'"{extension}"<sip:{extension}@{HONEYPOT}>'
    data = makeRequest(
        method, to, to, HONEYPOT, 5060, callid, ATTACKER, cseq=cseq, auth=auth,
        localtag=createTag(extension), compact=compact, localport=APORT,
        extension=extension, contact=f"sip:{extension}@{ATTACKER}",
    )  # fmt: skip
    return data.encode()


def test_svmap_sees_the_product_and_gets_its_tag_back():
    for name, product in [
        ("asterisk", "Asterisk PBX 18.16.0"),
        ("freeswitch", "FreeSWITCH-mod_sofia/1.10.9-release~64bit"),
        ("kamailio", "kamailio (5.6.4 (x86_64/linux))"),
        ("grandstream", "Grandstream UCM6202V1.5A 1.0.20.38"),
    ]:
        out = responder(name).handle(
            Record.from_bytes(sv_request("OPTIONS", "100"), T0, "udp", ATTACKER, APORT,
                              HONEYPOT, 5060)
        )  # fmt: skip
        text = out[0].decode()
        assert fingerPrintPacket(text)["name"] == [product]
        assert getTag(text) == b"100"


@pytest.mark.parametrize("method", ["REGISTER", "OPTIONS", "INVITE"])
@pytest.mark.parametrize("compact", [False, True])
def test_svwar_tells_configured_extensions_from_others(method, compact):
    r = responder()
    codes = {}
    for ext in ("100", "101", "199", "1000", "200", "99", "0100", "2947619312"):
        raw = sv_request(method, ext, compact=compact)
        reply = one(r, raw)
        assert getTag(reply.raw.decode()) == ext.encode()  # svwar reads the extension back
        codes[ext] = reply.status
    found = {"OPTIONS": 200, "REGISTER": 401, "INVITE": 401}[method]
    assert codes == {
        "100": found, "101": found, "199": found, "1000": found,
        "200": 404, "99": 404, "0100": 404, "2947619312": 404,
    }  # fmt: skip


def test_svcrack_flow_finds_the_weak_password_only():
    r = responder()
    for password, want in [("0000", 403), ("letmein", 403), ("1234", 200)]:
        first = sv_request("REGISTER", "101", callid="777")
        reply = one(r, first)
        assert reply.status == 401
        text = reply.raw.decode()
        auth_hdr = getAuthHeader(text)
        auth = {
            "username": "101", "realm": getRealm(text), "password": password,
            "nonce": getNonce(auth_hdr), "opaque": None, "algorithm": getAlgorithm(auth_hdr),
            "qop": getQop(auth_hdr), "proxy": False, "noncecount": 1,
        }  # fmt: skip
        assert (auth["realm"], auth["algorithm"], auth["qop"]) == ("asterisk", "md5", "auth")
        raw = makeRequest(
            "REGISTER", '"101"<sip:101@127.0.0.1>', '"101"<sip:101@127.0.0.1>', HONEYPOT, 5060,
            "777", ATTACKER, cseq=2, auth=auth, localtag=createTag(f"101:{password}"),
            localport=APORT, contact="sip:101@198.51.100.7",
        ).encode()  # fmt: skip
        final = one(r, raw)
        assert final.status == want
        if want == 200:  # svcrack reads user:password back from the From tag of the 200
            assert getTag(final.raw.decode()) == b"101:1234"
    assert (r.stats.auth_fail, r.stats.auth_ok, r.stats.challenges) == (2, 1, 3)


def test_old_svcrack_digest_qop_auth_without_cnonce_is_accepted():
    """svcrack 0.3.x says qop=auth but sends no cnonce/nc and the RFC 2069 response."""
    r = responder()
    first = register("101", call_id="sv-1")
    ch = one(r, first).challenge
    assert ch.qop == "auth"
    resp = compute_response("101", ch.realm, "1234", "REGISTER", first.ruri, ch.nonce)
    value = (
        f'Digest username="101",realm="{ch.realm}",nonce="{ch.nonce}",uri="{first.ruri}",'
        f'algorithm=MD5,qop=auth,response="{resp}"'
    )
    assert one(r, with_auth(first, ("Authorization", value))).status == 200


# --- REGISTER --------------------------------------------------------------------------------


def test_register_challenge_then_password():
    r = responder()
    first = register("101")
    chal = one(r, first)
    assert chal.status == 401 and chal.to.tag
    ch = chal.challenge
    assert (ch.realm, ch.algorithm, ch.qop) == ("asterisk", "MD5", "auth")
    assert ch.opaque  # Asterisk sends one
    assert "stale" not in ch.params
    assert one(r, first).challenge.nonce != ch.nonce  # a fresh nonce per challenge
    ok = one(r, with_auth(first, answer(chal, first, "1234")))
    assert ok.status == 200
    assert ok.get("contact") == f"<sip:101@{ATTACKER}:{APORT}>;expires=3600"
    assert ok.get("expires") == "3600"
    assert ok.get("date") == "Tue, 14 Nov 2023 22:13:20 GMT"  # the record's time
    assert r.registered(ATTACKER) == "101"
    assert r.registered("203.0.113.1") is None
    assert r.stats.registrations == 1 and r.stats.auth_ok == 1


def test_register_refusals():
    r = responder()
    first = register("101")
    chal = one(r, first)
    assert one(r, with_auth(first, answer(chal, first, "12345"))).status == 403
    # an extension that exists but has no password: every guess is wrong
    first100 = register("100")
    chal100 = one(r, first100)
    assert one(r, with_auth(first100, answer(chal100, first100, "", user="100"))).status == 403
    # the right password of 101 used to register 102
    first102 = register("102")
    chal102 = one(r, first102)
    assert one(r, with_auth(first102, answer(chal102, first102, "1234"))).status == 403
    # credentials for an extension that does not exist: 404 like without credentials
    assert one(r, with_auth(register("555"), answer(chal, first, "1234"))).status == 404
    assert r.registered(ATTACKER) is None
    assert r.stats.auth_fail == 3


def test_nonce_bound_to_source_garbled_and_stale():
    r = responder(nonce_ttl=300)
    first = register("101")
    chal = one(r, first)
    good = with_auth(first, answer(chal, first, "1234"))
    # the same right answer from another address: not our nonce there, challenged again
    other = one(r, good, src="203.0.113.9")
    assert other.status == 401 and other.challenge.nonce != chal.challenge.nonce
    assert "stale" not in other.challenge.params
    # a garbled nonce
    nonce = chal.challenge.nonce
    forged = nonce[:-1] + ("1" if nonce[-1] == "0" else "0")
    bad = with_auth(first, ("Authorization", answer(chal, first, "1234")[1].replace(nonce, forged)))
    assert one(r, bad).status == 401
    assert r.stats.invalid_credentials == 2
    # after the nonce's lifetime: stale=TRUE for the right password, 403 for a wrong one
    late = one(r, good, ts=T0 + 301)
    assert late.status == 401 and late.challenge.params.get("stale") == "TRUE"
    wrong_late = with_auth(first, answer(chal, first, "9999"))
    assert one(r, wrong_late, ts=T0 + 301).status == 403
    assert one(r, good, ts=T0 + 299).status == 200  # still fresh
    assert r.stats.stale == 1


def test_register_expires_rules():
    r = responder()

    def reg(expires_header: str | None, contact: str, ts: float = T0) -> SipMessage:
        headers = [("Contact", contact)]
        if expires_header is not None:
            headers.append(("Expires", expires_header))
        first = register("101", headers=headers, call_id=f"e{ts}{contact}{expires_header}")
        chal = one(r, first, ts=ts)
        return one(r, with_auth(first, answer(chal, first, "1234")), ts=ts)

    contact = f"<sip:101@{ATTACKER}:{APORT}>"
    assert reg("7200", contact).get("expires") == "3600"  # capped to the personality's
    assert reg(None, contact + ";expires=120").get("contact") == f"{contact};expires=120"
    brief = reg("30", contact)
    assert brief.status == 423 and brief.get("min-expires") == "60"
    assert r.registered(ATTACKER) == "101"
    gone = reg("0", contact)
    assert gone.status == 200 and gone.get("expires") == "0" and gone.get("contact") is None
    assert r.registered(ATTACKER) is None
    assert r.stats.unregistrations == 1
    reg("120", contact, ts=T0 + 10)
    assert r.registered(ATTACKER) == "101"
    one(r, req("OPTIONS"), ts=T0 + 131)  # time moves on with the records
    assert r.registered(ATTACKER) is None  # expired


def test_registration_table_is_bounded():
    r = responder(max_registrations=2)
    for i in range(3):
        src = f"203.0.113.{i}"
        first = register("101", call_id=f"c{i}")
        chal = one(r, first, src=src)
        assert one(r, with_auth(first, answer(chal, first, "1234")), src=src).status == 200
    assert r.registered("203.0.113.0") is None
    assert r.registered("203.0.113.2") == "101"
    assert r.stats.evictions == 1 and r.registered_sources == 2


def test_sha256_offered_first_and_verified():
    r = responder(algorithms=("SHA-256", "MD5"))
    first = register("101")
    chal = one(r, first)
    offers = chal.headers["www-authenticate"]
    assert [o.split("algorithm=")[1].split(",")[0] for o in offers] == ["SHA-256", "MD5"]
    assert chal.challenge.algorithm == "SHA-256"
    assert one(r, with_auth(first, answer(chal, first, "1234"))).status == 200
    assert one(r, with_auth(first, answer(chal, first, "4321"))).status == 403
    # MD5 when only SHA-256 is offered: challenged again
    r2 = responder(algorithms=("SHA-256",))
    chal2 = one(r2, first)
    ch = chal2.challenge
    md5 = build_credentials("101", ch.realm, "1234", "REGISTER", first.ruri, ch.nonce)
    assert one(r2, with_auth(first, ("Authorization", md5))).status == 401


def test_other_realm_is_challenged_again():
    r = responder()
    first = register("101")
    ch = one(r, first).challenge
    value = build_credentials("101", "elsewhere", "1234", "REGISTER", first.ruri, ch.nonce)
    assert one(r, with_auth(first, ("Authorization", value))).status == 401


# --- INVITE and the rest -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,challenge,finals",
    [
        ("asterisk", 401, [100, 183, 486]),
        ("freeswitch", 407, [100, 183, 503]),
        ("kamailio", 407, [100, 183, 480]),
        ("grandstream", 401, [100, 180, 480]),
    ],
)
def test_invite_challenge_then_call_that_keeps_the_attacker_dialling(name, challenge, finals):
    r = responder(name)
    invite = req("INVITE", "00442079460000", call_id="tf-1")
    chal = one(r, invite)
    assert chal.status == challenge
    assert ("www-authenticate" if challenge == 401 else "proxy-authenticate") in chal.headers
    replies = send(r, with_auth(invite, answer(chal, invite, "1234")))
    assert [x.status for x in replies] == finals
    assert replies[0].to.tag == ""  # 100 Trying
    tags = {x.to.tag for x in replies[1:]}
    assert len(tags) == 1 and "" not in tags  # one dialog
    assert replies[1].get("contact") == f"<sip:{HONEYPOT}:5060>"
    assert all(x.cseq_num == 2 and x.cseq_method == "INVITE" for x in replies)
    assert r.stats.auth_ok == 1


def test_invite_refusals():
    r = responder()
    invite = req("INVITE", "0900123456", call_id="tf-2")
    chal = one(r, invite)
    assert one(r, with_auth(invite, answer(chal, invite, "0000"))).status == 403
    # another extension's credentials work for the call (any account with its password)
    via150 = with_auth(invite, answer(chal, invite, "Xq9!long-pw", user="150"))
    assert [x.status for x in send(r, via150)] == [100, 183, 486]
    # nobody we know calls nobody we know: 404 (svwar's baseline probe), no challenge
    assert one(r, req("INVITE", "0046812345", from_user="7777")).status == 404
    # calling an extension from outside: challenged
    assert one(r, req("INVITE", "120", from_user="7777")).status == 401
    # in-dialog INVITE for a dialog we never made
    reinvite = invite.to_bytes().replace(b"0900123456@127.0.0.1>", b"0900123456@127.0.0.1>;tag=x")
    assert one(r, reinvite).status == 481


def test_registered_source_is_still_challenged_for_calls():
    r = responder()
    first = register("101")
    chal = one(r, first)
    one(r, with_auth(first, answer(chal, first, "1234")))
    assert r.registered(ATTACKER) == "101"
    assert one(r, req("INVITE", "00442079460000", call_id="tf-3")).status == 401


def test_ack_dialog_methods_unknown_methods():
    r = responder()
    assert send(r, req("ACK", "100")) == []
    for method in ("BYE", "CANCEL", "UPDATE", "PRACK", "NOTIFY", "REFER"):
        reply = one(r, req(method, "100"))
        assert reply.status == 481 and reply.reason == "Call/Transaction Does Not Exist"
        assert reply.cseq_method == method
    assert one(responder("freeswitch"), req("INFO", "100")).status == 481
    unknown = one(r, req("FOO", "100"))
    assert unknown.status == 501 and "INVITE" in unknown.get("allow")
    assert r.stats.by_method["OTHER"] == 1 and r.stats.by_method["ACK"] == 1
    # a method this product does not list (Asterisk's pjsip lists no INFO): 405 with its Allow
    refused = one(r, req("INFO", "100"))
    assert refused.status == 405 and "INFO" not in refused.get("allow")
    fs = responder("freeswitch")
    refused = one(fs, req("PRACK", "100"))
    assert refused.status == 405 and "PRACK" not in refused.get("allow")


def test_subscribe_publish_message():
    r = responder()
    bad = one(r, req("SUBSCRIBE", "100", headers=[("Event", "x-unknown")]))
    assert bad.status == 489 and "presence" in bad.get("allow-events")
    sub = req("SUBSCRIBE", "100", headers=[("Event", "presence;id=1"), ("Expires", "7200")])
    chal = one(r, sub)
    assert chal.status == 401
    ok = one(r, with_auth(sub, answer(chal, sub, "1234")))
    assert ok.status == 200 and ok.get("expires") == "3600"
    assert one(r, req("PUBLISH", "100", headers=[("Event", "presence")])).status == 489
    msg = req("MESSAGE", "100")
    chal = one(r, msg)
    assert chal.status == 401
    assert one(r, with_auth(msg, answer(chal, msg, "1234"))).status == 202
    assert one(r, with_auth(msg, answer(chal, msg, "bad"))).status == 403
    k = responder("kamailio")
    assert one(k, req("MESSAGE", "100")).status == 407


def test_bad_requests_and_what_is_not_answered():
    r = responder()
    good = req("OPTIONS", "100").to_bytes()
    no_call_id = send(r, good.replace(b"Call-ID: call-1@198.51.100.7\r\n", b""), clean=False)
    assert no_call_id[0].status == 400 and no_call_id[0].from_.tag == "a1b2c3"
    assert (
        send(r, good.replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS"), clean=False)[0].status == 400
    )
    assert (
        send(r, good.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"), clean=False)[0].status == 400
    )
    assert r.stats.bad_requests == 3
    # no Via: nowhere to answer
    no_via = b"\r\n".join(x for x in good.split(b"\r\n") if not x.startswith(b"Via:"))
    assert send(r, no_via) == []
    assert send(r, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == []
    assert send(r, b"\r\n\r\n") == []
    assert r.stats.unanswerable == 3
    # responses are not answered
    assert send(r, one(r, good).raw) == []
    assert r.stats.responses_ignored == 1
    assert one(r, good.replace(b"Max-Forwards: 70", b"Max-Forwards: 0")).status == 200
    invite = req("INVITE", "100").to_bytes()
    assert one(r, invite.replace(b"Max-Forwards: 70", b"Max-Forwards: 0")).status == 483
    assert one(r, good.replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1)).status == 505
    mailto = good.replace(b"OPTIONS sip:100@127.0.0.1", b"OPTIONS mailto:a@b.example")
    assert one(r, mailto).status == 416
    tel = good.replace(b"OPTIONS sip:100@127.0.0.1", b"OPTIONS tel:+442079460000")
    assert one(r, tel).status == 404  # a scheme we take, a user we do not have
    assert r.stats.errors == 0


def test_personality_headers_differ():
    request = req("OPTIONS", "100")
    ast = one(responder("asterisk"), request)
    fs = one(responder("freeswitch"), request)
    kam = one(responder("kamailio"), request)
    gs = one(responder("grandstream"), request)
    assert "server" in ast.headers and "user-agent" not in ast.headers
    assert fs.get("user-agent").startswith("FreeSWITCH") and "server" not in fs.headers
    assert gs.get("user-agent").startswith("Grandstream")
    assert kam.get("accept") == "*/*" and "supported" not in kam.headers
    assert ast.get("allow") != fs.get("allow")
    patterns = {
        "asterisk": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "freeswitch": r"[0-9A-Za-z]{13}",
        "kamailio": r"[0-9a-f]{32}-[0-9a-f]{4}",
        "grandstream": r"[0-9]{1,10}",
    }
    for reply, name in [
        (ast, "asterisk"),
        (fs, "freeswitch"),
        (kam, "kamailio"),
        (gs, "grandstream"),
    ]:
        assert re.fullmatch(patterns[name], reply.to.tag), (name, reply.to.tag)
    # FreeSWITCH and Kamailio use the address that was hit as realm; Kamailio's 100 reason
    assert one(responder("freeswitch"), register("101")).challenge.realm == HONEYPOT
    k = responder("kamailio")
    invite = req("INVITE", "00442079460000")
    chal = one(k, invite)
    assert chal.challenge.realm == HONEYPOT and "opaque" not in chal.challenge.params
    trying = send(k, with_auth(invite, answer(chal, invite, "1234")))[0]
    assert trying.raw.startswith(b"SIP/2.0 100 trying -- your call is important to us\r\n")
    assert one(responder(realm="pbx.example"), register("101")).challenge.realm == "pbx.example"


def test_stats_count_methods_and_statuses():
    r = responder()
    one(r, req("OPTIONS", "100"))
    one(r, register("101"))
    one(r, register("555"))
    s = r.stats
    assert s.requests == 3 and s.answered == 3
    assert s.by_method == {"OPTIONS": 1, "REGISTER": 2}
    assert s.by_status == {200: 1, 401: 1, 404: 1}
    assert s.as_dict()["challenges"] == 1


def test_config_is_checked():
    with pytest.raises(ValueError, match="algorithms"):
        UasConfig(algorithms=("MD4",))
    with pytest.raises(ValueError, match="algorithms"):
        UasConfig(algorithms=())
    with pytest.raises(ValueError, match="nonce_ttl"):
        UasConfig(nonce_ttl=0)
    assert UasConfig(algorithms=("sha-256", "md5")).algorithms == ("SHA-256", "MD5")


# --- never raises -----------------------------------------------------------------------------


def _answered(request: SipMessage, name: str = "asterisk") -> bytes:
    """request with right credentials for the first challenge a fresh responder sends
    (same secret, seed and time: so it verifies in the test below when ts is T0)."""
    chal = one(responder(name, algorithms=("SHA-256", "MD5")), request)
    return with_auth(request, answer(chal, request, "1234")).to_bytes()


_SAMPLES = [
    _answered(register("101")),
    _answered(req("INVITE", "00442079460000"), "kamailio"),
    req("OPTIONS", "100").to_bytes(),
    register("101").to_bytes(),
    req("INVITE", "00442079460000", headers=[("Proxy-Authorization", 'Digest username="101", '
        'realm="asterisk", nonce="00", uri="sip:x", response="ab", algorithm=SHA-256')]).to_bytes(),
    sv_request("REGISTER", "101", compact=True),
]  # fmt: skip


@st.composite
def garbled(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(_SAMPLES)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.integers(0, 3))
        at = draw(st.integers(0, len(data)))
        if kind == 0:
            del data[at : at + draw(st.integers(1, 20))]
        elif kind == 1:
            data[at:at] = draw(st.binary(min_size=1, max_size=20))
        elif kind == 2:
            data[at:at] = draw(st.sampled_from([b";", b",", b"\r\n", b'"', b"<", b"=", b":", b" "]))
        else:
            data[at:at] = draw(st.sampled_from(
                [b"rport", b";received=", b"Via: ", b"\r\nv: SIP/2.0/UDP [::1", b"tag=",
                 b"\r\nAuthorization: Digest ", b"\r\nExpires: 0", b"\r\nm: *", b"\xff\xfe"]
            ))  # fmt: skip
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(garbled(), st.binary(max_size=300)),
    ts=st.one_of(st.just(T0), st.floats(allow_nan=True)),
)
def test_handle_never_raises(data, ts):
    for name in ("asterisk", "kamailio"):
        r = responder(name, algorithms=("SHA-256", "MD5"))
        out = r.handle(Record.from_bytes(data, ts, "udp", ATTACKER, APORT, HONEYPOT, 5060))
        assert r.stats.errors == 0, r.last_error
        for reply in out:
            parsed = parse(reply)
            assert parsed.error == "" and parsed.status >= 100
