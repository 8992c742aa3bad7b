"""PasswordRecovery: the password each digest attempt tried, as a user finds it in the store.

Every test runs twice: on PasswordRecovery (the definition) and on its C twin
sipwatch._native.Recovery (skipped, with the reason, when the extension is not built)."""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pcapgen as pg
from sipwatch import analyze
from sipwatch.analyze import AnalyzeError, run_analyze
from sipwatch.detect import passwords as pw
from sipwatch.detect.passwords import PasswordRecovery, analyze_recovery, builtin_words
from sipwatch.detect.stages import StageLabeler
from sipwatch.native import part
from sipwatch.record import Record
from sipwatch.sip.digest import build_credentials, compute_response, parse_digest, verify

ATTACKER = "203.0.113.7"
PBX = "198.51.100.1"
REALM = "asterisk"
URI = f"sip:{PBX}"
_seq = itertools.count(1)

_C = part("Recovery")
pytestmark = pytest.mark.parametrize(
    "Recovery",
    [
        pytest.param(PasswordRecovery, id="python"),
        pytest.param(
            _C, id="c", marks=pytest.mark.skipif(_C is None, reason="sipwatch._native is not built")
        ),
    ],
)


def native(Recovery: type) -> bool:
    return Recovery is not PasswordRecovery


def sv_tag(data: str) -> str:
    """SIPVicious' From tag: hex of data, 0x01, random decimal."""
    return (data.encode() + b"\x01" + b"3141592653").hex()


def register(
    user: str = "101",
    password: str | None = "1234",
    *,
    tag: str = "abc123",
    header: str = "Authorization",
    method: str = "REGISTER",
    ts: float | None = None,
    auth: str | None = None,
    **digest: str,
) -> Record:
    """A request with a digest for `password` (none when password is None), as a record."""
    n = next(_seq)
    ruri = URI if method == "REGISTER" else f"sip:0044207946{n:04d}@{PBX}"
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {ATTACKER}:5070;branch=z9hG4bK-{n}",
        f"From: <sip:{user}@{PBX}>;tag={tag}",
        f"To: <sip:{user}@{PBX}>",
        f"Call-ID: c{n}@{ATTACKER}",
        f"CSeq: 2 {method}",
        "User-Agent: friendly-scanner",
    ]
    if auth is None and password is not None:
        opts = {"nonce": f"nonce{n}", **digest}
        auth = build_credentials(user, REALM, password, method, ruri, **opts)
    if auth is not None:
        lines.append(f"{header}: {auth}")
    lines += ["Content-Length: 0", "", ""]
    ts = float(n) if ts is None else ts
    return Record.from_bytes("\r\n".join(lines).encode(), ts, "udp", ATTACKER, 5070, PBX, 5060)


def svcrack_auth(user: str, password: str, nonce: str = "n1") -> str:
    """svcrack's answer to a challenge without qop: the RFC 2069 response, yet "qop=auth"."""
    response = compute_response(user, REALM, password, "REGISTER", URI, nonce)
    return (
        f'Digest username="{user}",realm="{REALM}",nonce="{nonce}",uri="{URI}",'
        f'algorithm=MD5,qop=auth,response="{response}"'
    )


