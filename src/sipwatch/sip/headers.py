"""Structured header values: name-addr (From/To/Contact/...), Via, CSeq, comma lists.

All parsers here are lenient and never raise: a value they cannot make sense of gives None
(or an object with empty fields), because attacker bytes must never stop the pipeline.
"""

from __future__ import annotations

import re

from sipwatch.sip.text import text
from sipwatch.sip.uri import SIP_URI_FAST, Uri, parse_uri, port_number, sip_uri

# Fast paths for the shapes nearly every message has; anything else (escapes in the display
# name, IPv6 zones, odd spacing, other schemes, ...) goes to the general parsers below, which
# the differential tests (tests/unit/test_sip_fastpaths.py) hold these to.
# ["display" ] or [token display ]<sip:...>[ ][;params]; groups: quoted display, plain
# display, the URI text, SIP_URI_FAST's groups, the tag when it is the only parameter (the
# usual case: no dict-building loop), else the header params.
_NAME_ADDR_FAST = re.compile(
    r'(?:"([^"\\]*)" ?|([^"<]*))<(' + SIP_URI_FAST + r')>[ \t]*(?:;tag=([^;" \t]*)|;(.*))?',
    re.S,
)
# SIP/2.0/transport host[:port][;params]; groups: transport, IPv6 host (no brackets) or other
# host, port, then the branch and ';rport' flag when they are all the parameters (what
# clients send), else the params.
_VIA_FAST = re.compile(
    r'SIP/2\.0/([A-Za-z]+) (?:\[([0-9A-Fa-f:.]+)\]|([^ \t;:\[\]()",]+))(?::([0-9]{1,5}))?'
    r'(?:;branch=([^;" \t]*)(;rport)?|;(.*))?',
    re.S,
)


def split_commas(value: str) -> list[str]:
    """Split a list header value at commas outside quotes and <...> (RFC 3261 7.3.1)."""
    if '"' not in value and "<" not in value:
        return [p for p in (v.strip(" \t") for v in value.split(",")) if p]
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    begin = 0
    for i, ch in enumerate(value):
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            out.append(value[begin:i])
            begin = i + 1
    out.append(value[begin:])
    return [p for p in (v.strip(" \t") for v in out) if p]


def split_params(value: str) -> list[str]:
    """Split at ';' outside quoted strings (e.g. ;+sip.instance="<urn:...;x>")."""
    if '"' not in value:
        return value.split(";")
    out: list[str] = []
    quoted = False
    escaped = False
    begin = 0
    for i, ch in enumerate(value):
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == ";":
            out.append(value[begin:i])
            begin = i + 1
    out.append(value[begin:])
    return out


def header_params(value: str) -> dict[str, str | None]:
    """Header parameters after a value, names lowercased; quoted values kept with quotes."""
    if '"' in value or " " in value or "\t" in value:
        return _header_params_general(value)
    params: dict[str, str | None] = {}
    for part in value.split(";"):  # nothing to strip, no quoted ';'
        name, sep, val = part.partition("=")
        params[name.lower()] = val if sep else None
    params.pop("", None)
    return params


