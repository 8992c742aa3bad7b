"""Who is calling: a sensor (Bearer token), or a user (session cookie or HTTP Basic).

Sensors may only ingest, heartbeat and fetch rules; users read (viewer) or also manage
sensors and rules (admin). Every endpoint depends on one of these, so none is open.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from fastapi import HTTPException, Request

from sipwatch.central.registry import SensorInfo
from sipwatch.central.state import Central


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def central(request: Request) -> Central:
    return request.app.state.central


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def sensor_auth(request: Request) -> SensorInfo:
    token = _bearer(request)
    if not token:
        raise HTTPException(
            401, "a sensor token is needed (Authorization: Bearer TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
    c = central(request)
    sensor = c.db(c.registry.authenticate, token)
    if sensor is None:
        c.metrics.auth_failures.labels("sensor").inc()
        raise HTTPException(
            401, "invalid or revoked sensor token", headers={"WWW-Authenticate": "Bearer"}
        )
    return sensor


def current_user(request: Request) -> User | None:
    """The logged-in user (session) or the Basic-auth user, None when neither."""
    session = request.scope.get("session") or {}
    if session.get("user"):
        # the role as it is now: a user removed or made a viewer loses access at once
        c = central(request)
        role = c.db(c.registry.role, str(session["user"]))
        if role is not None:
            return User(session["user"], role)
        session.clear()
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not sep:
        return None
    c = central(request)
    role = c.check_login(name, password)
    if role is None:
        c.metrics.auth_failures.labels("user").inc()
        return None
    return User(name, role)


def viewer_auth(request: Request) -> User:
    user = current_user(request)
    if user is None:
        raise HTTPException(
            401, "log in (dashboard) or send HTTP Basic credentials of a sipwatch user",
            headers={"WWW-Authenticate": 'Basic realm="sipwatch"'},
        )  # fmt: skip
    return user


def admin_auth(request: Request) -> User:
    user = viewer_auth(request)
    if not user.admin:
        raise HTTPException(403, f"user {user.name!r} is a viewer; this needs an admin")
    return user
