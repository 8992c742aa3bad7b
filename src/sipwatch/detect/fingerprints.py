"""Attack-tool fingerprints: which tool sent a request, and what it hid in it.

Two kinds of evidence, strongest first:
1. SIPVicious encodes its own bookkeeping in the From tag: hex of `<data>\\x01<random decimal>`
   (svmap: the target address, svwar: the extension, svcrack: `user:password`). The encoding
   survives a changed User-Agent, so renamed or patched copies are still recognised, and the
   decoded data says exactly what was tried. svcrack's first (unauthenticated) REGISTER uses a
   constant tag, recognised as well.
2. User-Agent substrings of well-known attack tools (only tools built for attacks or scanning,
   never a softphone or SDK name that legitimate users also run), and SIPVicious' default From
   display name.

Pure functions over strings; no I/O.
"""

from __future__ import annotations

import re
from typing import NamedTuple

SIPVICIOUS = "sipvicious"

# tool name -> User-Agent tokens (lower case, matched as whole tokens, anywhere in the header)
UA_TOOLS: dict[str, tuple[str, ...]] = {
    SIPVICIOUS: ("friendly-scanner", "sipvicious"),
    "sipcli": ("sipcli",),
    "sundayddr": ("sundayddr",),
    "sippts": ("pplsip",),  # Pepelux' SIPPTS suite (sipscan, sipexten, sipcrack, ...)
    "sipsak": ("sipsak",),
    "vaxsip": ("vaxsipuseragent", "vaxipuseragent"),  # VaxVoIP SDK default, scanner favourite
    "nmap": ("nmap nse",),
    "sip-scan": ("sip-scan", "sipscan"),
    "iwar": ("iwar",),
    "smap": ("smap",),
    "sivus": ("sivus",),
    "siparmyknife": ("siparmyknife",),
}

_UA_RE = re.compile(
    "|".join(
        f"(?P<t{i}>(?<![a-z0-9]){'|'.join(re.escape(tok) for tok in toks)}(?![a-z0-9]))"
        for i, toks in enumerate(UA_TOOLS.values())
    )
)
_UA_NAMES = list(UA_TOOLS)
# User-Agent -> tool: the same few strings repeat in nearly every message of a campaign
_ua_cache: dict[str, str] = {}
_UA_CACHE_MAX = 4096

# svcrack's first REGISTER of every try carries this fixed tag (sipvicious 0.3.x)
SVCRACK_FIXED_TAG = "3206210844"
_MAX_TAG = 512  # longer tags are not SIPVicious' (and not worth decoding)
_HEX = frozenset("0123456789abcdefABCDEF")
_LOWER_HEX = frozenset("0123456789abcdef")


class Fingerprint(NamedTuple):
    tool: str
    data: str  # what the tool encoded ("" when nothing)


def decode_sipvicious_tag(tag: str) -> str | None:
    """Data that SIPVicious hid in a From tag, or None when the tag is not SIPVicious'."""
    if not tag or len(tag) > _MAX_TAG or len(tag) % 2 or not _HEX.issuperset(tag):
        return None
    raw = bytes.fromhex(tag)
    data, sep, rnd = raw.partition(b"\x01")
    # the random part is str(getrandbits(32)): 1-10 ASCII digits, nothing else after it
    if not sep or not data or not (1 <= len(rnd) <= 10) or not rnd.isdigit():
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def svmap_target(data: str) -> str | None:
    """svmap's tag data (IPv4 address and port as 12 lower-case hex digits) as "a.b.c.d:port"."""
    if len(data) != 12 or not _LOWER_HEX.issuperset(data):
        return None
    b = bytes.fromhex(data)
    return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}:{int.from_bytes(b[4:], 'big')}"


def from_user_agent(user_agent: str) -> str:
    """Tool name for a User-Agent (or Server) header value; "" when none is known."""
    if not user_agent:
        return ""
    tool = _ua_cache.get(user_agent)
    if tool is None:
        m = _UA_RE.search(user_agent.lower())
        tool = _UA_NAMES[int(m.lastgroup[1:])] if m and m.lastgroup is not None else ""
        if len(_ua_cache) >= _UA_CACHE_MAX:  # bounded: attackers can send endless new strings
            _ua_cache.clear()
        _ua_cache[user_agent] = tool
    return tool


def fingerprint(
    from_tag: str, user_agent: str = "", from_display: str = "", to_user: str = ""
) -> Fingerprint | None:
    """The tool behind a request, from its From tag, User-Agent, From display name and To user.

    SIPVicious data: svwar's extension equals the To user and is kept as it is; svmap's target
    (12 hex digits that are not the To user) becomes "a.b.c.d:port"; svcrack's "user:password"
    is kept as it is.
    """
    data = decode_sipvicious_tag(from_tag)
    if data is not None:
        if data != to_user:
            data = svmap_target(data) or data
        return Fingerprint(SIPVICIOUS, data)
    if from_tag == SVCRACK_FIXED_TAG:
        return Fingerprint(SIPVICIOUS, "")
    tool = from_user_agent(user_agent)
    if tool:
        return Fingerprint(tool, "")
    # svmap's default From display name
    if from_display.strip().strip('"').lower() == SIPVICIOUS:
        return Fingerprint(SIPVICIOUS, "")
    return None