def _header_params_general(value: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for part in split_params(value) if '"' in value else value.split(";"):
        name, sep, val = part.partition("=")
        if sep:
            params[name.strip(" \t").lower()] = val.strip(" \t")
        else:
            name = name.strip(" \t").lower()
            if name:
                params[name] = None
    params.pop("", None)
    return params


def unquote(value: str) -> str:
    """Remove surrounding double quotes and backslash escapes of a quoted-string."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = value[1:-1]
        if "\\" in value:
            out = []
            it = iter(value)
            for ch in it:
                out.append(next(it, "") if ch == "\\" else ch)
            value = "".join(out)
    return value


class NameAddr:
    """From/To/Contact/Route/...: optional display name, a URI, header parameters.

    ``uri`` is parsed from ``uri_text`` on first access.
    """

    __slots__ = ("display", "uri_text", "params", "angle", "wildcard", "_uri")

    def __init__(
        self,
        display: str = "",
        uri_text: str = "",
        params: dict[str, str | None] | None = None,
        angle: bool = True,
        wildcard: bool = False,
    ) -> None:
        self.display = display  # unquoted; UTF-8 decoded when valid
        self.uri_text = uri_text
        self.params = {} if params is None else params
        self.angle = angle  # written with <...>
        self.wildcard = wildcard  # Contact: *
        # False: not parsed yet; a tuple: SIP_URI_FAST's groups (fast path); else the result
        self._uri: Uri | None | bool | tuple = False

    @property
    def uri(self) -> Uri | None:
        got = self._uri
        if got.__class__ is tuple:
            got = self._uri = sip_uri(*got)
        elif got is False:
            got = self._uri = parse_uri(self.uri_text) if self.uri_text else None
        return got  # type: ignore[return-value]

    @property
    def tag(self) -> str:
        return self.params.get("tag") or ""

    @property
    def user(self) -> str:
        """The URI's user part ('' without one); cheaper than .uri.user on the fast path."""
        got = self._uri
        if got.__class__ is tuple:
            return got[1] or ""
        uri = self.uri
        return uri.user if uri is not None else ""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        return (self.display, self.uri_text, self.params, self.wildcard) == (
            other.display,
            other.uri_text,
            other.params,
            other.wildcard,
        )

    def __repr__(self) -> str:
        return f"NameAddr({str(self)!r})"

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params.items())
        if not self.angle and not self.display:
            return f"{self.uri_text}{params}"
        disp = ""
        if self.display:
            esc = self.display.replace("\\", "\\\\").replace('"', '\\"')
            disp = f'"{esc}" '
        return f"{disp}<{self.uri_text}>{params}"


def _closing_quote(value: str, start: int) -> int:
    """Index of the quote that ends the quoted-string opened at value[start]; -1 if none."""
    i = start + 1
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i
        i += 1
    return -1


def parse_name_addr(value: str) -> NameAddr | None:
    """Parse name-addr / addr-spec with header params. None for an empty value."""
    value = value.strip(" \t")
    m = _NAME_ADDR_FAST.fullmatch(value)
    if m is None:
        return _parse_name_addr_general(value)
    quoted, plain, uri_text, user, host6, host, port, uparams, tag, params = m.groups()
    if quoted is None:
        display = text(plain.strip(" \t")) if plain else ""
    else:
        display = quoted if quoted.isascii() else text(quoted)
    if tag is not None:
        na = NameAddr(display, uri_text, {"tag": tag})
    else:
        na = NameAddr(display, uri_text, header_params(params) if params else {})
    na._uri = (uri_text, user, host6, host, port, uparams)  # the Uri is built only when asked for
    return na


def _parse_name_addr_general(value: str) -> NameAddr | None:
    if not value:
        return None
    if value == "*":
        return NameAddr(wildcard=True, angle=False)
    display = ""
    rest = value
    if value[0] == '"':
        close = value.find('"', 1)
        if close > 0 and "\\" in value[1:close]:
            close = _closing_quote(value, 0)
        if close < 0:  # unterminated quote: take what is there as the display name
            return NameAddr(display=text(unquote(value + '"')))
        display = value[1:close]
        if "\\" in display:
            display = unquote(value[: close + 1])
        if not display.isascii():
            display = text(display)
        rest = value[close + 1 :]
    lt = rest.find("<")
    if lt >= 0:
        if lt and not display:
            display = text(rest[:lt].strip(" \t"))
        gt = rest.find(">", lt)
        if gt < 0:
            uri_text = rest[lt + 1 :].strip(" \t")
            tail = ""
        else:
            uri_text = rest[lt + 1 : gt].strip(" \t")
            tail = rest[gt + 1 :]
        semi = tail.find(";")
        return NameAddr(display, uri_text, header_params(tail[semi + 1 :]) if semi >= 0 else {})
    # addr-spec: parameters after the URI belong to the header (RFC 3261 20.10)
    uri_text, semi, tail = rest.partition(";")
    params = header_params(tail) if semi else {}
    return NameAddr(display, uri_text.strip(" \t"), params, angle=False)


