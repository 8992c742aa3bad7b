"""Every endpoint authenticates: sensors with their Bearer token, people with a session or HTTP
Basic; viewers read, admins manage; a sensor cannot write as another sensor or node."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route
from storedata import DAY2, trace

from centralapp import ADMIN, CentralApp, basic, bearer, central_app
from sipwatch.central.batchcodec import encode
from sipwatch.store.rows import message_row
from sipwatch.store.schema import EVENT_COLUMNS, MESSAGE_COLUMNS

ROWS = [message_row(r) for r in trace()]
PACK = b"""pack: tiny
version: 1
rules:
  - id: t.options
    kind: signature
    severity: high
    stage: SS
    description: any OPTIONS request
    match: {is_request: true, method: OPTIONS}
    summary: "{client} probed"
"""
SENSOR_CALLS = [
    ("POST", "/api/v1/ingest"),
    ("POST", "/api/v1/heartbeat"),
    ("GET", "/api/v1/rules"),
]
ADMIN_CALLS = [
    ("POST", "/api/v1/sensors", {"json": {"name": "new", "nodes": ["x"]}}),
    ("POST", "/api/v1/sensors/bergen/token", {}),
    ("DELETE", "/api/v1/sensors/bergen", {}),
    ("PUT", "/api/v1/rulepack", {"content": PACK}),
]
# the only routes anyone may call without logging in: the login form, logging out (needs the
# session's CSRF token anyway) and the dashboard's CSS/JS
PUBLIC = {"/login", "/logout", "/static/{name}"}


@pytest.fixture
def c(tmp_path: Path):
    with central_app(tmp_path) as app:
        yield app


def sensor_call(c: CentralApp, method: str, path: str, token: str):
    if path == "/api/v1/ingest":
        return c.ingest(token, encode(1, ROWS[:2], []))
    if path == "/api/v1/heartbeat":
        return c.client.post(path, json={"version": "t"}, headers=bearer(token))
    return c.client.request(method, path, headers=bearer(token))


def every_route(routes: list, prefix: str = "") -> list[tuple[str, Route]]:
    """(path, route) of every route, also inside included routers (FastAPI >= 0.16x keeps an
    included router as one entry of app.routes)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            out += every_route(inner.routes, prefix + getattr(context, "prefix", ""))
        elif isinstance(route, Route):
            out.append((prefix + route.path, route))
    return out


