"""Endpoints the sensors call: batch ingest (exactly once), heartbeat, rule pack."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from sipwatch.central import rulepacks
from sipwatch.central.auth import central, sensor_auth
from sipwatch.central.batchcodec import Batch, BatchError, decode
from sipwatch.central.registry import SensorInfo
from sipwatch.store.schema import EVENT_COLUMNS, MESSAGE_COLUMNS

router = APIRouter(prefix="/api/v1", tags=["sensors"])
Sensor = Annotated[SensorInfo, Depends(sensor_auth)]

_M_SENSOR = MESSAGE_COLUMNS.index("sensor")
_M_NODE = MESSAGE_COLUMNS.index("node")
_E_SENSOR = EVENT_COLUMNS.index("sensor")
_E_NODE = EVENT_COLUMNS.index("node")

_INGEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "An uplink batch (see docs/api.md), gzip Content-Encoding optional.",
        "content": {
            "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object"}},
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


def _attribute(sensor: SensorInfo, batch: Batch) -> tuple[list[tuple], list[tuple]]:
    """Stamp the sensor's name on every row, and its default node where none is given.

    A row for a node the sensor is not registered for is refused: a sensor cannot write as
    another sensor or site.
    """
    allowed = set(sensor.nodes)
    default = sensor.node
    name = sensor.name

    def fix(rows: list[tuple], s: int, n: int, what: str) -> list[tuple]:
        out = []
        for i, row in enumerate(rows):
            node = row[n] or default
            if node not in allowed:
                raise HTTPException(
                    403, f"{what}[{i}]: sensor {name!r} may not report for node {row[n]!r}"
                )
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


@router.post("/ingest", response_model=IngestReply, openapi_extra=_INGEST_BODY)
async def ingest(request: Request, sensor: Sensor) -> IngestReply:
    """Store one batch of records and events. Replaying a stored batch changes nothing."""
    c = central(request)
    body = await read_body(request, c.config.max_body)
    try:
        batch = await run_in_threadpool(
            decode, body, request.headers.get("content-type", ""),
            request.headers.get("content-encoding", ""),
        )  # fmt: skip
    except BatchError as exc:
        c.metrics.batches.labels("rejected").inc()
        raise HTTPException(422, str(exc)) from None
    rows, events = _attribute(sensor, batch)

    before = c.store.counters.get("duplicates", 0)
    stored = await run_in_threadpool(
        c.db, c.store.store_batch, sensor.name, batch.seq, rows, events, batch.dropped
    )
    if stored:
        c.metrics.batches.labels("stored").inc()
        c.metrics.count_batch(sensor.name, rows, events)
        c.metrics.duplicates.inc(max(0, c.store.counters.get("duplicates", 0) - before))
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


@router.post("/heartbeat", response_model=HeartbeatReply)
def heartbeat(request: Request, sensor: Sensor, beat: Heartbeat) -> HeartbeatReply:
    """Report health; the reply names the active rule pack so the sensor can fetch a newer one."""
    c = central(request)
    status: dict[str, Any] = beat.model_dump()
    c.db(c.registry.heartbeat, sensor.name, status)
    pack = c.db(rulepacks.active, c.store)
    return HeartbeatReply(
        rules=RulesRef(version=pack.version, sha256=pack.sha256) if pack else None
    )


class RulePackOut(BaseModel):
    version: int
    name: str
    sha256: str
    created: float
    text: str


@router.get("/rules", response_model=RulePackOut)
def rules_for_sensor(request: Request, sensor: Sensor) -> RulePackOut:
    """The active rule pack (YAML text), for sensors."""
    c = central(request)
    pack = c.db(rulepacks.active, c.store)
    if pack is None:
        raise HTTPException(404, "no rule pack is active")
    return RulePackOut(
        version=pack.version, name=pack.name, sha256=pack.sha256, created=pack.created,
        text=pack.text,
    )  # fmt: skip
