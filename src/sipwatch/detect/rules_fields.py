"""Message fields that rules can test, count, group by and print.

Each field is a getter `(record, msg) -> value`, cheap enough for the hot path (the parsed
message caches its flat fields). "client" is the requester's address: the source of a
request, the destination of a response (a response travels back to whoever asked).
Unparsed payloads (msg.error set, neither request nor response) count as sent by their source.
"""

from __future__ import annotations

from collections.abc import Callable

from sipwatch.detect.stages import BENIGN_ANOMALIES
from sipwatch.record import Record
from sipwatch.sip.message import SipMessage

Getter = Callable[[Record, SipMessage], object]


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

BOOL_FIELDS: dict[str, Getter] = {
    "is_request": lambda r, m: m.is_request,
    "fuzz": lambda r, m: r.fuzz,
    "has_credentials": lambda r, m: m.has_credentials,
    "password_recovered": lambda r, m: bool(r.password),
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