def _filled(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_no_credentials_401_on_every_route(c: CentralApp) -> None:
    seen = set()
    for path, route in every_route(c.app.routes):
        if path in PUBLIC:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            r = c.client.request(method, _filled(path), follow_redirects=False)
            seen.add((method, path))
            if path.startswith("/api/") or path == "/metrics":
                assert r.status_code == 401, (method, path, r.status_code)
                assert r.headers["www-authenticate"] in ("Bearer", 'Basic realm="sipwatch"')
            else:  # a dashboard page sends people to the login form
                assert r.status_code == 303, (method, path)
                assert r.headers["location"].startswith("/login?next=")
    assert ("GET", "/api/v1/openapi.json") in seen
    assert ("POST", "/api/v1/ingest") in seen
    assert len([p for _, p in seen if p.startswith("/api/")]) >= 12


def test_the_public_routes_give_nothing_away(c: CentralApp) -> None:
    assert c.client.get("/login").status_code == 200
    assert c.client.post("/logout", data={"csrf": "guess"}).status_code == 403
    assert c.client.get("/static/dashboard.css").status_code == 200
    assert c.client.get("/static/central.sqlite").status_code == 404


def test_metrics_public_only_when_configured(tmp_path: Path) -> None:
    with central_app(tmp_path, metrics_public=True) as c:
        assert c.client.get("/metrics").status_code == 200
        assert c.client.get("/api/v1/sensors").status_code == 401


@pytest.mark.parametrize(("method", "path"), SENSOR_CALLS)
def test_sensor_endpoints_refuse_missing_wrong_and_revoked_tokens(
    c: CentralApp, method: str, path: str
) -> None:
    assert sensor_call(c, method, path, c.oslo).status_code == 200
    assert sensor_call(c, method, path, "").status_code == 401
    assert sensor_call(c, method, path, "swt_wrong").status_code == 401
    assert sensor_call(c, method, path, c.oslo + "x").status_code == 401
    assert sensor_call(c, method, path, "x" * 5000).status_code == 401
    assert c.client.delete("/api/v1/sensors/oslo-sensor", auth=ADMIN).status_code == 204
    r = sensor_call(c, method, path, c.oslo)
    assert r.status_code == 401
    assert r.json() == {"detail": "invalid or revoked sensor token"}
    assert sensor_call(c, method, path, c.bergen).status_code == 200  # the others still work


def test_a_rotated_token_replaces_the_old_one(c: CentralApp) -> None:
    r = c.client.post("/api/v1/sensors/oslo-sensor/token", auth=ADMIN)
    assert r.status_code == 200
    new = r.json()["token"]
    assert new != c.oslo and new.startswith("swt_")
    for method, path in SENSOR_CALLS:
        assert sensor_call(c, method, path, c.oslo).status_code == 401
        assert sensor_call(c, method, path, new).status_code == 200
    # rotating a revoked sensor's token brings it back
    c.client.delete("/api/v1/sensors/oslo-sensor", auth=ADMIN)
    newer = c.client.post("/api/v1/sensors/oslo-sensor/token", auth=ADMIN).json()["token"]
    assert sensor_call(c, "GET", "/api/v1/rules", newer).status_code == 200


def test_tokens_are_stored_hashed(c: CentralApp) -> None:
    stored = [h for (h,) in c.store.query("SELECT token_hash FROM sensors")]
    assert c.oslo not in stored and len(stored[0]) == 64


@pytest.mark.parametrize(("method", "path", "kwargs"), ADMIN_CALLS)
def test_a_viewer_cannot_manage(c: CentralApp, method: str, path: str, kwargs: dict) -> None:
    r = c.client.request(method, path, auth=c.viewer, **kwargs)
    assert r.status_code == 403
    assert r.json() == {"detail": "user 'viewer' is a viewer; this needs an admin"}
    assert c.client.get("/api/v1/sensors", auth=c.viewer).status_code == 200
    assert c.client.request(method, path, auth=c.admin, **kwargs).status_code in (200, 201, 204)


def test_sensor_tokens_and_user_logins_do_not_mix(c: CentralApp) -> None:
    for path in ("/api/v1/sensors", "/api/v1/reports", "/api/v1/blocklist", "/metrics",
                 "/api/v1/openapi.json", "/api/v1/rulepack"):  # fmt: skip
        assert c.client.get(path, headers=bearer(c.oslo)).status_code == 401, path
    r = c.client.post(
        "/api/v1/ingest", content=encode(1, ROWS, []), headers={**basic(ADMIN),
        "Content-Type": "application/msgpack", "Content-Encoding": "gzip"},
    )  # fmt: skip
    assert r.status_code == 401
    assert c.client.post("/api/v1/heartbeat", json={}, auth=ADMIN).status_code == 401
    assert c.client.get("/api/v1/rules", auth=ADMIN).status_code == 401
    assert c.count() == 0


@pytest.mark.parametrize(
    "header",
    [
        "Basic " + base64.b64encode(b"admin:wrong-password").decode(),
        "Basic " + base64.b64encode(b"nobody:admin-password").decode(),
        "Basic " + base64.b64encode(b"admin-password").decode(),  # no colon
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"admin:\xff\xfe").decode(),  # not UTF-8
        "Digest username=admin",
        "admin:admin-password",
    ],
)
def test_bad_basic_credentials(c: CentralApp, header: str) -> None:
    r = c.client.get("/api/v1/sensors", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Basic realm="sipwatch"'


def test_failures_are_counted(c: CentralApp) -> None:
    c.client.get("/api/v1/sensors", auth=("admin", "wrong-password"))
    c.client.get("/api/v1/rules", headers=bearer("swt_wrong"))
    text = c.client.get("/metrics", auth=ADMIN).text
    assert 'sipwatch_auth_failures_total{kind="user"} 1.0' in text
    assert 'sipwatch_auth_failures_total{kind="sensor"} 1.0' in text


def test_a_dashboard_session_works_for_the_api(c: CentralApp) -> None:
    page = c.client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = c.client.post(
        "/login",
        data={"username": "viewer", "password": "viewer-password", "csrf": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert c.client.get("/api/v1/sensors").status_code == 200  # the session cookie
    assert c.client.post("/api/v1/sensors", json={"name": "n"}).status_code == 403  # a viewer
    # made an admin: the session has the new role at once; removed: the session ends
    c.central.registry.add_user("viewer", "viewer-password", "admin")
    assert c.client.post("/api/v1/sensors", json={"name": "n"}).status_code == 201
    c.central.registry.remove_user("viewer")
    assert c.client.get("/api/v1/sensors").status_code == 401


# --- a sensor cannot write as another ------------------------------------------------------------
_M_SENSOR, _M_NODE = MESSAGE_COLUMNS.index("sensor"), MESSAGE_COLUMNS.index("node")


def _rows(sensor: str, node: str) -> list[tuple]:
    out = []
    for r in ROWS:
        row = list(r)
        row[_M_SENSOR], row[_M_NODE] = sensor, node
        out.append(tuple(row))
    return out


def _event(eid: int, sensor: str, node: str, count: int = 3) -> tuple:
    e = dict.fromkeys(EVENT_COLUMNS, "")
    e.update(id=eid, rule="es.scan", kind="threshold", severity="high", stage="ES",
             src="8.8.8.8", targets="[]", node=node, sensor=sensor, first=DAY2, last=DAY2 + 1,
             count=count, evidence="[]", data="{}")  # fmt: skip
    return tuple(e[c] for c in EVENT_COLUMNS)


def test_rows_are_stored_under_the_authenticated_sensor(c: CentralApp) -> None:
    rows = _rows("bergen", "")  # claims another sensor; no node: the sensor's default
    rows[1] = _rows("other", "essen")[1]  # its second node
    r = c.ingest(c.oslo, encode(1, rows, [_event(1, "bergen", "")]))
    assert r.status_code == 200
    assert c.store.query("SELECT sensor, node, COUNT(*) FROM messages GROUP BY 1, 2") == [
        ("oslo-sensor", "essen", 1),
        ("oslo-sensor", "oslo", len(ROWS) - 1),
    ]
    assert c.store.query("SELECT sensor, node FROM events") == [("oslo-sensor", "oslo")]


def test_rows_for_a_node_the_sensor_does_not_serve_are_refused(c: CentralApp) -> None:
    rows = _rows("oslo-sensor", "oslo")
    rows[5] = _rows("oslo-sensor", "bergen")[5]
    r = c.ingest(c.oslo, encode(1, rows, []))
    assert r.status_code == 403
    assert r.json() == {
        "detail": "records[5]: sensor 'oslo-sensor' may not report for node 'bergen'"
    }
    r = c.ingest(c.oslo, encode(2, [], [_event(1, "oslo-sensor", "bergen")]))
    assert r.status_code == 403
    assert r.json() == {
        "detail": "events[0]: sensor 'oslo-sensor' may not report for node 'bergen'"
    }
    assert c.count() == 0 and c.count("events") == 0 and c.count("uplink_batches") == 0
    assert c.ingest(c.oslo, encode(1, _rows("", "oslo"), [])).status_code == 200  # seq 1 is free


def test_a_sensor_cannot_change_another_sensors_event(c: CentralApp) -> None:
    assert c.ingest(c.bergen, encode(1, [], [_event(42, "bergen", "bergen", 3)])).status_code == 200
    r = c.ingest(c.oslo, encode(1, _rows("", "oslo"), [_event(42, "", "oslo", 999)]))
    assert r.status_code == 403
    assert r.json() == {
        "detail": "event 42 was reported by sensor 'bergen' for node 'bergen'; "
        "sensor 'oslo-sensor' may not change it"
    }
    assert c.store.query("SELECT sensor, node, count FROM events") == [("bergen", "bergen", 3)]
    assert c.count() == 0
    # its own event it may update (a rule that kept firing)
    assert c.ingest(c.bergen, encode(2, [], [_event(42, "", "", 5)])).status_code == 200
    assert c.store.query("SELECT count FROM events") == [(5,)]


def test_every_api_route_is_in_the_schema_and_authenticated(c: CentralApp) -> None:
    schema = c.client.get("/api/v1/openapi.json", auth=ADMIN).json()
    api = {
        path for path, r in every_route(c.app.routes)
        if isinstance(r, APIRoute) and r.include_in_schema and path.startswith("/api/")
    }  # fmt: skip
    assert api | {"/metrics"} == set(schema["paths"])


def test_every_body_is_capped_even_before_login(tmp_path) -> None:
    """The login form (and any route) cannot be made to buffer more than max_body."""
    from fastapi.testclient import TestClient

    from sipwatch.central.app import create_app
    from sipwatch.central.config import CentralConfig
    from sipwatch.store.base import open_store

    with open_store(tmp_path / "c.sqlite") as store:
        app = create_app(
            CentralConfig(db=str(tmp_path / "c.sqlite"), max_body_mb=0.01), store, "k" * 40
        )
        client = TestClient(app)
        big = b"user=" + b"a" * 20_000
        r = client.post(
            "/login", content=big, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert r.status_code == 413
        chunks = (b"a" * 4096 for _ in range(5))  # no Content-Length: counted as it streams
        r = client.post(
            "/login", content=chunks, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert r.status_code == 413
        app.state.central.close()
