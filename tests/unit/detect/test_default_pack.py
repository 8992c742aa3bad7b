"""The default rule pack: each rule fires on traffic shaped like the tool it is meant for, and
nothing fires on ordinary traffic (phones, keep-alives, a mistyped password, calls, SSDP)."""

from __future__ import annotations

import pytest

import siptraffic as st
from sipwatch.detect.engine import Engine, EngineConfig
from sipwatch.detect.rules import load_packs
from sipwatch.record import Record
from sipwatch.sip.build import build_response
from sipwatch.sip.message import parse

ATT = "203.0.113.50"
PHONE = "10.0.0.21"
SERVERS = ["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13"]
PASSWORDS = ["1234", "12345", "123456", "password", "admin", "0000", "1111", "101", "secret"]


def events_of(t: st.Traffic, **kw) -> dict[str, list]:
    out: dict[str, list] = {}
    for e in t.run(**kw):
        out.setdefault(e.rule, []).append(e)
    return out


# --- attack tools ------------------------------------------------------------------------------
def svmap(t: st.Traffic, src: str = ATT) -> None:
    """svmap: one OPTIONS per target address, the target hidden in the From tag."""
    for dst in SERVERS:
        hexed = "".join(f"{int(o):02x}" for o in dst.split(".")) + "13c4"
        req = t.request(
            "OPTIONS", src, "100", dst=dst, ua="friendly-scanner", tag=st.sv_tag(hexed), dt=0.2
        )
        t.response(req, 200)


def svwar(t: st.Traffic, n: int = 30, replies: bool = True, src: str = ATT) -> None:
    """svwar: a REGISTER without credentials per extension; 401 = exists, 404 = not."""
    for ext in [str(1_234_567_890)] + [str(100 + i) for i in range(n)]:
        req = t.request("REGISTER", src, ext, ua="friendly-scanner", tag=st.sv_tag(ext), dt=0.03)
        if replies:
            t.response(req, 401 if ext in ("101", "102", "105") else 404)


def svcrack(t: st.Traffic, ext: str = "101", found: str | None = None, src: str = ATT) -> None:
    """svcrack: fixed-tag REGISTER for a nonce, 401, REGISTER with the digest, 403 (or 200)."""
    for pw in [*PASSWORDS, *([found] if found else [])]:
        first = t.request("REGISTER", src, ext, ua="friendly-scanner", tag=st.SVCRACK_TAG, dt=0.05)
        t.response(first, 401)
        tag = st.sv_tag(f"{ext}:{pw}")
        again = t.request(
            "REGISTER", src, ext, ua="friendly-scanner", tag=tag, password=pw, cseq=2, dt=0.01
        )
        t.response(again, 200 if pw == found else 403)


def test_server_sweep():
    t = st.Traffic()
    svmap(t)
    got = events_of(t)
    ev = got["ss.server-sweep"][-1]
    assert (ev.stage, ev.src, ev.count, set(ev.targets)) == ("SS", ATT, 4, set(SERVERS))
    assert "tool.attack-tool" in got


def test_extension_scan():
    t = st.Traffic()
    svwar(t)
    got = events_of(t)
    ev = got["es.extension-scan"][-1]
    assert ev.stage == "ES" and ev.src == ATT and ev.data["value"] >= 10
    assert "101" in ev.targets
    assert {"es.extension-scan", "es.register-probe", "tool.attack-tool"} <= set(got)
    assert not any(r.startswith(("rhj.", "flood.", "spit.")) for r in got)


def test_extension_scan_without_replies():
    t = st.Traffic()
    svwar(t, n=25, replies=False)
    assert set(events_of(t)) == {"es.register-probe", "tool.attack-tool"}


def test_bruteforce_distinct_passwords_and_hijack():
    t = st.Traffic()
    svcrack(t, found="s3cret-Pass")
    got = events_of(t)
    assert {
        "rhj.auth-failures",
        "rhj.bruteforce",
        "rhj.distinct-passwords",
        "rhj.login-after-failures",
        "tool.attack-tool",
    } == set(got)
    brute = got["rhj.bruteforce"][-1]
    assert brute.src == ATT and brute.targets == ("101",) and brute.count == 10
    hijack = got["rhj.login-after-failures"][-1]
    assert (hijack.severity, hijack.targets, hijack.count) == ("critical", ("101",), 1)
    pw = got["rhj.distinct-passwords"][-1]
    assert pw.data["value"] == 10 and "1234" in pw.targets


