"""SIP message: parse (lenient, bounded, never raising) and serialize.

parse() reads one SIP message from bytes. Header text is decoded as latin-1, which maps
every byte to one character, so nothing can fail to decode and ``to_bytes()`` gives back the
bytes that were read. Values shown to people (display names, User-Agent, reason phrase)
are re-decoded as UTF-8 when they are valid UTF-8 (see ``text()``).

parse() does the cheap, always-needed work (start line, header dict, body, Content-Length
and CSeq checks, anomaly codes); URIs, name-addrs, Via and digest fields are parsed on first
access and cached. Limits: MAX_* below; the per-header length limits only flag, the header
count, line and body caps also truncate (raw always keeps every byte).

``error`` (one code, '' when the start line and headers were read):

| code           | meaning                                                               |
|----------------|-----------------------------------------------------------------------|
| empty          | no bytes at all                                                       |
| keepalive      | only CR/LF bytes (RFC 5626 keep-alive ping), not a message            |
| not_sip        | no SIP start line (another protocol such as HTTP/SSDP, or garbage)    |
| bad_start_line | a SIP version is there but the start line is malformed               |
| bad_status     | response status code is not three digits                             |
| internal       | a parser bug was caught; raw is kept (should never be seen)          |

``anomalies`` (any number of codes, in the order found):

| code                     | meaning (length limits chosen after Snort's SIP preprocessor)    |
|--------------------------|------------------------------------------------------------------|
| junk_before_start_line   | bytes other than CR/LF before the start line (skipped)           |
| invalid_version          | version is not SIP/2.0                                           |
| status_out_of_range      | status code outside 100..699                                     |
| long_method              | method longer than 32 characters                                 |
| long_request_uri         | request-URI longer than 256 characters                          |
| bad_request_uri          | request-URI without a valid scheme, or with URI headers ('?')    |
| start_line_whitespace    | request line with extra or trailing whitespace (RFC 3261: one SP) |
| unbalanced_quotes        | From or To leaves a quoted string open (escapes honoured)        |
| long_call_id             | Call-ID longer than 256 characters                               |
| long_from / long_to      | From / To value longer than 256 characters                       |
| long_via                 | a Via header line longer than 1024 characters                    |
| long_contact             | a Contact header line longer than 256 characters                 |
| missing_via, missing_from, missing_to, missing_call_id, missing_cseq | mandatory header absent |
| duplicate_header         | Call-ID, CSeq, From, To or Content-Length appears more than once |
| cseq_invalid             | CSeq is not "number method"                                      |
| cseq_negative            | CSeq number is negative                                          |
| cseq_too_large           | CSeq number is 2**31 or more (RFC 3261 8.1.1.5)                  |
| cseq_method_mismatch     | request method differs from the CSeq method                      |
| content_length_missing   | a body is present but there is no Content-Length                 |
| content_length_invalid   | Content-Length is not a decimal number                           |
| content_length_mismatch  | Content-Length is larger than the body, or smaller and the extra bytes are not another message |
| multiple_messages        | another SIP message follows this one in the same buffer          |
| no_end_of_headers        | no empty line ends the header block                              |
| header_no_colon          | a header line without ':' (skipped)                              |
| bad_header_name          | a header name that is empty or not a token (kept under its lowercased name) |
| too_many_headers         | more than 256 header lines (the rest are dropped)                |
| header_too_long          | a header line longer than 8192 characters (value truncated)      |
| body_too_large           | body longer than 65536 bytes (truncated)                         |
"""

from __future__ import annotations

import re
from typing import Any

from sipwatch.sip.digest import Digest, parse_digest
from sipwatch.sip.headers import NameAddr, Via, parse_name_addr, parse_via, split_commas
from sipwatch.sip.names import COMPACT, NOT_LIST, display
from sipwatch.sip.speedups import digest_user_realm as _digest_user_realm
from sipwatch.sip.speedups import flat as _flat
from sipwatch.sip.speedups import name_addr as _name_addr
from sipwatch.sip.speedups import parse_head as _parse_head
from sipwatch.sip.speedups import via_branch as _via_branch
from sipwatch.sip.text import text, wire
from sipwatch.sip.uri import Uri, parse_uri