class Via:
    __slots__ = ("protocol", "transport", "host", "port", "params")

    def __init__(
        self,
        protocol: str = "SIP/2.0",
        transport: str = "",
        host: str = "",
        port: int | None = None,
        params: dict[str, str | None] | None = None,
    ) -> None:
        self.protocol = protocol
        self.transport = transport
        self.host = host
        self.port = port
        self.params = {} if params is None else params

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return str(self) == str(other)

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"

    @property
    def branch(self) -> str:
        return self.params.get("branch") or ""

    @property
    def received(self) -> str:
        return self.params.get("received") or ""

    @property
    def rport(self) -> int | None:
        """None: no rport; 0: rport flag without a value (asks for it); else the value."""
        if "rport" not in self.params:
            return None
        value = self.params["rport"]
        if value and value.isdigit() and value.isascii() and len(value) < 6:
            return int(value)
        return 0

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        hostport = host if self.port is None else f"{host}:{self.port}"
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params.items())
        return f"{self.protocol}/{self.transport} {hostport}{params}"


def parse_via(value: str) -> Via | None:
    """One via-parm ('SIP / 2.0 / UDP host:port;branch=...'); None when unreadable."""
    m = _VIA_FAST.fullmatch(value)
    if m is None:
        return _parse_via_general(value)
    transport, host6, host, port, branch, rport, params = m.groups()
    if branch is not None:
        params_d: dict[str, str | None] = {"branch": branch}
        if rport is not None:
            params_d["rport"] = None
    else:
        params_d = header_params(params) if params else {}
    if host is None:
        host = host6
    return Via(
        "SIP/2.0",
        transport.upper(),
        host,
        None if port is None or int(port) > 65535 else int(port),
        params_d,
    )


def _parse_via_general(value: str) -> Via | None:
    if value[:8] == "SIP/2.0/":
        transport, sp, rest = value[8:].partition(" ")
        if not sp or ";" in transport or "\t" in transport:
            return _parse_via_slow(value)
        protocol = "SIP/2.0"
        transport = transport.upper()
    else:
        return _parse_via_slow(value)
    return _via_rest(protocol, transport, rest)


def _parse_via_slow(value: str) -> Via | None:
    parts = value.split("/", 2)
    if len(parts) != 3:
        return None
    name, version, rest = parts
    rest = rest.lstrip(" \t")
    cut = 0
    n = len(rest)
    while cut < n and rest[cut] not in " \t;":  # transport ends at whitespace
        cut += 1
    protocol = name.strip(" \t") + "/" + version.strip(" \t")
    return _via_rest(protocol, rest[:cut].upper(), rest[cut:])


def _via_rest(protocol: str, transport: str, rest: str) -> Via:
    sent_by, _, params = rest.partition(";")
    sent_by = sent_by.strip(" \t")
    if "(" in sent_by:  # a comment after sent-by
        sent_by = sent_by[: sent_by.find("(")].strip(" \t")
    port = ""
    if sent_by[:1] == "[":
        close = sent_by.find("]")
        host = sent_by[1:close] if close > 0 else sent_by[1:]
        if close > 0:
            port = sent_by[close + 1 :].lstrip(" \t:")
    else:
        host, _, port = sent_by.partition(":")
        if " " in host or "\t" in host or " " in port:
            host = host.strip(" \t")
            port = port.strip(" \t")
    return Via(
        protocol, transport, host, port_number(port) if port else None,
        header_params(params) if params else {},
    )  # fmt: skip


def parse_cseq(value: str) -> tuple[int | None, str]:
    """'42 INVITE' -> (42, 'INVITE'); (None, method) when the number is not a number."""
    parts = value.split()
    if not parts:
        return None, ""
    num = parts[0]
    method = parts[1] if len(parts) > 1 else ""
    digits = num[1:] if num[:1] == "-" else num
    if digits.isdigit() and digits.isascii() and len(digits) < 40:
        return int(num), method
    return None, method
