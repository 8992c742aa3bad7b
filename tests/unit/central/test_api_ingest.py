"""POST /api/v1/ingest: each batch stored exactly once, size limits, clear refusals, metrics."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path

import msgpack
import orjson
import pytest
from storedata import DAY2, trace

from centralapp import MSGPACK_GZIP, CentralApp, bearer, central_app
from sipwatch.central.batchcodec import encode
from sipwatch.store.rows import message_row
from sipwatch.store.schema import EVENT_COLUMNS, MESSAGE_COLUMNS

pytest_plugins = ["storeengines"]  # store_url: the exactly-once test on both engines

ROWS = [message_row(r) for r in trace()]
EVENT = (
    7, "es.extension-scan", "threshold", "high", "ES", "8.8.8.8", '["192.0.2.1"]', "oslo",
    "oslo-sensor", DAY2, DAY2 + 5, 3, "scan", "[1, 2]", '{"users": 3}', "",
)  # fmt: skip


@pytest.fixture
def c(tmp_path: Path):
    with central_app(tmp_path) as app:
        yield app


def test_each_batch_is_stored_exactly_once(store_url: str, tmp_path: Path) -> None:
    with central_app(tmp_path, url=store_url) as c:
        r = c.ingest(c.oslo, encode(1, ROWS[:10], [EVENT], dropped=3))
        assert r.status_code == 200
        assert r.json() == {"seq": 1, "stored": True, "records": 10, "events": 1}
        # the replay (the sensor missed the answer) is acknowledged and changes nothing
        changed = [*EVENT[:11], 99, *EVENT[12:]]
        r = c.ingest(c.oslo, encode(1, ROWS, [changed]))
        assert r.status_code == 200
        assert r.json() == {"seq": 1, "stored": False, "records": len(ROWS), "events": 1}
        assert c.count() == 10
        assert c.store.query("SELECT count FROM events") == [(3,)]
        # gaps are fine (the sensor dropped or set aside a batch); another sensor has its own seq
        assert c.ingest(c.oslo, encode(5, ROWS[10:], [])).json()["stored"] is True
        assert c.ingest(c.bergen, encode(1, [], [])).json()["stored"] is True
        assert c.count() == len(ROWS)
        assert c.store.query(
            "SELECT sensor, seq, records, events, dropped FROM uplink_batches ORDER BY sensor, seq"
        ) == [
            ("bergen", 1, 0, 0, 0),
            ("oslo-sensor", 1, 10, 1, 3),
            ("oslo-sensor", 5, len(ROWS) - 10, 0, 0),
        ]


def test_a_batch_in_json(c: CentralApp) -> None:
    records = [list(r) for r in ROWS]
    raw = MESSAGE_COLUMNS.index("raw")
    for r in records:
        r[raw] = base64.b64encode(r[raw]).decode()
    body = {
        "v": 1, "seq": 1, "columns": list(MESSAGE_COLUMNS), "records": records,
        "event_columns": list(EVENT_COLUMNS), "events": [list(EVENT)],
    }  # fmt: skip
    r = c.client.post(
        "/api/v1/ingest", content=orjson.dumps(body),
        headers={**bearer(c.oslo), "Content-Type": "application/json"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert c.store.query("SELECT raw FROM messages ORDER BY ts DESC LIMIT 1") == [
        (b"\x00\x01 not sip \x1b[31m",)
    ]


def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    with central_app(tmp_path, max_body_mb=0.01) as c:  # 10485 bytes
        big = msgpack.packb({"v": 1, "seq": 1, "pad": b"x" * 20_000})
        r = c.ingest(c.oslo, big, {"Content-Encoding": ""})
        assert r.status_code == 413
        assert r.json() == {"detail": "body larger than 10485 bytes"}

        def chunks():  # no Content-Length: the body is counted as it arrives
            for _ in range(20):
                yield b"x" * 1000

        r = c.client.post(
            "/api/v1/ingest", content=chunks(),
            headers={**bearer(c.oslo), "Content-Type": "application/msgpack"},
        )  # fmt: skip
        assert r.status_code == 413
        # a small body with gzip inside the limit is fine
        assert c.ingest(c.oslo, encode(1, ROWS, [])).status_code == 200
        assert c.count() == len(ROWS)
        metrics = c.client.get("/metrics", auth=c.admin).text
        assert "sipwatch_http_body_too_large_total 2.0" in metrics  # refused before any route


@pytest.mark.parametrize(
    ("body", "headers", "detail"),
    [
        (b"not gzip", MSGPACK_GZIP, "bad gzip data: Error -3 while decompressing data: incorrect header check"),
        (gzip.compress(b"\xc1"), MSGPACK_GZIP, "body is not valid msgpack: "),
        (encode(1, ROWS, []), {"Content-Encoding": "br"}, "unsupported Content-Encoding 'br' (use gzip or none)"),
        (encode(1, ROWS, []), {"Content-Type": "text/plain"}, "unsupported Content-Type 'text/plain' (use application/msgpack or application/json)"),
        (gzip.compress(msgpack.packb({"v": 1, "seq": 0})), MSGPACK_GZIP, "seq must be a positive integer"),
        (b"", {"Content-Encoding": ""}, "body is not valid msgpack: Unpack failed: incomplete input"),
    ],
)  # fmt: skip
def test_invalid_batches_are_422_with_the_reason(
    c: CentralApp, body: bytes, headers: dict, detail: str
) -> None:
    r = c.ingest(c.oslo, body, headers)
    assert r.status_code == 422
    assert r.json()["detail"] == detail or (
        detail.endswith(": ") and r.json()["detail"].startswith(detail)
    )
    assert c.count("uplink_batches") == 0


@pytest.mark.parametrize(
    ("column", "value"), [("sport", 2**31), ("status", 70000), ("fuzz", 2), ("body_len", -1)]
)
def test_a_value_too_wide_for_its_column_is_422_on_both_engines(
    store_url: str, tmp_path: Path, column: str, value: int
) -> None:
    # PostgreSQL keeps these in int4/int2: the store used to fail on them (500)
    row = list(ROWS[0])
    row[MESSAGE_COLUMNS.index(column)] = value
    with central_app(tmp_path, url=store_url) as c:
        r = c.ingest(c.oslo, encode(1, [*ROWS[1:], tuple(row)], []))
        assert r.status_code == 422
        assert r.json()["detail"].startswith(f"records: {column} out of its range ")
        assert c.count() == 0
        assert c.ingest(c.oslo, encode(1, ROWS, [])).json()["stored"] is True


def test_ingest_metrics(c: CentralApp) -> None:
    c.ingest(c.oslo, encode(1, ROWS, [EVENT], dropped=4))
    c.ingest(c.oslo, encode(1, ROWS, [EVENT]))  # replay
    c.ingest(c.bergen, encode(1, [], []))
    c.ingest(c.oslo, b"junk")
    text = c.client.get("/metrics", auth=c.admin).text
    for line in [
        'sipwatch_ingest_batches_total{result="stored"} 2.0',
        'sipwatch_ingest_batches_total{result="replayed"} 1.0',
        'sipwatch_ingest_batches_total{result="rejected"} 1.0',
        'sipwatch_events_total{rule="es.extension-scan"} 1.0',
        'sipwatch_messages_total{method="REGISTER",node="oslo",stage="RHJ"} 2.0',
        'sipwatch_messages_total{method="OPTIONS",node="oslo",stage="SS"} 1.0',
        'sipwatch_sensor_reported_drops_total{sensor="oslo-sensor"} 4.0',
        'sipwatch_ingest_lag_seconds{sensor="oslo-sensor"}',
    ]:
        assert line in text, line


def test_a_batch_updates_last_seen(c: CentralApp) -> None:
    before = {s["name"]: s for s in c.client.get("/api/v1/sensors", auth=c.admin).json()}
    assert before["oslo-sensor"]["last_seen"] is None and before["oslo-sensor"]["stale"]
    c.ingest(c.oslo, encode(1, ROWS[:1], []))
    after = {s["name"]: s for s in c.client.get("/api/v1/sensors", auth=c.admin).json()}
    assert after["oslo-sensor"]["last_seen"] is not None
    assert after["oslo-sensor"]["stale"] is False