def answer(req: Record, status: int) -> Record:
    """The PBX's response to a request record."""
    h = req.msg.headers
    raw = (
        f"SIP/2.0 {status} X\r\nVia: {h['via'][0]}\r\nFrom: {h['from'][0]}\r\n"
        f"To: {h['to'][0]};tag=pbx\r\nCall-ID: {h['call-id'][0]}\r\nCSeq: {h['cseq'][0]}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    return Record.from_bytes(raw, req.ts + 0.01, "udp", PBX, 5060, ATTACKER, 5070)


def run(records: list[Record], recovery: PasswordRecovery) -> PasswordRecovery:
    """The live/offline pipeline order: labeller first, then the password recovery."""
    labeller = StageLabeler()
    for r in records:
        labeller.label(r)
        recovery(r)
    return recovery


# --- svcrack's From tag ------------------------------------------------------------------------
def test_svcrack_tag_password_confirmed_by_one_hash(Recovery: type) -> None:
    req = register("101", None, tag=sv_tag("101:1234"), auth=svcrack_auth("101", "1234"))
    rec = run([req], Recovery())
    assert req.password == "1234" and req.tool == "sipvicious"
    assert (rec.stats.from_tag, rec.stats.from_digest, rec.stats.tried) == (1, 0, 1)


def test_svcrack_password_outside_the_list_comes_from_the_tag(Recovery: type) -> None:
    req = register("101", "Tr0ub4dor&3", tag=sv_tag("101:Tr0ub4dor&3"), qop="auth", cnonce="c1")
    run([req], Recovery())
    assert req.password == "Tr0ub4dor&3"


def test_a_tag_the_digest_contradicts_is_not_believed(Recovery: type) -> None:
    req = register("101", "secret", tag=sv_tag("101:letmein"))
    rec = run([req], Recovery())
    assert req.password == "secret"  # found in the list instead
    assert (rec.stats.from_tag, rec.stats.from_digest) == (0, 1)
    forged = register("101", "n0t-in-any-list", tag=sv_tag("101:1234"))
    run([forged], Recovery())
    assert forged.password == ""


def test_request_without_credentials_tried_no_password(Recovery: type) -> None:
    req = register("101", None, tag=sv_tag("101:1234"))
    rec = run([req], Recovery())
    assert req.password == "" and rec.stats.requests == 0


# --- digest responses against the candidates ---------------------------------------------------
@pytest.mark.parametrize(
    "digest",
    [
        {},  # RFC 2069
        {"qop": "auth", "cnonce": "0a4f113b", "nc": "00000001"},  # RFC 2617
        {"qop": "auth", "cnonce": "0a4f113b", "nc": "00000001", "algorithm": "SHA-256"},
        {"qop": "auth", "cnonce": "0a4f113b", "nc": "00000002", "algorithm": "SHA-512-256"},
        {"qop": "auth", "cnonce": "0a4f113b", "nc": "00000001", "algorithm": "MD5-sess"},
        {"algorithm": "SHA-256-sess"},
        {"qop": "auth-int", "cnonce": "77", "nc": "00000001"},
    ],
)
def test_digest_forms_and_algorithms(digest: dict[str, str], Recovery: type) -> None:
    req = register("2001", "changeme", **digest)
    run([req], Recovery())
    assert req.password == "changeme"
    cred = req.msg.credentials
    assert cred is not None and verify(cred, "REGISTER", "changeme", req.msg.body)


def test_proxy_authorization_of_an_invite(Recovery: type) -> None:
    req = register("101", "admin", header="Proxy-Authorization", method="INVITE")
    run([req], Recovery())
    assert req.password == "admin" and req.stage == "TF"


def test_candidate_order_configured_then_username_then_list(Recovery: type) -> None:
    mine = register("alice", "Blue-Horse-7")
    run([mine], Recovery(candidates=["x", "Blue-Horse-7"]))
    assert mine.password == "Blue-Horse-7"
    for variant in ("alice", "alicealice", "alice123", "alice1234", "ecila"):
        req = register("alice", variant)
        run([req], Recovery())
        assert req.password == variant
    assert pw.user_variants("") == [] and pw.user_variants("x" * 65) == []


def test_unknown_password_stays_empty_and_is_counted(Recovery: type) -> None:
    req = register("zed", "correct horse battery staple")
    rec = run([req], Recovery())
    assert req.password == ""
    assert rec.stats.exhausted == 1 and rec.stats.recovered == 0
    assert rec.stats.tried == len(builtin_words()) + 5  # the whole list and the variants


def test_max_candidates_bounds_the_work(Recovery: type) -> None:
    words = builtin_words()
    late = words[50]
    rec = run([register("101", late)], Recovery(max_candidates=10))
    assert rec.stats.tried == 10 and rec.stats.exhausted == 1
    tagged = register("101", late, tag=sv_tag("101:nope"))
    rec = run([tagged], Recovery(max_candidates=10))
    assert rec.stats.tried == 10 and tagged.password == ""  # the tag's claim counts as one
    rec = run([register("101", late)], Recovery(max_candidates=60))
    assert rec.stats.from_digest == 1


def test_responses_that_cannot_be_checked(Recovery: type) -> None:
    cases = [
        register("101", None, auth=f'Digest username="101", realm="{REALM}", nonce="n", '
                 f'uri="{URI}", response="00112233445566778899aabbccddeeff", algorithm=AKAv1-MD5'),
        register("101", None, auth=f'Digest username="101", realm="{REALM}", nonce="n", '
                 f'uri="{URI}", response="not hex at all, not hex at all!!"'),
        register("101", None, auth=f'Digest username="101", realm="{REALM}", nonce="n", '
                 f'uri="{URI}", response="00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff"'),
        register("101", None, auth=f'Digest username="101", realm="{REALM}", nonce="n", uri="{URI}"'),
    ]  # fmt: skip
    rec = run(cases, Recovery())
    assert [r.password for r in cases] == ["", "", "", ""]
    assert rec.stats.unverifiable == 4 and rec.stats.tried == 0
    # nothing contradicts svcrack's own record of what it sent: taken, for the same user only
    auth = f'Digest username="101", realm="{REALM}", nonce="n", uri="{URI}", algorithm=AKAv1-MD5'
    same = register("101", None, auth=auth + ', response="ab"', tag=sv_tag("101:5555"))
    other = register("102", None, auth=auth + ', response="ab"', tag=sv_tag("102:5555"))
    run([same, other], Recovery())
    assert (same.password, other.password) == ("5555", "")


def test_response_carries_the_password_of_its_request(Recovery: type) -> None:
    tries = [register("101", p) for p in ("0000", "qwerty", "unguessable-one")]
    records = []
    for req, status in zip(tries, (403, 200, 403), strict=True):
        records += [req, answer(req, status)]
    plain = register("101", None)
    records += [plain, answer(plain, 401)]
    rec = run(records, Recovery())
    assert [(r.msg.status, r.password) for r in records] == [
        (0, "0000"), (403, "0000"), (0, "qwerty"), (200, "qwerty"),
        (0, ""), (403, ""), (0, ""), (401, ""),
    ]  # fmt: skip
    assert rec.stats.responses == 2


# --- bounded state, same results ---------------------------------------------------------------
def test_ha1_cache_is_bounded_and_changes_no_result(Recovery: type) -> None:
    users = [f"{100 + i}" for i in range(30)]
    pwds = ["1234", "0000", "nothing-like-it", "voip", "101"]
    records = [register(u, p) for u in users for p in pwds]
    big = run(records, Recovery())
    first = [r.password for r in records]
    for r in records:
        r.password = ""
    small = run(records, Recovery(ha1_cache=1))
    assert [r.password for r in records] == first
    assert big.stats.ha1_evictions == 0 and small.stats.ha1_evictions > 0
    assert small.stats.tried == big.stats.tried
    assert small._ha1_count <= max(small.ha1_cache, len(builtin_words()) + 5)


def test_request_table_is_bounded(Recovery: type) -> None:
    rec = Recovery(max_requests=2)
    tries = [register("101", "1234") for _ in range(3)]
    records = [*tries, *(answer(t, 403) for t in tries)]
    run(records, rec)
    assert [r.password for r in records[3:]] == ["", "1234", "1234"]  # the oldest was dropped
    assert rec.stats.request_evictions == 1


# --- semantics are verify()'s ------------------------------------------------------------------
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters='"\\\r\n'), max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    user=_TEXT.filter(bool),
    realm=_TEXT,
    password=st.sampled_from(builtin_words()[:40]) | _TEXT,
    algorithm=st.sampled_from(["MD5", "SHA-256", "MD5-sess", "SHA-512-256-sess"]),
    qop=st.sampled_from(["", "auth", "auth-int"]),
    cnonce=st.sampled_from(["", "ab12"]),
)
def test_what_is_found_is_what_verify_accepts(
    user: str, realm: str, password: str, algorithm: str, qop: str, cnonce: str, Recovery: type
) -> None:
    value = build_credentials(
        user, realm, password, "REGISTER", URI, "nonce", algorithm=algorithm, qop=qop,
        cnonce=cnonce, body=b"v=0\r\n",
    )  # fmt: skip
    cred = parse_digest(value)
    assert cred is not None
    rec = Recovery(candidates=["zz-configured"])
    found = rec.recover(cred, "REGISTER", b"v=0\r\n")
    in_reach = password in rec._head or password in rec._tail or password in pw.user_variants(user)
    if found:
        assert verify(cred, "REGISTER", found, b"v=0\r\n")
    if in_reach and verify(cred, "REGISTER", password, b"v=0\r\n"):
        assert found  # a candidate verify() accepts is never missed


