"""Record -> messages row (a tuple in schema.MESSAGE_COLUMNS order).

This runs once per stored message, so it is one function of attribute reads; the lazily parsed
SipMessage fields (From, To, Via, credentials) are computed at most once and cached there.
"""

from __future__ import annotations

import time

from sipwatch.record import Record

_INT64 = 1 << 63  # SQLite INTEGER range; a CSeq of any length can arrive
_DAY_CACHE: dict[int, str] = {}
_DAY_CACHE_MAX = 100_000  # bounded: a capture spans few days; a hostile ts range cannot grow it


def day_of(ts: float) -> str:
    """UTC calendar day of a timestamp, 'YYYY-MM-DD' (cached per day number)."""
    try:
        n = int(ts // 86400)
    except (ValueError, OverflowError):
        return "1970-01-01"
    day = _DAY_CACHE.get(n)
    if day is None:
        try:
            day = time.strftime("%Y-%m-%d", time.gmtime(n * 86400))
        except (ValueError, OverflowError, OSError):
            day = "1970-01-01"
        if len(_DAY_CACHE) >= _DAY_CACHE_MAX:
            _DAY_CACHE.clear()
        _DAY_CACHE[n] = day
    return day


def message_row(r: Record) -> tuple:
    """The row of one record. Never raises for a SipMessage that honours its contract."""
    m = r.msg
    cseq = m.cseq_num
    ruri_user, _, from_user, from_tag, to_user, to_tag, branch, ua, user, realm = m.flat()
    h = m.headers
    contact = h.get("contact")  # the canonical key: no name lookup needed
    call_id = h.get("call-id")
    ctype = h.get("content-type")
    ts = r.ts
    return (
        r.id,
        ts,
        day_of(ts),
        r.transport,
        r.src,
        r.sport,
        r.dst,
        r.dport,
        r.direction,
        1 if m.is_request else 0,
        m.method,
        m.status,
        m.reason,
        m.ruri,
        ruri_user,
        from_user,
        from_tag,
        to_user,
        to_tag,
        call_id[0] if call_id else "",
        cseq if cseq is None or -_INT64 <= cseq < _INT64 else None,  # attacker-sized numbers
        m.cseq_method,
        branch,
        ua,
        user,
        realm,
        contact[0] if contact else "",
        ctype[0] if ctype else "",
        len(m.body),
        ",".join(m.anomalies),
        m.error,
        r.stage,
        r.tool,
        r.tool_data,
        1 if r.fuzz else 0,
        r.number,
        r.number_type,
        r.number_country,
        r.request_id,
        r.sensor,
        r.node,
        r.tunnel,
        r.vlan,
        r.raw,
        r.password,
    )


def fallback_row(r: Record, why: str) -> tuple:
    """A row from the 'seen' fields and raw bytes only, for a message whose fields failed.

    The raw bytes are always kept; the reason goes into the error column.
    """
    return (
        r.id, r.ts, day_of(r.ts), str(r.transport), str(r.src), int(r.sport or 0),
        str(r.dst), int(r.dport or 0), str(r.direction), 0, "", 0, "", "", "", "", "", "", "",
        "", None, "", "", "", "", "", "", "", 0, "", why, str(r.stage), str(r.tool),
        str(r.tool_data), 1 if r.fuzz else 0, str(r.number), str(r.number_type),
        str(r.number_country), int(r.request_id or 0), str(r.sensor), str(r.node),
        str(r.tunnel), str(r.vlan), bytes(r.raw), str(r.password),
    )  # fmt: skip


def stored_row(r: Record) -> tuple[tuple, bool]:
    """(row, fell_back): the message row, or the raw-bytes-only row when a parsed field cannot
    be stored (a broken parsed field must not lose the raw bytes)."""
    try:
        return message_row(r), False
    except Exception as exc:
        return fallback_row(r, f"store:{type(exc).__name__}"), True
