"""The honeypot's SIP responder (sans-I/O): one received Record in, the response bytes out.

It answers like the PBX its personality names, so that attackers walk through all four stages:
server scan, extension scan, password guessing and toll-fraud calls. Every response echoes all
Via headers (the top one gets ``received=<source>`` when its host differs from the source, and
``rport=<port>`` plus ``received`` when it asked with an empty ``rport``, RFC 3581), From byte
for byte (SIPVicious reads its data back from the From tag), To (with a To-tag, stable per
Call-ID and From tag, on final responses), Call-ID and CSeq, then the personality's product in
Server or User-Agent. "Target exists" below means the From user or the request-URI user is a
configured extension; "challenge" is 401 with WWW-Authenticate for REGISTER and the
personality's 401 or 407 for the rest, with a fresh nonce bound to the source address
(qop="auth", one challenge per configured algorithm, SHA-256 first). Credentials with a
forged, foreign or garbled nonce, an unoffered algorithm or another realm are challenged
again; a right digest with an expired nonce gets ``stale=TRUE``; any wrong digest, an unknown
user or an extension without a password gets 403.

| request                                   | answer                                           |
|-------------------------------------------|--------------------------------------------------|
| a response, or bytes that are not SIP     | nothing (counted)                                |
| no readable top Via                       | nothing (counted: nowhere to answer)             |
| From/To/Call-ID/CSeq missing or unreadable, CSeq method differs | 400 Bad Request         |
| version other than SIP/2.0                | 505 Version Not Supported                        |
| ACK                                       | nothing                                          |
| Max-Forwards: 0 (not OPTIONS)             | 483 Too Many Hops                                |
| request-URI scheme not sip/sips/tel       | 416 Unsupported URI Scheme                       |
| method SIP does not define                | 501 Not Implemented, with Allow                  |
| method the personality does not allow     | 405 Method Not Allowed, with Allow               |
| OPTIONS to a user that is not an extension| 404 Not Found                                    |
| OPTIONS                                   | 200 with Allow, Supported, Accept, extra headers |
| REGISTER, To user not an extension        | 404 Not Found                                    |
| REGISTER without credentials              | 401 challenge                                    |
| REGISTER, right password (user = To user) | 200 with each Contact;expires, Expires, Date; source registered (Expires 0: unregistered; below min_expires: 423) |
| INVITE with a To-tag (no dialog here)     | 481 Call/Transaction Does Not Exist              |
| INVITE without credentials                | challenge if the target exists, else 404         |
| INVITE, right password of any extension   | 100 Trying, then the personality's invite_final (e.g. 183, 486) |
| MESSAGE                                   | like INVITE; right password: 202 Accepted        |
| SUBSCRIBE, event the personality lacks    | 489 Bad Event with Allow-Events                  |
| SUBSCRIBE                                 | like INVITE (To-tag: 481); right password: 200 with Expires |
| PUBLISH                                   | 489 Bad Event                                    |
| BYE, CANCEL, INFO, UPDATE, PRACK, NOTIFY, REFER | 481 Call/Transaction Does Not Exist        |

Being registered changes no answer (an INVITE still needs credentials, as on a real PBX); it is
state for reports (``registered(src)``). State is bounded: nonces are stateless (nonces.py),
To-tags are derived, the registration table is an LRU of ``max_registrations`` sources.
Time is the record's timestamp, randomness comes from the injected ``random.Random``.
With sipwatch._native built, nonces and To-tags take one C call each (native/nonce.c,
native/totag.c; the same values, tests/unit/honeypot/test_native_nonce.py), and a REGISTER
without credentials on the usual path (401 or 404) is answered by one call to
native/challenge.c, which leaves anything else to the Python code here before touching the rng
or the stats (the same bytes, stats and rng draws: tests/unit/honeypot/test_native_challenge.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import random
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from sipwatch.honeypot.accounts import Accounts
from sipwatch.honeypot.nonces import NonceIssuer
from sipwatch.honeypot.personality import Personality, format_to_tag
from sipwatch.native import part as native_part
from sipwatch.record import Record
from sipwatch.sip.build import REASONS
from sipwatch.sip.digest import build_challenge, verify
from sipwatch.sip.headers import Via, parse_via, split_commas, split_params
from sipwatch.sip.message import SipMessage
from sipwatch.sip.speedups import name_addr as _fast_name_addr
from sipwatch.sip.text import wire

__all__ = ["ALGORITHMS", "Responder", "ResponderStats", "UasConfig"]

ALGORITHMS = ("SHA-256", "SHA-512-256", "MD5")  # digest algorithms a challenge may offer
_DIALOG_ONLY = frozenset({"BYE", "CANCEL", "INFO", "UPDATE", "PRACK", "NOTIFY", "REFER"})
_KNOWN = _DIALOG_ONLY | {"INVITE", "ACK", "OPTIONS", "REGISTER", "MESSAGE", "SUBSCRIBE", "PUBLISH"}
_URI_SCHEMES = frozenset({"sip", "sips", "tel"})
_SUBSCRIBE_EXPIRES = 3600
_MAX_VIA_CHANGE = 1024  # a top Via longer than this is echoed unchanged (no received/rport)
# The top Via as nearly every client writes it: one via-parm whose only parameters are the
# branch and an optional empty rport. Stamped without the general parser (same result: the
# tests hold the two to it); anything else takes parse_via + _stamp_via.
_VIA_SIMPLE = re.compile(
    r'SIP/2\.0/[A-Za-z]+ (?:\[([0-9A-Fa-f:.]+)\]|([^ \t;:\[\](),"]+))(?::[0-9]{1,5})?'
    r';branch=[^;," \t]*(;rport)?'
).fullmatch
_CACHE_MAX = 256  # challenge templates kept (per realm, code, stale; realm "{dst}" varies)
_NONCE, _OPAQUE = "\x00", "\x01"  # placeholders in a cached challenge template


@dataclass(frozen=True, slots=True)
class UasConfig:
    nonce_ttl: float = 300.0  # seconds a nonce stays valid ("stale" after)
    algorithms: tuple[str, ...] = ("MD5",)  # offered in this order, e.g. ("SHA-256", "MD5")
    max_registrations: int = 100_000  # registered sources kept (LRU)
    max_contacts: int = 5  # Contacts echoed in a REGISTER 200
    realm: str | None = None  # overrides the personality's realm

    def __post_init__(self) -> None:
        if not self.nonce_ttl > 0:
            raise ValueError(f"nonce_ttl must be positive, not {self.nonce_ttl}")
        algs = tuple(a.upper() for a in self.algorithms)
        if not algs or any(a not in ALGORITHMS for a in algs) or len(set(algs)) != len(algs):
            raise ValueError(
                f"algorithms must be distinct names from {', '.join(ALGORITHMS)}, "
                f"not {self.algorithms!r}"
            )
        object.__setattr__(self, "algorithms", algs)
        if self.max_registrations < 1 or self.max_contacts < 1:
            raise ValueError("max_registrations and max_contacts must be at least 1")


@dataclass(slots=True)
class ResponderStats:
    requests: int = 0  # requests handled (answered or not)
    answered: int = 0  # requests that got at least one response
    responses_ignored: int = 0  # SIP responses received (we only answer requests)
    unanswerable: int = 0  # not SIP, or no readable top Via: nothing sent
    bad_requests: int = 0  # 400 sent
    challenges: int = 0  # 401/407 sent
    auth_ok: int = 0  # right digests
    auth_fail: int = 0  # 403 for a wrong digest, unknown user or extension without password
    stale: int = 0  # right digest, expired nonce (401 stale=TRUE)
    invalid_credentials: int = 0  # a nonce not ours for that source, another realm or
    # algorithm, no response: challenged again
    registrations: int = 0  # successful REGISTERs that bound a contact
    unregistrations: int = 0  # REGISTERs with expires 0 that removed one
    evictions: int = 0  # registrations dropped because the table was full
    errors: int = 0  # internal errors caught in handle() (a bug; should stay 0)
    by_method: dict[str, int] = field(default_factory=dict)  # unknown methods as "OTHER"
    by_status: dict[int, int] = field(default_factory=dict)  # responses sent

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = dict(value) if isinstance(value, dict) else value
        return out


class _Request:
    """What every answer to one request needs, computed once."""

    __slots__ = ("record", "msg", "vias", "now", "has_to", "to_tag")

    def __init__(
        self, record: Record, msg: SipMessage, vias: str, now: float, has_to: bool
    ) -> None:
        self.record = record
        self.msg = msg
        self.vias = vias  # the Via lines of every response, "Via: ...\r\n" each
        self.now = now  # the record's time (seconds)
        self.has_to = has_to  # msg.to is not None: a final response adds a To-tag
        self.to_tag = ""


class Responder:
    """handle(record) -> wire bytes of the responses, in order (see the module docstring)."""

    def __init__(
        self,
        personality: Personality,
        accounts: Accounts,
        *,
        secret: bytes,
        config: UasConfig | None = None,
        rng: random.Random | None = None,
        native: bool = True,
    ) -> None:
        self.personality = personality
        self.accounts = accounts
        self.config = config if config is not None else UasConfig()
        self._rng = rng if rng is not None else random.Random()
        self._nonces = NonceIssuer(secret, self.config.nonce_ttl, self._rng, native=native)
        self._tag_key = hashlib.sha256(b"sipwatch to-tag\x00" + secret).digest()
        self._tag_hash = hashlib.blake2b(key=self._tag_key, digest_size=16)  # copied per tag
        self._tag_prefix = hashlib.md5(self._tag_key).hexdigest()  # md5-crc: fixed per process
        # native: hash and style in one C call (the same tags); else _to_tag's Python
        tag_type = native_part("ToTag") if native else None
        self._tagger = (
            tag_type(self._tag_key, personality.to_tag, self._tag_prefix) if tag_type else None
        )
        self._registrations: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._now = 0.0
        self.stats = ResponderStats()
        self.last_error = ""
        p = personality
        self._allow = ("Allow", ", ".join(p.allow))
        self._supported = ("Supported", ", ".join(p.supported)) if p.supported else None
        self._allow_events = ("Allow-Events", ", ".join(p.events)) if p.events else None
        self._events = frozenset(e.lower() for e in p.events)
        self._allowed = frozenset(p.allow)
        self._options = [("Accept", ", ".join(p.accept))] if p.accept else []
        self._options += [(name, wire(value)) for name, value in p.options_headers]
        self._reasons = {code: wire(text) for code, text in p.reasons}
        # response text that does not depend on the request, built once
        self._status_lines: dict[int, str] = {}
        self._tail = f"{p.header}: {wire(p.server)}\r\nContent-Length: 0\r\n\r\n"
        self._challenges: dict[tuple[str, int, bool], str] = {}
        # native: REGISTER -> 401/404, the most common request, in one C call (None: Python)
        self._fast = self._challenge_fast() if native else None

    # --- public ------------------------------------------------------------------------
    def handle(self, record: Record) -> list[bytes]:
        """The responses to one received message, in order; [] when nothing is sent."""
        try:
            fast = self._fast
            if fast is not None:
                out = fast.answer(record, self.stats)  # None: not its case, nothing done
                if out is not None:
                    if record.ts > self._now:  # finite: answer() took no other
                        self._now = record.ts
                    return out
            return self._handle(record)
        except Exception as e:  # a bug must not stop a listener: counted, kept for the log
            self.stats.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"[:200]
            return []

    @property
    def accounts(self) -> Accounts:
        return self._accounts

    @accounts.setter
    def accounts(self, accounts: Accounts) -> None:
        self._accounts = accounts
        if getattr(self, "_fast", None) is not None:  # it copied the old accounts' tables
            self._fast = self._challenge_fast()

    def registered(self, src: str) -> str | None:
        """The extension registered from address src (unexpired at the latest record time)."""
        entry = self._registrations.get(src)
        if entry is None or entry[1] <= self._now:
            return None
        return entry[0]

    @property
    def registered_sources(self) -> int:
        """Entries in the registration table (expired ones included until evicted)."""
        return len(self._registrations)

    # --- dispatch ----------------------------------------------------------------------
    def _handle(self, record: Record) -> list[bytes]:
        msg = record.msg
        st = self.stats
        now = record.ts
        if not math.isfinite(now):  # a broken clock upstream: keep going on the last time
            now = self._now
        elif now > self._now:
            self._now = now
        is_request = msg.is_request or (msg.error != "" and msg.method != "")
        if not is_request:
            if msg.error:
                st.unanswerable += 1
            else:
                st.responses_ignored += 1
            return []
        st.requests += 1
        method = msg.method
        key = method if method in _KNOWN else "OTHER"
        st.by_method[key] = st.by_method.get(key, 0) + 1

        vias = self._vias(msg, record)
        if vias is None:
            st.unanswerable += 1
            return []
        has_to = _has_name_addr(msg, "to")
        req = _Request(record, msg, vias, now, has_to)
        complete = (
            has_to
            and msg.cseq_num is not None
            and msg.cseq_method != ""
            and msg.call_id != ""
            and _has_name_addr(msg, "from")
        )
        if msg.error:  # a start line we could not read but a full set of headers
            if not complete:
                st.unanswerable += 1
                return []
            return self._done([self._bad_request(req)])
        if method == "ACK":
            return []
        if not complete or "cseq_method_mismatch" in msg.anomalies:
            return self._done([self._bad_request(req)])
        return self._done(self._answer(req, method))

    def _done(self, out: list[bytes]) -> list[bytes]:
        if out:
            self.stats.answered += 1
        return out

    def _answer(self, req: _Request, method: str) -> list[bytes]:
        msg = req.msg
        if "invalid_version" in msg.anomalies:
            return [self._reply(req, 505)]
        if method != "OPTIONS":
            mf = msg.headers.get("max-forwards")
            if mf and mf[0].isdigit() and mf[0].isascii() and int(mf[0][:12]) == 0:
                return [self._reply(req, 483)]
        if msg.ruri.partition(":")[0].lower() not in _URI_SCHEMES:
            return [self._reply(req, 416)]
        if method not in _KNOWN:
            return [self._reply(req, 501, [self._allow])]
        if method not in self._allowed:
            return [self._reply(req, 405, [self._allow])]
        if method == "REGISTER":
            return self._register(req)
        if method == "INVITE":
            return self._invite(req)
        if method == "OPTIONS":
            return self._options_reply(req)
        if method == "MESSAGE":
            return self._authenticated(req, lambda: [self._reply(req, 202)])
        if method == "SUBSCRIBE":
            return self._subscribe(req)
        if method == "PUBLISH":
            return [self._reply(req, 489, [self._allow_events] if self._allow_events else [])]
        return [self._reply(req, 481)]  # _DIALOG_ONLY: we never have a dialog

    # --- methods -----------------------------------------------------------------------
    def _options_reply(self, req: _Request) -> list[bytes]:
        user = req.msg.ruri_user
        if user and not self.accounts.exists(user):
            return [self._reply(req, 404)]
        extra = [self._allow]
        if self._supported:
            extra.append(self._supported)
        extra += self._options
        contact = self._contact(req.record)
        if contact:
            extra.append(contact)
        return [self._reply(req, 200, extra)]

    def _register(self, req: _Request) -> list[bytes]:
        msg = req.msg
        user = msg.to_user
        if not self.accounts.exists(user):
            return [self._reply(req, 404)]
        verdict = self._credentials(req, must_be=user)
        if verdict != "ok":
            return self._refuse(req, verdict, 401)
        record = req.record
        contacts = msg.contacts
        default = _number(msg.get("expires"))
        extra: list[tuple[str, str]] = []
        p = self.personality
        if contacts:
            first = contacts[0]
            wanted = _number(first.params.get("expires"))
            wanted = default if wanted is None else wanted
            if first.wildcard or wanted == 0:
                if self._registrations.pop(record.src, None) is not None:
                    self.stats.unregistrations += 1
                extra.append(("Expires", "0"))
            else:
                if wanted is None:
                    wanted = p.register_expires
                if wanted < p.min_expires:
                    return [self._reply(req, 423, [("Min-Expires", str(p.min_expires))])]
                granted = min(wanted, p.register_expires)
                self._bind(record.src, user, req.now + granted)
                for c in contacts[: self.config.max_contacts]:
                    if not c.wildcard and c.uri_text:
                        extra.append(("Contact", f"<{c.uri_text}>;expires={granted}"))
                extra.append(("Expires", str(granted)))
        if p.date:
            date = _http_date(req.now)
            if date:
                extra.append(("Date", date))
        return [self._reply(req, 200, extra)]

    def _invite(self, req: _Request) -> list[bytes]:
        if req.msg.to_tag:
            return [self._reply(req, 481)]

        def calls() -> list[bytes]:
            out = [self._reply(req, 100)]
            contact = self._contact(req.record)
            for status in self.personality.invite_final:
                extra: list[tuple[str, str]] = []
                if status < 200:  # an early dialog: tell the caller where we are
                    if contact:
                        extra.append(contact)
                    extra.append(self._allow)
                    if self._supported:
                        extra.append(self._supported)
                out.append(self._reply(req, status, extra))
            return out

        return self._authenticated(req, calls)

    def _subscribe(self, req: _Request) -> list[bytes]:
        msg = req.msg
        if msg.to_tag:
            return [self._reply(req, 481)]
        event = (msg.get("event") or "").partition(";")[0].strip(" \t").lower()
        if event not in self._events:
            return [self._reply(req, 489, [self._allow_events] if self._allow_events else [])]

        def accepted() -> list[bytes]:
            wanted = _number(msg.get("expires"))
            expires = _SUBSCRIBE_EXPIRES if wanted is None else min(wanted, _SUBSCRIBE_EXPIRES)
            extra = [("Expires", str(expires))]
            contact = self._contact(req.record)
            if contact:
                extra.append(contact)
            return [self._reply(req, 200, extra)]

        return self._authenticated(req, accepted)

    def _authenticated(self, req: _Request, success: Callable[[], list[bytes]]) -> list[bytes]:
        """INVITE, MESSAGE, SUBSCRIBE: challenge, 403, or success() for a right password."""
        msg = req.msg
        code = self.personality.invite_challenge
        verdict = self._credentials(req)
        if verdict == "none":
            exists = self.accounts.exists
            if not (exists(msg.from_user) or exists(msg.ruri_user)):
                return [self._reply(req, 404)]
        if verdict != "ok":
            return self._refuse(req, verdict, code)
        return success()

    # --- authentication ----------------------------------------------------------------
    def _realm(self, record: Record) -> str:
        realm = self.config.realm or self.personality.realm
        if realm == "{dst}":
            realm = record.dst or "sip"
        return realm

    def _credentials(self, req: _Request, must_be: str | None = None) -> str:
        """'none', 'invalid' (challenge again), 'stale', 'wrong' or 'ok'."""
        msg = req.msg
        if not msg.has_credentials:
            return "none"
        cred = msg.credentials
        st = self.stats
        if cred is None or cred.scheme.lower() != "digest":
            return "none"
        alg = (cred.algorithm or "MD5").upper()
        if (
            not cred.response
            or alg not in self.config.algorithms
            or cred.realm != self._realm(req.record)
        ):
            st.invalid_credentials += 1
            return "invalid"
        record = req.record
        state = self._nonces.check(cred.nonce, record.src, req.now)
        if state == "invalid":
            st.invalid_credentials += 1
            return "invalid"
        user = cred.username
        password = self.accounts.password(user) if self.accounts.exists(user) else None
        right = (
            password is not None
            and (must_be is None or user == must_be)
            and cred.response.isascii()  # verify() cannot compare other text (a garbled one)
            and verify(cred, msg.method, password, msg.body)
        )
        if not right:
            st.auth_fail += 1
            return "wrong"
        if state == "stale":
            st.stale += 1
            return "stale"
        st.auth_ok += 1
        return "ok"

    def _refuse(self, req: _Request, verdict: str, code: int) -> list[bytes]:
        if verdict == "wrong":
            return [self._reply(req, 403)]
        record = req.record
        nonce = self._nonces.issue(record.src, req.now)
        opaque = f"{self._rng.getrandbits(64):016x}" if self.personality.opaque else ""
        realm = self._realm(record)
        stale = verdict == "stale"
        key = (realm, code, stale)
        template = self._challenges.get(key)
        if template is None and (_NONCE in realm or _OPAQUE in realm):
            text = self._challenge_lines(realm, code, stale, nonce, opaque)  # no template
        else:
            if template is None:
                template = self._challenge_lines(realm, code, stale, _NONCE, _OPAQUE)
                if len(self._challenges) >= _CACHE_MAX:
                    self._challenges.clear()
                self._challenges[key] = template
            text = template.replace(_NONCE, nonce).replace(_OPAQUE, opaque)
        self.stats.challenges += 1
        return [self._reply(req, code, text=text)]

    def _challenge_lines(self, realm: str, code: int, stale: bool, nonce: str, opaque: str) -> str:
        """The challenge header lines (one per offered algorithm), "Name: value\r\n" each."""
        name = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
        if not self.personality.opaque:
            opaque = ""
        values = [
            build_challenge(realm, nonce, algorithm=alg, opaque=opaque, stale=stale)
            for alg in self.config.algorithms
        ]
        return "".join([f"{name}: {value}\r\n" for value in values])

    # --- registrations -----------------------------------------------------------------
    def _bind(self, src: str, user: str, expires_at: float) -> None:
        table = self._registrations
        table[src] = (user, expires_at)
        table.move_to_end(src)
        self.stats.registrations += 1
        while len(table) > self.config.max_registrations:
            table.popitem(last=False)
            self.stats.evictions += 1

    # --- building responses ------------------------------------------------------------
    def _vias(self, msg: SipMessage, record: Record) -> str | None:
        """The Via lines to echo, the top one with received/rport; None if unreadable."""
        lines = msg.headers.get("via")
        if not lines:
            return None
        first = lines[0]
        m = _VIA_SIMPLE(first) if len(first) <= _MAX_VIA_CHANGE else None
        if m is None:
            lines = _stamped_vias(lines, record.src, record.sport)
            if lines is None:
                return None
        else:  # the usual top Via: _stamped_vias' result without parsing it
            if m.group(3) is not None:  # ;rport last: fill it, add received
                top = f"{first}={record.sport};received={record.src}"
            elif _same_host(m.group(2) or m.group(1), record.src):
                top = first
            else:
                top = f"{first};received={record.src}"
            if len(lines) == 1:
                return f"Via: {top}\r\n"
            lines = [top, *lines[1:]]
        return "".join([f"Via: {v}\r\n" for v in lines])

    def _to_tag(self, req: _Request) -> str:
        if not req.to_tag:
            msg = req.msg
            if self._tagger is not None:
                req.to_tag = self._tagger.tag(msg.call_id, msg.from_tag)
                return req.to_tag
            dialog = b"%s\x00%s" % (
                msg.call_id.encode("latin-1", "replace"),
                msg.from_tag.encode("latin-1", "replace"),
            )
            h = self._tag_hash.copy()
            h.update(dialog)
            digest = h.digest()
            req.to_tag = format_to_tag(self.personality.to_tag, digest, self._tag_prefix)
        return req.to_tag

    def _contact(self, record: Record) -> tuple[str, str] | None:
        if not record.dst:
            return None
        host = f"[{record.dst}]" if ":" in record.dst else record.dst
        transport = "" if record.transport == "udp" else f";transport={record.transport}"
        return ("Contact", f"<sip:{host}:{record.dport}{transport}>")

    def _status_line(self, status: int) -> str:
        reason = self._reasons.get(status) or REASONS.get(status, "Unknown")
        line = self._status_lines[status] = f"SIP/2.0 {status} {reason}\r\n"
        return line

    def _challenge_fast(self) -> Any:
        """native/challenge.c's ChallengeFast with this responder's fixed parts, or None when
        anything it mirrors is not the usual one (the Python path then answers everything)."""
        fast_type = native_part("ChallengeFast")
        realm = self.config.realm or self.personality.realm
        dst = realm == "{dst}"
        if (
            fast_type is None
            or self._tagger is None
            or not self._nonces.native
            or _fast_name_addr is None
            or type(self.accounts) is not Accounts  # it reads Accounts' own tables
            or "REGISTER" not in self._allowed
            or (not dst and any(ch in realm for ch in "\x00\x01\x02"))
        ):
            return None
        # the challenge lines with the nonce, opaque and (realm "{dst}") realm to fill in
        template = self._challenge_lines("\x02" if dst else realm, 401, False, _NONCE, _OPAQUE)
        accounts = self.accounts
        return fast_type(
            self._status_line(401).encode("latin-1", "replace"),
            self._status_line(404).encode("latin-1", "replace"),
            self._tail.encode("latin-1", "replace"),
            template.encode("latin-1", "replace"),
            dst,
            self.personality.opaque,
            frozenset(accounts._names),
            tuple((r.lo, r.hi, r.width) for r in accounts._ranges),
            self._nonces.issue,
            self._tagger.tag,
            self._rng,
            _fast_name_addr,
        )

    def _bad_request(self, req: _Request) -> bytes:
        self.stats.bad_requests += 1
        return self._reply(req, 400)

    def _reply(
        self, req: _Request, status: int, extra: Sequence[tuple[str, str]] = (), text: str = ""
    ) -> bytes:
        """One response: status line, the echoed headers, extra (name, value) headers, then
        text (ready header lines), the product header and an empty body."""
        msg = req.msg
        h = msg.headers
        line = self._status_lines.get(status) or self._status_line(status)
        if extra:
            text = "".join([f"{name}: {value}\r\n" for name, value in extra]) + text
        from_ = h.get("from")
        to = h.get("to")
        call_id = h.get("call-id")
        cseq = h.get("cseq")
        if to:
            to_text = to[0]
            if status > 100 and req.has_to and not msg.to_tag:
                to_text = f"{to_text};tag={self._to_tag(req)}"
        if from_ and to and call_id and cseq:  # always, but for some 400s
            out = (
                f"{line}{req.vias}From: {from_[0]}\r\nTo: {to_text}\r\nCall-ID: {call_id[0]}"
                f"\r\nCSeq: {cseq[0]}\r\n{text}{self._tail}"
            )
        else:
            parts = [line, req.vias]
            if from_:
                parts.append(f"From: {from_[0]}\r\n")
            if to:
                parts.append(f"To: {to_text}\r\n")
            if call_id:
                parts.append(f"Call-ID: {call_id[0]}\r\n")
            if cseq:
                parts.append(f"CSeq: {cseq[0]}\r\n")
            parts += (text, self._tail)
            out = "".join(parts)
        by_status = self.stats.by_status
        by_status[status] = by_status.get(status, 0) + 1
        return out.encode("latin-1", "replace")


def _has_name_addr(msg: SipMessage, key: str) -> bool:
    """msg.from_ / msg.to is not None, without building the NameAddr in the usual case."""
    vals = msg.headers.get(key)
    if not vals:
        return False
    if _fast_name_addr is not None and _fast_name_addr(vals[0]) is not None:
        return True
    return (msg.from_ if key == "from" else msg.to) is not None


def _stamped_vias(lines: list[str], src: str, sport: int) -> list[str] | None:
    """The Via header values to echo, the top via-parm stamped by _stamp_via; None when the
    top one is unreadable (nowhere to answer)."""
    first = lines[0]
    if "," in first:
        parts = split_commas(first)
        if not parts:
            return None
        top_text = parts[0]
    else:
        top_text = first
    top = parse_via(top_text)
    if top is None or not top.host:
        return None
    at = first.find(top_text)
    if len(top_text) > _MAX_VIA_CHANGE or at < 0:
        return list(lines)
    changed = _stamp_via(top_text, top, src, sport)
    if changed is None:
        return list(lines)
    return [first[:at] + changed + first[at + len(top_text) :], *lines[1:]]


def _stamp_via(text: str, via: Via, src: str, sport: int) -> str | None:
    """The top Via with received (and a filled rport) as RFC 3261 18.2.1 and RFC 3581 say;
    None when nothing changes."""
    rport = "rport" in via.params and not via.params["rport"]
    if not rport and _same_host(via.host, src):
        return None
    parts = split_params(text)
    out = [parts[0]]
    received = False
    for part in parts[1:]:
        name = part.partition("=")[0].strip(" \t").lower()
        if name == "received":
            if received:
                continue
            part = f"received={src}"
            received = True
        elif name == "rport" and rport:
            part = f"rport={sport}"
            rport = False  # fill the first one only
        out.append(part)
    if not received:
        out.append(f"received={src}")
    return ";".join(out)


def _same_host(host: str, src: str) -> bool:
    if host == src:
        return True
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(src)
    except ValueError:
        return False


def _number(value: str | None) -> int | None:
    """A non-negative decimal header/param value, capped; None when absent or not a number."""
    if value is None:
        return None
    value = value.strip(" \t")
    if value.isdigit() and value.isascii():
        return min(int(value[:12]), 2**32 - 1)
    return None


def _http_date(ts: float) -> str:
    try:
        return formatdate(ts, usegmt=True)
    except (OverflowError, ValueError, OSError):
        return ""
