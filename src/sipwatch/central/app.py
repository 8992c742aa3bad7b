"""The central service's ASGI app: API routers, metrics, sessions for the dashboard."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.middleware.sessions import SessionMiddleware

from sipwatch import __version__
from sipwatch.central import api_admin, api_query, api_sensors, dashboard, rulepacks
from sipwatch.central.auth import User, central, viewer_auth
from sipwatch.central.bodylimit import BodyLimit
from sipwatch.central.config import CentralConfig
from sipwatch.central.state import Central
from sipwatch.store.base import Store

SESSION_HOURS = 12


def session_secret(path: Path) -> str:
    """The key that signs dashboard sessions, made once (0600) so logins survive restarts."""
    try:
        text = path.read_text().strip()
        if len(text) >= 32:
            return text
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def metrics_auth(request: Request) -> User | None:
    """A user, unless the config opens /metrics to everyone (metrics_public)."""
    return None if central(request).config.metrics_public else viewer_auth(request)


def create_app(config: CentralConfig, store: Store, secret: str | None = None) -> FastAPI:
    """The app over an open store (the caller closes it). secret=None: from config.secret_path."""
    state = Central(config, store)
    state.db(rulepacks.ensure_default, store)
    state.metrics.watch_sensors(lambda: state.db(state.registry.sensors))
    app = FastAPI(
        title="sipwatch central service",
        version=__version__,
        description="Sensor registry, exactly-once ingest, reports and blocklist (docs/api.md).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind a login like everything else
    )
    app.state.central = state
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret or session_secret(config.secret_path),
        session_cookie="sipwatch_session",
        max_age=SESSION_HOURS * 3600,
        same_site="strict",
        https_only=config.tls,
    )
    app.add_middleware(BodyLimit, limit=config.max_body, on_refuse=state.metrics.too_large.inc)
    app.include_router(api_sensors.router)
    app.include_router(api_admin.router)
    app.include_router(api_query.router)
    app.include_router(dashboard.router)

    @app.get("/metrics", tags=["metrics"], response_class=Response)
    def metrics(request: Request, user: Annotated[User | None, Depends(metrics_auth)]) -> Response:
        """Prometheus metrics (text exposition format)."""
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/api/v1/openapi.json", tags=["metrics"], include_in_schema=False)
    def openapi(request: Request, user: Annotated[User, Depends(viewer_auth)]) -> dict:
        return app.openapi()

    return app
