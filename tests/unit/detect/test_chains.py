"""ChainTracker: attack chains per client and information sharing, as a user sees the events.

The traffic is built with sipwatch's builders and answered by the real honeypot responder; every
message (requests and the honeypot's responses) goes through the real pipeline order: the stage
labeller, the password recovery, then the chain tracker.
"""

from __future__ import annotations

import itertools
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipwatch.detect.chains import ChainConfig, ChainTracker, human_delay
from sipwatch.detect.events import MAX_EVIDENCE, SEVERITIES, Event, event_id
from sipwatch.detect.passwords import PasswordRecovery
from sipwatch.detect.stages import StageLabeler
from sipwatch.honeypot.accounts import Accounts
from sipwatch.honeypot.personality import load_personality
from sipwatch.honeypot.uas import Responder
from sipwatch.record import IN, OUT, Record
from sipwatch.sip.build import build_request, build_response
from sipwatch.sip.digest import build_credentials
from sipwatch.sip.message import SipMessage

NODE1, NODE2 = "192.0.2.10", "192.0.2.11"  # two honeypot addresses (nodes)
ATTACKER = "203.0.113.7"  # scans, finds extensions, cracks 2001, calls abroad
T0 = 1_700_000_000.0
PASSWORDS = {"2001": "Pbx-2001!", "2002": "Xq9!long-pw", "2003": "s3cr3t-2003"}
PW = PASSWORDS["2001"]  # the honeypot's recovery knows its accounts' passwords
UA = "pbx-probe/0.1"  # no known tool: the stage thresholds decide


class Lab:
    """A honeypot with extensions 2001-2003, and the analyzers in pipeline order."""

    def __init__(
        self, config: ChainConfig | None = None, passwords: dict[str, str] = PASSWORDS
    ) -> None:
        accounts = Accounts.from_config(list(passwords), passwords)
        self.responder = Responder(
            load_personality("asterisk"), accounts, secret=b"k" * 32, rng=random.Random(1)
        )
        self.labeller = StageLabeler()
        self.recovery = PasswordRecovery(candidates=list(passwords.values()))
        self.tracker = ChainTracker(config)
        self.events: list[Event] = []
        self._n = itertools.count(1)

    def feed(self, record: Record) -> list[Event]:
        self.labeller.label(record)
        self.recovery.label(record)
        got = self.tracker.feed(record)
        self.events += got
        return got

    def send(self, src: str, msg: SipMessage, ts: float, dst: str = NODE1) -> list[Record]:
        """The request and the honeypot's answers, all fed; returns the answers."""
        req = Record(ts, "udp", src, 5062, dst, 5060, msg.raw, msg, direction=IN, node=dst)
        self.feed(req)
        answers = []
        for i, raw in enumerate(self.responder.handle(req)):
            ans = Record.from_bytes(
                raw, ts + 0.001 * (i + 1), "udp", dst, 5060, src, 5062, direction=OUT, node=dst
            )
            self.feed(ans)
            answers.append(ans)
        return answers

    def headers(self, src: str, user: str, ruri: str, dst: str, call: int) -> dict[str, str]:
        """build_request's arguments for one request of call `call` (a new Via branch)."""
        n = next(self._n)
        return {
            "ruri": ruri,
            "via": f"SIP/2.0/UDP {src}:5062;branch=z9hG4bK{n};rport",
            "from_": f"<sip:{user}@{dst}>;tag=f{call}",
            "to": f"<sip:{user}@{dst}>",
            "call_id": f"c{call}@{src}",
        }

    def probe(self, method: str, src: str, user: str, ts: float, dst: str = NODE1) -> int:
        """One request without credentials; the final status."""
        call = next(self._n)
        ruri = f"sip:{dst}" if method == "REGISTER" else f"sip:{user}@{dst}"
        h = self.headers(src, user, ruri, dst, call)
        msg = build_request(method, cseq=1, headers=[("User-Agent", UA)], **h)
        return self.send(src, msg, ts, dst)[-1].msg.status

    def login(
        self,
        method: str,
        src: str,
        user: str,
        password: str,
        ts: float,
        target: str = "",
        dst: str = NODE1,
    ) -> int:
        """Challenge, then answer it with `password`; the final status."""
        call = next(self._n)
        ruri = f"sip:{dst}" if method == "REGISTER" else f"sip:{target}@{dst}"
        h = self.headers(src, user, ruri, dst, call)
        if method == "INVITE":
            h["to"] = f"<sip:{target}@{dst}>"
        challenge = self.send(src, build_request(method, cseq=1, **h), ts, dst)[-1].msg
        assert challenge.status in (401, 407), challenge.status
        c = challenge.challenge
        assert c is not None
        auth = build_credentials(user, c.realm, password, method, ruri, c.nonce)
        name = "Authorization" if challenge.status == 401 else "Proxy-Authorization"
        h2 = self.headers(src, user, ruri, dst, call)
        h2["to"] = h["to"]
        msg = build_request(method, cseq=2, headers=[(name, auth), ("User-Agent", UA)], **h2)
        return self.send(src, msg, ts + 0.5, dst)[-1].msg.status

    def of(self, rule: str, src: str | None = None) -> list[Event]:
        return [e for e in self.events if e.rule == rule and (src is None or e.src == src)]


