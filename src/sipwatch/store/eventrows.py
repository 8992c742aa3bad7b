"""Event -> events row (a tuple in schema.EVENT_COLUMNS order); list fields as JSON text."""

from __future__ import annotations

from typing import Any

import orjson

from sipwatch.detect.events import Event


def _json(value: Any) -> str:
    # default=str: rule data is meant to be JSON-able; anything else is kept readable, not lost
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


def event_row(e: Event) -> tuple:
    return (
        e.id, e.rule, e.kind, e.severity, e.stage, e.src, _json(list(e.targets)), e.node,
        e.sensor, e.first, e.last, e.count, e.summary, _json(list(e.evidence)), _json(e.data),
        ",".join(e.tags),
    )  # fmt: skip
