"""Information sharing: a new client that starts with what another client discovered.

Used by ChainTracker (detect/chains.py), which feeds it. It keeps a bounded table of findings:
extensions a client learnt exist (its probe was answered 401/407/403, or 2xx) and credentials a
client cracked (a 2xx after guessing), each with the discovering client and time. A client's
*first activity* is its first `first_requests` requests, `first_users` distinct users or
`first_window_s` seconds, whichever ends first. In it:
- using credentials another client cracked, with the same password or logging in without
  guessing, links it at once ("sharing.credentials");
- when it ends, the users it targeted are compared with the findings: at least
  `min_shared_extensions` found by one other client, making up at least `share_ratio` of them,
  and no probe answered "not found", link it ("sharing.extensions"). A client that scans on its
  own meets users that do not exist (404) and targets many nobody found. Common extensions
  (100, 1000, admin, ...) that every scanner tries never count as shared, and trivial passwords
  (the username's variants, the head of the built-in list) never link: anyone tries them first.
Sans-I/O: time from records only; the finding table is an LRU with counted evictions.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sipwatch.detect.events import MAX_EVIDENCE, Event, event_id
from sipwatch.detect.passwords import builtin_words, user_variants
from sipwatch.detect.stages import ES, RHJ
from sipwatch.record import Record

if TYPE_CHECKING:
    from sipwatch.detect.chain_state import Chain
    from sipwatch.detect.chains import ChainConfig

EXTENSIONS_RULE = "sharing.extensions"
CREDENTIALS_RULE = "sharing.credentials"

# extensions every scanner tries first and that most PBXs have: two clients using them says
# nothing about one learning from the other
COMMON_EXTENSIONS = frozenset(
    [
        "0",
        "1",
        "100",
        "101",
        "1000",
        "1001",
        "200",
        "2000",
        "admin",
        "administrator",
        "anonymous",
        "asterisk",
        "guest",
        "info",
        "operator",
        "root",
        "sip",
        "test",
        "user",
    ]
)


class _Counts(Protocol):
    finding_evictions: int
    sharing_events: int


@dataclass(slots=True)
class Finding:
    src: str  # the client that discovered it
    ts: float
    record: int  # id of the answer that told it
    password: str = ""  # credentials: the password, when recovered


@dataclass(slots=True)
class _Reuse:
    """Credentials of others a new client used so far (one event id, updated)."""

    first: float
    last: float
    count: int = 0
    items: dict[tuple[str, str], tuple[str, float, str]] = field(default_factory=dict)
    evidence: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Window:
    """A new client's first activity."""

    first: float
    deadline: float
    requests: int = 0
    users: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    missing: int = 0  # its probes of (non-common) users answered "not found"
    reuse: _Reuse | None = None


