"""Sensors and their health, rule packs: what admins do and what sensors see of it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from centralapp import CentralApp, bearer, central_app

PACK = """pack: tiny
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
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
def c(tmp_path: Path):
    with central_app(tmp_path, stale_after=60) as app:
        yield app


def sensors(c: CentralApp) -> dict[str, dict]:
    r = c.client.get("/api/v1/sensors", auth=c.viewer)
    assert r.status_code == 200
    return {s["name"]: s for s in r.json()}


def test_heartbeat_is_stored_and_shown_with_the_stale_flag(c: CentralApp) -> None:
    beat = {"version": "1.2", "uptime": 33.5, "rule_pack": "central:1", "spool_batches": 4,
            "spool_bytes": 9000, "queue": 2, "dropped": 1, "sent_batches": 8,
            "counters": {"records": 120}, "error": "central unreachable for 30 s"}  # fmt: skip
    r = c.client.post("/api/v1/heartbeat", json=beat, headers=bearer(c.oslo))
    assert r.status_code == 200
    pack = c.client.get("/api/v1/rulepack", auth=c.viewer).json()
    assert r.json() == {"rules": {"version": pack["version"], "sha256": pack["sha256"]}}
    shown = sensors(c)
    assert shown["oslo-sensor"]["status"] == beat
    assert shown["oslo-sensor"]["stale"] is False
    assert shown["oslo-sensor"]["nodes"] == ["oslo", "essen"]
    assert shown["oslo-sensor"]["deployment"] == "distributed"
    assert shown["bergen"]["stale"] is True  # never heard from
    # a minute and a bit later without a heartbeat: stale
    c.store.execute("UPDATE sensors SET last_seen = ?", (time.time() - 61,))
    assert sensors(c)["oslo-sensor"]["stale"] is True
    # a revoked sensor is not "stale": it is gone
    c.client.delete("/api/v1/sensors/bergen", auth=c.admin)
    assert sensors(c)["bergen"]["stale"] is False
    assert sensors(c)["bergen"]["revoked"] is not None
    assert (
        'sipwatch_sensor_spool_batches{sensor="oslo-sensor"} 4.0'
        in c.client.get("/metrics", auth=c.admin).text
    )


@pytest.mark.parametrize(
    "beat",
    [
        {"uptime": -1},
        {"spool_batches": "many"},
        {"version": "v" * 101},
        {"counters": {"x": "y"}},
        {"counters": {str(i): i for i in range(201)}},
    ],
)
def test_heartbeat_validation(c: CentralApp, beat: dict) -> None:
    r = c.client.post("/api/v1/heartbeat", json=beat, headers=bearer(c.oslo))
    assert r.status_code == 422
    assert sensors(c)["oslo-sensor"]["status"] == {}


def test_json_bodies_have_a_size_limit_checked_after_the_login(c: CentralApp) -> None:
    big = {"error": "", "counters": {"x" * 70_000: 1}}
    assert c.client.post("/api/v1/heartbeat", json=big).status_code == 401  # not even read
    r = c.client.post("/api/v1/heartbeat", json=big, headers=bearer(c.oslo))
    assert (r.status_code, r.json()) == (413, {"detail": "body larger than 65536 bytes"})
    r = c.client.post("/api/v1/sensors", json={"name": "x", "nodes": ["n" * 300_000]}, auth=c.admin)
    assert r.status_code == 413
    r = c.client.post("/api/v1/heartbeat", content=b"{not json", headers=bearer(c.oslo))
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    for body in (b"\x80", b"[1]", b"null"):  # not UTF-8, not an object
        r = c.client.post("/api/v1/sensors", content=body, auth=c.admin)
        assert r.status_code == 422, body


