"""A central service app over a fresh SQLite store, with an admin, a viewer and two sensors.

    with central_app(tmp_path) as c:
        c.client.get("/api/v1/sensors", auth=c.admin)
        c.ingest(c.oslo, encode(1, rows, []))

Requests go through FastAPI's TestClient (the real ASGI app, no socket).
"""

from __future__ import annotations

import base64
import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

with warnings.catch_warnings():  # starlette's note about httpx versions is not ours to fix
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from fastapi import FastAPI

from sipwatch.central.app import create_app
from sipwatch.central.config import CentralConfig
from sipwatch.central.state import Central
from sipwatch.store.base import Store, open_store

ADMIN = ("admin", "admin-password")
VIEWER = ("viewer", "viewer-password")
MSGPACK_GZIP = {"Content-Type": "application/msgpack", "Content-Encoding": "gzip"}


@dataclass
class CentralApp:
    app: FastAPI
    store: Store
    client: TestClient
    oslo: str  # token of sensor "oslo-sensor" (nodes oslo, essen)
    bergen: str  # token of sensor "bergen" (node bergen)
    admin: tuple[str, str] = ADMIN
    viewer: tuple[str, str] = VIEWER

    @property
    def central(self) -> Central:
        return self.app.state.central

    def ingest(self, token: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(
            "/api/v1/ingest",
            content=body,
            headers={**MSGPACK_GZIP, **bearer(token), **(headers or {})},
        )

    def count(self, table: str = "messages") -> int:
        return self.store.query(f"SELECT COUNT(*) FROM {table}")[0][0]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: tuple[str, str]) -> dict[str, str]:
    pair = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


@contextlib.contextmanager
def central_app(tmp_path: Path, url: str = "", **config: Any) -> Iterator[CentralApp]:
    """The app over the store at `url` (default: a new SQLite file in tmp_path)."""
    db = url or str(tmp_path / "central.sqlite")
    with open_store(db) as store:
        app = create_app(CentralConfig(db=db, **config), store, secret="k" * 40)
        registry = app.state.central.registry
        registry.add_user(*ADMIN, "admin")
        registry.add_user(*VIEWER, "viewer")
        oslo = registry.add_sensor("oslo-sensor", ["oslo", "essen"], "distributed")
        bergen = registry.add_sensor("bergen", ["bergen"], "central")
        with TestClient(app) as client:
            yield CentralApp(app, store, client, oslo, bergen)