class Sharing:
    def __init__(self, config: ChainConfig, stats: _Counts) -> None:
        self.config = config
        self.stats = stats
        self._findings: OrderedDict[tuple[str, str, str], Finding] = OrderedDict()
        self._windows: OrderedDict[str, _Window] = OrderedDict()  # by start: deadline order
        self._weak: frozenset[str] | None = None  # trivial passwords, read when first needed

    # --- what clients discovered -------------------------------------------------------------
    def discovered_extension(self, src: str, server: str, user: str, record: Record) -> None:
        if user not in self.config.common_extensions:
            self._note(("x", server, user), src, record, "")

    def discovered_credential(
        self, src: str, server: str, user: str, password: str, record: Record
    ) -> None:
        self._note(("c", server, user), src, record, password)

    def finding(self, kind: str, server: str, user: str) -> Finding | None:
        """kind "x": extension found; "c": credentials cracked (for reports and tests)."""
        return self._findings.get((kind, server, user))

    def _note(self, key: tuple[str, str, str], src: str, record: Record, password: str) -> None:
        findings = self._findings
        if key in findings:
            findings.move_to_end(key)  # the first discoverer keeps it
            return
        findings[key] = Finding(src, record.ts, record.id, password)
        if len(findings) > self.config.max_findings:
            findings.popitem(last=False)
            self.stats.finding_evictions += 1

    # --- first activity of new clients -------------------------------------------------------
    def start(self, chain: Chain) -> None:
        self._windows[chain.src] = _Window(chain.first, chain.first + self.config.first_window_s)

    def forget(self, src: str) -> None:
        self._windows.pop(src, None)

    def on_request(
        self,
        chain: Chain,
        record: Record,
        server: str,
        user: str,
        authed: bool,
        events: list[Event],
    ) -> None:
        w = self._windows.get(chain.src)
        if w is None:
            return
        cfg = self.config
        w.requests += 1
        if user and user not in cfg.common_extensions and (server, user) not in w.users:
            w.users[(server, user)] = (record.ts, record.id)
        if authed and user and record.password:
            f = self._findings.get(("c", server, user))
            if (
                f is not None
                and f.password == record.password
                and not self._trivial(user, record.password)
                and self._fresh(chain, f, server, user)
            ):
                self._reuse(chain, w, record, server, user, f, "password", events)
        if w.requests >= cfg.first_requests or len(w.users) >= cfg.first_users:
            del self._windows[chain.src]
            self._close(chain, w, events)

    def on_missing(self, chain: Chain, user: str) -> None:
        """A probe of `chain`'s client was answered "not found": it is guessing names."""
        w = self._windows.get(chain.src)
        if w is not None and user not in self.config.common_extensions:
            w.missing += 1

    def on_login(
        self, chain: Chain, record: Record, server: str, user: str, events: list[Event]
    ) -> None:
        """A 2xx to an authenticated request of `chain`'s client."""
        w = self._windows.get(chain.src)
        if w is None:
            return
        f = self._findings.get(("c", server, user))
        if f is None or (f.password and record.password and f.password != record.password):
            return  # a password of its own (the account's password changed?)
        if self._trivial(user, record.password or f.password):
            return
        if self._fresh(chain, f, server, user):
            self._reuse(chain, w, record, server, user, f, "login", events)

    def _trivial(self, user: str, password: str) -> bool:
        """A password any list tries first: two clients both knowing it proves nothing."""
        if not password:
            return False  # not recovered: in none of the lists tried
        if self._weak is None:
            self._weak = frozenset(builtin_words()[: self.config.trivial_passwords])
        return password in self._weak or password in user_variants(user)

    def _fresh(self, chain: Chain, f: Finding, server: str, user: str) -> bool:
        """Someone else's finding, and this client did not guess its way to it."""
        if f.src == chain.src:
            return False
        g = chain.guesses.get((server, user))
        return g is None or (g.refused <= self.config.reuse_max_failures and len(g.passwords) <= 1)

    def expire(self, now: float, events: list[Event], chains: dict[str, Chain]) -> None:
        """Close the windows whose time is up (now = the current record's time)."""
        windows = self._windows
        while windows:
            src, w = next(iter(windows.items()))
            if w.deadline >= now:
                break
            del windows[src]
            chain = chains.get(src)
            if chain is not None:
                self._close(chain, w, events)

    # --- events ------------------------------------------------------------------------------
    def _reuse(
        self,
        chain: Chain,
        w: _Window,
        record: Record,
        server: str,
        user: str,
        f: Finding,
        match: str,
        events: list[Event],
    ) -> None:
        r = w.reuse
        if r is None:
            r = w.reuse = _Reuse(record.ts, record.ts)
        if (server, user) in r.items:
            return
        r.items[(server, user)] = (f.src, record.ts - f.ts, match)
        r.count += 1
        r.last = max(r.last, record.ts)
        r.evidence += (record.id, f.record)
        by = list(dict.fromkeys(d for d, _, _ in r.items.values()))
        users = [u for _, u in r.items]
        how = "logged in as" if match == "login" else "used the password of"
        others = f" and {len(by) - 1} other(s)" if len(by) > 1 else ""
        summary = (
            f"{chain.src} {how} {user} that {f.src}{others} cracked "
            f"{_ago(record.ts - f.ts)} earlier"
        )
        first_delay = next(iter(r.items.values()))[1]
        events.append(
            self._event(
                CREDENTIALS_RULE,
                RHJ,
                "high",
                chain,
                record,
                r.first,
                r.last,
                r.count,
                users,
                summary,
                r.evidence,
                {
                    "discovered_by": by,
                    "items": users,
                    "servers": sorted({s for s, _ in r.items}),
                    "match": [m for _, _, m in r.items.values()],
                    "delay_s": round(first_delay, 3),
                },
            )
        )

    def _close(self, chain: Chain, w: _Window, events: list[Event]) -> None:
        """The first activity is over: did it go straight for what others found?"""
        cfg = self.config
        users = w.users
        if len(users) < cfg.min_shared_extensions or w.missing > cfg.share_max_missing:
            return  # too little to go by, or it probed users that do not exist: a scan
        by: dict[str, list[tuple[str, str, float, int, Finding]]] = {}
        for (server, user), (ts, rid) in users.items():
            f = self._findings.get(("x", server, user))
            if f is not None and f.src != chain.src and f.ts < ts:
                by.setdefault(f.src, []).append((server, user, ts, rid, f))
        linked = {d: items for d, items in by.items() if len(items) >= cfg.min_shared_extensions}
        shared = [item for items in linked.values() for item in items]
        if not shared or len(shared) < cfg.share_ratio * len(users):
            return
        shared.sort(key=lambda i: (i[2], i[1], i[0]))  # in the order the client used them
        first_use = shared[0]
        delay = first_use[2] - first_use[4].ts
        items = list(dict.fromkeys(u for _, u, _, _, _ in shared))
        evidence: list[int] = []
        for _, _, _, rid, f in shared:
            evidence += (rid, f.record)
        names = list(linked)
        others = f" and {len(names) - 1} other(s)" if len(names) > 1 else ""
        summary = (
            f"{chain.src} went straight for {len(items)} extensions that {names[0]}{others} "
            f"found, {_ago(delay)} earlier"
        )
        events.append(
            self._event(
                EXTENSIONS_RULE,
                ES,
                "medium",
                chain,
                None,
                w.first,
                max(i[2] for i in shared),
                len(shared),
                items,
                summary,
                evidence,
                {
                    "discovered_by": names,
                    "items": items,
                    "servers": sorted({s for s, _, _, _, _ in shared}),
                    "by_discoverer": {d: [u for _, u, _, _, _ in it] for d, it in linked.items()},
                    "first_users": len(users),
                    "delay_s": round(delay, 3),
                },
            )
        )

    def _event(
        self,
        rule: str,
        stage: str,
        severity: str,
        chain: Chain,
        record: Record | None,
        first: float,
        last: float,
        count: int,
        targets: list[str],
        summary: str,
        evidence: list[int],
        data: dict[str, object],
    ) -> Event:
        self.stats.sharing_events += 1
        node = (record.node if record is not None else "") or chain.node
        sensor = (record.sensor if record is not None else "") or chain.sensor
        return Event(
            id=event_id(rule, chain.src, chain.first),
            rule=rule,
            kind="sharing",
            severity=severity,
            stage=stage,
            src=chain.src,
            targets=tuple(targets[:MAX_EVIDENCE]),
            node=node,
            sensor=sensor,
            first=first,
            last=last,
            count=count,
            summary=summary,
            evidence=tuple(dict.fromkeys(i for i in evidence if i))[:MAX_EVIDENCE],
            data=data,
            tags=("sharing",),
        )


def human_delay(seconds: float) -> str:
    """'40 s', '12 min', '3.5 h', '2.0 d': how long an attacker took."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _ago(seconds: float) -> str:
    return human_delay(max(0.0, seconds))
