"""Endpoints for people and their tools: sensors and tokens, rule packs (admin); health (viewer)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from sipwatch.central import rulepacks
from sipwatch.central.api_sensors import RulePackOut, json_body, json_request, read_body
from sipwatch.central.auth import User, admin_auth, central, viewer_auth
from sipwatch.central.registry import RegistryError, SensorInfo
from sipwatch.detect.rules import RuleError

router = APIRouter(prefix="/api/v1", tags=["admin"])
Viewer = Annotated[User, Depends(viewer_auth)]
Admin = Annotated[User, Depends(admin_auth)]


class SensorOut(BaseModel):
    name: str
    nodes: list[str]
    deployment: str
    created: float
    revoked: float | None
    last_seen: float | None
    stale: bool = Field(description="no heartbeat or batch within the configured stale_after")
    status: dict


def sensor_out(s: SensorInfo, stale_after: float, now: float | None = None) -> SensorOut:
    now = time.time() if now is None else now
    stale = s.revoked is None and (s.last_seen is None or now - s.last_seen > stale_after)
    return SensorOut(
        name=s.name, nodes=list(s.nodes), deployment=s.deployment, created=s.created,
        revoked=s.revoked, last_seen=s.last_seen, stale=stale, status=s.status,
    )  # fmt: skip


@router.get("/sensors", response_model=list[SensorOut])
def list_sensors(request: Request, user: Viewer) -> list[SensorOut]:
    """Every registered sensor with its last heartbeat; stale ones are marked."""
    c = central(request)
    return [sensor_out(s, c.config.stale_after) for s in c.db(c.registry.sensors)]


class NewSensor(BaseModel):
    name: str = Field(min_length=1, max_length=63)
    nodes: list[str] = Field(default_factory=list, max_length=1000)
    deployment: str = Field("", max_length=63)


NEW_SENSOR_BYTES = 256 * 1024  # room for 1000 node names


class NewToken(BaseModel):
    name: str
    token: str = Field(description="shown once; the central keeps only its hash")


@router.post(
    "/sensors", response_model=NewToken, status_code=201, openapi_extra=json_request(NewSensor)
)
async def add_sensor(request: Request, user: Admin) -> NewToken:
    """Register a sensor and return its token."""
    c = central(request)
    new = await json_body(request, NewSensor, NEW_SENSOR_BYTES)
    try:
        token = await run_in_threadpool(
            c.db, c.registry.add_sensor, new.name, new.nodes or None, new.deployment
        )
    except RegistryError as exc:
        raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from None
    return NewToken(name=new.name, token=token)


@router.post("/sensors/{name}/token", response_model=NewToken)
def rotate_token(request: Request, user: Admin, name: str) -> NewToken:
    """A new token for a sensor; the old one stops working at once."""
    c = central(request)
    try:
        return NewToken(name=name, token=c.db(c.registry.rotate_token, name))
    except RegistryError as exc:
        raise HTTPException(404, str(exc)) from None


@router.delete("/sensors/{name}", status_code=204)
def revoke_sensor(request: Request, user: Admin, name: str) -> None:
    """Revoke a sensor's token (its data stays)."""
    c = central(request)
    try:
        c.db(c.registry.revoke_sensor, name)
    except RegistryError as exc:
        raise HTTPException(404, str(exc)) from None


_YAML_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/yaml": {"schema": {"type": "string"}}},
    }
}


@router.get("/rulepack", response_model=RulePackOut)
def get_rulepack(request: Request, user: Viewer) -> RulePackOut:
    """The active rule pack."""
    c = central(request)
    return RulePackOut.of(c.db(rulepacks.active, c.store))


@router.put("/rulepack", response_model=RulePackOut, openapi_extra=_YAML_BODY)
async def put_rulepack(request: Request, user: Admin) -> RulePackOut:
    """Publish a new rule pack (YAML); sensors pick it up at their next heartbeat."""
    c = central(request)
    body = await read_body(request, rulepacks.MAX_PACK_BYTES)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(422, "the rule pack must be UTF-8 YAML") from None
    source = f"upload by {user.name}"
    try:
        parsed = await run_in_threadpool(rulepacks.validate, text, source)
        pack = await run_in_threadpool(c.db, rulepacks.publish, c.store, text, source, parsed)
    except RuleError as exc:
        raise HTTPException(422, "; ".join(exc.problems)) from None
    return RulePackOut.of(pack)
