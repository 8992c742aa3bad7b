"""Stateless nonces: fresh, bound to the source, stale after the ttl, forgeries invalid."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipwatch.honeypot.nonces import NONCE_LEN, NonceIssuer

SECRET = b"0123456789abcdef0123456789abcdef"
T0 = 1_700_000_000.0


def issuer(ttl: float = 300, seed: int = 1) -> NonceIssuer:
    return NonceIssuer(SECRET, ttl, random.Random(seed))


def test_fresh_and_checked():
    n = issuer()
    a, b = n.issue("198.51.100.7", T0), n.issue("198.51.100.7", T0)
    assert a != b and len(a) == NONCE_LEN and set(a) <= set("0123456789abcdef")
    assert n.check(a, "198.51.100.7", T0) == "ok"
    assert n.check(a, "198.51.100.7", T0 + 300) == "ok"
    assert n.check(a, "198.51.100.7", T0 + 301) == "stale"
    assert n.check(a, "198.51.100.8", T0) == "invalid"  # another source
    assert n.check(a, "198.51.100.7", T0 - 3600) == "invalid"  # from the far future


def test_no_state_needed_same_secret_checks():
    nonce = issuer(seed=1).issue("2001:db8::1", T0)
    assert issuer(seed=99).check(nonce, "2001:db8::1", T0 + 1) == "ok"
    other = NonceIssuer(b"another secret of 32 bytes......", 300)
    assert other.check(nonce, "2001:db8::1", T0) == "invalid"


def test_tampering_is_invalid():
    n = issuer()
    nonce = n.issue("198.51.100.7", T0)
    # move the time forward to dodge expiry: the MAC no longer fits
    later = f"{int(T0) + 1000:08x}" + nonce[8:]
    assert n.check(later, "198.51.100.7", T0 + 1000) == "invalid"
    for bad in ("", "00", nonce[:-1], nonce + "0", nonce.upper(), "g" * NONCE_LEN):
        assert n.check(bad, "198.51.100.7", T0) == "invalid"


def test_arguments_checked():
    with pytest.raises(ValueError, match="16 bytes"):
        NonceIssuer(b"short", 300)
    with pytest.raises(ValueError, match="ttl"):
        NonceIssuer(SECRET, 0)


@given(st.text(max_size=80), st.text(max_size=40))
def test_check_never_raises(nonce, src):
    assert issuer().check(nonce, src, T0) in ("ok", "stale", "invalid")


@pytest.mark.parametrize("secret", [SECRET, b"s" * 16, b"k" * 64, b"long key " * 20])
@given(src=st.text(max_size=50))
def test_mac_is_hmac_sha256(secret, src):
    """The precomputed-state MAC is exactly HMAC-SHA256 (keys up to and over a block)."""
    import hashlib
    import hmac

    n = NonceIssuer(secret, 300, random.Random(3))
    nonce = n.issue(src, T0)
    stamp, mac = nonce[:24], nonce[24:]
    data = f"{src}|{stamp}".encode("utf-8", "surrogateescape")
    assert mac == hmac.new(secret, data, hashlib.sha256).hexdigest()[:24]
    assert n.check(nonce, src, T0) == "ok"
