"""Per-message attack-stage labels (SS, ES, RHJ, TF), tool fingerprints and dialled numbers.

Sans-I/O: `StageLabeler.label(record)` reads the record (and the little state earlier records
left behind) and fills its label fields. Time comes only from `record.ts`, so a capture replayed
offline gets exactly the labels the live sensor gave, as long as the records come in the same
order. All state is in LRU-bounded tables; evictions are counted in `stats`.

The semantics are documented (with examples) in docs/detection.md; keep the two in step.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from sipwatch.detect.fingerprints import (
    SVCRACK_FIXED_TAG,
    Fingerprint,
    decode_sipvicious_tag,
    fingerprint,
)
from sipwatch.record import Record
from sipwatch.sip.message import SipMessage
from sipwatch.sip.numbers import CHARGEABLE, EXTENSION, SHORT, NumberClass, NumberClassifier

SS = "SS"  # server scan
ES = "ES"  # extension scan
RHJ = "RHJ"  # registration hijacking (password guessing)
TF = "TF"  # toll fraud
STAGES = (SS, ES, RHJ, TF)

# parser anomaly codes that legitimate traffic produces too: not evidence of fuzzing.
# (e.g. Content-Length may be left out over UDP, RFC 3261 20.14)
BENIGN_ANOMALIES = frozenset({"content_length_missing", "multiple_messages"})
# parse errors that are not malformed input: a CRLF keep-alive ping, an empty payload
BENIGN_ERRORS = frozenset({"keepalive", "empty"})

# methods whose user part names an extension the sender probes
_PROBE_METHODS = frozenset({"OPTIONS", "INVITE", "REGISTER"})


@dataclass(slots=True)
class LabelerConfig:
    ext_scan_users: int = 5  # distinct user parts per source that make it an extension scanner
    idle_reset_s: float = 3600.0  # a source silent this long starts over (record.ts only)
    max_sources: int = 65536  # per-source state entries (LRU)
    max_requests: int = 65536  # request table for response matching (LRU)
    default_region: str | None = None  # ISO country of the victim, for national numbers


class _Seen(NamedTuple):
    """What a response inherits from its request."""

    request_id: int
    stage: str
    tool: str
    tool_data: str
    number: NumberClass | None


@dataclass(slots=True)
class _Source:
    last_ts: float
    users: set[str] = field(default_factory=set)  # capped at ext_scan_users
    scanning: bool = False  # reached ext_scan_users distinct users


@dataclass(slots=True)
class LabelerStats:
    labelled: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    unlabelled: int = 0
    fuzz: int = 0
    tools: int = 0
    responses_matched: int = 0
    responses_inferred: int = 0  # request not seen: label from CSeq method (or none)
    source_evictions: int = 0
    request_evictions: int = 0


class StageLabeler:
    """Label records one at a time, in order. Not thread-safe: one labeller per pipeline."""

    def __init__(
        self, config: LabelerConfig | None = None, numbers: NumberClassifier | None = None
    ) -> None:
        self.config = config or LabelerConfig()
        self.numbers = numbers or NumberClassifier(self.config.default_region)
        self.stats = LabelerStats()
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._requests: OrderedDict[tuple, _Seen] = OrderedDict()

    # --- public ------------------------------------------------------------------------------
    def label(self, record: Record) -> Record:
        """Fill record.stage, tool, tool_data, fuzz, number*, request_id; return the record."""
        msg = record.msg
        stats = self.stats
        error = msg.error
        anomalies = msg.anomalies
        fuzz = (bool(error) and error not in BENIGN_ERRORS) or (
            bool(anomalies) and not BENIGN_ANOMALIES.issuperset(anomalies)
        )
        record.fuzz = fuzz
        if fuzz:
            stats.fuzz += 1
        if msg.is_request:
            self._label_request(record, msg)
        elif msg.status:
            self._label_response(record, msg)
        stage = record.stage
        if stage:
            stats.labelled[stage] += 1
        else:
            stats.unlabelled += 1
        if record.tool:
            stats.tools += 1
        return record

    def label_all(self, records: Iterable[Record]) -> Iterator[Record]:
        """Generator: label each record of an iterable, in order."""
        for r in records:
            yield self.label(r)

    # --- requests ----------------------------------------------------------------------------
    def _label_request(self, record: Record, msg: SipMessage) -> None:
        method = msg.method.upper()
        ruri_user, display, _, tag, to_user, _, _, user_agent, _, _ = msg.flat()
        fp = fingerprint(tag, user_agent, display, to_user)
        if fp is not None:
            record.tool, record.tool_data = fp
        has_credentials = msg.has_credentials
        target_user = ruri_user or to_user
        if method == "REGISTER":
            # the REGISTER's request-URI has no user: the account is the To user
            target_user = to_user or ruri_user

        number = None
        if method == "INVITE" and target_user:
            number = self.numbers.classify(target_user)
            if number is not None:
                record.number, record.number_type, record.number_country = number

        scanning = False
        if method in _PROBE_METHODS:
            scanning = self._note_user(
                record, target_user, count=not has_credentials, internal=number
            )

        stage = ""
        if method == "OPTIONS":
            stage = ES if scanning else SS
        elif method == "REGISTER":
            # svcrack fetches a fresh nonce (no credentials, fixed tag) before every password
            stage = RHJ if has_credentials or tag == SVCRACK_FIXED_TAG else ES
        elif method == "INVITE":
            if number is not None and number.type in CHARGEABLE:
                stage = TF
            elif scanning and not has_credentials:
                stage = ES
        elif method in ("ACK", "CANCEL"):
            # these belong to an INVITE transaction: same Call-ID and CSeq number
            seen = self._requests.get(_invite_key(record, msg))
            if seen is not None:
                stage = seen.stage
                if not record.tool:
                    record.tool, record.tool_data = seen.tool, seen.tool_data
        record.stage = stage
        self._remember(record, msg, method, number)

    def _note_user(
        self, record: Record, user: str, count: bool, internal: NumberClass | None
    ) -> bool:
        """Track distinct probed user parts per source; True once the source is scanning."""
        cfg = self.config
        state = self._sources.get(record.src)
        if state is None:
            state = _Source(record.ts)
            self._sources[record.src] = state
            if len(self._sources) > cfg.max_sources:
                self._sources.popitem(last=False)
                self.stats.source_evictions += 1
        else:
            self._sources.move_to_end(record.src)
            if record.ts - state.last_ts >= cfg.idle_reset_s:
                state.users.clear()
                state.scanning = False
        state.last_ts = max(state.last_ts, record.ts)
        # INVITEs count only towards internal extensions (or names): a trunk that sends
        # calls to many full phone numbers is not scanning extensions
        if internal is not None and internal.type not in (EXTENSION, SHORT):
            count = False
        if count and user and not state.scanning:
            state.users.add(user)
            if len(state.users) >= cfg.ext_scan_users:
                state.scanning = True
                state.users.clear()  # no longer needed: keeps the state small
        return state.scanning

    def _remember(
        self, record: Record, msg: SipMessage, method: str, number: NumberClass | None
    ) -> None:
        key = _request_key(record.src, msg)
        if key is None:
            return
        seen = _Seen(record.id, record.stage, record.tool, record.tool_data, number)
        requests = self._requests
        for k in (key, _invite_key(record, msg)) if method == "INVITE" else (key,):
            if k in requests:
                # a retransmission: responses still answer the first copy
                requests.move_to_end(k)
                continue
            requests[k] = seen
            if len(requests) > self.config.max_requests:
                requests.popitem(last=False)
                self.stats.request_evictions += 1

    # --- responses ---------------------------------------------------------------------------
    def _label_response(self, record: Record, msg: SipMessage) -> None:
        # a response travels back: its destination is the client that sent the request
        key = _request_key(record.dst, msg)
        seen = self._requests.get(key) if key is not None else None
        if seen is not None:
            self._requests.move_to_end(key)
            self.stats.responses_matched += 1
            record.request_id = seen.request_id
            record.stage = seen.stage
            record.tool, record.tool_data = seen.tool, seen.tool_data
            if seen.number is not None:
                record.number, record.number_type, record.number_country = seen.number
            return
        self.stats.responses_inferred += 1
        self._infer_response(record, msg)

    def _infer_response(self, record: Record, msg: SipMessage) -> None:
        """Label a response whose request was not seen, from what it repeats of the request.

        Conservative: only what the response itself proves. OPTIONS → SS (the ES upgrade needs
        the requests); INVITE → TF when the To user is a chargeable number; REGISTER only with
        SIPVicious' From tag (svcrack's "user:password" or fixed tag → RHJ, svwar's extension
        → ES).
        """
        method = msg.cseq_method.upper()
        tag = msg.from_tag
        data = decode_sipvicious_tag(tag)
        if data is not None:
            # the From tag is the requester's, echoed: its tool, not the responder's
            _set_tool(record, fingerprint(tag, "", "", msg.to_user))
        if method == "OPTIONS":
            record.stage = SS
        elif method == "INVITE":
            user = msg.to_user
            number = self.numbers.classify(user) if user else None
            if number is not None:
                record.number, record.number_type, record.number_country = number
                if number.type in CHARGEABLE:
                    record.stage = TF
        elif method == "REGISTER" and tag == SVCRACK_FIXED_TAG:
            record.stage = RHJ
            _set_tool(record, fingerprint(tag))
        elif method == "REGISTER" and data is not None:
            record.stage = RHJ if ":" in data else ES


def _set_tool(record: Record, fp: Fingerprint | None) -> None:
    if fp is not None:
        record.tool, record.tool_data = fp


def _request_key(client: str, msg: SipMessage) -> tuple | None:
    """Transaction key: client address, Call-ID, CSeq number and method, top Via branch."""
    vals = msg.headers.get("call-id")  # msg.call_id without the property call
    call_id = vals[0] if vals else ""
    cseq_num = msg.cseq_num
    if not call_id or cseq_num is None:
        return None
    return (client, call_id, cseq_num, msg.cseq_method.upper(), msg.top_branch)


def _invite_key(record: Record, msg: SipMessage) -> tuple:
    # ACK for a 2xx has a new branch; match the INVITE by Call-ID and CSeq number alone
    return ("INVITE", record.src, msg.call_id, msg.cseq_num)


def labeller_class(native: bool = True) -> type[StageLabeler]:
    """StageLabeler, or (native, and sipwatch._native is built) its C twin
    sipwatch._native.Labeller: a drop-in with the same labels, state bounds and stats
    (tests/unit/test_native_labeller.py), several times faster per Record."""
    if native:
        from sipwatch.native import part  # here: sipwatch._native reads this module

        cls = part("Labeller")
        if cls is not None:
            return cls
    return StageLabeler