def attack(lab: Lab, src: str = ATTACKER, t: float = T0) -> None:
    """The four stages, as one address runs them, answered by the honeypot."""
    lab.probe("OPTIONS", src, "100", t, NODE1)  # server scan of two addresses
    lab.probe("OPTIONS", src, "100", t + 1, NODE2)
    for i, ext in enumerate(range(2000, 2010)):  # extension scan: 2001-2003 exist
        status = lab.probe("REGISTER", src, str(ext), t + 60 + i)
        assert status == (401 if str(ext) in PASSWORDS else 404)
    for i, guess in enumerate(["0000", "1111", "2222", PW]):  # password guessing on 2001
        status = lab.login("REGISTER", src, "2001", guess, t + 600 + 10 * i)
        assert status == (200 if guess == PW else 403)
    # toll fraud with the cracked account: a satellite number
    lab.login("INVITE", src, "2001", PW, t + 1800, target="0088216123456")


# --- attack chains ------------------------------------------------------------------------------
def test_multi_stage_attacker_moves_ss_es_rhj_tf_in_order_with_evidence() -> None:
    lab = Lab()
    attack(lab)
    chain_events = lab.of("chain.stage-advance")
    assert [(e.data["from"], e.data["to"]) for e in chain_events] == [
        ("SS", "ES"),
        ("ES", "RHJ"),
        ("RHJ", "TF"),
    ]
    assert [e.severity for e in chain_events] == ["low", "medium", "critical"]
    # one chain, one id: the store keeps one row, updated as the attacker advances
    assert len({e.id for e in chain_events}) == 1
    assert chain_events[0].id == event_id("chain.stage-advance", ATTACKER, T0)
    last = chain_events[-1]
    assert last.kind == "chain" and last.stage == "TF" and last.src == ATTACKER
    assert last.summary == (
        f"{ATTACKER} moved from RHJ to TF after 20 min "
        "(3 extensions found, 4 passwords tried, 1 credential found, 1 number dialled)"
    )
    assert set(last.targets) == {NODE1, NODE2}
    d = last.data
    assert d["extensions_found"] == 3 and d["extensions_missing"] == 9  # 2 OPTIONS, 7 REGISTERs
    assert d["password_tries"] == 4  # the first INVITE (no credentials yet) was the move
    assert d["credentials_found"] == 1 and d["numbers_dialled"] == 1
    assert d["numbers_sample"] == [
        {"number": "+88216123456", "type": "satellite/intl_network", "country": "001"}
    ]
    assert list(d["stages"]) == ["SS", "ES", "RHJ", "TF"]
    assert d["stages"]["SS"]["reached"] == T0 + 1  # the second server
    assert json.loads(json.dumps(last.to_dict()))["data"] == d  # JSON-able
    assert PW not in json.dumps(last.to_dict())  # events carry no clear passwords
    # evidence: real message ids, the messages that marked each stage
    ids = {r for r in last.evidence}
    assert 4 <= len(ids) <= 20

    chain = lab.tracker.chain(ATTACKER)
    assert chain is not None and chain.reached() == ["SS", "ES", "RHJ", "TF"]
    assert sorted(u for _, u in chain.found) == ["2001", "2002", "2003"]
    guesses = chain.guesses[(NODE1, "2001")]
    assert guesses.passwords == ["0000", "1111", "2222", PW]
    assert (guesses.refused, guesses.success) == (3, True)
    [cred] = chain.credentials
    assert (cred.server, cred.user, cred.password) == (NODE1, "2001", PW)
    assert chain.to_dict()["credentials"][0]["password"] == PW
    assert "password" not in chain.to_dict(passwords=False)["credentials"][0]
    assert [c.src for c in lab.tracker.chains()] == [ATTACKER]