def test_a_published_pack_reaches_the_sensors(c: CentralApp) -> None:
    first = c.client.get("/api/v1/rules", headers=bearer(c.oslo)).json()
    assert first["name"] == "default" and first["version"] == 1
    r = c.client.put("/api/v1/rulepack", content=PACK, headers=YAML, auth=c.admin)
    assert r.status_code == 200, r.text
    new = r.json()
    assert (new["version"], new["name"], new["text"]) == (2, "tiny", PACK)
    seen = c.client.get("/api/v1/rules", headers=bearer(c.bergen)).json()
    assert (seen["version"], seen["sha256"], seen["text"]) == (2, new["sha256"], PACK)
    beat = c.client.post("/api/v1/heartbeat", json={}, headers=bearer(c.oslo)).json()
    assert beat == {"rules": {"version": 2, "sha256": new["sha256"]}}
    # the same pack again keeps its version; another text is a new version
    assert c.client.put("/api/v1/rulepack", content=PACK, auth=c.admin).json()["version"] == 2
    other = PACK.replace("severity: high", "severity: low")
    assert c.client.put("/api/v1/rulepack", content=other, auth=c.admin).json()["version"] == 3
    assert c.client.get("/api/v1/rulepack", auth=c.viewer).json()["version"] == 3


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (b"version: 1\nrules: [\n", "upload by admin: yaml: "),
        (b"version: one\nrules: []\n", "upload by admin: version: must be a whole number >= 1"),
        (PACK.replace("severity: high", "severity: dire").encode(), "upload by admin: rule t.options: severity:"),
        (PACK.replace("  - id: t.options\n", "  - id: t.options\n    colour: red\n").encode(), "upload by admin: rule t.options: colour:"),
        (b"- " * 3000 + b"x", "upload by admin: yaml: nested too deeply"),
        (b"[" * 3000 + b"]" * 3000, "upload by admin: yaml: nested too deeply"),
        (b"\xff\xfe not utf-8", "the rule pack must be UTF-8 YAML"),
        (b"", "upload by admin: pack: must be a mapping with `version` and `rules`"),
    ],
)  # fmt: skip
def test_an_invalid_pack_is_422_with_the_loaders_messages(
    c: CentralApp, text: bytes, detail: str
) -> None:
    r = c.client.put("/api/v1/rulepack", content=text, headers=YAML, auth=c.admin)
    assert r.status_code == 422
    assert r.json()["detail"].startswith(detail), r.json()
    assert c.client.get("/api/v1/rules", headers=bearer(c.oslo)).json()["version"] == 1


def test_a_pack_over_the_size_limit_is_413(c: CentralApp) -> None:
    r = c.client.put("/api/v1/rulepack", content=b"#" * (1024 * 1024 + 1), auth=c.admin)
    assert r.status_code == 413


def test_manage_sensors(c: CentralApp) -> None:
    r = c.client.post(
        "/api/v1/sensors", json={"name": "tromso", "nodes": ["t1", "t2"], "deployment": "central"},
        auth=c.admin,
    )  # fmt: skip
    assert r.status_code == 201
    token = r.json()["token"]
    assert c.client.get("/api/v1/rules", headers=bearer(token)).status_code == 200
    assert sensors(c)["tromso"]["nodes"] == ["t1", "t2"]
    # no nodes: the sensor is its own node
    c.client.post("/api/v1/sensors", json={"name": "solo"}, auth=c.admin)
    assert sensors(c)["solo"]["nodes"] == ["solo"]
    again = c.client.post("/api/v1/sensors", json={"name": "tromso"}, auth=c.admin)
    assert again.status_code == 409
    assert again.json()["detail"].startswith("sensor 'tromso' exists already")
    for bad in ({"name": "bad name"}, {"name": "ok", "nodes": ["a,b"]},
                {"name": "ok", "deployment": "-x"}, {"name": ""}, {"nodes": ["x"]}):  # fmt: skip
        assert c.client.post("/api/v1/sensors", json=bad, auth=c.admin).status_code == 422, bad
    assert c.client.post("/api/v1/sensors/nobody/token", auth=c.admin).status_code == 404
    r = c.client.delete("/api/v1/sensors/nobody", auth=c.admin)
    assert (r.status_code, r.json()) == (404, {"detail": "no sensor 'nobody'"})
    assert c.client.delete("/api/v1/sensors/tromso", auth=c.admin).status_code == 204
    assert c.client.delete("/api/v1/sensors/tromso", auth=c.admin).status_code == 204  # again
    assert c.client.get("/api/v1/rules", headers=bearer(token)).status_code == 401