# --- word lists --------------------------------------------------------------------------------
def test_builtin_list(Recovery: type) -> None:
    words = builtin_words()
    assert 300 <= len(words) <= 1000
    assert len(set(words)) == len(words)
    assert not [w for w in words if w.startswith("#") or w != w.strip() or not w]
    assert words[:4] == ["1234", "12345", "123456", "password"]


def test_user_word_list_file(tmp_path: Path, Recovery: type) -> None:
    path = tmp_path / "words.txt"
    path.write_bytes(b"# mine\n\nhunter2\r\ncaf\xe9\n  spaced  \n")
    words = pw.load_wordlist(path)
    assert words == ["hunter2", "caf\udce9", "  spaced  "]
    # a Latin-1 password: hashed as the bytes in the file, like the attacker's tool did
    cred = parse_digest(
        build_credentials("101", REALM, "caf\udce9", "REGISTER", URI, "n", qop="auth", cnonce="c")
    )
    assert cred is not None
    assert Recovery(candidates=words, wordlist=[]).recover(cred, "REGISTER") == "caf\udce9"
    with pytest.raises(OSError):
        pw.load_wordlist(tmp_path / "missing.txt")


def test_candidates_the_digest_cannot_hash_are_dropped(Recovery: type) -> None:
    rec = Recovery(candidates=["\ud800", "ok", "ok"], wordlist=["x\udfff", "ok", "y"])
    assert (rec._head, rec._tail) == (("ok",), ("y",))


