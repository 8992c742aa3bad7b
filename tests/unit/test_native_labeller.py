"""The C stage labeller (sipwatch._native.Labeller) against the Python StageLabeler.

StageLabeler is the definition. The same records (each message parsed twice, so the two
labellers get equal but separate Records) go through both, in order; every label field must
be equal on every record and the stats equal at the end. Inputs: the public captures, a
generated attack capture, the analyzer corpus (real tools, when they can run here) and
hypothesis-made sequences with few sources and users, tiny tables and crafted values.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipwatch.capture.api import read_captures
from sipwatch.detect.fingerprints import SVCRACK_FIXED_TAG
from sipwatch.detect.stages import LabelerConfig, LabelerStats, StageLabeler
from sipwatch.native import part
from sipwatch.record import Record
from sipwatch.sip.numbers import NumberClassifier

Labeller = part("Labeller")
if Labeller is None:
    pytest.skip("sipwatch._native has no Labeller (not built)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT.parent / "shared" / "data" / "pcaps"
FIELDS = (
    "stage",
    "tool",
    "tool_data",
    "fuzz",
    "number",
    "number_type",
    "number_country",
    "request_id",
)
TIGHT = {"ext_scan_users": 3, "idle_reset_s": 60.0, "max_sources": 16, "max_requests": 32}


def labels(r: Record) -> tuple:
    return tuple((type(v), v) for v in (getattr(r, f) for f in FIELDS))


def differential(
    make: Callable[[], Iterable[Record]], config: LabelerConfig | None = None
) -> tuple[LabelerStats, int]:
    """Label make()'s records with both labellers; assert equal labels and stats."""
    py, c = StageLabeler(config), Labeller(config)
    n = 0
    for a, b in zip(make(), make(), strict=True):
        assert a.raw == b.raw
        py.label(a)
        assert c.label(b) is b
        assert labels(a) == labels(b), (n, a.raw[:400])
        n += 1
    assert c.stats == py.stats
    return py.stats, n


def pcap_files() -> list[Path]:
    return sorted(PCAPS.rglob("*.pcap*")) if PCAPS.is_dir() else []


# --- captures ---------------------------------------------------------------------------------
@pytest.mark.parametrize("pcap", pcap_files(), ids=lambda p: p.name)
@pytest.mark.parametrize("config", [None, TIGHT, {"max_sources": 1, "max_requests": 1}])
def test_public_captures(pcap: Path, config: dict | None) -> None:
    cfg = LabelerConfig(**config) if config else None
    differential(lambda: read_captures([str(pcap)]), cfg)


def test_public_captures_merged() -> None:
    if not PCAPS.is_dir():
        pytest.skip(f"no public captures at {PCAPS}")
    stats, n = differential(lambda: read_captures([str(PCAPS)]), LabelerConfig(**TIGHT))
    assert n > 100 and stats.responses_matched > 0


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "attack-50k.pcap"
    cmd = [sys.executable, str(ROOT / "bench" / "gen_capture.py"), "--packets", "50000"]
    subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True, timeout=120)
    return out


def test_generated_capture(generated: Path) -> None:
    stats, n = differential(lambda: read_captures([str(generated)]))
    assert n == 50000
    assert all(stats.labelled.values()) and stats.tools and stats.responses_matched


def test_generated_capture_tight_tables(generated: Path) -> None:
    # max_requests 1: an INVITE's second key evicts its first, so its responses are inferred
    cfg = LabelerConfig(**{**TIGHT, "max_requests": 1}, default_region="DE")
    stats, _ = differential(lambda: read_captures([str(generated)]), cfg)
    assert stats.source_evictions > 0 and stats.request_evictions > 0
    assert stats.responses_inferred > 0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(ROOT / "bench"))
    from make_corpus import make_corpus, missing_tools

    missing = missing_tools()
    if missing:
        pytest.skip(f"the analyzer corpus needs {', '.join(missing)}")
    if os.geteuid() != 0:
        pytest.skip("the analyzer corpus needs root (tcpdump on lo)")
    return make_corpus(tmp_path_factory.mktemp("corpus"))[0]