def test_chain_events_follow_the_stages_one_at_a_time() -> None:
    lab = Lab()
    lab.probe("OPTIONS", ATTACKER, "100", T0, NODE1)
    lab.probe("OPTIONS", ATTACKER, "100", T0 + 1, NODE2)
    assert lab.events == []  # the first stage reached is no move
    for i, ext in enumerate(range(2000, 2004)):
        lab.probe("REGISTER", ATTACKER, str(ext), T0 + 10 + i)
    assert lab.events == []  # four users: not yet a scan
    lab.probe("REGISTER", ATTACKER, "2004", T0 + 20)
    [e] = lab.events
    assert (e.data["from"], e.data["to"], e.severity) == ("SS", "ES", "low")
    assert e.summary == f"{ATTACKER} moved from SS to ES after 19 s (3 extensions found)"


def test_benign_phone_that_registers_and_calls_abroad_makes_no_chain_event() -> None:
    lab = Lab()
    phone = "198.51.100.20"
    lab.probe("OPTIONS", phone, "2002", T0)  # a keep-alive to its one server
    assert lab.login("REGISTER", phone, "2002", PASSWORDS["2002"], T0 + 1) == 200
    lab.login("INVITE", phone, "2002", PASSWORDS["2002"], T0 + 60, target="00442079460000")
    assert lab.events == []
    chain = lab.tracker.chain(phone)
    assert chain is not None and chain.reached() == ["TF"]
    assert set(chain.stages) == {"SS", "ES", "RHJ", "TF"}  # labelled, but not reached


def test_credentials_found_after_the_move_to_tf_make_it_critical() -> None:
    lab = Lab()
    lab.probe("OPTIONS", ATTACKER, "100", T0, NODE1)
    lab.probe("OPTIONS", ATTACKER, "100", T0 + 1, NODE2)
    for i, ext in enumerate(range(2000, 2006)):
        lab.probe("REGISTER", ATTACKER, str(ext), T0 + 10 + i)
    lab.probe("INVITE", ATTACKER, "0088216123456", T0 + 60)  # challenged: no call yet
    for i, guess in enumerate(["0000", "1111", "2222", PW]):
        lab.login("REGISTER", ATTACKER, "2001", guess, T0 + 120 + i)
    moves = lab.of("chain.stage-advance")
    assert [(e.data["from"], e.data["to"], e.severity) for e in moves] == [
        ("SS", "ES", "low"),
        ("ES", "TF", "high"),
        ("ES", "TF", "critical"),  # the same move, updated: it now has an account
    ]
    assert moves[1].id == moves[2].id and moves[2].data["credentials_found"] == 1
    assert moves[1].data["delay_s"] == moves[2].data["delay_s"]


