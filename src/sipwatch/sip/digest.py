"""HTTP Digest for SIP (RFC 2617, RFC 7616, RFC 8760): parse, challenge, compute, verify.

Used to read credentials from Authorization / Proxy-Authorization (what an attacker tried),
to read challenges from WWW-Authenticate / Proxy-Authenticate, and by the honeypot to build
challenges and check answers. Pure functions, no clock: the caller supplies nonces.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

_PARAM = re.compile(r'([!#$%&\'*+.^_`|~0-9A-Za-z-]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"?|[^ \t,]*)')

_HASHES = {
    "MD5": "md5",
    "SHA-256": "sha256",
    "SHA-512-256": "sha512_256",
}


@dataclass(slots=True)
class Digest:
    scheme: str = "Digest"
    params: dict[str, str] = field(default_factory=dict)  # names lowercased, values unquoted

    def _p(self, name: str) -> str:
        return self.params.get(name, "")

    @property
    def username(self) -> str:
        return self._p("username")

    @property
    def realm(self) -> str:
        return self._p("realm")

    @property
    def nonce(self) -> str:
        return self._p("nonce")

    @property
    def uri(self) -> str:
        return self._p("uri")

    @property
    def response(self) -> str:
        return self._p("response")

    @property
    def algorithm(self) -> str:
        return self._p("algorithm")

    @property
    def qop(self) -> str:
        return self._p("qop")

    @property
    def cnonce(self) -> str:
        return self._p("cnonce")

    @property
    def nc(self) -> str:
        return self._p("nc")

    @property
    def opaque(self) -> str:
        return self._p("opaque")


def _unquote(value: str) -> str:
    if value[:1] == '"':
        value = value[1:-1] if len(value) > 1 and value[-1] == '"' else value[1:]
        if "\\" in value:
            value = re.sub(r"\\(.)", r"\1", value)
    return value


def parse_digest(value: str) -> Digest | None:
    """Parse 'Digest k=v, k="v", ...' (any scheme name); None for an empty value."""
    value = value.strip(" \t")
    if not value:
        return None
    scheme, _, rest = value.partition(" ")
    if "=" in scheme:  # no scheme word at all
        scheme, rest = "", value
    params = _fast_params(rest)
    if params is None:  # quoted commas or escapes: the careful way
        params = {}
        for name, val in _PARAM.findall(rest):
            name = name.lower()
            if name not in params:  # first one wins, like most servers
                params[name] = _unquote(val)
    return Digest(scheme=scheme, params=params)


def _fast_params(rest: str) -> dict[str, str] | None:
    """Split at commas; None when a quoted value has a comma or an escape in it."""
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.partition("=")
        if not sep:
            if part.strip(" \t"):
                return None
            continue
        val = val.strip(" \t")
        if val[:1] == '"':
            if len(val) < 2 or val[-1] != '"' or "\\" in val:
                return None
            val = val[1:-1]
        elif '"' in val:
            return None
        name = name.strip(" \t").lower()
        if name not in params:
            params[name] = val
    return params


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_challenge(
    realm: str,
    nonce: str,
    *,
    algorithm: str = "MD5",
    qop: str = "auth",
    opaque: str = "",
    stale: bool = False,
) -> str:
    """Value for a WWW-Authenticate / Proxy-Authenticate header."""
    parts = [f"realm={_quote(realm)}", f"nonce={_quote(nonce)}"]
    if opaque:
        parts.append(f"opaque={_quote(opaque)}")
    if stale:
        parts.append("stale=TRUE")
    parts.append(f"algorithm={algorithm}")
    if qop:
        parts.append(f"qop={_quote(qop)}")
    return "Digest " + ", ".join(parts)


def build_credentials(
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    algorithm: str = "MD5",
    qop: str = "",
    nc: str = "00000001",
    cnonce: str = "",
    opaque: str = "",
    body: bytes = b"",
) -> str:
    """Value for an Authorization header answering a challenge (what a client sends)."""
    response = compute_response(
        username, realm, password, method, uri, nonce,
        algorithm=algorithm, qop=qop, nc=nc, cnonce=cnonce, body=body,
    )  # fmt: skip
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={nc}", f"cnonce={_quote(cnonce)}"]
    if opaque:
        parts.append(f"opaque={_quote(opaque)}")
    return "Digest " + ", ".join(parts)


def _hasher(algorithm: str) -> tuple[str, bool] | None:
    alg = (algorithm or "MD5").upper()
    sess = alg.endswith("-SESS")
    if sess:
        alg = alg[:-5]
    name = _HASHES.get(alg)
    return (name, sess) if name else None


def _h(name: str, data: str) -> str:
    return hashlib.new(name, data.encode("utf-8", "surrogateescape")).hexdigest()


def compute_response(
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    algorithm: str = "MD5",
    qop: str = "",
    nc: str = "",
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 2617 3.2.2.1 / RFC 7616 3.4.1 ('' for unknown algorithms).

    qop '' gives the RFC 2069 form H(HA1:nonce:HA2); 'auth' and 'auth-int' the RFC 2617 form.
    """
    chosen = _hasher(algorithm)
    if chosen is None:
        return ""
    name, sess = chosen
    try:
        ha1 = _h(name, f"{username}:{realm}:{password}")
    except ValueError:  # hash not offered by this OpenSSL build
        return ""
    if sess:
        ha1 = _h(name, f"{ha1}:{nonce}:{cnonce}")
    if qop.lower() == "auth-int":
        body_hash = hashlib.new(name, body).hexdigest()
        ha2 = _h(name, f"{method}:{uri}:{body_hash}")
    else:
        ha2 = _h(name, f"{method}:{uri}")
    if qop:
        return _h(name, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(name, f"{ha1}:{nonce}:{ha2}")


def verify(cred: Digest, method: str, password: str, body: bytes = b"") -> bool:
    """True when cred.response is right for this password.

    A client that says qop=auth but sends no cnonce/nc (SIPVicious svcrack does) computed
    the RFC 2069 form; that form is accepted too, as real servers do.
    """
    if not cred.response or not cred.response.isascii():
        return False  # hex digits only; compare_digest refuses non-ASCII str (attacker input)
    qop = cred.qop
    if qop and "," in qop:  # a client must pick one; take the first
        qop = qop.split(",")[0].strip()
    want = cred.response.lower()
    kwargs = {"algorithm": cred.algorithm or "MD5", "body": body}
    args = (cred.username, cred.realm, password, method, cred.uri, cred.nonce)
    if qop and cred.cnonce and cred.nc:
        got = compute_response(*args, qop=qop, nc=cred.nc, cnonce=cred.cnonce, **kwargs)
        if got and hmac.compare_digest(got, want):
            return True
    got = compute_response(*args, **kwargs)
    return bool(got) and hmac.compare_digest(got, want)