__all__ = ["SipMessage", "looks_like_sip", "parse", "text", "wire", "canonical_name"]

MAX_HEADERS = 256
MAX_LINE = 8192
MAX_BODY = 65536
MAX_METHOD = 32
MAX_RURI = 256
MAX_CALL_ID = 256
MAX_FROM = 256
MAX_TO = 256
MAX_VIA = 1024
MAX_CONTACT = 256
_NAME_CACHE_MAX = 2048
_MISSING: Any = object()
_EMPTY3 = ("", "", "")
_new = object.__new__

# A SIP start line anywhere (junk resync) and at the very start (looks_like_sip).
_START_ANY = re.compile(
    rb"[!%*+.0-9A-Z_`a-z~'-]+ [^ \r\n]+ [Ss][Ii][Pp]/[0-9]|[Ss][Ii][Pp]/[0-9]+\.[0-9]+ [0-9]{3}"
)
_START_LINE = re.compile(
    rb"[\r\n]*(?:[!%*+.0-9A-Z_`a-z~'-]+[ \t]+[^ \t\r\n]+[ \t]+[Ss][Ii][Pp]/[0-9]+\.[0-9]+[ \t]*\r?\n"
    rb"|[Ss][Ii][Pp]/[0-9]+\.[0-9]+[ \t]+[0-9]{3}(?:[ \t\r\n]|$))"
)
_EOH = re.compile(rb"\r?\n\r?\n")
_NEWLINE = re.compile(r"\r?\n")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_TOKEN = re.compile(r"[!%*+.0-9A-Z_`a-z~'-]+")
_WS = " \t"

# raw header-name spelling -> canonical key; filled as names are met, bounded.
_names: dict[str, str] = {}
for _short, _long in COMPACT.items():
    _names[_short] = _long
    _names[_short.upper()] = _long

_SINGLETONS = ("call-id", "cseq", "from", "to", "content-length")


def canonical_name(name: str) -> str:
    """Canonical key for any header-name spelling (same mapping the parser uses)."""
    key = _names.get(name)
    if key is None:
        key = name.strip(_WS).lower()
        key = COMPACT.get(key, key)
    return key


def _flat_field(index: int, doc: str) -> Any:
    """A read-only attribute served from the message's one cached tuple of flat fields."""

    def get(self: SipMessage) -> str:
        return (self._flat or self.flat())[index]

    return property(get, doc=doc)


