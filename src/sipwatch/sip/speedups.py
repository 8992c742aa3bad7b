"""Optional C fast paths for the parser (sipwatch/sip/_speedups.c), or None fallbacks.

Each function handles only the clean common shape of its input and returns None for
anything else, so callers always keep the Python parser as the fallback and the definition
of the results (the differential tests in tests/unit/test_sip_speedups.py hold the C code to
it). ``AVAILABLE`` is False when the extension was not built (no compiler at install time)
or SIPWATCH_NO_SPEEDUPS is set; the functions are then None.

- parse_head(data: bytes) -> (is_request, method, ruri, version, status, reason, headers,
  body_at, ...) | None (the rest: see below). Non-None only for a message whose start line and header loop add no
  anomaly and no error in message._parse: no leading CR/LF, CRLF line ends only, a CRLFCRLF,
  no folding, every header line "token[SP/HT]: value", at most MAX_HEADERS lines of at most
  MAX_LINE characters, "METHOD SP URI SP SIP/2.0" (token method of at most MAX_METHOD,
  printable-ASCII request-URI of at most MAX_RURI with a valid scheme and no URI headers) or
  "SIP/2.0 SP 3DIGIT[ SP reason]" with a status in 100..699.
- name_addr(value: str) -> (display, uri_text, scheme, user, host, port, tag) | None:
  parse_name_addr(value)'s display and uri_text, its .uri's scheme/user/host/port, and
  .params.get("tag") (None when absent or without a value; .tag is ``tag or ""``).
- via_branch(value: str) -> str | None: parse_via(value).branch for one via-parm.
- digest_user_realm(value: str) -> (username, realm) | None: parse_digest(value)'s fields.
- flat(headers: dict, ruri: str) -> 10-tuple | None: SipMessage.flat() in one call, from the
  same C as the three above; where they are stricter than flat() needs, it reads more: the
  request-URI's user as parse_uri gives it (so with URI parameters too), and the top
  via-parm's branch of a Via line of several (message.vias[0]). None when any part needs the
  Python field parsers.

parse_head's result also carries message._check's results for the message: (...,
body_at, anomalies, cseq_num, cseq_method, content_length, body), the last five None when
the shape needs the Python code (a CSeq number that is not 1..10 ASCII digits, a non-str
value). Bytes after a shorter Content-Length's body are multiple_messages when they start
like a SIP message (looks_like_sip), else content_length_mismatch, as _check says.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from sipwatch.sip.names import COMPACT

parse_head: Callable[[bytes], tuple | None] | None = None
name_addr: Callable[[str], tuple | None] | None = None
via_branch: Callable[[str], str | None] | None = None
digest_user_realm: Callable[[str], tuple[str, str] | None] | None = None
flat: Callable[[dict, str], tuple | None] | None = None

_ext: Any = None
if not os.environ.get("SIPWATCH_NO_SPEEDUPS"):
    try:
        from sipwatch.sip import _speedups as _ext
    except ImportError:  # not built: pure Python
        _ext = None

AVAILABLE = _ext is not None
if _ext is not None:
    _ext.set_compact(COMPACT)  # one table of compact forms: names.py's
    parse_head = _ext.parse_head
    name_addr = _ext.name_addr
    via_branch = _ext.via_branch
    digest_user_realm = _ext.digest_user_realm
    flat = _ext.flat

__all__ = ["AVAILABLE", "parse_head", "name_addr", "via_branch", "digest_user_realm", "flat"]
