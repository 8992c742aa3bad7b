"""Endpoints the sensors call: batch ingest (exactly once), heartbeat, rule pack."""

from __future__ import annotations

import base64
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from sipwatch.central import rulepacks
from sipwatch.central.auth import central, sensor_auth
from sipwatch.central.batchcodec import MAX_EVENTS, MAX_ROWS, VERSION, Batch, BatchError, decode
from sipwatch.central.registry import SensorInfo
from sipwatch.native import part
from sipwatch.store.base import Store
from sipwatch.store.schema import EVENT_COLUMNS, MESSAGE_COLUMNS

router = APIRouter(prefix="/api/v1", tags=["sensors"])
Sensor = Annotated[SensorInfo, Depends(sensor_auth)]

_M_SENSOR = MESSAGE_COLUMNS.index("sensor")
_M_NODE = MESSAGE_COLUMNS.index("node")
_E_SENSOR = EVENT_COLUMNS.index("sensor")
_E_NODE = EVENT_COLUMNS.index("node")
_E_ID = EVENT_COLUMNS.index("id")
_stamp_rows = part("stamp_rows")  # the same in one C pass over the batch, or None


def _example_batch() -> dict[str, Any]:
    """One OPTIONS probe and the event it fired, as a JSON batch (the schema's example)."""
    raw = b"OPTIONS sip:100@192.0.2.1 SIP/2.0\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n\r\n"
    record = {
        "id": 1, "ts": 1700000000.5, "day": "2023-11-14", "transport": "udp",
        "src": "198.51.100.7", "sport": 5060, "dst": "192.0.2.1", "dport": 5060,
        "direction": "IN", "is_request": 1, "method": "OPTIONS", "status": 0,
        "ruri": "sip:100@192.0.2.1", "ruri_user": "100", "call_id": "a", "cseq_num": 1,
        "cseq_method": "OPTIONS", "stage": "SS", "request_id": 0, "body_len": 0, "fuzz": 0,
        "raw": base64.b64encode(raw).decode(),
    }  # fmt: skip
    event = {
        "id": 7, "rule": "ss.options-probe", "kind": "signature", "severity": "low",
        "stage": "SS", "src": "198.51.100.7", "targets": '["192.0.2.1"]', "first": 1700000000.5,
        "last": 1700000000.5, "count": 1, "evidence": "[1]", "data": "{}",
    }  # fmt: skip
    return {
        "v": VERSION, "seq": 1, "columns": list(MESSAGE_COLUMNS),
        "records": [[record.get(c, "") for c in MESSAGE_COLUMNS]],
        "event_columns": list(EVENT_COLUMNS),
        "events": [[event.get(c, "") for c in EVENT_COLUMNS]], "dropped": 0,
    }  # fmt: skip


_JSON_BATCH = {
    "type": "object",
    "required": ["v", "seq"],
    "properties": {
        "v": {"type": "integer", "enum": [VERSION]},
        "seq": {"type": "integer", "minimum": 1, "description": "numbers this sensor's batches"},
        "columns": {"type": "array", "items": {"type": "string", "enum": list(MESSAGE_COLUMNS)}},
        "records": {"type": "array", "items": {"type": "array"}, "maxItems": MAX_ROWS},
        "event_columns": {
            "type": "array",
            "items": {"type": "string", "enum": list(EVENT_COLUMNS)},
        },
        "events": {"type": "array", "items": {"type": "array"}, "maxItems": MAX_EVENTS},
        "dropped": {"type": "integer", "minimum": 0},
    },
    "example": _example_batch(),
}
_INGEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "An uplink batch (see docs/api.md), gzip Content-Encoding optional.",
        "content": {
            "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": _JSON_BATCH},
        },
    }
}


class IngestReply(BaseModel):
    seq: int
    stored: bool = Field(description="false: this batch was stored before (a replay)")
    records: int
    events: int


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


M = TypeVar("M", bound=BaseModel)