class SipMessage:
    """One SIP request or response. See the module docstring for error/anomaly codes."""

    __slots__ = (
        "raw",
        "error",
        "is_request",
        "method",
        "ruri",
        "version",
        "status",
        "reason",
        "headers",
        "body",
        "anomalies",
        "cseq_num",
        "cseq_method",
        "content_length",
        "_from",
        "_to",
        "_contacts",
        "_vias",
        "_cred",
        "_chal",
        "_ruri",
        "_flat",
    )

    raw: bytes
    error: str
    is_request: bool
    method: str
    ruri: str
    version: str
    status: int
    reason: str
    headers: dict[str, list[str]]
    body: bytes
    anomalies: list[str]
    cseq_num: int | None
    cseq_method: str
    content_length: int | None

    def __init__(self, raw: bytes = b"", error: str = "") -> None:
        self.raw = raw
        self.error = error
        self.is_request = False
        self.method = ""
        self.ruri = ""
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = {}
        self.body = b""
        self.anomalies = []
        self.cseq_num = None
        self.cseq_method = ""
        self.content_length = None
        # lazily parsed fields; _MISSING until first access
        self._from: Any = _MISSING
        self._to: Any = _MISSING
        self._contacts: Any = _MISSING
        self._vias: Any = _MISSING
        self._cred: Any = _MISSING
        self._chal: Any = _MISSING
        self._ruri: Any = _MISSING
        # flat fields for store rows and labels (see flat()); None until read
        self._flat: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        if self.error and not (self.method or self.status):
            return f"<SipMessage error={self.error} {len(self.raw)} bytes>"
        first = f"{self.method} {self.ruri}" if self.is_request else f"{self.status} {self.reason}"
        return f"<SipMessage {first} call_id={self.call_id!r} anomalies={self.anomalies}>"

    # --- plain header access -------------------------------------------------------------
    def get(self, name: str) -> str | None:
        """First value of a header (any spelling of its name), or None."""
        vals = self.headers.get(canonical_name(name))
        return vals[0] if vals else None

    def values(self, name: str) -> list[str]:
        """All values of a header; list headers (Via, Contact, ...) split at top-level commas."""
        key = canonical_name(name)
        vals = self.headers.get(key)
        if not vals:
            return []
        if key in NOT_LIST:
            return list(vals)
        out: list[str] = []
        for v in vals:
            out.extend(split_commas(v))
        return out

    @property
    def call_id(self) -> str:
        vals = self.headers.get("call-id")
        return vals[0] if vals else ""

    @property
    def content_type(self) -> str:
        vals = self.headers.get("content-type")
        return vals[0] if vals else ""

    @property
    def reason_text(self) -> str:
        return text(self.reason)

    # --- lazily parsed structured fields (cached; None/[] when absent) ----------------------
    @property
    def from_(self) -> NameAddr | None:
        got = self._from
        if got is _MISSING:
            vals = self.headers.get("from")
            got = self._from = parse_name_addr(vals[0]) if vals else None
        return got

    @property
    def to(self) -> NameAddr | None:
        got = self._to
        if got is _MISSING:
            vals = self.headers.get("to")
            got = self._to = parse_name_addr(vals[0]) if vals else None
        return got

    @property
    def contacts(self) -> list[NameAddr]:
        got = self._contacts
        if got is _MISSING:
            got = self._contacts = []
            for value in self.headers.get("contact", ()):
                for v in split_commas(value) if "," in value else (value,):
                    na = parse_name_addr(v)
                    if na is not None:
                        got.append(na)
        return got

    @property
    def vias(self) -> list[Via]:
        got = self._vias
        if got is _MISSING:
            got = self._vias = []
            for value in self.headers.get("via", ()):
                for v in split_commas(value) if "," in value else (value,):
                    via = parse_via(v)
                    if via is not None:
                        got.append(via)
        return got

    @property
    def credentials(self) -> Digest | None:
        """Authorization (else Proxy-Authorization), parsed."""
        got = self._cred
        if got is _MISSING:
            vals = self.headers.get("authorization") or self.headers.get("proxy-authorization")
            got = self._cred = parse_digest(vals[0]) if vals else None
        return got

    @property
    def challenge(self) -> Digest | None:
        """WWW-Authenticate (else Proxy-Authenticate) of a 401/407, parsed."""
        got = self._chal
        if got is _MISSING:
            vals = self.headers.get("www-authenticate") or self.headers.get("proxy-authenticate")
            got = self._chal = parse_digest(vals[0]) if vals else None
        return got

    @property
    def ruri_uri(self) -> Uri | None:
        got = self._ruri
        if got is _MISSING:
            got = self._ruri = parse_uri(self.ruri) if self.ruri else None
        return got

    # --- flat fields: what a store row and the labeller read for every message --------------
    # Same values as the structured fields above (the tests hold them to it), computed by the
    # C fast path for the usual shapes without building URI/name-addr objects. All of them are
    # computed together on first use and cached as one tuple (one slot, one cache check).
    def flat(self) -> tuple[str, str, str, str, str, str, str, str, str, str]:
        """(ruri_user, from_display, from_user, from_tag, to_user, to_tag, top_branch,
        user_agent, auth_user, auth_realm), computed once and cached."""
        got = self._flat
        if got is None:
            if _flat is not None:
                got = _flat(self.headers, self.ruri)  # all of it in one C call, usually
            got = self._flat = got or self._flat_py()
        return got

    def _flat_py(self) -> tuple[str, str, str, str, str, str, str, str, str, str]:
        """flat() without the all-in-one C call (the reference it is tested against)."""
        h = self.headers
        fd, fu, ft = self._name_addr_flat("from")
        _, tu, tt = self._name_addr_flat("to")
        vals = h.get("user-agent") or h.get("server")
        return (
            self._ruri_user(),
            fd,
            fu,
            ft,
            tu,
            tt,
            self._top_branch(),
            text(vals[0]) if vals else "",
            *self._auth_user_realm(),
        )

    def _name_addr_flat(self, key: str) -> tuple[str, str, str]:
        """(display, user, tag) of From or To; empty strings when absent."""
        vals = self.headers.get(key)
        if not vals:
            return _EMPTY3
        if _name_addr is not None:
            got = _name_addr(vals[0])
            if got is not None:
                return (got[0], got[3] or "", got[6] or "")
        na = self.from_ if key == "from" else self.to
        if na is None:
            return _EMPTY3
        return (na.display, na.user or "", na.tag)

    def _ruri_user(self) -> str:
        ruri = self.ruri
        if not ruri:
            return ""
        fast = _name_addr(ruri) if _name_addr is not None else None
        if fast is not None and fast[1] == ruri:
            return fast[3] or ""
        uri = self.ruri_uri
        return (uri.user if uri is not None else "") or ""

    def _top_branch(self) -> str:
        vals = self.headers.get("via")
        if not vals:
            return ""
        fast = _via_branch(vals[0]) if _via_branch is not None else None
        if fast is not None:
            return fast
        vias = self.vias
        return (vias[0].branch if vias else "") or ""

    def _auth_user_realm(self) -> tuple[str, str]:
        h = self.headers
        vals = h.get("authorization") or h.get("proxy-authorization")
        if not vals:
            return ("", "")
        fast = _digest_user_realm(vals[0]) if _digest_user_realm is not None else None
        if fast is not None:
            return fast
        cred = self.credentials
        return (cred.username or "", cred.realm or "") if cred is not None else ("", "")

    ruri_user = _flat_field(0, "User part of the request-URI ('' without one).")
    from_display = _flat_field(1, "Display name of From (UTF-8 decoded when valid).")
    from_user = _flat_field(2, "User part of the From URI ('' without one).")
    from_tag = _flat_field(3, "tag parameter of From ('' without one).")
    to_user = _flat_field(4, "User part of the To URI ('' without one).")
    to_tag = _flat_field(5, "tag parameter of To ('' without one).")
    top_branch = _flat_field(6, "branch parameter of the topmost Via ('' without one).")
    user_agent = _flat_field(7, "User-Agent, else Server ('' without either).")

    @property
    def auth_user_realm(self) -> tuple[str, str]:
        """(username, realm) of Authorization (else Proxy-Authorization); ('', '') without."""
        f = self._flat or self.flat()
        return (f[8], f[9])

    @property
    def has_credentials(self) -> bool:
        h = self.headers
        return "authorization" in h or "proxy-authorization" in h

    # --- serializer ----------------------------------------------------------------------
    def start_line(self) -> str:
        if self.is_request:
            return f"{self.method} {self.ruri} {self.version or 'SIP/2.0'}"
        return f"{self.version or 'SIP/2.0'} {self.status:03d} {self.reason}"

    def to_bytes(self) -> bytes:
        """Serialize: start line, headers (conventional spelling, grouped by name), body."""
        parts = [self.start_line()]
        for key, vals in self.headers.items():
            name = display(key)
            for v in vals:
                parts.append(f"{name}: {v}")
        parts.append("")
        parts.append("")
        head = "\r\n".join(parts)
        try:
            data = head.encode("latin-1")
        except UnicodeEncodeError:  # a builder put non-latin-1 text in: send it as UTF-8
            data = _encode_mixed(head)
        return data + self.body