def test_requests_only_capture_reaches_es_on_the_user_count() -> None:
    labeller, tracker = StageLabeler(), ChainTracker()
    records = [options(ATTACKER, T0, dst=NODE1), options(ATTACKER, T0 + 1, dst=NODE2)]
    records += [register(ATTACKER, str(3000 + i), T0 + 10 + i) for i in range(5)]
    events = []
    for r in records:  # and no answer seen
        labeller.label(r)
        events += tracker.feed(r)
    assert [(e.data["from"], e.data["to"]) for e in events] == [("SS", "ES")]
    assert events[0].last == T0 + 14  # the fifth user


def test_options_scan_warm_up_is_not_a_server_scan() -> None:
    # the labeller calls the first OPTIONS of an extension scan SS: not a move from SS
    labeller, tracker = StageLabeler(), ChainTracker()
    events = []
    for i in range(12):
        r = options(ATTACKER, T0 + i, user=str(3000 + i), dst=NODE1 if i % 2 else NODE2)
        labeller.label(r)
        events += tracker.feed(r)
    chain = tracker.chain(ATTACKER)
    assert events == [] and chain is not None and chain.top == "ES"


def test_fingerprinted_tool_reaches_stages_without_thresholds() -> None:
    lab = Lab()
    src = "203.0.113.99"
    for i, ext in enumerate(("2001", "2002")):
        call = 9000 + i
        h = lab.headers(src, ext, f"sip:{NODE1}", NODE1, call)
        msg = build_request("REGISTER", cseq=1, headers=[("User-Agent", "friendly-scanner")], **h)
        lab.send(src, msg, T0 + i)
    lab.login("INVITE", src, "2001", "nope", T0 + 5, target="0088216123456")
    assert [(e.data["from"], e.data["to"]) for e in lab.of("chain.stage-advance")] == [("ES", "TF")]
    assert lab.of("chain.stage-advance")[0].data["tools"] == ["sipvicious"]


def test_idle_client_starts_a_new_chain() -> None:
    lab = Lab(ChainConfig(idle_reset_s=3600))
    lab.probe("OPTIONS", ATTACKER, "100", T0)
    first = lab.tracker.chain(ATTACKER)
    lab.probe("OPTIONS", ATTACKER, "100", T0 + 7200)
    again = lab.tracker.chain(ATTACKER)
    assert again is not first and again is not None and again.first == T0 + 7200
    assert lab.tracker.stats.idle_resets == 1


# --- information sharing ------------------------------------------------------------------------
def test_second_source_registering_with_cracked_credentials_is_linked() -> None:
    lab = Lab()
    attack(lab)
    cracked = lab.tracker.sharing.finding("c", NODE1, "2001")
    assert cracked is not None and cracked.src == ATTACKER and cracked.password == PW
    user = "198.51.100.50"
    t = T0 + 7200
    assert lab.login("REGISTER", user, "2001", PW, t) == 200
    [e] = lab.of("sharing.credentials")
    assert e.kind == "sharing" and e.src == user and e.severity == "high"
    assert e.data["discovered_by"] == [ATTACKER]
    assert e.data["items"] == ["2001"] and e.data["match"] == ["password"]
    assert e.data["delay_s"] == round(t + 0.5 - cracked.ts, 3)
    assert cracked.record in e.evidence  # the 200 that told the first address
    assert e.summary == f"{user} used the password of 2001 that {ATTACKER} cracked 109 min earlier"
    assert PW not in json.dumps(e.to_dict())
    assert lab.tracker.flush() == []  # and not linked for extensions (one user only)


def test_login_without_guessing_is_linked_when_the_password_is_unknown() -> None:
    lab = Lab()
    src = "203.0.113.8"  # cracks 2003, whose password is in no list: recovery cannot tell it
    lab.recovery = PasswordRecovery(candidates=(), wordlist=[])
    lab.probe("REGISTER", src, "2003", T0)
    for i, guess in enumerate(["a", "b", "s3cr3t-2003"]):
        lab.login("REGISTER", src, "2003", guess, T0 + 10 + i)
    user = "198.51.100.51"
    assert lab.login("REGISTER", user, "2003", "s3cr3t-2003", T0 + 3600) == 200
    [e] = lab.of("sharing.credentials")
    assert e.src == user and e.data["match"] == ["login"]
    assert e.summary.startswith(f"{user} logged in as 2003 that {src} cracked")