async def json_body(request: Request, model: type[M], limit: int) -> M:
    """The JSON body as `model`, read only after the caller's login check and only up to
    `limit` bytes (FastAPI's own body parameters are read whole, before any check)."""
    body = await read_body(request, limit)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # the same answer FastAPI gives (without the bytes)
        raise RequestValidationError([{
            "type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
            "input": {}, "ctx": {"error": exc.msg},
        }]) from None  # fmt: skip
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def json_request(model: type[BaseModel]) -> dict[str, Any]:
    """openapi_extra naming `model` as the JSON request body (for json_body endpoints)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _attribute(sensor: SensorInfo, batch: Batch) -> tuple[list[tuple], list[tuple]]:
    """Stamp the sensor's name on every row, and its default node where none is given.

    A row for a node the sensor is not registered for is refused: a sensor cannot write as
    another sensor or site.
    """
    allowed = set(sensor.nodes)
    default = sensor.node
    name = sensor.name

    def refuse(what: str, i: int, node: str) -> HTTPException:
        return HTTPException(403, f"{what}[{i}]: sensor {name!r} may not report for node {node!r}")

    def fix(rows: list[tuple], s: int, n: int, what: str) -> list[tuple]:
        if _stamp_rows is not None:
            stamped, bad = _stamp_rows(rows, s, n, name, default, allowed)
            if bad >= 0:
                raise refuse(what, bad, rows[bad][n])
            return stamped
        out = []
        for i, row in enumerate(rows):
            node = row[n] or default
            if node not in allowed:
                raise refuse(what, i, row[n])
            if row[s] != name or row[n] != node:
                fixed = list(row)
                fixed[s], fixed[n] = name, node
                row = tuple(fixed)
            out.append(row)
        return out

    return (
        fix(batch.records, _M_SENSOR, _M_NODE, "records"),
        fix(batch.events, _E_SENSOR, _E_NODE, "events"),
    )


def _foreign_event(store: Store, name: str, events: list[tuple]) -> str:
    """'' when no event id of the batch belongs to another sensor, else what is wrong.

    Event rows are upserted by id, so without this check a sensor could rewrite the count,
    severity and evidence of an event another sensor reported.
    """
    ids = list({e[_E_ID] for e in events})
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        rows = store.query(
            f"SELECT id, sensor, node FROM events WHERE id IN ({marks}) AND sensor <> ? LIMIT 1",
            (*chunk, name),
        )
        if rows:
            eid, owner, node = rows[0]
            return (
                f"event {eid} was reported by sensor {owner!r} for node {node!r}; "
                f"sensor {name!r} may not change it"
            )
    return ""


def _store(store: Store, sensor: SensorInfo, batch: Batch, rows: list, events: list) -> int:
    """Messages of the batch already stored; -1 for a replayed batch. Run on one ingest
    connection (Central.ingest); the events upsert itself also refuses another sensor's event
    (schema.upsert_events_sql), so two connections cannot race past the check."""
    problem = _foreign_event(store, sensor.name, events) if events else ""
    if problem:
        raise HTTPException(403, problem)
    before = store.counters.get("duplicates", 0)
    if not store.store_batch(sensor.name, batch.seq, rows, events, batch.dropped):
        return -1
    return store.counters.get("duplicates", 0) - before


@router.post("/ingest", response_model=IngestReply, openapi_extra=_INGEST_BODY)
async def ingest(request: Request, sensor: Sensor) -> IngestReply:
    """Store one batch of records and events. Replaying a stored batch changes nothing."""
    c = central(request)
    try:
        body = await read_body(request, c.config.max_body)
        try:
            batch = await run_in_threadpool(
                decode, body, request.headers.get("content-type", ""),
                request.headers.get("content-encoding", ""),
            )  # fmt: skip
        except BatchError as exc:
            raise HTTPException(422, str(exc)) from None
        rows, events = _attribute(sensor, batch)
        duplicates = await run_in_threadpool(c.ingest, _store, sensor, batch, rows, events)
    except HTTPException:
        c.metrics.batches.labels("rejected").inc()
        raise
    stored = duplicates >= 0
    if stored:
        c.metrics.batches.labels("stored").inc()
        c.metrics.count_batch(sensor.name, rows, events)
        c.metrics.duplicates.inc(duplicates)
        if batch.dropped:
            c.metrics.sensor_drops.labels(sensor.name).inc(batch.dropped)
    else:
        c.metrics.batches.labels("replayed").inc()
    await run_in_threadpool(c.db, c.registry.seen, sensor.name)
    return IngestReply(seq=batch.seq, stored=stored, records=len(rows), events=len(events))


class Heartbeat(BaseModel):
    version: str = Field("", max_length=100)
    uptime: float = Field(0, ge=0, le=10**10)
    rule_pack: str = Field("", max_length=200, description="what the sensor runs, e.g. central:3")
    spool_batches: int = Field(0, ge=0, le=2**62)
    spool_bytes: int = Field(0, ge=0, le=2**62)
    queue: int = Field(0, ge=0, le=2**62)
    dropped: int = Field(0, ge=0, le=2**62)
    sent_batches: int = Field(0, ge=0, le=2**62)
    counters: dict[str, int] = Field(default_factory=dict, max_length=200)
    error: str = Field("", max_length=2000, description="last problem the sensor had")


class RulesRef(BaseModel):
    version: int
    sha256: str


class HeartbeatReply(BaseModel):
    rules: RulesRef | None


HEARTBEAT_BYTES = 64 * 1024  # a heartbeat is a few hundred bytes


@router.post("/heartbeat", response_model=HeartbeatReply, openapi_extra=json_request(Heartbeat))
async def heartbeat(request: Request, sensor: Sensor) -> HeartbeatReply:
    """Report health; the reply names the active rule pack so the sensor can fetch a newer one."""
    c = central(request)
    beat = await json_body(request, Heartbeat, HEARTBEAT_BYTES)
    status: dict[str, Any] = beat.model_dump()
    await run_in_threadpool(c.db, c.registry.heartbeat, sensor.name, status)
    pack = await run_in_threadpool(c.db, rulepacks.active, c.store)
    return HeartbeatReply(
        rules=RulesRef(version=pack.version, sha256=pack.sha256) if pack else None
    )


class RulePackOut(BaseModel):
    version: int
    name: str
    sha256: str
    created: float
    text: str

    @classmethod
    def of(cls, pack: rulepacks.ActivePack | None) -> RulePackOut:
        """The output of a stored pack; 404 when none is active."""
        if pack is None:
            raise HTTPException(404, "no rule pack is active")
        return cls(
            version=pack.version,
            name=pack.name,
            sha256=pack.sha256,
            created=pack.created,
            text=pack.text,
        )


@router.get("/rules", response_model=RulePackOut)
def rules_for_sensor(request: Request, sensor: Sensor) -> RulePackOut:
    """The active rule pack (YAML text), for sensors."""
    c = central(request)
    return RulePackOut.of(c.db(rulepacks.active, c.store))