def _encode_mixed(s: str) -> bytes:
    return b"".join(ch.encode("latin-1") if ord(ch) < 256 else ch.encode("utf-8") for ch in s)


# the matcher behind looks_like_sip, for hot loops: start_line_match(data, 0, 4096) is not None
start_line_match = _START_LINE.match


def looks_like_sip(data: bytes) -> bool:
    """True when data starts (after keep-alive CR/LFs) with a SIP request or status line.

    HTTP-style protocols over UDP (SSDP ``NOTIFY * HTTP/1.1``) are not SIP. A request line
    must be complete (end in a newline) so a method word followed by anything is not enough.
    """
    return _START_LINE.match(data, 0, 4096) is not None


def parse(data: bytes, _start: int = 0, _anomalies: list[str] | None = None) -> SipMessage:
    """Parse one SIP message. Never raises; see module docstring for error/anomaly codes."""
    try:
        return _parse(data, _start, [] if _anomalies is None else _anomalies)
    except Exception:  # a bug must not lose the message: keep raw, say so
        return SipMessage(data if isinstance(data, bytes) else b"", "internal")


def parse_pure(data: bytes) -> SipMessage:
    """parse() without the C fast path: the reference the accelerator is tested against."""
    try:
        return _parse(data, 0, [], fast=False)
    except Exception:
        return SipMessage(data if isinstance(data, bytes) else b"", "internal")


