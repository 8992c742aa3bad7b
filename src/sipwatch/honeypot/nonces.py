"""Stateless digest nonces bound to the client's address.

A nonce is 48 hex digits: the issue time (8, seconds), random bits (16) and an HMAC-SHA256
(24, truncated) over secret, source address, time and random bits. Checking needs no table:
recompute the MAC. So a nonce handed to one address is worthless from another, a forged or
garbled one is "invalid", and an old one with a good MAC is "stale" (the client may retry at
once with the fresh nonce of a ``stale=TRUE`` challenge). Time is passed in (record time).

When sipwatch._native is built, issue() and the MAC are its NonceMac (native/nonce.c: one C
call per nonce, the same nonces; tests/unit/honeypot/test_native_nonce.py); this module's
code stays the definition and runs otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import random

from sipwatch.native import part

__all__ = ["NonceIssuer", "NONCE_LEN"]

NONCE_LEN = 48
_MAC_HEX = 24
_SKEW = 60.0  # a nonce from up to this far in the future is accepted (clocks, reordering)
_HEX = frozenset("0123456789abcdef")
_BLOCK = 64  # SHA-256 block size: HMAC's key padding


class NonceIssuer:
    def __init__(
        self,
        secret: bytes,
        ttl: float,
        rng: random.Random | None = None,
        *,
        native: bool = True,
    ) -> None:
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        if not ttl > 0:
            raise ValueError("nonce ttl must be positive")
        self._secret = secret
        self.ttl = float(ttl)
        self._rng = rng if rng is not None else random.SystemRandom()
        # HMAC-SHA256 (RFC 2104) with the keyed inner and outer states hashed once: a MAC is
        # then two state copies, less than half the cost of hmac.new() each time
        key = secret if len(secret) <= _BLOCK else hashlib.sha256(secret).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        # native: the same issue() and _mac() in C, bound over the methods below (it draws
        # from the same rng, in the same order); check() stays here and calls _mac
        mac_type = part("NonceMac") if native else None
        self.native = mac_type is not None
        if mac_type is not None:
            mac = mac_type(secret, self._rng)
            self.issue = mac.issue  # type: ignore[method-assign]
            self._mac = mac.mac  # type: ignore[method-assign]

    def _mac(self, src: str, stamp: str) -> str:
        """hmac.new(secret, f"{src}|{stamp}", sha256).hexdigest(), truncated."""
        inner = self._inner.copy()
        inner.update(f"{src}|{stamp}".encode("utf-8", "surrogateescape"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:_MAC_HEX]

    def issue(self, src: str, now: float) -> str:
        """A fresh nonce for a challenge sent to src at time now."""
        stamp = f"{int(now) & 0xFFFFFFFF:08x}{self._rng.getrandbits(64):016x}"
        return stamp + self._mac(src, stamp)

    def check(self, nonce: str, src: str, now: float) -> str:
        """'ok', 'stale' (expired, but issued by us to src) or 'invalid'."""
        if len(nonce) != NONCE_LEN or not _HEX.issuperset(nonce):
            return "invalid"
        stamp, mac = nonce[:-_MAC_HEX], nonce[-_MAC_HEX:]
        if not hmac.compare_digest(mac, self._mac(src, stamp)):
            return "invalid"
        age = now - int(stamp[:8], 16)
        if age < -_SKEW:
            return "invalid"
        return "stale" if age > self.ttl else "ok"
