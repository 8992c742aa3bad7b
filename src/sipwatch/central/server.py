"""Serving the central app with uvicorn (HTTP or HTTPS), plus the retention loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

import uvicorn

from sipwatch import gctune
from sipwatch.central.app import create_app
from sipwatch.central.config import CentralConfig
from sipwatch.central.state import Central
from sipwatch.store.base import Store, open_store

log = logging.getLogger("sipwatch.central")
MAINTENANCE_EVERY = 3600.0  # seconds between purges / index runs


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


async def maintenance_loop(central: Central) -> None:
    """Every hour: purge what is older than retention_days (when set) and, on PostgreSQL,
    give the days that ended their report index (store.ensure_indexes)."""
    days = central.config.retention_days
    postgres = central.store.engine == "postgresql"
    if not days and not postgres:
        return
    while True:
        try:
            if days:
                cutoff = time.time() - days * 86400
                deleted = await asyncio.to_thread(central.db, central.store.purge, cutoff)
                if deleted:
                    log.info("retention: %d messages older than %g days purged", deleted, days)
            if postgres:
                await asyncio.to_thread(central.db, central.store.ensure_indexes)
        except Exception:
            log.exception("store maintenance failed")
        await asyncio.sleep(MAINTENANCE_EVERY)


async def serve_central(config: CentralConfig, store: Store) -> None:
    """Serve until uvicorn is told to exit (SIGINT/SIGTERM); the caller closes the store."""
    server = make_server(config, store)
    on_signals(lambda: setattr(server, "should_exit", True))
    central: Central = server.config.app.state.central
    retention = asyncio.create_task(maintenance_loop(central))
    scheme = "https" if config.tls else "http"
    log.info(
        "central service on %s://%s:%d (store %s)", scheme, config.listen, config.port, config.db
    )
    # a batch of 5,000 rows unpacks into a quarter of a million objects (sipwatch.gctune)
    gc_thresholds = gctune.for_serving()
    try:
        await server.serve()
    finally:
        gctune.restore(gc_thresholds)
        retention.cancel()
        central.close()
