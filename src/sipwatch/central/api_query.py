"""Read endpoints: every report table (JSON or CSV), and the blocklist feed for firewalls."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from sipwatch.central.auth import User, central, viewer_auth
from sipwatch.central.config import SEVERITIES
from sipwatch.report import tables as report_tables
from sipwatch.report.render import csv_text, table_dict

router = APIRouter(prefix="/api/v1", tags=["reports"])
Viewer = Annotated[User, Depends(viewer_auth)]
PAGE = 250  # addresses per blocklist page (the size APIBAN clients expect)


def reports() -> dict[str, Any]:
    """Report name -> function(db) for every table the API, CLI and dashboard show."""
    return dict(report_tables.REPORTS)


class TableOut(BaseModel):
    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str


@router.get("/reports", response_model=list[str])
def report_names(request: Request, user: Viewer) -> list[str]:
    """Names of the report tables."""
    return list(reports())


@router.get(
    "/reports/{name}", response_model=TableOut, responses={200: {"content": {"text/csv": {}}}}
)
def report(
    request: Request,
    user: Viewer,
    name: str,
    format: Literal["json", "csv"] = "json",
    top: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> Response:
    """One report table computed from the store now."""
    fn = reports().get(name)
    if fn is None:
        raise HTTPException(404, f"no report {name!r}; reports: {', '.join(reports())}")
    c = central(request)
    table = (
        c.db(fn, c.store, top)
        if top is not None and name in report_tables.TOP_N
        else c.db(fn, c.store)
    )
    if format == "csv":
        return PlainTextResponse(csv_text(table), media_type="text/csv")
    return JSONResponse(table_dict(table))


_SEVERITY_SQL = " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(SEVERITIES))


def blocked_sources(request: Request, min_severity: str, after: float, limit: int) -> list[tuple]:
    """(source, first event time, worst severity, rules) of sources to block, oldest first."""
    c = central(request)
    rank = SEVERITIES.index(min_severity)
    rows = c.db(
        c.store.query,
        f"SELECT src, MIN(first), MAX(CASE severity {_SEVERITY_SQL} ELSE 0 END), COUNT(*)"
        f" FROM events WHERE (CASE severity {_SEVERITY_SQL} ELSE 0 END) >= ? AND src <> ''"
        " GROUP BY src HAVING MIN(first) > ? ORDER BY MIN(first), src LIMIT ?",
        (rank, after, limit * 2 + 10),
    )
    out = []
    for src, first, worst, n in rows:
        try:
            ipaddress.ip_address(src)
        except ValueError:
            continue
        if c.config.allowed(src):
            continue
        out.append((src, first, SEVERITIES[int(worst)], n))
        if len(out) >= limit:
            break
    return out


@router.get("/blocklist", responses={200: {"content": {"text/plain": {}, "application/json": {}}}})
def blocklist(
    request: Request,
    user: Viewer,
    format: Literal["text", "json", "apiban"] = "text",
    min_severity: Literal["info", "low", "medium", "high", "critical"] | None = None,
    id: Annotated[
        str | None, Query(max_length=32, description="apiban: the ID of the last page")
    ] = None,
    since: Annotated[float, Query(ge=0, le=2**40)] = 0,
) -> Response:
    """Sources of events at least `min_severity` (allowlist excluded), for firewalls and tools.

    text: one address per line. json: objects with first event time, severity and event count.
    apiban: APIBAN-style paging, {"ipaddress": [...], "ID": "..."}; pass the ID back to get
    what came after; an unchanged ID means nothing new.
    """
    c = central(request)
    sev = min_severity or c.config.min_severity
    if format == "apiban":
        after = since
        if id not in (None, "", "100"):  # APIBAN clients start with ID 100
            try:
                after = float(id)
            except ValueError:
                raise HTTPException(422, "id must be the ID of an earlier page") from None
        rows = blocked_sources(request, sev, after, PAGE)
        next_id = repr(rows[-1][1]) if rows else (id or "100")
        return JSONResponse({"ipaddress": [r[0] for r in rows], "ID": next_id})
    rows = blocked_sources(request, sev, since, 1_000_000)
    if format == "json":
        return JSONResponse(
            [{"address": a, "first": f, "severity": s, "events": n} for a, f, s, n in rows]
        )
    return PlainTextResponse("".join(f"{r[0]}\n" for r in rows))
