"""Password insight: which password each digest attempt tried, when it can be recovered.

An analyzer like StageLabeler, run after it: `recovery.label(record)` sets `record.password`.
1. SIPVicious' svcrack writes `user:password` hex-encoded into its From tag: the claim is
   checked against the request's digest (one hash) and taken when it holds.
2. Otherwise the digest response (Authorization, else Proxy-Authorization) is tested against
   candidates, in order: the configured ones (a honeypot's account passwords, a --wordlist),
   variants of the username, then the built-in list (detect/data/passwords.txt). The first
   candidate that gives the response wins; when none does, the password stays "" (unknown).
A response gets the password of the request it answers (`record.request_id`, set by the
labeller), so the 200 that accepted a password shows it.

Semantics are those of sip.digest.verify (RFC 2617 with qop, cnonce and nc; the RFC 2069 form
without qop, or with qop but no cnonce/nc as svcrack sends it; MD5, SHA-256, SHA-512-256 and
their -sess forms): every password found here is one verify() accepts. Sans-I/O and
deterministic: the caches only save work, they never change a result, so live and offline runs
and any number of analysis workers give the same passwords.

Cost: HA1 = H(user:realm:password) is cached per (algorithm, user, realm) for the candidates
(LRU, bounded in HA1 values); per message there is one HA2 and one hash per candidate tried.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

from sipwatch.detect.fingerprints import SIPVICIOUS
from sipwatch.record import Record
from sipwatch.sip.digest import Digest

try:  # CPython's own MD5: a quarter faster than OpenSSL's for these short inputs (measured)
    from _md5 import md5 as _md5
except ImportError:  # a build without it
    _md5 = hashlib.md5

# the hashes of sip.digest (RFC 7616 / RFC 8760 names): constructor, digest size in bytes
_HASHES: dict[str, tuple[Callable[..., Any], int]] = {
    "MD5": (_md5, 16),
    "SHA-256": (hashlib.sha256, 32),
    "SHA-512-256": (lambda data=b"": hashlib.new("sha512_256", data), 32),
}

_BUILTIN = Path(__file__).with_name("data") / "passwords.txt"
DEFAULT_MAX_CANDIDATES = 1000  # per message: a honeypot tries its accounts and the whole list
ANALYZE_WORDS = 50  # `sipwatch analyze`: the first words of the built-in list (docs/analyze.md)
DEFAULT_HA1_CACHE = 65536  # HA1 values kept over all (algorithm, user, realm) keys
DEFAULT_MAX_REQUESTS = 65536  # requests whose password their responses can still inherit
_MAX_USER_VARIANT = 64  # longer usernames get no variants (not an account anyone guesses)


def _read_words(lines: Iterable[str]) -> list[str]:
    """Passwords of a list file: one a line, '#' starts a comment line, blank lines skipped."""
    out = []
    for line in lines:
        word = line.rstrip("\r\n")
        if word and not word.startswith("#"):
            out.append(word)
    return out


def builtin_words() -> list[str]:
    """The built-in list (detect/data/passwords.txt), likeliest first."""
    # next to this module (package data); not importlib.resources, whose import alone costs
    # more than reading the file
    return _read_words(_BUILTIN.read_text("utf-8").splitlines())


def load_wordlist(path: str | Path) -> list[str]:
    """A user's list file (same format; bytes that are not UTF-8 are kept as they are hashed).

    Raises OSError when it cannot be read.
    """
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return _read_words(f)


def user_variants(user: str) -> list[str]:
    """Passwords people derive from the account name: few, and the likeliest only."""
    if not user or len(user) > _MAX_USER_VARIANT:
        return []
    return [user, user + user, user + "123", user + "1234", user[::-1]]


@dataclass(slots=True)
class PasswordStats:
    requests: int = 0  # requests with digest credentials looked at
    tried: int = 0  # candidate responses computed (one hash each)
    recovered: int = 0  # requests whose password was found (from_tag + from_digest)
    from_tag: int = 0  # svcrack's From-tag claim, confirmed by the digest (or uncheckable)
    from_digest: int = 0  # found among the candidates
    exhausted: int = 0  # every candidate tried, none matched: password unknown
    unverifiable: int = 0  # no usable response (unknown algorithm, not hex, wrong length)
    responses: int = 0  # responses given their request's password
    ha1_evictions: int = 0  # (algorithm, user, realm) HA1 sets dropped from the cache
    request_evictions: int = 0  # requests forgotten before their responses came


class PasswordRecovery:
    """Analyzer: `recovery.label(record)` (or `recovery(record)`) fills record.password.

    One per pipeline, after the StageLabeler (not thread-safe).

    candidates: tried first, in order (a honeypot's account passwords, a user's word list).
    wordlist: the list after the username variants; None = the built-in list.
    max_candidates: passwords tried per message at most, the svcrack tag's claim included.
    """

    def __init__(
        self,
        candidates: Iterable[str] = (),
        wordlist: Iterable[str] | None = None,
        max_candidates: int = DEFAULT_MAX_CANDIDATES,
        ha1_cache: int = DEFAULT_HA1_CACHE,
        max_requests: int = DEFAULT_MAX_REQUESTS,
    ) -> None:
        self.max_candidates = max(1, max_candidates)
        self.ha1_cache = max(self.max_candidates, ha1_cache)  # one key's set always fits
        self.max_requests = max(1, max_requests)
        self.stats = PasswordStats()
        head = list(dict.fromkeys(c for c in map(str, candidates) if _encodable(c)))
        words = builtin_words() if wordlist is None else wordlist
        tail: list[str] = []
        known = set(head)
        room = self.max_candidates - len(head)
        for word in words:  # deduplicated, and only as many as can ever be tried
            if len(tail) >= room:
                break
            if word not in known and _encodable(word):
                known.add(word)
                tail.append(word)
        self._head = tuple(head)
        self._tail = tuple(tail)
        self._known = frozenset(known)
        # (algorithm, user, realm) -> (username variants, HA1s of head+variants+tail so far)
        self._ha1: OrderedDict[tuple[str, str, str], tuple[tuple[str, ...], list[bytes]]] = (
            OrderedDict()
        )
        self._ha1_count = 0
        self._answered: dict[int, str] = {}  # request id -> password, oldest first

    # --- the analyzer ------------------------------------------------------------------------
    def label(self, record: Record) -> Record:
        """Fill record.password when the password it tried can be recovered; return it."""
        rid = record.request_id
        if rid:  # a response whose request the labeller matched
            pw = self._answered.get(rid)
            if pw is not None:
                record.password = pw
                self.stats.responses += 1
            return record
        msg = record.msg
        h = msg.headers
        if ("authorization" not in h and "proxy-authorization" not in h) or not msg.is_request:
            return record
        cred = msg.credentials
        if cred is None:
            return record
        self.stats.requests += 1
        # the labeller decoded SIPVicious' From tag into tool_data (svcrack: "user:password")
        claim = record.tool_data if record.tool == SIPVICIOUS else ""
        pw = self.recover(cred, msg.method, msg.body, claim)
        if pw:
            record.password = pw
            answered = self._answered
            answered[record.id] = pw
            if len(answered) > self.max_requests:
                del answered[next(iter(answered))]
                self.stats.request_evictions += 1
        return record

    # a pipeline analyzer is a callable; pipelines should take the bound `label` (measured:
    # calling an instance costs twice as much as calling its bound method)
    __call__ = label

    def recover(self, cred: Digest, method: str, body: bytes = b"", svcrack: str = "") -> str:
        """The password that gives this digest response ("" when none of the candidates does).

        svcrack: the data of a SIPVicious From tag; svcrack's "user:password" is tried first.
        """
        stats = self.stats
        user, sep, claim = svcrack.partition(":")
        check = _prepare(cred, method, body)
        if check is None:
            stats.unverifiable += 1
            # nothing to check the claim against: svcrack's own record of what it sent
            if sep and user == cred.username:
                stats.from_tag += 1
                stats.recovered += 1
                return claim
            return ""
        params = cred.params
        user, realm = params.get("username", ""), params.get("realm", "")
        prefix = _ha1_prefix(user, realm)
        if prefix is None:  # verify() cannot match any password for this user and realm
            stats.unverifiable += 1
            return ""
        limit = self.max_candidates
        if sep:
            stats.tried += 1
            limit -= 1
            if _matches(check, prefix, claim):
                stats.from_tag += 1
                stats.recovered += 1
                return claim
        pw = self._search(check, prefix, user, realm, limit)
        if pw is None:
            stats.exhausted += 1
            return ""
        stats.from_digest += 1
        stats.recovered += 1
        return pw

    # --- the candidate search ----------------------------------------------------------------
    def _search(
        self, check: _Prepared, prefix: bytes, user: str, realm: str, limit: int
    ) -> str | None:
        algorithm, new, want, suffix, sess = check
        key = (algorithm, user, realm)
        cache = self._ha1
        entry = cache.get(key)
        if entry is None:
            known = self._known
            variants = tuple(dict.fromkeys(v for v in user_variants(user) if v not in known))
            entry = cache[key] = (variants, [])
        else:
            cache.move_to_end(key)
        variants, ha1s = entry
        candidates = islice(chain(self._head, variants, self._tail), limit)
        found = None
        tried = 0
        # the HA1s computed for earlier messages first (zip takes no candidate past them)
        if sess is None:
            for ha1, pw in zip(ha1s, candidates, strict=False):
                tried += 1
                if new(ha1 + suffix).digest() == want:
                    found = pw
                    break
        else:
            for ha1, pw in zip(ha1s, candidates, strict=False):
                tried += 1
                if new(sess(ha1) + suffix).digest() == want:
                    found = pw
                    break
        if found is None:
            added = 0
            for pw in candidates:
                ha1 = _ha1(new, prefix, pw)
                ha1s.append(ha1)
                added += 1
                tried += 1
                if new((sess(ha1) if sess else ha1) + suffix).digest() == want:
                    found = pw
                    break
            if added:
                self._ha1_count += added
                self._evict()
        self.stats.tried += tried
        return found

    def _evict(self) -> None:
        cache = self._ha1
        while self._ha1_count > self.ha1_cache and len(cache) > 1:
            _, (_, ha1s) = cache.popitem(last=False)
            self._ha1_count -= len(ha1s)
            self.stats.ha1_evictions += 1


# a digest response made ready for candidates: (algorithm, hash constructor, the response as
# bytes, what follows HA1 in the final hash, HA1 -> session HA1 for the -sess algorithms)
_Prepared = tuple[str, Callable[..., Any], bytes, bytes, Callable[[bytes], bytes] | None]


def _prepare(cred: Digest, method: str, body: bytes) -> _Prepared | None:
    """None when no password can give this response (verify() would refuse every one)."""
    p = cred.params
    get = p.get
    algorithm = (get("algorithm") or "MD5").upper()
    sess_alg = algorithm.endswith("-SESS")
    known = _HASHES.get(algorithm[:-5] if sess_alg else algorithm)
    if known is None:
        return None
    new, size = known
    response = get("response", "")
    if len(response) != 2 * size:  # also keeps out what fromhex allows and verify() does not
        return None
    try:
        want = bytes.fromhex(response)
    except ValueError:  # not hex
        return None
    if len(want) != size:  # whitespace between the digits
        return None
    qop = get("qop", "")
    if qop and "," in qop:  # a client must pick one; verify() takes the first
        qop = qop.split(",")[0].strip()
    nonce, cnonce, nc, uri = get("nonce", ""), get("cnonce", ""), get("nc", ""), get("uri", "")
    try:
        if qop and cnonce and nc:  # RFC 2617
            if qop.lower() == "auth-int":
                a2 = f"{method}:{uri}:{new(body).hexdigest()}"
                ha2 = new(a2.encode("utf-8", "surrogateescape")).hexdigest()
            else:
                ha2 = _ha2(algorithm, new, method, uri)
            suffix = f":{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode("utf-8", "surrogateescape")
        else:  # RFC 2069, also svcrack's qop=auth without cnonce/nc
            ha2 = _ha2(algorithm, new, method, uri)
            suffix = f":{nonce}:{ha2}".encode("utf-8", "surrogateescape")
        sess = None
        if sess_alg:
            tail = f":{nonce}:{cnonce}".encode("utf-8", "surrogateescape")
            sess = lambda ha1: new(ha1 + tail).hexdigest().encode()  # noqa: E731
    except ValueError:  # unencodable text; or a hash this OpenSSL build lacks
        return None
    return (algorithm, new, want, suffix, sess)


# HA2 = H(method:uri) repeats: a campaign sends the same request-URI again and again
_HA2_CACHE: dict[tuple[str, str, str], str] = {}
_HA2_CACHE_MAX = 4096  # bounded: cleared when full (attackers can send endless URIs)


def _ha2(algorithm: str, new: Callable[..., Any], method: str, uri: str) -> str:
    key = (algorithm, method, uri)
    ha2 = _HA2_CACHE.get(key)
    if ha2 is None:
        ha2 = new(f"{method}:{uri}".encode("utf-8", "surrogateescape")).hexdigest()
        if len(_HA2_CACHE) >= _HA2_CACHE_MAX:
            _HA2_CACHE.clear()
        _HA2_CACHE[key] = ha2
    return ha2


def _encodable(text: str) -> bool:
    """Text the digest can hash (lone surrogates not from surrogateescape cannot be)."""
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _ha1_prefix(user: str, realm: str) -> bytes | None:
    try:
        return f"{user}:{realm}:".encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def _ha1(new: Callable[..., Any], prefix: bytes, password: str) -> bytes:
    """HA1 as hex bytes; b"" for a password that cannot be encoded (candidates always can:
    they are checked when the recovery is made, and a username that encodes has variants that
    do; only svcrack's claim can come here unencodable, and _matches refuses b"")."""
    try:
        return new(prefix + password.encode("utf-8", "surrogateescape")).hexdigest().encode()
    except UnicodeEncodeError:
        return b""


def _matches(check: _Prepared, prefix: bytes, password: str) -> bool:
    _, new, want, suffix, sess = check
    ha1 = _ha1(new, prefix, password)
    if not ha1:
        return False
    if sess is not None:
        ha1 = sess(ha1)
    return new(ha1 + suffix).digest() == want


def recovery_class(native: bool = True) -> type[PasswordRecovery]:
    """PasswordRecovery, or (native, and sipwatch._native is built) its C twin
    sipwatch._native.Recovery: a drop-in with the same passwords, state bounds and stats
    (tests/unit/test_native_passwords.py), several times faster per digest request."""
    if native:
        from sipwatch.native import part  # here: sipwatch._native reads this module

        cls = part("Recovery")
        if cls is not None:
            return cls
    return PasswordRecovery


def analyze_recovery(
    extra: Sequence[str] = (), workers: int = 1, native: bool = True
) -> PasswordRecovery:
    """The recovery `sipwatch analyze` runs: the svcrack claim, `extra` (--wordlist), username
    variants and the first ANALYZE_WORDS built-in words. Each worker of a parallel run gets its
    share of the state bounds (results do not depend on them). native: the C Recovery when it
    is built (recovery_class)."""
    workers = max(1, workers)
    return recovery_class(native)(
        candidates=extra,
        wordlist=builtin_words()[:ANALYZE_WORDS],
        max_candidates=1 + len(extra) + 5 + ANALYZE_WORDS,
        ha1_cache=max(4096, DEFAULT_HA1_CACHE // workers),
        max_requests=max(1024, DEFAULT_MAX_REQUESTS // workers),
    )
