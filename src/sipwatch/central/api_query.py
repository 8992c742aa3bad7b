"""Read endpoints: every report table (JSON or CSV), and the blocklist feed for firewalls."""

from __future__ import annotations

import ipaddress
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from sipwatch.central.auth import User, central, viewer_auth
from sipwatch.central.config import SEVERITIES
from sipwatch.report import correlation
from sipwatch.report import tables as report_tables
from sipwatch.report.attacker import attacker as attacker_view
from sipwatch.report.render import csv_text, table_dict
from sipwatch.report.tables import Table

router = APIRouter(prefix="/api/v1", tags=["reports"])
Viewer = Annotated[User, Depends(viewer_auth)]
PAGE = 250  # addresses per blocklist page (the size APIBAN clients expect)


def reports() -> dict[str, Any]:
    """Report name -> function(db) for every table the API, CLI and dashboard show: the
    store's tables, then the correlation across nodes."""
    return {**report_tables.REPORTS, **correlation.CORRELATION}


_TOP_N = report_tables.TOP_N | correlation.CORRELATION_TOP_N


class TableOut(BaseModel):
    name: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = Field(description="one object per row, keyed by column")
    note: str


@router.get("/reports", response_model=list[str])
def report_names(request: Request, user: Viewer) -> list[str]:
    """Names of the report tables."""
    return list(reports())


def compute(request: Request, name: str, top: int | None) -> Table:
    c = central(request)
    fn = reports()[name]
    if name == "deployments" and c.config.deployments:  # the config's groups, else the registry's
        return c.report(fn, c.config.deployments)
    if top is not None and name in _TOP_N:
        return c.report(fn, top)
    return c.report(fn)


@router.get(
    "/reports/{name}", response_model=TableOut, responses={200: {"content": {"text/csv": {}}}}
)
def report(
    request: Request,
    user: Viewer,
    name: Annotated[str, Path(max_length=100, json_schema_extra={"enum": list(reports())})],
    format: Literal["json", "csv"] = "json",
    top: Annotated[int | None, Query(ge=1, le=100_000, description="rows of a top-N table")] = None,
) -> Response:
    """One report table computed from the store now."""
    if name not in reports():
        raise HTTPException(404, f"no report {name!r}; reports: {', '.join(reports())}")
    table = compute(request, name, top)
    if format == "csv":
        return PlainTextResponse(csv_text(table), media_type="text/csv")
    return JSONResponse({"name": table.name, **table_dict(table)})


@router.get("/attackers/{address}", response_model=list[TableOut])
def attacker(
    request: Request, user: Viewer, address: Annotated[str, Path(max_length=100)]
) -> Response:
    """Everything about one source address: summary, timeline across nodes and stages,
    extensions, passwords, numbers, tools, events and linked attackers."""
    try:
        src = str(ipaddress.ip_address(address))
    except ValueError:
        raise HTTPException(422, f"not an IP address: {address!r}") from None
    c = central(request)
    view = c.report(attacker_view, src)
    if not view.timeline.rows and not view.events.rows:
        raise HTTPException(404, f"nothing is stored about {src}")
    return JSONResponse([{"name": t.name, **table_dict(t)} for t in view.tables()])


# --- blocklist --------------------------------------------------------------------------------
_SEVERITY_SQL = " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(SEVERITIES))
_CHUNK = 1000  # sources read per query while filling a page


def _query(db, sql: str, params: tuple) -> list[tuple]:
    return db.query(sql, params)


def blocked_sources(
    request: Request, min_severity: str, after: tuple[float, str], limit: int
) -> tuple[list[tuple], tuple[float, str]]:
    """Sources to block, ordered by (first event time, address), after the cursor `after`;
    at most `limit`. Also the cursor to continue from: the last address looked at, listed or
    allowlisted (so a page of allowlisted sources does not stop the paging)."""
    c = central(request)
    rank = SEVERITIES.index(min_severity)
    out: list[tuple] = []
    cursor = pos = after  # pos also passes sources that are no address (not in a page ID)
    while len(out) < limit:
        rows = c.report(
            _query,
            f"SELECT src, MIN(first), MAX(CASE severity {_SEVERITY_SQL} ELSE 0 END), COUNT(*)"
            f" FROM events WHERE (CASE severity {_SEVERITY_SQL} ELSE 0 END) >= ? AND src <> ''"
            " GROUP BY src HAVING MIN(first) > ? OR (MIN(first) = ? AND src > ?)"
            " ORDER BY MIN(first), src LIMIT ?",
            (rank, pos[0], pos[0], pos[1], _CHUNK),
        )
        for src, first, worst, n in rows:
            pos = (first, src)
            if not _is_address(src):
                continue
            cursor = pos
            if not c.config.allowed(src):
                out.append((src, first, SEVERITIES[int(worst)], n))
                if len(out) >= limit:
                    break
        if len(rows) < _CHUNK:
            break
    return out, cursor


def _is_address(src: str) -> bool:
    try:
        ipaddress.ip_address(src)
    except ValueError:
        return False
    return True


def _cursor(page_id: str | None, since: float) -> tuple[float, str]:
    """The position an APIBAN page ID names: 'TIME_ADDRESS' of the last source looked at."""
    if page_id in (None, "", "100"):  # APIBAN clients start with ID 100
        return (since, "")
    first, sep, src = page_id.partition("_")
    try:
        value = float(first)
    except ValueError:
        value = math.nan
    if not sep or not _is_address(src) or not math.isfinite(value):
        raise HTTPException(422, "id must be the ID of an earlier page (or 100 to start)")
    return (value, src)


@router.get("/blocklist", responses={200: {"content": {"text/plain": {}, "application/json": {}}}})
def blocklist(
    request: Request,
    user: Viewer,
    format: Literal["text", "json", "apiban"] = "text",
    min_severity: Literal["info", "low", "medium", "high", "critical"] | None = None,
    id: Annotated[
        str | None,
        Query(max_length=100, description="apiban: the ID of the last page (100 to start)"),
    ] = None,
    since: Annotated[
        float, Query(ge=0, le=2**40, description="only sources first seen at or after (Unix)")
    ] = 0,
) -> Response:
    """Sources of events at least `min_severity` (allowlist excluded), for firewalls and tools.

    text: one address per line. json: objects with first event time, severity and event count.
    apiban: APIBAN-style paging, {"ipaddress": [...], "ID": "..."}; pass the ID back to get
    what came after; an unchanged ID means nothing new.
    """
    c = central(request)
    sev = min_severity or c.config.min_severity
    if format == "apiban":
        rows, cursor = blocked_sources(request, sev, _cursor(id, since), PAGE)
        moved = cursor != _cursor(id, since)
        next_id = f"{cursor[0]!r}_{cursor[1]}" if moved else (id or "100")
        return JSONResponse({"ipaddress": [r[0] for r in rows], "ID": next_id})
    rows, _ = blocked_sources(request, sev, (since, ""), 10_000_000)
    if format == "json":
        return JSONResponse(
            [{"address": a, "first": f, "severity": s, "events": n} for a, f, s, n in rows]
        )
    return PlainTextResponse("".join(f"{r[0]}\n" for r in rows))
