"""Fresh trace stores on every engine, for tests that must hold on SQLite and PostgreSQL alike.

    pytest_plugins = ["storeengines"]  # in the test module: its fixtures


    def test_x(store_url: str) -> None:
        with open_store(store_url) as store: ...

store_url runs the test once per engine: a new SQLite file, and a throwaway PostgreSQL database
(sw_test_<random>, created on the server SIPWATCH_TEST_PG names, default
postgresql://postgres@127.0.0.1/test, dropped afterwards). pg_url is the PostgreSQL one alone.
PostgreSQL tests skip, saying why, only when the server cannot be reached.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

ADMIN_URL = os.environ.get("SIPWATCH_TEST_PG", "postgresql://postgres@127.0.0.1/test")


def _admin():  # noqa: ANN202 - psycopg is imported only when a PostgreSQL test runs
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL at {ADMIN_URL} is not reachable: {str(exc).strip()[:200]}")


def database_url(name: str) -> str:
    """The URL of database `name` on the test server."""
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A new, empty database; its URL. Dropped (with its connections) afterwards."""
    admin = _admin()
    name = f"sw_test_{secrets.token_hex(6)}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield database_url(name)
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def fresh_store_url(engine: str, tmp_path: Path) -> contextlib.AbstractContextManager[str]:
    if engine == "sqlite":
        return contextlib.nullcontext(str(tmp_path / "store.sqlite"))
    return pg_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a fresh store will be (open it with open_store), once per engine."""
    with fresh_store_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for a store."""
    with pg_database() as url:
        yield url
