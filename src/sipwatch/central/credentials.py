"""Tokens for sensors and password hashes for dashboard users.

A sensor token is 256 random bits, so a fast hash (SHA-256) is enough to store it: no guess
list can shrink that space, and the hash lets the central find the sensor by its token in one
indexed lookup. User passwords are chosen by people, so they get scrypt with a per-user salt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

TOKEN_PREFIX = "swt_"  # makes a leaked token easy to recognise (secret scanners, logs)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~50 ms here, 16 MiB: fine for a login, slow for a guesser


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, dklen=32, **_SCRYPT
    )
    b64 = base64.urlsafe_b64encode
    return f"scrypt${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.urlsafe_b64decode(digest)
        got = hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"),
            salt=base64.urlsafe_b64decode(salt), dklen=len(want), **_SCRYPT,
        )  # fmt: skip
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)
