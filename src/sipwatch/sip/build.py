"""Builders: responses to parsed requests, and new requests (RFC 3261 8.1.1, 8.2.6).

Builders write the message with SipMessage.to_bytes() conventions and parse the result, so
a built message has every parsed field (call_id, vias, ...) exactly as a received one would.
Header values copied from a request are kept byte for byte: scanners such as SIPVicious read
their state back from the From tag of the reply. Other arguments are text as people write it
(str); non-ASCII characters are sent as UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterable

from sipwatch.sip.message import SipMessage, parse
from sipwatch.sip.names import display
from sipwatch.sip.text import wire

REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

Headers = Iterable[tuple[str, str]]


def _assemble(start: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [start]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append(f"Content-Length: {len(body)}")
    lines.append("")
    lines.append("")
    head = "\r\n".join(lines)
    try:
        return head.encode("latin-1") + body
    except UnicodeEncodeError:
        return head.encode("utf-8") + body


def _extra(headers: Headers, content_type: str, body: bytes) -> list[tuple[str, str]]:
    out = [(name, wire(value)) for name, value in headers if name.lower() != "content-length"]
    if body and content_type:
        out.append(("Content-Type", content_type))
    return out


def build_response(
    request: SipMessage,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str = "",
    headers: Headers = (),
    body: bytes = b"",
    content_type: str = "",
) -> SipMessage:
    """A response to ``request``: Via (all), From, To, Call-ID and CSeq echoed, then
    ``headers`` in order, Content-Type, Content-Length. ``to_tag`` is added to To when the
    request's To has no tag (and status > 100, RFC 3261 8.2.6.2)."""
    if reason is None:
        reason = REASONS.get(status, "Unknown")
    out: list[tuple[str, str]] = []
    h = request.headers
    for value in h.get("via", ()):
        out.append(("Via", value))
    for key in ("from", "to", "call-id", "cseq"):
        for value in h.get(key, ())[:1]:
            if key == "to" and to_tag and status > 100:
                to = request.to
                if to is not None and not to.tag:
                    value = f"{value};tag={to_tag}"
            out.append((display(key), value))
    out.extend(_extra(headers, content_type, body))
    start = f"SIP/2.0 {status:03d} {wire(reason)}"
    return parse(_assemble(start, out, body))


def build_request(
    method: str,
    ruri: str,
    *,
    via: str | Iterable[str],
    from_: str,
    to: str,
    call_id: str,
    cseq: int,
    max_forwards: int | None = 70,
    headers: Headers = (),
    body: bytes = b"",
    content_type: str = "",
) -> SipMessage:
    """A request with the mandatory headers (Via, Max-Forwards, From, To, Call-ID, CSeq)
    followed by ``headers`` in order, Content-Type and Content-Length."""
    out: list[tuple[str, str]] = []
    for value in [via] if isinstance(via, str) else via:
        out.append(("Via", wire(value)))
    if max_forwards is not None:
        out.append(("Max-Forwards", str(max_forwards)))
    out += [
        ("From", wire(from_)),
        ("To", wire(to)),
        ("Call-ID", wire(call_id)),
        ("CSeq", f"{cseq} {method}"),
    ]
    out.extend(_extra(headers, content_type, body))
    return parse(_assemble(f"{method} {wire(ruri)} SIP/2.0", out, body))