class _Refold(Exception):
    """A continuation line was met: redo the header loop on unfolded lines (rare)."""


def _canon_miss(name: str, anomalies: list[str]) -> str:
    """Canonical key for a header name not in the cache (first sight, or odd spelling)."""
    if name[:1] in _FOLD:
        raise _Refold
    key = name.strip(_WS).lower()
    key = COMPACT.get(key, key)
    if key and _TOKEN.fullmatch(key) is not None:
        if len(_names) < _NAME_CACHE_MAX:
            _names[name] = key
    else:
        anomalies.append("bad_header_name")
    return key


def _parse(data: bytes, start: int, anomalies: list[str], fast: bool = True) -> SipMessage:
    n = len(data)
    if n == 0:
        return SipMessage(data, "empty")
    if start == 0 and fast and _parse_head is not None:
        fast = _parse_head(data)  # the clean common case, in C; None for anything else
        if fast is not None:
            (is_request, method, ruri, version, status, reason, headers, body_at, found, cseq_num,
             cseq_method, content_length, body) = fast  # fmt: skip
            if found is not None and not anomalies:  # C did _check too: fill every slot once
                msg = _new(SipMessage)
                msg.raw = data
                msg.error = ""
                msg.is_request = is_request
                msg.method = method
                msg.ruri = ruri
                msg.version = version
                msg.status = status
                msg.reason = reason
                msg.headers = headers
                msg.anomalies = found
                msg.cseq_num = cseq_num
                msg.cseq_method = cseq_method
                msg.content_length = content_length
                msg.body = body
                msg._from = msg._to = msg._contacts = msg._vias = _MISSING
                msg._cred = msg._chal = msg._ruri = _MISSING
                msg._flat = None
                return msg
            msg = SipMessage(data)
            msg.anomalies = anomalies
            msg.is_request = is_request
            msg.method = method
            msg.ruri = ruri
            msg.version = version
            msg.status = status
            msg.reason = reason
            msg.headers = headers
            dup = sum(map(len, headers.values())) != len(headers)
            return _check(msg, data, headers, dup, body_at, True)
    if start == 0 and data[0] in _CRLF_BYTES:  # CRLF keep-alives before a message: not junk
        start = n - len(data.lstrip(b"\r\n"))
        if start == n:
            return SipMessage(data, "keepalive")

    # --- head / body split; fast path: CRLF line ends only --------------------------------
    end = data.find(b"\r\n\r\n", start)
    terminated = True
    if end >= 0:
        head = data[start:end].decode("latin-1")
        body_at = end + 4
        lines = head.split("\r\n")
        if head.count("\n") != len(lines) - 1:  # a bare LF somewhere: take the general path
            end = -1
    if end < 0:
        m = _EOH.search(data, start)
        if m is not None:
            head = data[start : m.start()].decode("latin-1")
            body_at = m.end()
        else:
            head = data[start:].decode("latin-1").rstrip("\r\n")
            body_at = n
            terminated = False
        lines = _NEWLINE.split(head)

    # --- start line ---------------------------------------------------------------------
    msg = SipMessage(data)
    msg.anomalies = anomalies
    first = lines[0]
    is_request = True
    method = ""
    if first[:4] == "SIP/" or first[:4].upper() == "SIP/":
        is_request = False
        version, _, rest = first.partition(" ")
        code, _, reason = rest.lstrip(_WS).partition(" ")
        msg.version = version
        msg.reason = reason.strip(_WS)
        if len(code) == 3 and code.isdigit() and code.isascii():
            status = msg.status = int(code)
            if status < 100 or status > 699:
                anomalies.append("status_out_of_range")
        else:
            msg.error = "bad_status"
        if version != "SIP/2.0":
            anomalies.append("invalid_version")
    else:
        parts = first.split(" ")
        if len(parts) != 3 or parts[2] != "SIP/2.0" or parts[0] not in _METHODS:
            parts = first.split()
            ok = len(parts) == 3 and parts[2][:4].upper() == "SIP/"
            if ok:
                ok = _TOKEN.fullmatch(parts[0]) is not None
            if not ok:
                if not anomalies:  # once: is there a start line after junk bytes?
                    m = _START_ANY.search(data, start, min(n, start + 4096))
                    if m is not None and m.start() > start:
                        anomalies.append("junk_before_start_line")
                        return _parse(data, m.start(), anomalies)
                msg.error = "bad_start_line" if "SIP/" in first.upper() else "not_sip"
                return msg
            if len(parts) != len(first.split(" ")):
                anomalies.append("start_line_whitespace")
            if parts[2] != "SIP/2.0":
                anomalies.append("invalid_version")
            if len(parts[0]) > MAX_METHOD:
                anomalies.append("long_method")
        method, ruri, version = parts
        msg.is_request = True
        msg.method = method
        msg.ruri = ruri
        msg.version = version
        if len(ruri) > MAX_RURI:
            anomalies.append("long_request_uri")
        scheme, colon, _ = ruri.partition(":")
        if (
            not colon
            or not (scheme.isalnum() or _SCHEME.fullmatch(scheme))
            or ("?" in ruri and "?" in ruri[ruri.rfind("@") + 1 :])  # URI headers not allowed
        ):
            anomalies.append("bad_request_uri")

    # --- headers: the hot loop ----------------------------------------------------------
    if len(lines) > MAX_HEADERS + 1:
        anomalies.append("too_many_headers")
        del lines[MAX_HEADERS + 1 :]
    if len(head) > MAX_LINE:
        for i, line in enumerate(lines):
            if len(line) > MAX_LINE:
                lines[i] = line[:MAX_LINE]
                if "header_too_long" not in anomalies:
                    anomalies.append("header_too_long")
    del lines[0]
    headers: dict[str, list[str]] = {}
    get = _names.get
    dup = False
    mark = len(anomalies)
    try:
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep:
                if line.strip(_WS):
                    if line[:1] in _FOLD:
                        raise _Refold
                    anomalies.append("header_no_colon")
                continue
            key = get(name) or _canon_miss(name, anomalies)
            if key in headers:
                headers[key].append(value.strip(_WS))
                dup = True
            else:
                headers[key] = [value.strip(_WS)]
    except _Refold:
        del anomalies[mark:]
        headers, dup = _header_dict(_unfold(lines), anomalies)
    msg.headers = headers
    return _check(msg, data, headers, dup, body_at, terminated)


