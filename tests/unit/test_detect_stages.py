"""StageLabeler on hand-written message sequences: what a user sees in the stage column.

Every test runs against both labellers: the Python StageLabeler (the definition) and the C
sipwatch._native.Labeller (its mirror), through the `Labeler` fixture.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipwatch.detect.stages import LabelerConfig, StageLabeler
from sipwatch.native import part
from sipwatch.record import Record

NativeLabeller = part("Labeller")

ATTACKER = "203.0.113.7"
VICTIM = "198.51.100.1"
_seq = itertools.count(1)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(StageLabeler, id="python"),
        pytest.param(
            NativeLabeller,
            id="native",
            marks=pytest.mark.skipif(
                NativeLabeller is None, reason="sipwatch._native has no Labeller (not built)"
            ),
        ),
    ],
)
def Labeler(request: pytest.FixtureRequest) -> type[StageLabeler]:
    """The labeller class under test: StageLabeler, then the C Labeller."""
    return request.param


def sv_tag(data: str) -> str:
    return (data.encode() + b"\x01" + b"1234567").hex()


def request(
    method: str,
    user: str = "",
    *,
    to_user: str | None = None,
    src: str = ATTACKER,
    ts: float | None = None,
    ua: str = "",
    tag: str = "abc123",
    auth: bool = False,
    call_id: str | None = None,
    cseq: int = 1,
    branch: str | None = None,
) -> Record:
    """A request from src to VICTIM; returns the labelled-to-be Record."""
    n = next(_seq)
    ruri = f"sip:{user}@{VICTIM}" if user else f"sip:{VICTIM}"
    to_user = user if to_user is None else to_user
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {src}:5060;branch={branch or f'z9hG4bK-{n}'};rport",
        f"From: <sip:{to_user or 'x'}@{VICTIM}>;tag={tag}",
        f"To: <sip:{to_user}@{VICTIM}>",
        f"Call-ID: {call_id or f'call-{n}'}",
        f"CSeq: {cseq} {method}",
        "Max-Forwards: 70",
    ]
    if ua:
        lines.append(f"User-Agent: {ua}")
    if auth:
        lines.append(
            f'Authorization: Digest username="{to_user}", realm="r", nonce="n", '
            f'uri="{ruri}", response="00000000000000000000000000000000", algorithm=MD5'
        )
    raw = ("\r\n".join(lines + ["Content-Length: 0", "", ""])).encode()
    return Record.from_bytes(raw, float(n) if ts is None else ts, "udp", src, 5060, VICTIM, 5060)


def response(req: Record, code: int, *, src: str | None = None, dst: str | None = None) -> Record:
    """The answer to req, sent back from its destination (or src/dst when given)."""
    m = req.msg
    lines = [
        f"SIP/2.0 {code} Whatever",
        f"Via: {m.get('via')}",
        f"From: {m.get('from')}",
        f"To: {m.get('to')};tag=srv",
        f"Call-ID: {m.call_id}",
        f"CSeq: {m.get('cseq')}",
        "Content-Length: 0",
        "",
        "",
    ]
    raw = "\r\n".join(lines).encode()
    return Record.from_bytes(
        raw, req.ts + 0.01, "udp", src or req.dst, req.dport, dst or req.src, req.sport
    )


def labels(labeller: StageLabeler, *records: Record) -> list[str]:
    return [labeller.label(r).stage for r in records]


# --- requests -------------------------------------------------------------------------------
def test_options_probe_is_server_scan(Labeler: type[StageLabeler]) -> None:
    r = Labeler().label(request("OPTIONS", "100"))
    assert (r.stage, r.tool, r.fuzz, r.number) == ("SS", "", False, "")


def test_svmap_options_carry_tool_and_target(Labeler: type[StageLabeler]) -> None:
    # svmap's tag data: 198.51.100.1 port 5060 as hex
    tag = sv_tag("c633640113c4")
    r = Labeler().label(request("OPTIONS", "100", ua="friendly-scanner", tag=tag))
    assert (r.stage, r.tool, r.tool_data) == ("SS", "sipvicious", "198.51.100.1:5060")


def test_options_over_many_users_become_extension_scan(Labeler: type[StageLabeler]) -> None:
    lab = Labeler(LabelerConfig(ext_scan_users=5))
    got = labels(lab, *(request("OPTIONS", str(u)) for u in range(100, 107)))
    assert got == ["SS", "SS", "SS", "SS", "ES", "ES", "ES"]
    # the same user again and again is one target: still a server scan for another source
    other = [request("OPTIONS", "100", src="192.0.2.9") for _ in range(6)]
    assert labels(lab, *other) == ["SS"] * 6


def test_register_without_and_with_credentials(Labeler: type[StageLabeler]) -> None:
    lab = Labeler()
    probe = lab.label(request("REGISTER", "", to_user="101", tag=sv_tag("101"), ua="x"))
    assert (probe.stage, probe.tool, probe.tool_data) == ("ES", "sipvicious", "101")
    guess = lab.label(request("REGISTER", "", to_user="101", tag=sv_tag("101:1234"), auth=True))
    assert (guess.stage, guess.tool, guess.tool_data) == ("RHJ", "sipvicious", "101:1234")
    # svcrack's nonce fetch before each guess: no credentials, but its fixed From tag
    fetch = lab.label(request("REGISTER", "", to_user="101", tag="3206210844"))
    assert (fetch.stage, fetch.tool) == ("RHJ", "sipvicious")


def test_invite_to_chargeable_numbers_is_toll_fraud(Labeler: type[StageLabeler]) -> None:
    lab = Labeler()
    r = lab.label(request("INVITE", "0088216123456", auth=True))
    assert (r.stage, r.number, r.number_type, r.number_country) == (
        "TF",
        "+88216123456",
        "satellite/intl_network",
        "001",
    )
    r = lab.label(request("INVITE", "900972592123456"))
    assert (r.stage, r.number_type, r.number_country) == ("TF", "international", "IL")


def test_invite_national_numbers_need_the_region(Labeler: type[StageLabeler]) -> None:
    assert Labeler().label(request("INVITE", "07400123456")).stage == ""
    lab = Labeler(LabelerConfig(default_region="GB"))
    r = lab.label(request("INVITE", "07400123456"))
    assert (r.stage, r.number, r.number_type) == ("TF", "+447400123456", "mobile")
    assert lab.label(request("INVITE", "02079460000")).stage == ""  # domestic fixed line


def test_invites_to_many_extensions_without_credentials(Labeler: type[StageLabeler]) -> None:
    lab = Labeler()
    got = labels(lab, *(request("INVITE", str(u)) for u in range(200, 206)))
    assert got == ["", "", "", "", "ES", "ES"]
    r = lab.label(request("INVITE", "200"))
    assert (r.number, r.number_type) == ("200", "extension")


def test_invites_with_credentials_or_to_full_numbers_are_not_extension_scans(
    Labeler: type[StageLabeler],
) -> None:
    lab = Labeler()
    assert (
        labels(lab, *(request("INVITE", str(u), auth=True) for u in range(200, 210))) == [""] * 10
    )
    trunk = [request("INVITE", f"0301234567{d}", src="192.0.2.50") for d in range(10)]
    assert labels(lab, *trunk) == [""] * 10


def test_other_methods_are_unlabelled(Labeler: type[StageLabeler]) -> None:
    lab = Labeler()
    assert labels(lab, request("BYE", "100"), request("MESSAGE", "100")) == ["", ""]


def test_ack_and_cancel_follow_their_invite(Labeler: type[StageLabeler]) -> None:
    lab = Labeler()
    inv = lab.label(request("INVITE", "+88216123456", call_id="c1", cseq=7, ua="sipcli/v1.8"))
    ack = lab.label(request("ACK", "+88216123456", call_id="c1", cseq=7, branch="other"))
    cancel = lab.label(request("CANCEL", "+88216123456", call_id="c1", cseq=7))
    assert [inv.stage, ack.stage, cancel.stage] == ["TF", "TF", "TF"]
    assert ack.tool == "sipcli"
    assert lab.label(request("ACK", "100", call_id="c2", cseq=7)).stage == ""


# --- responses ------------------------------------------------------------------------------
def test_response_inherits_its_request(Labeler: type[StageLabeler]) -> None:
    lab = Labeler()
    req = lab.label(request("REGISTER", "", to_user="101", tag=sv_tag("101")))
    trying, challenge = response(req, 100), response(req, 401)
    for resp in (trying, challenge):
        lab.label(resp)
        assert (resp.stage, resp.request_id, resp.tool, resp.tool_data) == (
            "ES",
            req.id,
            "sipvicious",
            "101",
        )
    assert lab.stats.responses_matched == 2


def test_invite_response_carries_the_number(Labeler: type[StageLabeler]) -> None:
    lab = Labeler()
    req = lab.label(request("INVITE", "011442079460000"))
    resp = lab.label(response(req, 407))
    assert (resp.stage, resp.number, resp.number_type, resp.request_id) == (
        "TF",
        "+442079460000",
        "international",
        req.id,
    )


def test_response_must_come_back_the_other_way(Labeler: type[StageLabeler]) -> None:
    lab = Labeler()
    req = lab.label(request("REGISTER", "", to_user="101"))
    # same Call-ID/CSeq/branch but addressed to the server, not the client: not its answer
    stray = lab.label(response(req, 401, src=req.src, dst=req.dst))
    assert (stray.stage, stray.request_id) == ("", 0)


def test_unseen_requests_responses_are_inferred_conservatively(Labeler: type[StageLabeler]) -> None:
    lab = Labeler()
    unseen = [
        request("OPTIONS", "100"),
        request("INVITE", "+88216123456"),
        request("INVITE", "101"),
        request("REGISTER", "", to_user="101"),
        request("REGISTER", "", to_user="101", tag=sv_tag("101:pw")),
        request("REGISTER", "", to_user="102", tag=sv_tag("102")),
        request("REGISTER", "", to_user="101", tag="3206210844"),
    ]
    got = [lab.label(response(r, 401)) for r in unseen]
    assert [r.stage for r in got] == ["SS", "TF", "", "", "RHJ", "ES", "RHJ"]
    assert all(r.request_id == 0 for r in got)
    assert got[4].tool_data == "101:pw"
    assert got[6].tool == "sipvicious"
    assert lab.stats.responses_inferred == 7


# --- bounded, deterministic state -----------------------------------------------------------
def test_source_table_is_bounded_and_counts_evictions(Labeler: type[StageLabeler]) -> None:
    lab = Labeler(LabelerConfig(ext_scan_users=3, max_sources=2))
    a, b, c = "192.0.2.1", "192.0.2.2", "192.0.2.3"
    assert labels(lab, request("OPTIONS", "1", src=a), request("OPTIONS", "2", src=a)) == [
        "SS",
        "SS",
    ]
    lab.label(request("OPTIONS", "1", src=b))
    lab.label(request("OPTIONS", "1", src=c))  # evicts a, the least recently seen
    assert lab.stats.source_evictions == 1
    # a starts over: its third distinct user is only its first now
    assert lab.label(request("OPTIONS", "3", src=a)).stage == "SS"


def test_request_table_is_bounded(Labeler: type[StageLabeler]) -> None:
    lab = Labeler(LabelerConfig(max_requests=2))
    first = lab.label(request("REGISTER", "", to_user="101", auth=True))
    lab.label(request("REGISTER", "", to_user="102", auth=True))
    lab.label(request("REGISTER", "", to_user="103", auth=True))
    assert lab.stats.request_evictions == 1
    resp = lab.label(response(first, 403))
    assert (resp.stage, resp.request_id) == ("", 0)  # forgotten; no tag to infer from


def test_idle_source_starts_over(Labeler: type[StageLabeler]) -> None:
    lab = Labeler(LabelerConfig(ext_scan_users=3, idle_reset_s=60))
    burst = [request("OPTIONS", str(u), ts=1000.0 + u) for u in range(3)]
    assert labels(lab, *burst) == ["SS", "SS", "ES"]
    later = [request("OPTIONS", str(u), ts=2000.0 + u) for u in range(3, 5)]
    assert labels(lab, *later) == ["SS", "SS"]


def test_same_records_same_labels(Labeler: type[StageLabeler]) -> None:
    recs = [request("OPTIONS", str(u)) for u in range(8)]
    recs += [response(r, 200) for r in recs]
    first = [(r.stage, r.request_id) for r in map(Labeler().label, recs)]
    again = [(r.stage, r.request_id) for r in map(Labeler().label, recs)]
    assert first == again
    assert first[-1] == ("ES", recs[7].id)


# --- fuzz -----------------------------------------------------------------------------------
def _raw(data: bytes) -> Record:
    return Record.from_bytes(data, 1.0, "udp", ATTACKER, 5060, VICTIM, 5060)


def test_parse_errors_and_anomalies_are_fuzz(Labeler: type[StageLabeler]) -> None:
    lab = Labeler()
    assert lab.label(_raw(b"INVITE sip:x@y SIP/2.0 garbage\x00\xff")).fuzz
    no_via = b"OPTIONS sip:a@b SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\n"
    no_via += b"Call-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    r = lab.label(_raw(no_via))
    assert r.fuzz and r.stage == "SS"
    assert lab.stats.fuzz == 2


def test_clean_messages_and_keepalives_are_not_fuzz(Labeler: type[StageLabeler]) -> None:
    lab = Labeler()
    assert not lab.label(request("OPTIONS", "100")).fuzz
    assert not lab.label(_raw(b"\r\n\r\n")).fuzz


def test_tel_request_uri_is_a_dialled_number(Labeler: type[StageLabeler]) -> None:
    raw = (
        b"INVITE tel:+882-16-123456;phone-context=example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 203.0.113.7;branch=z9hG4bK-t\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <tel:+88216123456>\r\nCall-ID: t1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    r = Labeler().label(_raw(raw))
    assert (r.stage, r.number, r.number_type) == ("TF", "+88216123456", "satellite/intl_network")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_any_bytes_are_labelled_without_raising(
    Labeler: type[StageLabeler], data: bytes, as_response: bool
) -> None:
    lab = Labeler(LabelerConfig(max_sources=4, max_requests=4))
    prefix = b"SIP/2.0 401 x\r\n" if as_response else b"INVITE sip:+4930@x SIP/2.0\r\n"
    for payload in (data, prefix + data):
        r = lab.label(_raw(payload))
        assert r.stage in ("", "SS", "ES", "RHJ", "TF")
