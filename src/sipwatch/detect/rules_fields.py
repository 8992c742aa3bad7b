"""Message fields that rules can test, count, group by and print.

Each field is a getter `(record, msg) -> value`, cheap enough for the hot path (the parsed
message caches its flat fields). "client" is the requester's address: the source of a
request, the destination of a response (a response travels back to whoever asked).
Unparsed payloads (msg.error set, neither request nor response) count as sent by their source.
Also here: the parser's error and anomaly codes, and the address and watch-list values that
conditions compare fields with.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from sipwatch.detect.fingerprints import SVCRACK_FIXED_TAG
from sipwatch.detect.stages import BENIGN_ANOMALIES
from sipwatch.record import Record
from sipwatch.sip.message import SipMessage

Getter = Callable[[Record, SipMessage], object]
Pred = Callable[[Record, SipMessage], bool]
_ADDR_CACHE_MAX = 65536

# codes of sip/message.py (a test keeps these in step with its docstring)
ERROR_CODES = frozenset(
    {"empty", "keepalive", "not_sip", "bad_start_line", "bad_status", "internal"}
)
ANOMALY_CODES = frozenset(
    [
        "junk_before_start_line",
        "invalid_version",
        "status_out_of_range",
        "long_method",
        "long_request_uri",
        "bad_request_uri",
        "start_line_whitespace",
        "unbalanced_quotes",
        "long_call_id",
        "long_from",
        "long_to",
        "long_via",
        "long_contact",
        "missing_via",
        "missing_from",
        "missing_to",
        "missing_call_id",
        "missing_cseq",
        "duplicate_header",
        "cseq_invalid",
        "cseq_negative",
        "cseq_too_large",
        "cseq_method_mismatch",
        "content_length_missing",
        "content_length_invalid",
        "content_length_mismatch",
        "multiple_messages",
        "no_end_of_headers",
        "header_no_colon",
        "bad_header_name",
        "too_many_headers",
        "header_too_long",
        "body_too_large",
    ]
)


def client(r: Record, m: SipMessage) -> str:
    return r.dst if m.status and not m.is_request else r.src


def server(r: Record, m: SipMessage) -> str:
    return r.src if m.status and not m.is_request else r.dst


def method(r: Record, m: SipMessage) -> str:
    """Request method, or the CSeq method of a response (upper case)."""
    return (m.method if m.is_request else m.cseq_method).upper()


def user(r: Record, m: SipMessage) -> str:
    """The extension a message is about: REGISTER's To user (its request-URI has none), the
    request-URI user of other requests (else To), the To user of a response."""
    if not m.is_request:
        return m.to_user
    if m.method.upper() == "REGISTER":
        return m.to_user or m.ruri_user
    return m.ruri_user or m.to_user


def auth_user(r: Record, m: SipMessage) -> str:
    return m.auth_user_realm[0]


def real_anomalies(m: SipMessage) -> list[str]:
    """Anomalies that count as evidence of fuzzing (as the stage labeller's fuzz flag)."""
    anomalies = m.anomalies
    if not anomalies or BENIGN_ANOMALIES.issuperset(anomalies):
        return []
    return [a for a in anomalies if a not in BENIGN_ANOMALIES]


# name -> getter, for fields holding one string (conditions, distinct, key parts, templates)
STRING_FIELDS: dict[str, Getter] = {
    "client": client,
    "server": server,
    "src": lambda r, m: r.src,
    "dst": lambda r, m: r.dst,
    "node": lambda r, m: r.node,
    "sensor": lambda r, m: r.sensor,
    "transport": lambda r, m: r.transport,
    "method": method,
    "user": user,
    "ruri_user": lambda r, m: m.ruri_user,
    "from_user": lambda r, m: m.from_user,
    "to_user": lambda r, m: m.to_user,
    "auth_user": auth_user,
    "from_display": lambda r, m: m.from_display,
    "from_tag": lambda r, m: m.from_tag,
    "to_tag": lambda r, m: m.to_tag,
    "call_id": lambda r, m: m.call_id,
    "user_agent": lambda r, m: m.user_agent,
    "stage": lambda r, m: r.stage,
    "tool": lambda r, m: r.tool,
    "tool_data": lambda r, m: r.tool_data,
    "number": lambda r, m: r.number,
    "number_type": lambda r, m: r.number_type,
    "number_country": lambda r, m: r.number_country,
    "password": lambda r, m: r.password,
    "error": lambda r, m: m.error,
}

# fields that are plain Record attributes: predicates read them with a C attrgetter
RECORD_ATTRS = frozenset(
    {"src", "dst", "node", "sensor", "transport", "stage", "tool", "tool_data", "number"}
    | {"number_type", "number_country", "password"}
)

BOOL_FIELDS: dict[str, Getter] = {
    "is_request": lambda r, m: m.is_request,
    "fuzz": lambda r, m: r.fuzz,
    "has_credentials": lambda r, m: m.has_credentials,
    "password_recovered": lambda r, m: bool(r.password),
    "nonce_fetch": lambda r, m: _nonce_fetch(r, m),
}

ADDRESS_FIELDS = ("src", "dst", "client", "server")

# key parts that name the attacker (the event's src) rather than a target
CLIENT_PARTS = frozenset({"client", "src"})

# values a summary template can use besides the string fields
TEMPLATE_NUMBERS = frozenset(
    {
        "count",
        "distinct",
        "value",
        "threshold",
        "window",
        "rate",
        "ratio",
        "samples",
        "hits",
        "duration",
        "status",
    }
)
TEMPLATE_NAMES = frozenset(
    {"rule", "severity", "key", "targets", "first", "last", *TEMPLATE_NUMBERS, *STRING_FIELDS}
)


def key_getter(parts: tuple[str, ...]) -> Callable[[Record, SipMessage], object]:
    """Getter of a rule's key: one string for one part, else a tuple of strings."""
    if len(parts) == 1:
        return STRING_FIELDS[parts[0]]
    getters = tuple(STRING_FIELDS[p] for p in parts)
    if len(getters) == 2:
        g0, g1 = getters
        return lambda r, m: (g0(r, m), g1(r, m))
    return lambda r, m: tuple(g(r, m) for g in getters)


def key_text(key: object) -> str:
    """Stable text of a key (part of the event id)."""
    return "|".join(key) if isinstance(key, tuple) else str(key)


def _has_credentials(r: Record, m: SipMessage) -> bool:
    h = m.headers
    return "authorization" in h or "proxy-authorization" in h


def _nonce_fetch(r: Record, m: SipMessage) -> bool:
    """svcrack's REGISTER without credentials that only fetches a nonce for its next password
    try (its fixed From tag), or the answer to one (a response echoes the From tag). Its 401 is
    no refused password: nothing was tried yet."""
    return m.from_tag == SVCRACK_FIXED_TAG and not _has_credentials(r, m)


# the boolean fields as direct predicates: name -> {True: pred, False: pred}
BOOL_FAST: dict[str, dict[bool, Pred]] = {
    "is_request": {True: lambda r, m: m.is_request, False: lambda r, m: not m.is_request},
    "fuzz": {True: lambda r, m: r.fuzz, False: lambda r, m: not r.fuzz},
    "has_credentials": {True: _has_credentials, False: lambda r, m: not _has_credentials(r, m)},
    "password_recovered": {
        True: lambda r, m: r.password != "",
        False: lambda r, m: r.password == "",
    },
    "nonce_fetch": {True: _nonce_fetch, False: lambda r, m: not _nonce_fetch(r, m)},
}


def in_networks(get: Callable, nets: tuple) -> Pred:
    cache: dict[str, bool] = {}  # the same few addresses repeat; bounded (cleared when full)

    def inside(r: Record, m: SipMessage) -> bool:
        addr = get(r, m)
        hit = cache.get(addr)
        if hit is None:
            try:
                ip = ipaddress.ip_address(addr.split("%", 1)[0])
                hit = any(ip.version == n.version and ip in n for n in nets)
            except ValueError:
                hit = False
            if len(cache) >= _ADDR_CACHE_MAX:
                cache.clear()
            cache[addr] = hit
        return hit

    return inside


def normalise_watchlist(entries: object) -> frozenset[str] | None:
    """Watch-list entries (numbers or prefixes, E.164 like +88216) without separators."""
    if not isinstance(entries, list):
        return None
    out = set()
    for e in entries:
        if isinstance(e, bool) or not isinstance(e, (str, int)):
            return None
        s = re.sub(r"[\s.\-()/]", "", str(e))
        if s.startswith("00"):
            s = "+" + s[2:]
        if not re.fullmatch(r"\+?[0-9]+", s):
            return None
        out.add(s)
    return frozenset(out)