@pytest.mark.tools
@pytest.mark.parametrize("region", [None, "NL"])
def test_analyzer_corpus(corpus: Path, region: str | None) -> None:
    stats, _ = differential(
        lambda: read_captures([str(corpus)]), LabelerConfig(default_region=region)
    )
    assert all(stats.labelled.values()) and stats.fuzz


# --- hypothesis: few sources and users, tiny tables -------------------------------------------
SERVER = "198.51.100.1"
SOURCES = ("203.0.113.7", "203.0.113.8", "2001:db8::7")


def sv(data: bytes, rnd: bytes = b"4242") -> str:
    return (data + b"\x01" + rnd).hex()


USERS = (
    "100", "101", "102", "103", "104", "alice", "*97", "7", "0088216123456", "+4930123456",
    "00442079460000", "900972592123456", "0900123456", "07400123456", "%2B88216123456",
    "+499001234567", "sipvicious", "\u00fcn\u00ef", "",
)  # fmt: skip
TAGS = (
    "abc123", SVCRACK_FIXED_TAG, sv(b"101"), sv(b"101:pw"), sv(b"c633640113c4"),
    sv(b"c633640113c4").upper(), sv("\u00fc:x".encode()), sv(b"\xff\xfe"), sv(b"a\x7fb"),
    sv("\u00a0x".encode()), sv(b"101", b"12345678901"), sv(b"101", b"12a"), sv(b""),
    sv(b"101")[:-1], "", "zz" * 4, sv(b"x" * 300),
)  # fmt: skip
UAS = (
    b"", b"friendly-scanner", b"sipcli/v1.8", b"Asterisk PBX", b"SIPVicious 0.3", b"pplsip",
    b"Zoiper \xc3\xbc", b"x" * 1500 + b" sipcli", b"VaxSIPUserAgent/3.1", b"smap\xff",
)  # fmt: skip
DISPLAYS = (
    b"", b"sipvicious", b'"SIPVicious"', b"\x1c sipvicious\t", b"\xc2\xa0sipvicious",
    b"\xa0SIPVICIOUS", b"Alice \xc3\xa9", b'" sipvicious "',
)  # fmt: skip
METHODS = ("OPTIONS", "REGISTER", "INVITE", "ACK", "CANCEL", "BYE", "invite", "Options")
CSEQ_METHODS = (b"", b"INVITE", b"invite", b"REGISTER", b"OPTIONS", b"ASS", b"A\xdf", b"\xb5X")
CSEQ_NUMS = (
    b"1", b"1", b"1", b"1", b"1", b"2", b"7", b"007", b"2147483648", b"9223372036854775807", b"9223372036854775808",
    b"18446744073709551621", b"-5", b"-0", b"-9223372036854775809",
    b"123456789012345678901234567890123456789012345", b"x",
)  # fmt: skip
CALL_IDS = (b"c1", b"c1", b"c1", b"c2", b"c3", b"c\xe9", b"")
BRANCHES = (b"z9hG4bK-1", b"z9hG4bK-2", b"")
# seconds between messages: idle_reset_s is 60, so exactly 60 (and back and forth) matters
GAPS = (0.0, 0.0, 0.0, 0.25, 60.0, 61.0, -60.0, 7200.0)

