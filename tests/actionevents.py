"""Events for the action tests (what the engine would emit)."""

from __future__ import annotations

import itertools

from sipwatch.detect.events import Event, event_id

_seq = itertools.count(1)


def make_event(**fields: object) -> Event:
    n = next(_seq)
    base: dict[str, object] = {
        "rule": "es.extension-scan",
        "kind": "threshold",
        "severity": "high",
        "stage": "ES",
        "src": "203.0.113.7",
        "targets": ("100", "101", "102"),
        "node": "node-a",
        "sensor": "sensor-1",
        "first": 1_700_000_000.0 + n,
        "last": 1_700_000_060.0 + n,
        "count": 25,
        "summary": "203.0.113.7 probed 25 extensions in 60 s",
        "evidence": (11, 12, 13),
        "data": {"distinct": 25},
        "tags": ("sipvicious",),
    }
    base.update(fields)
    if "id" not in base:
        base["id"] = event_id(str(base["rule"]), str(base["src"]), float(base["first"]))  # type: ignore[arg-type]
    return Event(**base)  # type: ignore[arg-type]
