"""Event: what a detection rule reports, and the sink protocol actions implement.

An Event is emitted when a rule first fires for a key, then again (same id, updated
last/count/evidence) at most once per the rule's suppress period while it keeps firing.
The id is derived from (rule, key, first) so the same input always yields the same ids,
whether it was analysed live or from a file; the store upserts by id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

SEVERITIES = ("info", "low", "medium", "high", "critical")  # ordered, least to most
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

KINDS = ("signature", "threshold", "chain", "sharing")
STAGES = ("SS", "ES", "RHJ", "TF", "FLOOD", "FUZZ", "SPIT", "")

MAX_EVIDENCE = 20  # message ids kept per event: enough to look at, bounded in memory


def event_id(rule: str, key: str, first: float) -> int:
    """Stable 63-bit id of one episode of a rule firing for a key."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{rule}\x00{key}\x00{first!r}".encode())
    return (int.from_bytes(h.digest(), "little") & 0x7FFF_FFFF_FFFF_FFFF) or 1


def severity_rank(severity: str) -> int:
    """Position of a severity in SEVERITIES (-1 when unknown)."""
    return _RANK.get(severity, -1)


@dataclass(slots=True)
class Event:
    id: int  # stable 63-bit: blake2b(rule, key, first) -> same input, same id
    rule: str  # rule id, e.g. "es.extension-scan"
    kind: str  # "signature" | "threshold" | "chain" | "sharing"
    severity: str  # one of SEVERITIES
    stage: str  # "SS" | "ES" | "RHJ" | "TF" | "FLOOD" | "FUZZ" | "SPIT" | ""
    src: str  # the attacking client address ("" for per-target rules)
    targets: tuple[str, ...]  # server addresses, extensions or numbers concerned
    node: str
    sensor: str
    first: float  # record time of the first message that counted
    last: float  # record time of the latest
    count: int  # messages that counted
    summary: str  # one human line: "198.51.100.7 probed 25 extensions in 60 s"
    evidence: tuple[int, ...] = ()  # message (Record) ids, at most MAX_EVIDENCE
    data: dict[str, object] = field(default_factory=dict)  # rule specific, JSON-able
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-able form with stable field names (see docs/actions.md)."""
        return {
            "id": self.id,
            "rule": self.rule,
            "kind": self.kind,
            "severity": self.severity,
            "stage": self.stage,
            "src": self.src,
            "targets": list(self.targets),
            "node": self.node,
            "sensor": self.sensor,
            "first": self.first,
            "last": self.last,
            "count": self.count,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "data": dict(self.data),
            "tags": list(self.tags),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Event:
        """Inverse of to_dict (lists back to tuples)."""
        return cls(
            id=int(d["id"]),
            rule=d["rule"],
            kind=d["kind"],
            severity=d["severity"],
            stage=d.get("stage", ""),
            src=d.get("src", ""),
            targets=tuple(d.get("targets", ())),
            node=d.get("node", ""),
            sensor=d.get("sensor", ""),
            first=float(d["first"]),
            last=float(d["last"]),
            count=int(d.get("count", 0)),
            summary=d.get("summary", ""),
            evidence=tuple(int(x) for x in d.get("evidence", ())),
            data=dict(d.get("data", {})),
            tags=tuple(d.get("tags", ())),
        )

    def severity_rank(self) -> int:
        return severity_rank(self.severity)


class EventSink(Protocol):
    """What actions implement: receive emitted events (possibly updates of earlier ids)."""

    def emit(self, events: list[Event]) -> None: ...

    def close(self) -> None: ...
