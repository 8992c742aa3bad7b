"""What every request handler of the central service shares: config, store, registry, lock."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sipwatch.central.config import CentralConfig
from sipwatch.central.metrics import CentralMetrics
from sipwatch.central.registry import Registry
from sipwatch.store.base import Store

T = TypeVar("T")
_LOGIN_CACHE_TTL = 60.0  # seconds a checked Basic login is remembered (scrypt costs ~50 ms)
_LOGIN_CACHE_MAX = 1024


class Central:
    def __init__(self, config: CentralConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.registry = Registry(store)
        self.metrics = CentralMetrics()
        self.started = time.time()
        # one connection serves every request: the lock makes each store call atomic
        self._lock = threading.RLock()
        self._logins: dict[str, tuple[float, str | None]] = {}

    def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn(*args) while holding the store lock."""
        with self._lock:
            return fn(*args, **kwargs)

    def check_login(self, user: str, password: str) -> str | None:
        """The user's role for a right password, else None (cached briefly for API clients)."""
        key = hashlib.sha256(f"{user}\0{password}".encode("utf-8", "surrogatepass")).hexdigest()
        now = time.monotonic()
        hit = self._logins.get(key)
        if hit is not None and now - hit[0] < _LOGIN_CACHE_TTL:
            return hit[1]
        role = self.db(self.registry.check_user, user, password)
        if len(self._logins) >= _LOGIN_CACHE_MAX:
            self._logins.clear()
        self._logins[key] = (now, role)
        return role

    def forget_logins(self) -> None:
        self._logins.clear()