def _check(
    msg: SipMessage,
    data: bytes,
    headers: dict[str, list[str]],
    dup: bool,
    body_at: int,
    terminated: bool,
) -> SipMessage:
    """After the header loop: mandatory headers, lengths, CSeq, body and Content-Length."""
    anomalies = msg.anomalies
    is_request = msg.is_request
    method = msg.method
    n = len(data)
    # --- mandatory headers, singletons, lengths (unrolled: this runs for every message) ----
    vals = headers.get("via")
    if vals is None:
        anomalies.append("missing_via")
    elif len(vals[0]) > MAX_VIA or (dup and max(map(len, vals)) > MAX_VIA):
        anomalies.append("long_via")
    vals = headers.get("from")
    if vals is None:
        anomalies.append("missing_from")
    else:
        value = vals[0]
        if len(value) > MAX_FROM:
            anomalies.append("long_from")
        if value.count('"') & 1 and _odd_quotes(value):
            anomalies.append("unbalanced_quotes")
    vals = headers.get("to")
    if vals is None:
        anomalies.append("missing_to")
    else:
        value = vals[0]
        if len(value) > MAX_TO:
            anomalies.append("long_to")
        if value.count('"') & 1 and _odd_quotes(value) and "unbalanced_quotes" not in anomalies:
            anomalies.append("unbalanced_quotes")
    vals = headers.get("call-id")
    if vals is None:
        anomalies.append("missing_call_id")
    elif len(vals[0]) > MAX_CALL_ID:
        anomalies.append("long_call_id")
    vals = headers.get("contact")
    if vals is not None and (
        len(vals[0]) > MAX_CONTACT or (dup and max(map(len, vals)) > MAX_CONTACT)
    ):
        anomalies.append("long_contact")
    if dup:
        for key in _SINGLETONS:
            vals = headers.get(key)
            if vals is not None and len(vals) > 1:
                anomalies.append("duplicate_header")
                break

    # --- CSeq -------------------------------------------------------------------------------
    vals = headers.get("cseq")
    if vals is None:
        anomalies.append("missing_cseq")
    else:
        cparts = vals[0].split()
        if len(cparts) == 2:
            num, cmethod = cparts
            msg.cseq_method = cmethod
            if num.isdigit() and len(num) < 11 and num.isascii():
                cseq = msg.cseq_num = int(num)
                if cseq >= 0x80000000:
                    anomalies.append("cseq_too_large")
            else:
                _cseq_odd(msg, num, anomalies)
            if is_request and cmethod != method:
                anomalies.append("cseq_method_mismatch")
        else:
            anomalies.append("cseq_invalid")

    # --- body and Content-Length ------------------------------------------------------------
    vals = headers.get("content-length")
    if vals is None:
        body = data[body_at:]
        if body and body.strip(b"\r\n"):
            anomalies.append("content_length_missing")
    else:
        cl = vals[0]
        if cl.isdigit() and len(cl) < 20 and cl.isascii():
            length = msg.content_length = int(cl)
            blen = n - body_at
            if length == blen:
                body = data[body_at:] if length else b""
            elif length < blen:
                body = data[body_at : body_at + length]
                extra = data[body_at + length :]
                if extra.strip(b"\r\n\t "):
                    if looks_like_sip(extra):
                        anomalies.append("multiple_messages")
                    else:
                        anomalies.append("content_length_mismatch")
            else:
                body = data[body_at:]
                anomalies.append("content_length_mismatch")
        else:
            body = data[body_at:]
            anomalies.append("content_length_invalid")
    if len(body) > MAX_BODY:
        anomalies.append("body_too_large")
        body = body[:MAX_BODY]
    msg.body = body
    if not terminated:
        anomalies.append("no_end_of_headers")
    return msg