def svcrack_tries(t: st.Traffic, passwords: list[str], ext: str = "101") -> None:
    """svcrack's two requests per password: the nonce fetch (401), then the digest (403)."""
    for pw in passwords:
        first = t.request("REGISTER", ATT, ext, ua="friendly-scanner", tag=st.SVCRACK_TAG, dt=0.05)
        t.response(first, 401)
        again = t.request(
            "REGISTER", ATT, ext, ua="friendly-scanner", tag=st.sv_tag(f"{ext}:{pw}"),
            password=pw, cseq=2, dt=0.01,
        )  # fmt: skip
        t.response(again, 403)


@pytest.mark.parametrize("wrong", [3, 4, 5, 9])
def test_svcrack_nonce_fetch_is_not_an_auth_failure(wrong):
    # each wrong password is one failure (its 403); the 401 that hands svcrack the nonce for
    # the try is not: 4 wrong passwords stay under the threshold of 5 (counted twice they
    # would have fired it after 3)
    t = st.Traffic()
    svcrack_tries(t, PASSWORDS[:wrong])
    got = events_of(t)
    if wrong < 5:
        assert "rhj.auth-failures" not in got
    else:
        ev = got["rhj.auth-failures"][-1]
        assert (ev.count, ev.data["value"], ev.targets) == (wrong, wrong, ("101",))


def test_a_new_challenge_to_credentials_is_an_auth_failure():
    # a 401 (not stale) to a REGISTER that carried credentials refuses them: it counts
    t = st.Traffic()
    for i in range(5):
        req = t.request("REGISTER", ATT, "101", password=f"guess{i}", cseq=i + 1, dt=30)
        t.response(req, 401)
    ev = events_of(t)["rhj.auth-failures"][-1]
    assert ev.count == 5


def test_password_spray():
    t = st.Traffic()
    for user in ["100", "101", "102", "103", "104", "105"]:
        req = t.request("REGISTER", ATT, user, ua="sipcrack", password="1234", dt=1)
        t.response(req, 403)
    got = events_of(t)
    assert set(got) == {"rhj.password-spray", "rhj.auth-failures", "tool.scanner-user-agent"}
    assert got["rhj.password-spray"][-1].data["value"] == 6  # the latest state: 6 accounts


@pytest.mark.parametrize(
    ("number", "rule", "kw"),
    [
        ("0088216123456", "tf.premium-call", {}),
        ("+499001234567", "tf.premium-call", {}),
        ("00972599123456", "tf.international-call", {}),
        ("07400123456", "tf.mobile-call", {"region": "GB"}),
    ],
)
def test_toll_fraud(number, rule, kw):
    t = st.Traffic()
    for _ in range(3):
        req = t.request(
            "INVITE", ATT, number, from_user="101", password="s3cret-Pass", auth_user="101", dt=20
        )
        t.response(req, 403)
    got = events_of(t, **kw)
    assert set(got) == {rule}
    ev = got[rule][-1]
    assert ev.stage == "TF" and ev.count == 3 and ev.targets[0].startswith("+")


def test_watch_list():
    t = st.Traffic()
    t.request("INVITE", ATT, "0037122123456", dt=1)
    engine = Engine.load(config=EngineConfig(watchlists={"toll_fraud": ["+371 22"]}))
    got = {e.rule for e in t.run(engine)}
    assert got == {"tf.watchlist-call", "tf.international-call"}


def test_flood_per_client():
    t = st.Traffic()
    for _ in range(600):
        t.request("INVITE", ATT, "100", dt=0.005)  # 200 INVITEs a second
    got = events_of(t)
    assert "flood.client" in got and "flood.server" not in got
    assert got["flood.client"][0].data["value"] == 100.0


