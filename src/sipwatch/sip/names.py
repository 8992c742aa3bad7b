"""Header names: compact forms, canonical (lowercase long) names and their usual spelling.

The parser maps every spelling it meets to one canonical key; the serializer writes the
conventional spelling back. Kept apart from message.py because builders and tests use it too.
"""

from __future__ import annotations

# RFC 3261 7.3.3 and the later RFCs that registered compact forms (IANA "Header Fields").
COMPACT: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Spellings that str.title() would get wrong.
_SPECIAL = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
    "p-asserted-identity": "P-Asserted-Identity",
}

# Headers whose values may contain commas that do not separate values (RFC 3261 7.3.1).
NOT_LIST = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "www-authenticate",
        "proxy-authenticate",
        "authentication-info",
        "call-id",
        "cseq",
        "content-length",
        "content-type",
        "date",
        "from",
        "to",
        "max-forwards",
        "organization",
        "retry-after",
        "server",
        "subject",
        "timestamp",
        "user-agent",
        "expires",
        "min-expires",
        "priority",
        "mime-version",
        "identity",
        "refer-to",
        "referred-by",
    }
)


def canonical(name: str) -> str:
    """Canonical key for a header name as written on the wire (any case, padding, compact)."""
    key = name.strip().lower()
    return COMPACT.get(key, key)


def display(key: str) -> str:
    """Conventional spelling of a canonical header name, for serializing."""
    special = _SPECIAL.get(key)
    if special is not None:
        return special
    return "-".join(part.capitalize() for part in key.split("-"))
