"""Serving the central app with uvicorn (HTTP or HTTPS), plus the retention loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

import uvicorn

from sipwatch.central.app import create_app
from sipwatch.central.config import CentralConfig
from sipwatch.central.state import Central
from sipwatch.store.base import Store, open_store

log = logging.getLogger("sipwatch.central")
RETENTION_EVERY = 3600.0  # seconds between purges


class CentralError(Exception):
    pass


def open_central_store(config: CentralConfig) -> Store:
    try:
        return open_store(config.db)
    except Exception as exc:  # StoreError and OS errors: one line
        raise CentralError(f"cannot open the store {config.db}: {exc}") from None


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the caller decides when to stop (should_exit),
    so a shutdown closes the store instead of re-raising the signal at the end."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


def on_signals(callback) -> None:
    """Call `callback` on SIGINT/SIGTERM (from the running loop)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, callback)


def make_server(config: CentralConfig, store: Store) -> uvicorn.Server:
    app = create_app(config, store)
    uv = uvicorn.Config(
        app, host=config.listen, port=config.port, log_level="warning", access_log=False,
        ssl_certfile=config.tls_cert or None, ssl_keyfile=config.tls_key or None,
        lifespan="off", server_header=False,
    )  # fmt: skip
    return QuietServer(uv)


async def retention_loop(central: Central) -> None:
    """Purge what is older than retention_days, now and then every hour."""
    days = central.config.retention_days
    if not days:
        return
    while True:
        cutoff = time.time() - days * 86400
        try:
            deleted = await asyncio.to_thread(central.db, central.store.purge, cutoff)
            if deleted:
                log.info("retention: %d messages older than %g days purged", deleted, days)
        except Exception:
            log.exception("retention purge failed")
        await asyncio.sleep(RETENTION_EVERY)


async def serve_central(config: CentralConfig, store: Store) -> None:
    """Serve until uvicorn is told to exit (SIGINT/SIGTERM); the caller closes the store."""
    server = make_server(config, store)
    on_signals(lambda: setattr(server, "should_exit", True))
    central: Central = server.config.app.state.central
    retention = asyncio.create_task(retention_loop(central))
    scheme = "https" if config.tls else "http"
    log.info(
        "central service on %s://%s:%d (store %s)", scheme, config.listen, config.port, config.db
    )
    try:
        await server.serve()
    finally:
        retention.cancel()
        central.close()