requests = st.fixed_dictionaries(
    {
        "src": st.sampled_from(SOURCES),
        "method": st.sampled_from(METHODS),
        "user": st.sampled_from(USERS),
        "to_user": st.sampled_from((None, *USERS)),
        "tag": st.sampled_from(TAGS),
        "ua": st.sampled_from(UAS),
        "display": st.sampled_from(DISPLAYS),
        "auth": st.booleans(),
        "call_id": st.sampled_from(CALL_IDS),
        "cseq": st.sampled_from(CSEQ_NUMS),
        "cseq_method": st.sampled_from((None,) * 8 + CSEQ_METHODS),
        "branch": st.sampled_from(BRANCHES),
    }
)
steps = st.one_of(
    st.tuples(st.just("req"), requests),
    st.tuples(st.just("req"), requests),
    # a response to the k-th latest request: back to its source, or (stray) the other way
    st.tuples(
        st.just("resp"),
        st.fixed_dictionaries(
            {
                "k": st.integers(0, 4),
                "code": st.sampled_from((100, 200, 401, 403, 404, 407, 486)),
                "stray": st.sampled_from((False, False, False, True)),
                "server": st.sampled_from((b"", b"friendly-scanner")),
                # the CSeq method as the server spells it ("ASS" answers "A\xdf": same upper)
                "cseq_method": st.sampled_from((None,) * 16 + CSEQ_METHODS),
            }
        ),
    ),
    # the ACK or CANCEL of the k-th latest request (its source, Call-ID and CSeq number), or
    # a retransmission of it
    st.tuples(
        st.just("again"),
        st.tuples(
            st.integers(0, 4),
            st.sampled_from(("ACK", "CANCEL", "retransmit")),
            st.sampled_from(BRANCHES),
        ),
    ),
    # a response whose request was never seen
    st.tuples(st.just("orphan"), requests),
    st.tuples(st.just("junk"), st.binary(max_size=80)),
)
configs = st.builds(
    LabelerConfig,
    ext_scan_users=st.integers(1, 4),
    idle_reset_s=st.just(60.0),
    max_sources=st.sampled_from((0, 1, 2, 3, 64)),
    max_requests=st.sampled_from((0, 1, 2, 3, 4, 6, 64)),
    default_region=st.sampled_from((None, "DE", "GB")),
)


def request_head(d: dict) -> tuple[bytes, dict[str, bytes]]:
    """Start line and the headers a response repeats."""
    user, to_user = d["user"], d["user"] if d["to_user"] is None else d["to_user"]
    ruri = f"sip:{user}@{SERVER}" if user else f"sip:{SERVER}"
    branch = b";branch=" + d["branch"] if d["branch"] else b""
    tag = d["tag"].encode()
    display = d["display"] + b" " if d["display"] else b""
    cseq_method = d["method"].encode() if d["cseq_method"] is None else d["cseq_method"]
    h = {
        "Via": b"SIP/2.0/UDP " + d["src"].encode() + b":5060" + branch + b";rport",
        "From": display + f"<sip:{to_user or 'x'}@{SERVER}>".encode() + b";tag=" + tag,
        "To": f"<sip:{to_user}@{SERVER}>".encode(),
        "Call-ID": d["call_id"],
        "CSeq": d["cseq"] + b" " + cseq_method,
    }
    return f"{d['method']} {ruri} SIP/2.0".encode(), h


def message(first: bytes, headers: dict[str, bytes], extra: list[bytes]) -> bytes:
    lines = [first]
    lines += [k.encode() + b": " + v for k, v in headers.items() if v or k != "Call-ID"]
    return b"\r\n".join([*lines, *extra, b"Content-Length: 0", b"", b""])


def build(
    script: list[tuple[str, object]], gaps: list[float] | None = None
) -> list[tuple[bytes, float, str, str]]:
    """(raw, ts, src, dst) for each step; the time moves on by gaps[i] before step i."""
    out: list[tuple[bytes, float, str, str]] = []
    sent: list[tuple[dict, dict[str, bytes]]] = []
    ts = 1_000_000.0
    for i, (kind, d) in enumerate(script):
        ts += gaps[i % len(gaps)] if gaps else 0.25
        if kind == "req":
            assert isinstance(d, dict)
            first, h = request_head(d)
            extra = [b"Max-Forwards: 70"]
            if d["ua"]:
                extra.append(b"User-Agent: " + d["ua"])
            if d["auth"]:
                extra.append(b'Authorization: Digest username="101", realm="r", nonce="n"')
            out.append((message(first, h, extra), ts, d["src"], SERVER))
            sent.append((d, h))
        elif kind == "resp" and sent:
            assert isinstance(d, dict)
            req, h = sent[-1 - d["k"] % len(sent)]
            h = {**h, "To": h["To"] + b";tag=srv"}
            if d["cseq_method"] is not None:
                h["CSeq"] = h["CSeq"].split(b" ")[0] + b" " + d["cseq_method"]
            extra = [b"Server: " + d["server"]] if d["server"] else []
            first = f"SIP/2.0 {d['code']} Whatever".encode()
            src, dst = (req["src"], SERVER) if d["stray"] else (SERVER, req["src"])
            out.append((message(first, h, extra), ts, src, dst))
        elif kind == "again" and sent:
            assert isinstance(d, tuple)
            k, what, branch = d
            req, _ = sent[-1 - k % len(sent)]
            if what != "retransmit":
                cseq = req["cseq"]
                req = {**req, "method": what, "cseq_method": None, "branch": branch}
                req["cseq"] = cseq
            first, h = request_head(req)
            out.append((message(first, h, []), ts, req["src"], SERVER))
            sent.append((req, h))
        elif kind == "orphan":
            assert isinstance(d, dict)
            _, h = request_head(d)
            out.append((message(b"SIP/2.0 401 Unauthorized", h, []), ts, SERVER, d["src"]))
        elif kind == "junk":
            assert isinstance(d, bytes)
            out.append((d, ts, SOURCES[i % len(SOURCES)], SERVER))
    return out