def _header_dict(lines: list[str], anomalies: list[str]) -> tuple[dict[str, list[str]], bool]:
    """The header loop for unfolded lines (slow path; the fast one is inline in _parse)."""
    headers: dict[str, list[str]] = {}
    dup = False
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            if line.strip(_WS):
                anomalies.append("header_no_colon")
            continue
        key = _names.get(name) or _canon_miss(name, anomalies)
        if key in headers:
            headers[key].append(value.strip(_WS))
            dup = True
        else:
            headers[key] = [value.strip(_WS)]
    return headers, dup


def _odd_quotes(value: str) -> bool:
    """True when a quoted-string is left open (backslash escapes honoured)."""
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
    return quoted


def _cseq_odd(msg: SipMessage, num: str, anomalies: list[str]) -> None:
    if num.isdigit() and num.isascii():  # more than 10 digits
        msg.cseq_num = int(num[:40])
        anomalies.append("cseq_too_large")
    elif num[:1] == "-" and num[1:].isdigit() and num.isascii():
        msg.cseq_num = int(num[:40])
        anomalies.append("cseq_negative")
    else:
        anomalies.append("cseq_invalid")


_CRLF_BYTES = (13, 10)
_FOLD = (" ", "\t")
_METHODS = frozenset(
    [
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    ]
)


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines (starting with SP/HT) to the header line before them."""
    out: list[str] = []
    for line in lines:
        if line[:1] in _FOLD:
            if out:
                out[-1] = out[-1].rstrip(_WS) + " " + line.strip(_WS)
            else:  # folded onto the start line: keep it as a line of its own
                out.append(line.strip(_WS))
        else:
            out.append(line)
    return out
