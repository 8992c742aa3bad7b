"""Sensors and dashboard users, kept in the store (tables `sensors` and `users`).

A sensor has a name, the nodes it may report for (the first is its default: a honeypot sensor
is one node, a central sensor serves many), an optional deployment, and a token whose hash is
stored. Revoking keeps the row (its data stays attributed) but the token stops working.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

from sipwatch.central.credentials import check_password, hash_password, new_token, token_hash
from sipwatch.store.base import Store

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")  # sensor, node, deployment and user names
ROLES = ("admin", "viewer")


class RegistryError(Exception):
    """A request the registry refuses (unknown name, duplicate, bad name): one clear message."""


@dataclass(frozen=True, slots=True)
class SensorInfo:
    name: str
    nodes: tuple[str, ...]
    deployment: str
    created: float
    revoked: float | None
    last_seen: float | None
    status: dict

    @property
    def node(self) -> str:
        return self.nodes[0]


def check_name(kind: str, name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise RegistryError(
            f"bad {kind} name {name!r}: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


_SENSOR_COLUMNS = "name, nodes, deployment, created, revoked, last_seen, status"


def _sensor(row: tuple) -> SensorInfo:
    name, nodes, deployment, created, revoked, last_seen, status = row
    try:
        parsed = json.loads(status) if status else {}
    except ValueError:
        parsed = {}
    return SensorInfo(
        name, tuple(n for n in nodes.split(",") if n), deployment, created, revoked, last_seen,
        parsed if isinstance(parsed, dict) else {},
    )  # fmt: skip


class Registry:
    def __init__(self, store: Store) -> None:
        self.store = store

    # --- sensors ---------------------------------------------------------------------------
    def add_sensor(self, name: str, nodes: list[str] | None = None, deployment: str = "") -> str:
        """Register a sensor; returns its token (shown once, only its hash is kept)."""
        check_name("sensor", name)
        nodes = nodes or [name]
        for node in nodes:
            check_name("node", node)
        if deployment:
            check_name("deployment", deployment)
        if self.sensor(name) is not None:
            raise RegistryError(f"sensor {name!r} exists already (revoke it or pick another name)")
        token = new_token()
        self.store.execute(
            "INSERT INTO sensors (name, nodes, deployment, token_hash, created) "
            "VALUES (?, ?, ?, ?, ?)",
            (name, ",".join(dict.fromkeys(nodes)), deployment, token_hash(token), time.time()),
        )
        return token

    def rotate_token(self, name: str) -> str:
        """A new token for a sensor (the old one stops working); un-revokes it."""
        if self.sensor(name) is None:
            raise RegistryError(f"no sensor {name!r}")
        token = new_token()
        self.store.execute(
            "UPDATE sensors SET token_hash = ?, revoked = NULL WHERE name = ?",
            (token_hash(token), name),
        )
        return token

    def revoke_sensor(self, name: str) -> None:
        if self.sensor(name) is None:
            raise RegistryError(f"no sensor {name!r}")
        self.store.execute(
            "UPDATE sensors SET revoked = ? WHERE name = ? AND revoked IS NULL", (time.time(), name)
        )

    def sensor(self, name: str) -> SensorInfo | None:
        if not NAME_RE.fullmatch(name):  # never a stored name (and PostgreSQL refuses NULs)
            return None
        rows = self.store.query(f"SELECT {_SENSOR_COLUMNS} FROM sensors WHERE name = ?", (name,))
        return _sensor(rows[0]) if rows else None

    def sensors(self) -> list[SensorInfo]:
        return [
            _sensor(r)
            for r in self.store.query(f"SELECT {_SENSOR_COLUMNS} FROM sensors ORDER BY name")
        ]

    def authenticate(self, token: str) -> SensorInfo | None:
        """The sensor a token belongs to, None when unknown or revoked."""
        if not token or len(token) > 200:
            return None
        rows = self.store.query(
            f"SELECT {_SENSOR_COLUMNS} FROM sensors WHERE token_hash = ? AND revoked IS NULL",
            (token_hash(token),),
        )
        return _sensor(rows[0]) if rows else None

    def heartbeat(self, name: str, status: dict) -> None:
        self.store.execute(
            "UPDATE sensors SET last_seen = ?, status = ? WHERE name = ?",
            (time.time(), json.dumps(status, sort_keys=True, default=str), name),
        )

    def seen(self, name: str) -> None:
        self.store.execute("UPDATE sensors SET last_seen = ? WHERE name = ?", (time.time(), name))

    # --- users -----------------------------------------------------------------------------
    def add_user(self, name: str, password: str, role: str = "viewer") -> None:
        check_name("user", name)
        if role not in ROLES:
            raise RegistryError(f"bad role {role!r}: use {' or '.join(ROLES)}")
        if len(password) < 8:
            raise RegistryError("the password must have at least 8 characters")
        if self.store.query("SELECT 1 FROM users WHERE name = ?", (name,)):
            self.store.execute(
                "UPDATE users SET role = ?, password_hash = ? WHERE name = ?",
                (role, hash_password(password), name),
            )
            return
        self.store.execute(
            "INSERT INTO users (name, role, password_hash, created) VALUES (?, ?, ?, ?)",
            (name, role, hash_password(password), time.time()),
        )

    def remove_user(self, name: str) -> None:
        if not NAME_RE.fullmatch(name) or not self.store.execute(
            "DELETE FROM users WHERE name = ?", (name,)
        ):
            raise RegistryError(f"no user {name!r}")

    def users(self) -> list[tuple[str, str, float]]:
        return [
            tuple(r)
            for r in self.store.query("SELECT name, role, created FROM users ORDER BY name")
        ]

    def role(self, name: str) -> str | None:
        """A user's role, None when there is no such user."""
        if not NAME_RE.fullmatch(name):
            return None
        rows = self.store.query("SELECT role FROM users WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def user_record(self, name: str) -> tuple[str, str] | None:
        """(role, password hash) of a user, None when there is none: for checking a password
        with verify_user outside the store lock (scrypt takes ~50 ms)."""
        if not NAME_RE.fullmatch(name):  # never a stored name (and PostgreSQL refuses NULs)
            return None
        rows = self.store.query("SELECT role, password_hash FROM users WHERE name = ?", (name,))
        return (rows[0][0], rows[0][1]) if rows else None

    def check_user(self, name: str, password: str) -> str | None:
        """The user's role when the password is right, else None."""
        return verify_user(self.user_record(name), password)


def verify_user(record: tuple[str, str] | None, password: str) -> str | None:
    """The role in a user_record when the password is right, else None (the same work for
    unknown users, so the time does not tell whether a name exists)."""
    if record is None:
        check_password(password, "scrypt$AAAA$AAAA")
        return None
    role, stored = record
    return role if check_password(password, stored) else None