def test_analyze_defaults(Recovery: type) -> None:
    rec = analyze_recovery(["extra1", "extra2"], native=native(Recovery))
    assert type(rec) is Recovery
    assert rec._head == ("extra1", "extra2")
    assert rec._tail == tuple(builtin_words()[: pw.ANALYZE_WORDS])
    assert rec.max_candidates == 1 + 2 + 5 + pw.ANALYZE_WORDS
    assert analyze_recovery(native=native(Recovery), workers=4).max_requests < rec.max_requests


# --- the benchmark capture ---------------------------------------------------------------------
BENCH = Path(__file__).resolve().parents[3] / "bench"


def test_generated_attack_capture_passwords_are_recovered(tmp_path: Path, Recovery: type) -> None:
    """bench/gen_capture.py's svcrack tries carry real MD5 digests: every one that svcrack's tag
    names, and every one whose password is in the list, comes back."""
    from sipwatch.capture.api import read_captures
    from sipwatch.capture.stats import CaptureStats

    sys.path.insert(0, str(BENCH))
    try:
        import gen_capture
    finally:
        sys.path.remove(str(BENCH))
    cap = tmp_path / "mix.pcap"
    made = subprocess.run(
        [sys.executable, str(BENCH / "gen_capture.py"), "--packets", "20000", "--seed", "3",
         "--out", str(cap)],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr.decode()
    records = list(read_captures([str(cap)], stats=CaptureStats(), make_record=Record.from_bytes))
    rec = run(records, analyze_recovery(native=native(Recovery)))
    listed = set(builtin_words()[: pw.ANALYZE_WORDS])
    tagged = in_list = 0
    for r in records:
        msg = r.msg
        if not msg.is_request or msg.credentials is None:
            continue
        cred = msg.credentials
        claim = r.tool_data.partition(":")[2] if r.tool == "sipvicious" else ""
        if claim and verify(cred, msg.method, claim):
            tagged += 1
            assert r.password == claim
        tried = [p for p in gen_capture.PASSWORDS if verify(cred, msg.method, p)]
        if tried and tried[0] in listed:
            in_list += 1
            assert r.password == tried[0]
        if r.password:
            assert verify(cred, msg.method, r.password)
    assert tagged > 100 and in_list > 100
    assert set(gen_capture.PASSWORDS) <= listed
    assert rec.stats.recovered == rec.stats.from_tag + rec.stats.from_digest > tagged


# --- sipwatch analyze --------------------------------------------------------------------------
def test_analyze_stores_passwords_and_takes_a_word_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, Recovery: type
) -> None:
    real = analyze.analyze_recovery
    made: list[type] = []

    def recovery(*a, **k) -> PasswordRecovery:
        rec = real(*a, **k, native=native(Recovery))
        made.append(type(rec))
        return rec

    monkeypatch.setattr(analyze, "analyze_recovery", recovery)
    packets = []
    for i, password in enumerate(["qwerty", "Zebra-42", "none-of-these"]):
        ruri = "sip:192.0.2.1"
        auth = build_credentials("101", REALM, password, "REGISTER", ruri, f"n{i}", qop="auth",
                                 cnonce="c0ffee")  # fmt: skip
        reg = pg.sip_request("REGISTER", ruri, call_id=f"r{i}", cseq=2,
                             extra=f"Authorization: {auth}\r\n")  # fmt: skip
        packets.append(
            (1_700_000_000.0 + i, pg.ether_of(pg.udp_packet(ATTACKER, PBX, 5060, 5060, reg)))
        )
    cap = tmp_path / "tries.pcap"
    cap.write_bytes(pg.pcap(packets))
    words = tmp_path / "words.txt"
    words.write_text("# our own\nZebra-42\n")
    db = tmp_path / "t.sqlite"
    result = run_analyze([str(cap)], str(db), workers=1, wordlist=str(words))
    result.store.close()
    with sqlite3.connect(db) as conn:
        got = conn.execute("SELECT call_id, password FROM messages ORDER BY ts").fetchall()
    assert got == [("r0", "qwerty"), ("r1", "Zebra-42"), ("r2", "")]
    assert made and set(made) == {Recovery}
    with pytest.raises(AnalyzeError, match="cannot read word list"):
        run_analyze([str(cap)], str(db), wordlist=str(tmp_path / "missing.txt"))