def test_source_guessing_its_own_way_in_is_not_linked() -> None:
    lab = Lab()
    attack(lab)
    other = "198.51.100.52"
    for i, guess in enumerate(["9999", "8888", "7777", PW]):
        lab.login("REGISTER", other, "2001", guess, T0 + 7200 + i)
    assert lab.of("sharing.credentials") == []


def test_reusing_a_password_every_list_tries_first_is_no_link() -> None:
    lab = Lab(passwords={"2001": "1234", "2002": "x", "2003": "y"})
    for i, guess in enumerate(["0000", "1111", "1234"]):
        lab.login("REGISTER", ATTACKER, "2001", guess, T0 + i)
    assert lab.tracker.sharing.finding("c", NODE1, "2001") is not None
    lab.login("REGISTER", "198.51.100.53", "2001", "1234", T0 + 3600)
    assert lab.of("sharing.credentials") == []  # anyone's first guess: no evidence


def test_newcomer_that_meets_a_missing_extension_is_scanning() -> None:
    lab = Lab(passwords={str(e): f"pw-{e}" for e in range(2001, 2006)})
    for i, ext in enumerate(range(2000, 2008)):
        lab.probe("REGISTER", ATTACKER, str(ext), T0 + i)
    newcomer = "198.51.100.54"
    for i, ext in enumerate(range(2001, 2007)):  # five found, then 2006: 404
        lab.probe("REGISTER", newcomer, str(ext), T0 + 100 + i)
    assert lab.tracker.flush() == []  # 5 of 6 are shared, but it met a missing one
    assert lab.tracker.flush() == []


def test_second_source_probing_the_found_extensions_is_linked() -> None:
    lab = Lab()
    attack(lab)
    user = "198.51.100.60"
    t = T0 + 3 * 3600
    for i, ext in enumerate(("2001", "2002", "2003")):
        lab.probe("REGISTER", user, ext, t + i)
    assert lab.of("sharing.extensions") == []  # decided when its first activity ends
    lab.probe("OPTIONS", "192.0.2.200", "x", t + 901)  # anyone's traffic moves the clock
    [e] = lab.of("sharing.extensions")
    assert e.src == user and e.kind == "sharing" and e.stage == "ES"
    assert e.data["discovered_by"] == [ATTACKER]
    assert e.data["items"] == ["2001", "2002", "2003"] and e.targets == ("2001", "2002", "2003")
    found = lab.tracker.sharing.finding("x", NODE1, "2001")
    assert found is not None and found.src == ATTACKER
    assert e.data["delay_s"] == round(t - found.ts, 3)
    assert found.record in e.evidence
    assert e.summary == (
        f"{user} went straight for 3 extensions that {ATTACKER} found, 3.0 h earlier"
    )


def test_second_source_guessing_passwords_of_the_found_extensions_is_linked() -> None:
    lab = Lab()
    attack(lab)
    guesser = "198.51.100.62"
    for i, (ext, guess) in enumerate([("2002", "a1"), ("2002", "b2"), ("2003", "c3")]):
        assert lab.login("REGISTER", guesser, ext, guess, T0 + 5000 + i) == 403
    [e] = lab.tracker.flush()
    assert e.rule == "sharing.extensions" and e.data["items"] == ["2002", "2003"]


def test_flush_decides_the_windows_still_open() -> None:
    lab = Lab()
    attack(lab)
    user = "198.51.100.61"
    for i, ext in enumerate(("2002", "2003")):
        lab.probe("REGISTER", user, ext, T0 + 5000 + i)
    events = lab.tracker.flush()
    assert [e.rule for e in events] == ["sharing.extensions"]
    assert lab.tracker.flush() == []