def test_flood_per_server_from_spoofed_sources():
    t = st.Traffic()
    for i in range(6000):
        t.request("OPTIONS", f"198.18.{i >> 8}.{i & 255}", "100", dt=0.0015)  # 667/s
    got = events_of(t)
    assert set(got) == {"flood.server"}
    assert got["flood.server"][0].targets == (st.PBX,) and got["flood.server"][0].src == ""


def test_fuzzing():
    t = st.Traffic()
    for i in range(5):
        t.raw(f"INVITE sip:{i}@x SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\n\r\n".encode(), ATT, dt=1)
    got = events_of(t)
    assert set(got) == {"fuzz.malformed-burst", "fuzz.exploit-shape"}
    assert got["fuzz.malformed-burst"][-1].count == 5


def test_a_server_that_echoes_a_fuzzers_headers_is_not_the_fuzzer():
    # answers repeat Via, From, To, Call-ID and CSeq: a PBX (or the honeypot) answering
    # malformed requests sends the same anomalies back; only the sender of the requests fuzzes
    t = st.Traffic()
    cases = [
        ("CSeq: 1 OPTIONS", "CSeq: -1 OPTIONS"),
        ("CSeq: 1 OPTIONS", "CSeq: 99999999999 OPTIONS"),
        ("Via: SIP/2.0/UDP ", "Via: SIP/2.0/UDP " + "v" * 1100 + ".example;x="),
        ("From: <", 'From: "fuzz <'),
    ]
    for old, new in cases * 2:
        req = t.request("OPTIONS", ATT, "100", dt=0.5)
        bad = t.raw(req.raw.replace(old.encode(), new.encode(), 1), ATT)
        t.records.remove(req)
        assert bad.msg.is_request and bad.msg.anomalies, bad.msg.anomalies
        echoed = build_response(bad.msg, 200, to_tag="hp")
        assert echoed.anomalies  # the answer carries the request's anomaly
        t.records.append(Record(t.t + 0.001, "udp", st.PBX, 5060, ATT, 1900, echoed.raw, echoed))
    got = events_of(t)
    assert {e.src for evs in got.values() for e in evs} == {ATT}
    assert got["fuzz.malformed-burst"][-1].count == 8


def test_single_exploit_shaped_message():
    t = st.Traffic()
    t.request("OPTIONS", ATT, "100", call_id="x" * 300)
    assert set(events_of(t)) == {"fuzz.exploit-shape"}


def test_spit():
    t = st.Traffic()
    for i in range(25):
        req = t.request("INVITE", ATT, f"0301234{i:04d}", from_user="anonymous", dt=3)
        t.response(req, 486)
    got = events_of(t)
    assert set(got) == {"spit.call-spray"}
    assert got["spit.call-spray"][-1].data["value"] == 25


@pytest.mark.parametrize(
    ("ua", "tool"),
    [
        ("friendly-scanner", "sipvicious"),
        ("sipcli/v1.8", "sipcli"),
        ("sundayddr", "sundayddr"),
        ("pplsip", "sippts"),
        ("sipsak 0.9.7", "sipsak"),
        ("VaxSIPUserAgent/3.1", "vaxsip"),
        ("Mozilla/5.0 (compatible; Nmap Scripting Engine; Nmap NSE)", "nmap"),
        ("SIVuS", "sivus"),
        ("sip-scan", "sip-scan"),
        ("iWar", "iwar"),
        ("smap 0.6.0", "smap"),
        ("siparmyknife", "siparmyknife"),
        ("Zoiper rv2.8 (patched)", "sipvicious"),  # a renamed SIPVicious: its From tag tells
    ],
)
def test_tool_fingerprints(ua, tool):
    t = st.Traffic()
    tag = st.sv_tag("100") if tool == "sipvicious" else None
    t.request("OPTIONS", ATT, "100", ua=ua, tag=tag)
    got = events_of(t)
    assert set(got) == {"tool.attack-tool"}
    ev = got["tool.attack-tool"][0]
    assert ev.summary.startswith(f"{ATT} is running {tool}") and ev.data["key"] == f"{ATT}|{tool}"


