"""SIP, SIPS and tel URIs (RFC 3261 19.1, RFC 3966), parsed leniently and never raising.

Other schemes are kept with their scheme and the rest in ``opaque``. ``user`` and
``password`` are %-unescaped (so ``%61lice`` is ``alice``); ``text`` is the URI as written.
IPv6 hosts are stored without their brackets; ``str(uri)`` writes them back.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# The usual shape, sip:[user@]host[:port][;params], with nothing that needs the general
# parser (no escapes, IPv6 zone, URI headers, password, SP/HT, second '@'). Groups: user,
# IPv6 host (without brackets) or other host, port, params (with its leading ';').
# headers.py embeds it in its name-addr pattern.
# Character classes list literals only (no \s): sre then tests each character with a bitmap.
SIP_URI_FAST = (
    r"sip:(?:([^@:;?<>\"% \t\[\],]*)@)?(?:\[([0-9A-Fa-f:.]+)\]|([^@:;?<>\"% \t\[\],]+))"
    r"(?::([0-9]{1,5}))?"
    r"(;[^@?<>\"% \t\[\],]*)?"
)
_URI_FAST = re.compile(SIP_URI_FAST)
# fast-path URI text -> its groups: request-URIs repeat (every REGISTER of a scan sends the
# same one), so most lookups skip the regex. Bounded: cleared when full.
_FAST_CACHE: dict[str, tuple[str | None, str | None, str | None, str | None, str | None]] = {}
_FAST_CACHE_MAX = 4096


class Uri:
    __slots__ = (
        "scheme",
        "user",
        "password",
        "host",
        "port",
        "params",
        "headers",
        "text",
        "opaque",
    )

    def __init__(
        self,
        scheme: str = "sip",
        user: str = "",
        host: str = "",
        port: int | None = None,
        text: str = "",
        password: str = "",
        params: dict[str, str | None] | None = None,
        headers: dict[str, str] | None = None,
        opaque: str = "",
    ) -> None:
        self.scheme = scheme
        self.user = user
        self.host = host
        self.port = port
        self.text = text  # as written on the wire ('' for a URI built in code)
        self.password = password
        self.params = {} if params is None else params
        self.headers = {} if headers is None else headers
        self.opaque = opaque  # everything after "scheme:" for schemes other than sip/sips/tel

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Uri):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__ if k != "text")

    def __repr__(self) -> str:
        return f"Uri({str(self)!r})"

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        if self.text:
            return self.text
        if self.scheme not in ("sip", "sips", "tel"):
            return f"{self.scheme}:{self.opaque}"
        out = [self.scheme, ":"]
        if self.scheme == "tel":
            out.append(self.user)
        else:
            if self.user:
                out.append(_escape(self.user))
                if self.password:
                    out.append(":" + _escape(self.password))
                out.append("@")
            out.append(self.hostport)
        for k, v in self.params.items():
            out.append(f";{k}" if v is None else f";{k}={v}")
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(out)


def port_number(text: str) -> int | None:
    """A port 0..65535 from its digits; None when it is not one."""
    if text.isdigit() and text.isascii() and len(text) < 6:
        port = int(text)
        return port if port < 65536 else None
    return None


def _escape(s: str) -> str:
    # characters that would end the user part
    for ch in ("%", "@", ":", ";", "?", " ", "<", ">"):
        if ch in s:
            s = s.replace(ch, f"%{ord(ch):02X}")
    return s


def _unescape(s: str) -> str:
    if "%" not in s:
        return s
    return unquote(s, encoding="latin-1")


def parse_params(text: str) -> dict[str, str | None]:
    """';a=1;b' style parameters (the leading ';' optional); names lowercased."""
    params: dict[str, str | None] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip(" \t").lower()
        if name:
            params[name] = value.strip(" \t") if sep else None
    return params


def sip_uri(
    text: str,
    user: str | None,
    host6: str | None,
    host: str | None,
    port: str | None,
    params: str | None,
) -> Uri:
    """The Uri of a SIP_URI_FAST match (its groups), as the general parser would build it."""
    return Uri(
        "sip",
        user or "",
        host6 if host is None else host,  # type: ignore[arg-type]
        None if port is None or int(port) > 65535 else int(port),
        text,
        "",
        parse_params(params) if params is not None else {},
    )


def parse_uri(text: str) -> Uri | None:
    """Parse a URI; None when there is no scheme at all. Never raises."""
    groups = _FAST_CACHE.get(text)
    if groups is None:
        m = _URI_FAST.fullmatch(text)
        if m is None:
            return _parse_uri_general(text)
        groups = m.groups()  # type: ignore[assignment]
        if len(_FAST_CACHE) >= _FAST_CACHE_MAX:
            _FAST_CACHE.clear()
        _FAST_CACHE[text] = groups
    return sip_uri(text, *groups)


def _parse_uri_general(text: str) -> Uri | None:
    scheme, sep, rest = text.partition(":")
    if scheme == "sip" and sep and "[" not in rest and "?" not in rest and "%" not in rest:
        # fast path: sip:user@host[:port][;params] (most of what is seen)
        user, at, hostport = rest.rpartition("@")
        if ":" not in user and " " not in rest:
            hostport, semi, params = hostport.partition(";")
            host, colon, port = hostport.partition(":")
            uri = Uri("sip", user, host, None, text)
            if colon:
                uri.port = port_number(port)
            if semi:
                uri.params = parse_params(params)
            return uri
    return _parse_uri_slow(text.strip(" \t"))


def _parse_uri_slow(text: str) -> Uri | None:
    scheme, sep, rest = text.partition(":")
    if not sep or not scheme or not scheme.replace("+", "").replace("-", "").isalnum():
        return None
    scheme_l = scheme.lower()
    uri = Uri(scheme=scheme_l, text=text)
    if scheme_l == "tel":
        number, _, params = rest.partition(";")
        uri.user = number
        if params:
            uri.params = parse_params(params)
        return uri
    if scheme_l not in ("sip", "sips"):
        uri.opaque = rest
        return uri
    # user part ends at the first '@' (user and password may not contain a raw '@')
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, password = userinfo.partition(":")
        uri.user = _unescape(user)
        if colon:
            uri.password = _unescape(password)
    rest, qmark, hdrs = rest.partition("?")
    hostport, semi, params = rest.partition(";")
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            uri.host = hostport[1:]
            port = ""
        else:
            uri.host = hostport[1:close]
            port = hostport[close + 1 :].lstrip(":")
    else:
        host, _, port = hostport.partition(":")
        uri.host = host
    if port:
        uri.port = port_number(port)
    if semi:
        uri.params = parse_params(params)
    if qmark:
        for part in hdrs.split("&"):
            name, _, value = part.partition("=")
            if name:
                uri.headers[_unescape(name)] = _unescape(value)
    return uri