def test_source_that_scans_on_its_own_is_not_linked() -> None:
    lab = Lab()
    attack(lab)
    scanner = "198.51.100.70"
    for i, ext in enumerate(range(2000, 2010)):  # the same range: finds 2001-2003 itself
        lab.probe("REGISTER", scanner, str(ext), T0 + 4 * 3600 + i)
    assert lab.tracker.flush() == []
    assert lab.of("sharing.extensions") == [] and lab.of("sharing.credentials") == []


def test_common_extensions_and_single_findings_do_not_link() -> None:
    lab = Lab()
    a, b = "198.51.100.80", "198.51.100.81"
    lab.probe("REGISTER", a, "2001", T0)  # each a phone that knows its own account
    lab.probe("REGISTER", b, "2002", T0 + 1)
    newcomer = "198.51.100.82"
    for i, ext in enumerate(("2001", "2002", "100", "1000")):
        lab.probe("REGISTER", newcomer, ext, T0 + 100 + i)
    assert lab.tracker.flush() == []  # one extension from each: no link


def test_extensions_discovered_later_do_not_count() -> None:
    lab = Lab()
    early = "198.51.100.90"
    for i, ext in enumerate(("2001", "2002", "2003")):
        lab.probe("REGISTER", early, ext, T0 + i)
    attack(lab, t=T0 + 100)  # finds the same extensions, after the first one used them
    assert lab.tracker.flush() == []


# --- bounds and determinism --------------------------------------------------------------------
def options(src: str, ts: float, user: str = "100", dst: str = NODE1) -> Record:
    msg = build_request(
        "OPTIONS",
        f"sip:{user}@{dst}",
        via=f"SIP/2.0/UDP {src}:5060;branch=z9hG4bK{int(ts * 1000)}",
        from_=f"<sip:{user}@{dst}>;tag=1",
        to=f"<sip:{user}@{dst}>",
        call_id=f"{ts}@{src}",
        cseq=1,
    )
    return Record(ts, "udp", src, 5060, dst, 5060, msg.raw, msg)


def register(src: str, user: str, ts: float, dst: str = NODE1) -> Record:
    msg = build_request(
        "REGISTER",
        f"sip:{dst}",
        via=f"SIP/2.0/UDP {src}:5060;branch=z9hG4bK{int(ts * 1000)}",
        from_=f"<sip:{user}@{dst}>;tag=1",
        to=f"<sip:{user}@{dst}>",
        call_id=f"{ts}@{src}",
        cseq=1,
    )
    return Record(ts, "udp", src, 5060, dst, 5060, msg.raw, msg)


