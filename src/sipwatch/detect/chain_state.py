"""What one client did, stage by stage: the attack chain ChainTracker keeps per address.

Plain data with a JSON-able form for reports; detect/chains.py fills it (and says how).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from sipwatch.detect.stages import ES, RHJ, SS, TF

ORDER = {SS: 0, ES: 1, RHJ: 2, TF: 3}  # the attack order of the stages
_EMPTY: Mapping = MappingProxyType({})  # a field no entry was added to yet (read-only)


def _empty() -> Mapping:
    return _EMPTY


@dataclass(slots=True)
class StageSpan:
    """Messages of one stage label: first/last time, count, and when the stage was reached."""

    first: float
    last: float
    count: int
    record: int  # id of the first message with this label
    reached: float | None = None  # when the evidence sufficed (None: labelled, not reached)
    reached_record: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "first": self.first,
            "last": self.last,
            "count": self.count,
            "reached": self.reached,
        }


@dataclass(slots=True)
class Guesses:
    """Password tries on one account (server, user) by one client."""

    attempts: int = 0
    refused: int = 0  # 403, or a 401/407 challenge that is not stale=true
    unknown: int = 0  # attempts whose password was not recovered
    passwords: list[str] = field(default_factory=list)  # distinct, the first max_passwords
    success: bool = False


@dataclass(slots=True)
class Credential:
    server: str
    user: str
    password: str  # "" when not recovered
    ts: float
    record: int  # id of the 2xx that accepted it


@dataclass(slots=True)
class Dialled:
    number: str
    type: str
    country: str
    count: int
    first: float
    last: float


@dataclass(slots=True)
class Chain:
    """What one client did, stage by stage. A live view: read it, do not change it."""

    src: str
    first: float
    last: float
    node: str = ""
    sensor: str = ""
    requests: int = 0
    responses: int = 0
    stages: dict[str, StageSpan] = field(default_factory=dict)
    top: str = ""  # the latest stage reached ("" none yet)
    servers: dict[str, None] = field(default_factory=dict)  # distinct, first max_servers
    # Evidence most clients never get: a shared read-only empty until the first entry (a
    # server scan touches millions of addresses; each empty container costs 60-200 bytes).
    found: Mapping[tuple[str, str], float] = field(default_factory=_empty)  # (server, user) -> ts
    found_more: int = 0  # "exists" answers about extensions past max_extensions (repeats too)
    missing: int = 0  # probes answered "not found"
    # (server, user) -> password tries on that account
    guesses: Mapping[tuple[str, str], Guesses] = field(default_factory=_empty)
    guesses_more: int = 0  # password tries on accounts past max_accounts
    credentials: Sequence[Credential] = ()
    credentials_more: int = 0
    numbers: Mapping[str, Dialled] = field(default_factory=_empty)
    numbers_more: int = 0  # INVITEs to numbers past max_numbers
    tools: Mapping[str, None] = field(default_factory=_empty)
    connected: bool = False  # a TF INVITE was answered 2xx
    # evidence counters behind the stage thresholds
    # servers probed with SS messages; users of ES messages without credentials (any server)
    ss_servers: Mapping[str, None] = field(default_factory=_empty)
    es_users: Mapping[str, None] = field(default_factory=_empty)
    es_answered: int = 0  # final answers to ES probes ...
    es_missing: int = 0  # ... of them "not found"
    refused: int = 0  # password tries refused, over all accounts
    most_passwords: int = 0  # distinct passwords on the most-tried account
    unreached: int = 0  # stages labelled but not reached yet
    es_options: bool = False  # its first ES message was an OPTIONS
    moved_from: str = ""  # the stage of its latest move ("" no move yet) ...
    moved_at: float = 0.0  # ... when it moved ...
    severity: str = ""  # ... and the severity its chain event had

    def reached(self) -> list[str]:
        """Stages reached, in attack order."""
        return [s for s in ORDER if s in self.stages and self.stages[s].reached is not None]

    def password_tries(self) -> int:
        return sum(g.attempts for g in self.guesses.values()) + self.guesses_more

    def to_dict(self, passwords: bool = True) -> dict[str, object]:
        """JSON-able; passwords=False leaves out the clear-text passwords."""
        return {
            "src": self.src,
            "first": self.first,
            "last": self.last,
            "node": self.node,
            "sensor": self.sensor,
            "requests": self.requests,
            "responses": self.responses,
            "top": self.top,
            "stages": {s: self.stages[s].to_dict() for s in ORDER if s in self.stages},
            "servers": list(self.servers),
            "extensions_found": [f"{u}@{s}" for s, u in self.found],
            "extensions_missing": self.missing,
            "guesses": {
                f"{u}@{s}": {
                    "attempts": g.attempts,
                    "refused": g.refused,
                    "unknown": g.unknown,
                    "success": g.success,
                    **({"passwords": list(g.passwords)} if passwords else {}),
                }
                for (s, u), g in self.guesses.items()
            },
            "credentials": [
                {
                    "server": c.server,
                    "user": c.user,
                    "ts": c.ts,
                    **({"password": c.password} if passwords else {}),
                }
                for c in self.credentials
            ],
            "numbers": [
                {"number": d.number, "type": d.type, "country": d.country, "count": d.count}
                for d in self.numbers.values()
            ],
            "tools": list(self.tools),
        }