@pytest.mark.parametrize(
    "ua", ["sippts v3.4", "Cisco-SIPGateway/IOS-12.x", "VoIPER", "inviteflood"]
)
def test_scanner_user_agents_the_labeller_does_not_know(ua):
    t = st.Traffic()
    t.request("OPTIONS", ATT, "100", ua=ua)
    assert set(events_of(t)) == {"tool.scanner-user-agent"}


def test_whole_chain_from_one_source():
    t = st.Traffic()
    svmap(t)
    svwar(t)
    svcrack(t, found="s3cret-Pass")
    for i in range(3):
        t.request("INVITE", ATT, f"0088216{i:06d}", password="s3cret-Pass", auth_user="101", dt=5)
    stages = {e.stage for e in t.run()}
    assert {"SS", "ES", "RHJ", "TF"} <= stages


# --- benign traffic ----------------------------------------------------------------------------
def office(t: st.Traffic) -> None:
    """An hour of an office: phones registering, keep-alives, a monitor, calls, a typo."""
    phones = {f"10.0.0.{20 + i}": str(100 + i) for i in range(10)}
    for minute in range(60):
        for src, ext in phones.items():
            t.phone_registers(src, ext, "s3cret-Pass", dt=0.5)
        for _half in range(2):  # OPTIONS keep-alives every 30 s, answered
            for src, ext in phones.items():
                t.response(t.request("OPTIONS", src, ext, ua="Yealink SIP-T46S", dt=0.1), 200)
            t.at(15)
        # a monitoring probe once a minute
        t.response(t.request("OPTIONS", "10.0.9.9", "ping", ua="check_sip/1.3", dt=0.1), 200)
        if minute % 12 == 3:  # a call between extensions: challenged, then answered
            caller, callee = "10.0.0.21", str(100 + minute % 10)
            inv = t.request("INVITE", caller, callee, from_user="101", ua="Yealink SIP-T46S")
            t.response(inv, 407)
            t.request("ACK", caller, callee, from_user="101", call_id=inv.msg.call_id, to_tag="hp")
            auth = t.request(
                "INVITE", caller, callee, from_user="101", password="s3cret-Pass",
                auth_user="101", call_id=inv.msg.call_id, cseq=2, ua="Yealink SIP-T46S", dt=0.02,
            )  # fmt: skip
            t.response(auth, 200)
        if minute == 30:  # a user mistypes the password once, then gets it right
            first = t.request("REGISTER", "10.0.0.99", "199", ua="Zoiper rv2.8", dt=1)
            t.response(first, 401)
            wrong = t.request("REGISTER", "10.0.0.99", "199", password="s3cret-Pas", cseq=2, dt=0.1)
            t.response(wrong, 403)
            t.phone_registers("10.0.0.99", "199", "s3cret-Pass", dt=3)
    # noise that is not SIP
    t.raw(
        b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n\r\n',
        "10.0.0.77",
    )
    t.raw(
        b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\n\r\n",
        "10.0.0.77",
    )
    t.raw(b"\r\n\r\n", "10.0.0.21")
    t.raw(b"GET / HTTP/1.0\r\n\r\n", "10.0.0.78")


def test_benign_office_fires_nothing():
    t = st.Traffic()
    office(t)
    assert len(t.records) > 4000
    assert t.run() == []


def test_ssdp_is_not_sip_and_not_fuzz_to_the_rules():
    ssdp = parse(b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n")
    assert ssdp.error == "not_sip"
    t = st.Traffic()
    for _ in range(50):
        t.raw(ssdp.raw, "10.0.0.77", dt=0.01)
    assert t.run() == []


def test_every_default_rule_is_exercised_here():
    tested = {
        "ss.server-sweep", "es.extension-scan", "es.register-probe", "rhj.auth-failures",
        "rhj.bruteforce", "rhj.password-spray", "rhj.distinct-passwords",
        "rhj.login-after-failures", "tf.premium-call", "tf.international-call", "tf.mobile-call",
        "tf.watchlist-call", "flood.client", "flood.server", "fuzz.malformed-burst",
        "fuzz.exploit-shape", "spit.call-spray", "tool.attack-tool", "tool.scanner-user-agent",
    }  # fmt: skip
    assert {r.id for r in load_packs()[0].rules} == tested
