"""The web dashboard: server-rendered pages (Jinja2, autoescaped) with Plotly charts.

Every page needs a logged-in user (session cookie, or HTTP Basic like the API) and sends
everyone else to /login. Forms that change something (login, logout) carry a per-session CSRF
token on top of the SameSite=strict session cookie. Scripts and styles come only from this
server (plotly.js from the installed plotly package): the pages work with no Internet, and a
Content-Security-Policy forbids inline and foreign scripts, so attacker text that slipped
through escaping still could not run.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import plotly
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from sipwatch import __version__
from sipwatch.central import dashboard_pages as pages
from sipwatch.central.auth import User, central, current_user

router = APIRouter(include_in_schema=False)

_HERE = Path(__file__).parent
_STATIC = {
    "dashboard.css": (_HERE / "static" / "dashboard.css", "text/css"),
    "dashboard.js": (_HERE / "static" / "dashboard.js", "text/javascript"),
    "plotly.min.js": (
        Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
        "text/javascript",
    ),
}
_ENV = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=True,  # every value, not only in .html files
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# Plotly adds <style> elements and inline style attributes, hence 'unsafe-inline' for styles only
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAV = [
    ("/", "Overview"),
    ("/nodes", "Nodes"),
    ("/attackers", "Attackers"),
    ("/correlation", "Correlation"),
    ("/sensors", "Sensors"),
    ("/rules", "Rules"),
]


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf(request: Request, sent: str) -> None:
    expected = request.session.get("csrf") or ""
    if not expected or not secrets.compare_digest(expected.encode(), sent.encode()):
        raise HTTPException(403, "the form expired or came from another site; reload the page")


def render(
    request: Request,
    template: str,
    user: User | None,
    status: int = 200,
    refresh: int = 0,
    **context: Any,
) -> HTMLResponse:
    """A page; `refresh` > 0: its live parts are fetched again every `refresh` seconds."""
    html = _ENV.get_template(template).render(
        request_path=request.url.path,
        nav=NAV,
        user=user,
        csrf=csrf_token(request),
        version=__version__,
        refresh=refresh,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _safe_next(target: str) -> str:
    """Only a path of this site: no scheme, no '//host', no backslash tricks."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


# --- login ---------------------------------------------------------------------------------------
@router.get("/login")
def login_page(request: Request, next: Annotated[str, Query(max_length=2000)] = "/") -> Response:
    return render(
        request, "login.html", current_user(request), title="Log in", next=_safe_next(next),
        error="",
    )  # fmt: skip


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=63)],
    password: Annotated[str, Form(max_length=1024)],
    csrf: Annotated[str, Form(max_length=100)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    _check_csrf(request, csrf)
    c = central(request)
    role = c.check_login(username, password)
    if role is None:
        c.metrics.auth_failures.labels("user").inc()
        return render(
            request, "login.html", None, status=401, title="Log in", next=_safe_next(next),
            error="Unknown user or wrong password.",
        )  # fmt: skip
    request.session.clear()  # a fresh session (and CSRF token) for the logged-in user
    request.session.update({"user": username, "role": role})
    csrf_token(request)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=100)]) -> Response:
    _check_csrf(request, csrf)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The dashboard's CSS and JS, and plotly.js from the installed plotly package."""
    found = _STATIC.get(name)
    if found is None:
        raise HTTPException(404, "no such file")
    path, media = found
    return FileResponse(
        path,
        media_type=media,
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# --- pages ---------------------------------------------------------------------------------------
def _page(request: Request, template: str, refresh: int, build: Any, *args: Any) -> Response:
    """Render `template` with build(central, *args) for a logged-in user; else go to login."""
    user = current_user(request)
    if user is None:
        return _to_login(request)
    c = central(request)
    context = build(c, *args)
    status = context.pop("status", 200)
    return render(request, template, user, status=status, refresh=refresh, **context)


# live numbers refresh every 10 s; pages that rescan every message (or carry the whole rule
# pack) every 30 s
FAST, SLOW = 10, 30


@router.get("/")
def overview(request: Request) -> Response:
    return _page(request, "overview.html", FAST, pages.overview)


@router.get("/nodes")
def nodes(request: Request) -> Response:
    return _page(request, "nodes.html", SLOW, pages.nodes)


@router.get("/attackers")
def attackers(
    request: Request,
    q: Annotated[str, Query(max_length=100)] = "",
    country: Annotated[str, Query(max_length=20)] = "",
    stage: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    return _page(request, "attackers.html", SLOW, pages.attackers, q, country, stage)


@router.get("/attackers/{address}")
def attacker(request: Request, address: str) -> Response:
    return _page(request, "attacker.html", SLOW, pages.attacker, address)


@router.get("/correlation")
def correlation(request: Request) -> Response:
    return _page(request, "correlation.html", SLOW, pages.correlation)


@router.get("/sensors")
def sensors(request: Request) -> Response:
    return _page(request, "sensors.html", FAST, pages.sensors)


@router.get("/rules")
def rules(request: Request) -> Response:
    return _page(request, "rules.html", SLOW, pages.rules)