def test_spoofed_sources_keep_the_tables_bounded_and_evictions_counted() -> None:
    labeller = StageLabeler()
    tracker = ChainTracker(ChainConfig(max_sources=50, max_requests=20))
    for i in range(1000):
        r = options(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", T0 + i * 0.001)
        labeller.label(r)
        tracker.feed(r)
    assert len(list(tracker.chains())) == 50
    assert tracker.stats.source_evictions == 950
    assert tracker.stats.request_evictions == 980
    assert tracker.chain("10.0.0.0") is None and tracker.chain("10.0.3.231") is not None
    assert tracker.flush() == []  # windows of evicted sources went with them


def test_per_chain_evidence_and_findings_are_bounded() -> None:
    cfg = ChainConfig(max_extensions=4, max_findings=6, max_servers=3, max_numbers=2)
    lab = Lab(cfg)
    many = Accounts.from_config(["3000-3099"], {})
    lab.responder.accounts = many
    for i in range(20):
        lab.probe("REGISTER", ATTACKER, str(3000 + i), T0 + i, dst=f"192.0.2.{i + 1}")
    for i in range(5):
        lab.login("INVITE", ATTACKER, "3001", "x", T0 + 100 + i, target=f"00442079460{i:03d}")
    chain = lab.tracker.chain(ATTACKER)
    assert chain is not None
    assert len(chain.found) == 4 and chain.found_more >= 16  # answers past the cap
    assert len(chain.servers) == 3
    assert len(chain.numbers) == 2 and chain.numbers_more == 6  # INVITEs: 2 a call
    assert lab.tracker.stats.finding_evictions == 15  # 21 findings, 6 kept


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),  # client
            st.sampled_from(["OPTIONS", "REGISTER", "INVITE", "BYE"]),
            st.sampled_from(["", "2001", "2002", "100", "x" * 80, "0088216123456"]),
            st.booleans(),  # with credentials
            st.sampled_from([0, 200, 401, 403, 404, 407, 486]),  # the answer (0: none)
            st.sampled_from(["", "SS", "ES", "RHJ", "TF"]),
            st.sampled_from(["", "sipvicious"]),
            st.floats(0, 4000),  # seconds since the previous message
        ),
        max_size=60,
    )
)
def test_any_traffic_keeps_bounds_and_gives_well_formed_events(steps: list) -> None:
    """Labels as anything (no labeller here): the tracker must hold its bounds regardless."""
    cfg = ChainConfig(max_sources=3, max_requests=4, max_findings=5, max_extensions=2)
    tracker = ChainTracker(cfg)
    events: list[Event] = []
    ts = T0
    for n, (client, method, user, authed, status, stage, tool, gap) in enumerate(steps):
        ts += gap
        src = f"10.0.0.{client}"
        headers = (
            [
                (
                    "Authorization",
                    f'Digest username="{user}",realm="r",nonce="n",uri="u",response="00"',
                )
            ]
            if authed
            else []
        )
        msg = build_request(
            method,
            f"sip:{user}@{NODE1}" if user else f"sip:{NODE1}",
            via=f"SIP/2.0/UDP {src};branch=z9hG4bK{n}",
            from_=f"<sip:{user or 'a'}@{NODE1}>;tag=1",
            to=f"<sip:{user or 'a'}@{NODE1}>",
            call_id=f"{n}@{src}",
            cseq=1,
            headers=headers,
        )
        req = Record(ts, "udp", src, 5060, NODE1, 5060, msg.raw, msg, stage=stage, tool=tool)
        events += tracker.feed(req)
        if status:
            ans = build_response(msg, status)
            rec = Record(ts, "udp", NODE1, 5060, src, 5060, ans.raw, ans, stage=stage)
            rec.request_id, rec.password = req.id, "pw" if authed else ""
            events += tracker.feed(rec)
    events += tracker.flush()
    assert len(list(tracker.chains())) <= 3
    assert len(tracker._pending) <= 4 and len(tracker.sharing._findings) <= 5
    for chain in tracker.chains():
        assert len(chain.found) <= 2
        json.dumps(chain.to_dict())
    for e in events:
        assert e.severity in SEVERITIES and e.kind in ("chain", "sharing")
        assert len(e.evidence) <= MAX_EVIDENCE and e.first <= e.last
        json.dumps(e.to_dict())


def test_same_input_gives_the_same_events() -> None:
    def run() -> list[dict]:
        lab = Lab()
        attack(lab)
        lab.login("REGISTER", "198.51.100.50", "2001", PW, T0 + 7200)
        for i, ext in enumerate(("2001", "2002", "2003")):
            lab.probe("REGISTER", "198.51.100.60", ext, T0 + 9000 + i)
        lab.events += lab.tracker.flush()
        return [e.to_dict() for e in lab.events]

    first, second = run(), run()
    assert first == second
    assert {e["rule"] for e in first} == {
        "chain.stage-advance",
        "sharing.credentials",
        "sharing.extensions",
    }


def test_bad_config_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="max_sources must be at least 1"):
        ChainConfig(max_sources=0)
    with pytest.raises(ValueError, match="share_ratio"):
        ChainConfig(share_ratio=1.5)


def test_human_delay() -> None:
    assert [human_delay(s) for s in (5, 119, 720, 12600, 200000)] == [
        "5 s",
        "119 s",
        "12 min",
        "3.5 h",
        "2.3 d",
    ]
