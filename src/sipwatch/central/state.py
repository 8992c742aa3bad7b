"""What every request handler of the central service shares: config, store, registry, lock."""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sipwatch.central.config import CentralConfig
from sipwatch.central.metrics import CentralMetrics
from sipwatch.central.registry import Registry, verify_user
from sipwatch.store.base import Store, open_store

T = TypeVar("T")
_LOGIN_CACHE_TTL = 60.0  # seconds a checked Basic login is remembered (scrypt costs ~50 ms)
_LOGIN_CACHE_MAX = 1024


class Central:
    def __init__(self, config: CentralConfig, store: Store, reader: Store | None = None) -> None:
        """store: the writing connection. reader: a second, read-only connection for reports
        (opened on config.db when not given), so a long report never holds up ingest."""
        self.config = config
        self.store = store
        self.registry = Registry(store)
        self.metrics = CentralMetrics()
        self.started = time.time()
        # one connection per role; each lock makes a call on its connection atomic
        self._lock = threading.RLock()
        self._read_lock = threading.RLock()
        self.reader = reader if reader is not None else self._open_reader()
        self._logins: dict[str, tuple[float, str | None]] = {}
        # PostgreSQL takes batches on more than one core when they arrive on more than one
        # connection (one connection: ~89k records/s here, two: ~118k); SQLite has one writer
        self._ingest: queue.SimpleQueue[Store] = queue.SimpleQueue()
        self._ingest_stores: list[Store] = []
        if store.engine == "postgresql":
            for _ in range(config.ingest_connections):
                extra = open_store(config.db)
                self._ingest_stores.append(extra)
                self._ingest.put(extra)

    def _open_reader(self) -> Store:
        try:
            return open_store(self.config.db, readonly=True)
        except Exception:  # an in-memory or unusual store: reports share the writer
            return self.store

    def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn(*args) while holding the (writing) store's lock."""
        with self._lock:
            return fn(*args, **kwargs)

    def ingest(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(store, *args) on a free ingest connection (PostgreSQL), else under the store lock."""
        if not self._ingest_stores:
            with self._lock:
                return fn(self.store, *args)
        store = self._ingest.get()
        try:
            return fn(store, *args)
        finally:
            self._ingest.put(store)

    def report(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(reader, *args): a report on the read-only connection (the writer's when shared)."""
        lock = self._lock if self.reader is self.store else self._read_lock
        with lock:
            return fn(self.reader, *args, **kwargs)

    def close(self) -> None:
        """Close the read connection (the caller owns and closes the writing store)."""
        if self.reader is not self.store:
            with self._read_lock:
                self.reader.close()
        for extra in self._ingest_stores:
            extra.close()
        self._ingest_stores = []

    def check_login(self, user: str, password: str) -> str | None:
        """The user's role for a right password, else None (cached briefly for API clients)."""
        key = hashlib.sha256(f"{user}\0{password}".encode("utf-8", "surrogatepass")).hexdigest()
        now = time.monotonic()
        hit = self._logins.get(key)
        if hit is not None and now - hit[0] < _LOGIN_CACHE_TTL:
            return hit[1]
        record = self.db(self.registry.user_record, user)
        role = verify_user(record, password)  # scrypt outside the lock: ingest goes on meanwhile
        if len(self._logins) >= _LOGIN_CACHE_MAX:
            self._logins.clear()
        self._logins[key] = (now, role)
        return role

    def forget_logins(self) -> None:
        self._logins.clear()