def records(msgs: list[tuple[bytes, float, str, str]]) -> list[Record]:
    return [Record.from_bytes(raw, ts, "udp", src, 5060, dst, 5060) for raw, ts, src, dst in msgs]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(steps, min_size=15, max_size=60),
    st.lists(st.sampled_from(GAPS), min_size=1, max_size=60),
    configs,
    st.booleans(),
)
def test_sequences(script: list, gaps: list[float], config: LabelerConfig, twice: bool) -> None:
    msgs = build(script, gaps)
    py, c = StageLabeler(config), Labeller(config)
    for i, (a, b) in enumerate(zip(records(msgs), records(msgs), strict=True)):
        # twice: label each record again (retransmission path, labels already set)
        for _ in range(2 if twice else 1):
            py.label(a)
            c.label(b)
            assert labels(a) == labels(b), (i, a.raw)
    assert c.stats == py.stats


# Records built by hand (not by the parser) may hold any str: methods whose Unicode upper() is
# an ASCII method name ("ınvıte" -> "INVITE", "optionſ" -> "OPTIONS", "ß" -> "SS"), any
# error code and any list of anomaly codes (fuzz unless every one is benign).
UNICODE_METHODS = (
    "\u0131nv\u0131te", "opt\u0131ons", "optionſ", "reg\u0131ster", "canceL", "ack",
    "\u00dfoptions", "A\u00df", "ASS", "\ufb00", "FF", "INVITE", "\u0130NVITE",
)  # fmt: skip
ANOMALIES = (
    ["content_length_missing"], ["multiple_messages", "content_length_missing"],
    ["content_length_missing", "long_via"], ["multiple_messages", "cseq_too_large"],
    ["long_via"], [],
)  # fmt: skip
ERRORS = ("keepalive", "empty", "not_sip", "bad_status", "")
overrides = st.fixed_dictionaries(
    {
        "method": st.sampled_from((None, *UNICODE_METHODS)),
        "cseq_method": st.sampled_from((None, *UNICODE_METHODS)),
        "anomalies": st.sampled_from((None, None, *ANOMALIES)),
        "error": st.sampled_from((None, None, None, *ERRORS)),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(steps, min_size=10, max_size=40),
    st.lists(overrides, min_size=1, max_size=30),
    configs,
)
def test_hand_built_records(script: list, changes: list[dict], config: LabelerConfig) -> None:
    msgs = build(script)
    both = records(msgs), records(msgs)
    for recs in both:
        for i, r in enumerate(recs):
            ch = changes[i % len(changes)]
            if ch["method"] is not None and r.msg.is_request:
                r.msg.method = ch["method"]
            if ch["cseq_method"] is not None:
                r.msg.cseq_method = ch["cseq_method"]
            if ch["anomalies"] is not None:
                r.msg.anomalies = list(ch["anomalies"])
            if ch["error"] is not None:
                r.msg.error = ch["error"]
    py, c = StageLabeler(config), Labeller(config)
    for i, (a, b) in enumerate(zip(*both, strict=True)):
        py.label(a)
        c.label(b)
        assert labels(a) == labels(b), (i, a.msg.method, a.msg.cseq_method, a.raw)
    assert c.stats == py.stats


# --- the Python-facing type -------------------------------------------------------------------
def test_drop_in_attributes() -> None:
    lab = Labeller()
    assert isinstance(lab.config, LabelerConfig) and isinstance(lab.numbers, NumberClassifier)
    assert lab.stats == StageLabeler().stats and isinstance(lab.stats, LabelerStats)
    cfg = LabelerConfig(ext_scan_users=2, default_region="GB")
    lab = Labeller(cfg)
    assert lab.config is cfg and lab.numbers.default_region == "GB"
    nums = NumberClassifier("DE")
    assert Labeller(numbers=nums).numbers is nums
    with pytest.raises(TypeError):
        Labeller(LabelerConfig(max_sources="many"))  # type: ignore[arg-type]


def _sample() -> list[Record]:
    msgs = build(
        [
            ("req", {**_REQ, "method": "OPTIONS", "user": u, "call_id": b"o" + u.encode()})
            for u in ("100", "101", "102")
        ]
        + [("req", {**_REQ, "user": "0088216123456"}), ("resp", {**_RESP, "k": 0})]
    )
    return records(msgs)


_REQ = {
    "src": SOURCES[0], "method": "INVITE", "user": "100", "to_user": None, "tag": "abc",
    "ua": b"sipcli/1", "display": b"", "auth": False, "call_id": b"c1", "cseq": b"1",
    "cseq_method": None, "branch": b"z9hG4bK-1",
}  # fmt: skip
_RESP = {"k": 0, "code": 407, "stray": False, "server": b"", "cseq_method": None}


def test_label_all_is_lazy_and_in_order() -> None:
    recs, ref = _sample(), _sample()
    lab = Labeller(LabelerConfig(ext_scan_users=2))
    it = lab.label_all(recs)
    assert recs[0].stage == ""  # nothing labelled before the first next()
    assert next(it) is recs[0] and recs[0].stage == "SS" and recs[1].stage == ""
    assert list(it) == recs[1:]
    py = StageLabeler(LabelerConfig(ext_scan_users=2))
    assert [labels(r) for r in py.label_all(ref)] == [labels(r) for r in recs]
    assert lab.stats == py.stats and recs[-1].request_id == recs[-2].id


def test_numbers_come_from_the_classifier() -> None:
    class Counting(NumberClassifier):
        calls: list[str]

        def classify(self, user: str):  # type: ignore[no-untyped-def]
            self.calls.append(user)
            return super().classify(user)

    got = []
    for cls in (StageLabeler, Labeller):
        nums = Counting()
        nums.calls = []
        recs = cls(numbers=nums).label_all(_sample())
        got.append(([labels(r) for r in recs], nums.calls))
    assert got[0] == got[1] and got[0][1] == ["0088216123456"]


def test_a_foreign_stage_raises_like_python() -> None:
    """stats.labelled[stage] += 1 on a Record whose stage is not a stage: KeyError, both."""
    out = []
    for cls in (StageLabeler, Labeller):
        # a response to an unseen BYE: no stage is written, the record keeps its own
        rec = records(build([("orphan", {**_REQ, "method": "BYE"})]))[0]
        rec.stage = "XX"
        lab = cls()
        with pytest.raises(KeyError, match="XX"):
            lab.label(rec)
        after = lab.label(records(build([("req", _REQ)]))[0])
        out.append((labels(rec), lab.stats, labels(after)))
    assert out[0] == out[1]


def test_sw_label_entry_gives_the_same_stats(generated: Path) -> None:
    """_time_sw_label runs sw_label on views built from the records (the bulk path's entry)."""
    recs = list(read_captures([str(generated)]))
    n, seconds = (c := Labeller())._time_sw_label(recs)
    assert n == len(recs) and seconds > 0
    py = StageLabeler()
    for r in recs:
        py.label(r)
    assert c.stats == py.stats


def test_label_from_inside_label_is_refused() -> None:
    """A classifier that labels with the same labeller: refused (its tables are in use)."""

    class Reentrant(NumberClassifier):
        def classify(self, user: str):  # type: ignore[no-untyped-def]
            lab.label(records(build([("req", {**_REQ, "method": "OPTIONS"})]))[0])
            return super().classify(user)

    lab = Labeller(numbers=Reentrant())
    with pytest.raises(RuntimeError, match="inside label"):
        lab.label(records(build([("req", _REQ)]))[0])
    assert lab.label(records(build([("req", {**_REQ, "method": "OPTIONS"})]))[0]).stage == "SS"
