"""Attack chains per client address, and information sharing between addresses.

`ChainTracker.feed(record)` follows each client (the source of requests, the destination of
responses) through the four stages SS -> ES -> RHJ -> TF, with first/last time per stage and the
evidence: servers probed, extensions found, passwords tried, credentials found, numbers dialled.
It emits a "chain" event when a client reaches a later stage than any before, and a "sharing"
event when a new client's first activity uses extensions or credentials that another client
discovered earlier. It runs after StageLabeler and PasswordRecovery (it reads record.stage,
record.tool, record.password, record.number*, record.request_id).

Sans-I/O and deterministic: time comes only from record.ts, ids from detect.events.event_id.
All state is in LRU-bounded tables; evictions are counted in `stats`. Semantics and defaults are
documented in docs/detection.md ("Attack chains and information sharing"); keep them in step.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from sipwatch.detect.chain_state import (
    ORDER,
    Chain,
    Credential,
    Dialled,
    Guesses,
    StageSpan,
)
from sipwatch.detect.events import MAX_EVIDENCE, Event, event_id
from sipwatch.detect.sharing import COMMON_EXTENSIONS, Sharing, human_delay
from sipwatch.detect.stages import ES, RHJ, SS, TF
from sipwatch.record import Record
from sipwatch.sip.numbers import CHARGEABLE

__all__ = [
    "CHAIN_RULE",
    "Chain",
    "ChainConfig",
    "ChainStats",
    "ChainTracker",
    "Credential",
    "Dialled",
    "Guesses",
    "StageSpan",
    "human_delay",
]

CHAIN_RULE = "chain.stage-advance"
_SEVERITY = {ES: "low", RHJ: "medium", TF: "high"}
_PROBES = frozenset({"OPTIONS", "REGISTER", "INVITE"})
_EXISTS = frozenset({401, 403, 407})  # the server knows the user (asks for, or refuses, a password)
_MISSING = frozenset({404, 604})
_MAX_USER = 64  # longer user parts are not extensions anyone reuses: not kept


@dataclass(slots=True)
class ChainConfig:
    max_sources: int = 65536  # chains kept (LRU over clients)
    max_requests: int = 65536  # requests whose answers are still awaited (LRU)
    max_findings: int = 65536  # sharing table: discovered extensions and credentials (LRU)
    max_servers: int = 256  # distinct servers counted per client (the count stops there)
    max_extensions: int = 64  # extensions found, kept per client
    max_accounts: int = 32  # accounts with password tries, kept per client
    max_passwords: int = 16  # distinct passwords kept per account
    max_credentials: int = 16  # credentials found, kept per client
    max_numbers: int = 32  # distinct numbers dialled, kept per client
    sample: int = 8  # servers / extensions / numbers listed in an event
    idle_reset_s: float = 86400.0  # a client silent this long starts a new chain (0: never)
    # when the evidence is enough to say a stage was reached (a fingerprinted tool: at once)
    ss_min_servers: int = 2  # SS: probes to this many servers (one server: a keep-alive?)
    es_min_users: int = 5  # ES: distinct users probed without credentials ...
    es_min_missing: int = 1  # ... of which this many answered "not found" (when answers seen)
    rhj_min_failures: int = 3  # RHJ: passwords refused, or distinct passwords on one account
    # information sharing (see detect/sharing.py)
    first_requests: int = 50  # a client's first activity: its first N requests ...
    first_users: int = 32  # ... or first N distinct (non-common) users targeted ...
    first_window_s: float = 900.0  # ... or first T seconds, whichever ends first
    min_shared_extensions: int = 2  # extensions one discoverer found that the new client used
    share_ratio: float = 0.8  # share of its first users that others found
    share_max_missing: int = 0  # its probes answered "not found" (more: it is scanning)
    reuse_max_failures: int = 1  # refusals allowed before reuse (one stale nonce, a typo)
    trivial_passwords: int = 50  # the built-in list's first words: reusing them proves nothing
    common_extensions: frozenset[str] = COMMON_EXTENSIONS  # never count as shared

    def __post_init__(self) -> None:
        for name in self.__slots__:  # type: ignore[attr-defined]
            value = getattr(self, name)
            if name.startswith(("max_", "first_", "min_")) and not value >= 1:
                raise ValueError(f"chains: {name} must be at least 1, not {value!r}")
        if not 0 < self.share_ratio <= 1:
            raise ValueError(f"chains: share_ratio must be in (0, 1], not {self.share_ratio!r}")
        for name in (
            "idle_reset_s",
            "reuse_max_failures",
            "share_max_missing",
            "trivial_passwords",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"chains: {name} must not be negative")
        self.common_extensions = frozenset(self.common_extensions)


@dataclass(slots=True)
class _Pending:
    """A request whose answer says something: a probe of a user, or a password try."""

    server: str
    user: str
    method: str
    authed: bool
    password: str
    stage: str


@dataclass(slots=True)
class ChainStats:
    requests: int = 0
    responses: int = 0
    chains: int = 0  # chains started
    chain_events: int = 0
    sharing_events: int = 0
    source_evictions: int = 0
    request_evictions: int = 0
    finding_evictions: int = 0
    idle_resets: int = 0


class ChainTracker:
    """Event source: `feed(record)` after the labeller and password recovery, `flush()` at end."""

    def __init__(self, config: ChainConfig | None = None) -> None:
        self.config = cfg = config or ChainConfig()
        self.stats = ChainStats()
        self._chains: OrderedDict[str, Chain] = OrderedDict()
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self.sharing = Sharing(cfg, self.stats)

    # --- queries (for reports) ---------------------------------------------------------------
    def chain(self, src: str) -> Chain | None:
        """The chain of one client address, or None (never seen, or evicted)."""
        return self._chains.get(src)

    def chains(self) -> Iterator[Chain]:
        """All chains kept, least recently active first."""
        return iter(list(self._chains.values()))

    # --- the event source --------------------------------------------------------------------
    def feed(self, record: Record) -> list[Event]:
        """Take one record (in time order); return the events it caused."""
        events: list[Event] = []
        self.sharing.expire(record.ts, events, self._chains)
        msg = record.msg
        if msg.is_request:
            self._request(record, events)
        elif msg.status >= 200:  # provisional answers say nothing about users or passwords
            self._response(record, events)
        return events

    def flush(self) -> list[Event]:
        """End of input: decide the sharing windows still open."""
        events: list[Event] = []
        self.sharing.expire(float("inf"), events, self._chains)
        return events

    # --- requests ----------------------------------------------------------------------------
    def _request(self, record: Record, events: list[Event]) -> None:
        cfg = self.config
        self.stats.requests += 1
        msg = record.msg
        ts = record.ts
        chain = self._get(record.src, ts, record)
        chain.requests += 1
        server = record.dst
        servers = chain.servers
        if server not in servers and len(servers) < cfg.max_servers:
            servers[server] = None
        if record.tool and record.tool not in chain.tools and len(chain.tools) < 4:
            _put(chain, "tools", record.tool, None)
        method = msg.method.upper()
        authed = msg.has_credentials
        user = _account(record, method, authed)
        stage = record.stage
        if stage == SS and len(chain.ss_servers) < cfg.ss_min_servers:
            _put(chain, "ss_servers", server, None)
        if stage == ES and user and not authed and len(chain.es_users) < cfg.es_min_users:
            _put(chain, "es_users", user, None)
        if authed and user and method in ("REGISTER", "INVITE"):
            self._guess(chain, server, user, record.password)
        if method == "INVITE" and record.number:
            self._dialled(chain, record)
        if (user or authed) and method in _PROBES:
            self._remember(record, server, user, method, authed, stage)
        self.sharing.on_request(chain, record, server, user, authed, events)
        if stage in ORDER:
            self._label(chain, record, stage, events)

    def _guess(self, chain: Chain, server: str, user: str, password: str) -> None:
        g = chain.guesses.get((server, user))
        if g is None:
            if len(chain.guesses) >= self.config.max_accounts:
                chain.guesses_more += 1
                return
            g = Guesses()
            _put(chain, "guesses", (server, user), g)
        g.attempts += 1
        if not password:
            g.unknown += 1
        elif password not in g.passwords and len(g.passwords) < self.config.max_passwords:
            g.passwords.append(password)
            chain.most_passwords = max(chain.most_passwords, len(g.passwords))

    def _dialled(self, chain: Chain, record: Record) -> None:
        d = chain.numbers.get(record.number)
        if d is None:
            if len(chain.numbers) >= self.config.max_numbers:
                chain.numbers_more += 1
                return
            d = Dialled(
                record.number, record.number_type, record.number_country, 0, record.ts, record.ts
            )
            _put(chain, "numbers", record.number, d)
        d.count += 1
        d.last = max(d.last, record.ts)

    def _remember(
        self, record: Record, server: str, user: str, method: str, authed: bool, stage: str
    ) -> None:
        pending = self._pending
        rid = record.id
        if rid in pending:  # the same message again (a duplicate in the capture)
            return
        pending[rid] = _Pending(server, user, method, authed, record.password, stage)
        if len(pending) > self.config.max_requests:
            pending.popitem(last=False)
            self.stats.request_evictions += 1

    # --- responses ---------------------------------------------------------------------------
    def _response(self, record: Record, events: list[Event]) -> None:
        self.stats.responses += 1
        msg = record.msg
        client, server = record.dst, record.src
        chain = self._get(client, record.ts, record)
        chain.responses += 1
        status = msg.status
        if 200 <= status < 300 and record.stage == TF and msg.cseq_method.upper() == "INVITE":
            chain.connected = True  # a call to a chargeable number went through
            self._escalate(chain, record, events)
        # the first final answer takes the request: a retransmitted one finds nothing
        p = self._pending.pop(record.request_id, None) if record.request_id else None
        if p is not None:
            user, method, authed, password = p.user, p.method, p.authed, p.password
            stage = p.stage
        elif record.request_id:
            return  # answered already, not a probe, or forgotten (evicted): nothing to add
        else:
            # request not seen (capture started late, one direction): what the answer repeats
            user = _clean(msg.to_user)
            method, authed, password = msg.cseq_method.upper(), False, record.password
            stage = record.stage
            if record.tool and record.tool not in chain.tools and len(chain.tools) < 4:
                _put(chain, "tools", record.tool, None)  # read from the echoed SIPVicious tag
            if record.stage in ORDER:
                self._label(chain, record, record.stage, events)
        if method in _PROBES and user:
            es = stage == ES and not authed
            chain.es_answered += es
            if status in _EXISTS or (200 <= status < 300 and method != "OPTIONS"):
                # an OPTIONS 200 comes from the server itself, whatever the user part
                self._found(chain, server, user, record)
            elif status in _MISSING:
                chain.missing += 1
                chain.es_missing += es
                self.sharing.on_missing(chain, user)
        if authed and user:
            g = chain.guesses.get((server, user))
            if status == 403 or (status in (401, 407) and not _stale(record)):
                chain.refused += 1
                if g is not None:
                    g.refused += 1
            elif 200 <= status < 300:
                self._credential(chain, server, user, password, record, g)
                self.sharing.on_login(chain, record, server, user, events)
                self._escalate(chain, record, events)
        self._advance(chain, record, events)

    def _found(self, chain: Chain, server: str, user: str, record: Record) -> None:
        key = (server, user)
        if key not in chain.found:
            if len(chain.found) < self.config.max_extensions:
                _put(chain, "found", key, record.ts)
            else:
                chain.found_more += 1
        self.sharing.discovered_extension(chain.src, server, user, record)

    def _credential(
        self,
        chain: Chain,
        server: str,
        user: str,
        password: str,
        record: Record,
        g: Guesses | None,
    ) -> None:
        if g is not None:
            g.success = True
        if any(c.server == server and c.user == user for c in chain.credentials):
            return  # a re-registration with what it already had
        if len(chain.credentials) >= self.config.max_credentials:
            chain.credentials_more += 1
        else:
            cred = Credential(server, user, password, record.ts, record.id)
            chain.credentials = [*chain.credentials, cred]  # rare: a copy is fine
        # cracked, not simply known: the client guessed on this account, or is an attack tool
        guessed = g is not None and (g.refused > 0 or len(g.passwords) > 1)
        if guessed or chain.tools:
            self.sharing.discovered_credential(chain.src, server, user, password, record)

    # --- stages ------------------------------------------------------------------------------
    def _label(self, chain: Chain, record: Record, stage: str, events: list[Event]) -> None:
        ts = record.ts
        span = chain.stages.get(stage)
        if span is None:
            chain.stages[stage] = StageSpan(ts, ts, 1, record.id)
            chain.unreached += 1
            if stage == ES:
                chain.es_options = record.msg.method == "OPTIONS"
        else:
            span.count += 1
            span.first = min(span.first, ts)
            span.last = max(span.last, ts)
        self._advance(chain, record, events)

    def _advance(self, chain: Chain, record: Record, events: list[Event]) -> None:
        """Mark the stages whose evidence now suffices; an event when a later one is reached."""
        if not chain.unreached:
            return  # every stage labelled so far is reached: nothing can change
        new = ""
        for stage in ORDER:
            span = chain.stages.get(stage)
            if span is None or span.reached is not None or not self._enough(chain, stage):
                continue
            span.reached, span.reached_record = record.ts, record.id
            chain.unreached -= 1
            if not chain.top or ORDER[stage] > ORDER[chain.top]:
                new = stage  # ORDER is ascending: the latest stage reached wins
        if not new:
            return
        before, chain.top = chain.top, new
        if before == SS and new == ES and self._warm_up(chain):
            return  # one scan, not two stages: no move to report
        if before:
            chain.moved_from, chain.moved_at = before, record.ts
            events.append(self._chain_event(chain, record))

    def _escalate(self, chain: Chain, record: Record, events: list[Event]) -> None:
        """After the move to TF: credentials found or a call answered make it critical."""
        if chain.top != TF or not chain.moved_from or chain.severity == "critical":
            return
        if chain.credentials or chain.connected:
            events.append(self._chain_event(chain, record))

    def _warm_up(self, chain: Chain) -> bool:
        """The SS messages were the first probes of an OPTIONS extension scan: the labeller
        calls them SS until the source has shown `ext_scan_users` users (docs/detection.md)."""
        return chain.es_options and chain.stages[SS].count < self.config.es_min_users

    def _enough(self, chain: Chain, stage: str) -> bool:
        cfg = self.config
        if stage == TF:
            return True  # a chargeable number dialled: the costly stage needs no more
        tool = bool(chain.tools)  # an attack tool: its labelled messages say more
        if stage == SS:
            return tool or len(chain.ss_servers) >= cfg.ss_min_servers
        if stage == ES:
            if tool:
                # not its first REGISTER alone: every password try begins with one (nonce)
                return len(chain.es_users) >= 2 or chain.es_missing > 0
            if len(chain.es_users) < cfg.es_min_users:
                return False
            # answers seen: some must say "not found" (a NATed office registers many users,
            # and gets 401 for each); no answers seen (one direction): the count alone
            return chain.es_missing >= cfg.es_min_missing or chain.es_answered == 0
        return tool or max(chain.refused, chain.most_passwords) >= cfg.rhj_min_failures

    def _chain_event(self, chain: Chain, record: Record) -> Event:
        """The chain's event (one id per chain) as of its latest move."""
        cfg = self.config
        self.stats.chain_events += 1
        spans = chain.stages
        before, new = chain.moved_from, chain.top
        since = spans[before].reached or chain.first
        delay = max(0.0, chain.moved_at - since)
        severity = _SEVERITY[new]
        if new == TF and (chain.credentials or chain.connected):
            severity = "critical"  # calls with a hijacked account, or calls that went through
        chain.severity = severity
        found = len(chain.found)
        tries = chain.password_tries()
        creds = len(chain.credentials) + chain.credentials_more
        dialled = len(chain.numbers)
        bits = []
        if found:
            bits.append(_count(found, "extension", "found", more=chain.found_more > 0))
        if tries:
            bits.append(_count(tries, "password", "tried"))
        if creds:
            bits.append(_count(creds, "credential", "found"))
        if dialled:
            bits.append(_count(dialled, "number", "dialled", more=chain.numbers_more > 0))
        summary = f"{chain.src} moved from {before} to {new} after {human_delay(delay)}"
        if bits:
            summary += " (" + ", ".join(bits) + ")"
        evidence = [spans[s].reached_record for s in chain.reached()]
        evidence += [spans[s].record for s in ORDER if s in spans]
        evidence.append(record.id)
        servers = list(chain.servers)[: cfg.sample]
        return Event(
            id=event_id(CHAIN_RULE, chain.src, chain.first),
            rule=CHAIN_RULE,
            kind="chain",
            severity=severity,
            stage=new,
            src=chain.src,
            targets=tuple(servers),
            node=record.node or chain.node,
            sensor=record.sensor or chain.sensor,
            first=chain.first,
            last=max(chain.last, record.ts),
            count=chain.requests,
            summary=summary,
            evidence=_unique(evidence),
            data={
                "from": before,
                "to": new,
                "delay_s": round(delay, 3),
                "stages": {s: spans[s].to_dict() for s in ORDER if s in spans},
                "servers": len(chain.servers),
                "servers_capped": len(chain.servers) >= cfg.max_servers,
                "servers_sample": servers,
                "extensions_found": found,
                "extensions_capped": chain.found_more > 0,
                "extensions_sample": [u for _, u in list(chain.found)[: cfg.sample]],
                "extensions_missing": chain.missing,
                "accounts_guessed": len(chain.guesses),
                "password_tries": tries,
                "credentials_found": creds,
                "numbers_dialled": dialled,
                "numbers_sample": [
                    {"number": d.number, "type": d.type, "country": d.country}
                    for d in list(chain.numbers.values())[: cfg.sample]
                ],
                "tools": list(chain.tools),
            },
            tags=("chain",),
        )

    # --- the chain table ---------------------------------------------------------------------
    def _get(self, src: str, ts: float, record: Record) -> Chain:
        chains = self._chains
        chain = chains.get(src)
        idle = self.config.idle_reset_s
        if chain is not None:
            chains.move_to_end(src)
            if not (idle > 0 and ts - chain.last >= idle):
                chain.last = max(chain.last, ts)
                chain.node, chain.sensor = record.node or chain.node, record.sensor or chain.sensor
                return chain
            # silent for long: a new chain (and no sharing window: it was here before)
            self.stats.idle_resets += 1
            self.sharing.forget(src)
            chain = chains[src] = Chain(src, ts, ts, record.node, record.sensor)
            self.stats.chains += 1
            return chain
        chain = chains[src] = Chain(src, ts, ts, record.node, record.sensor)
        self.stats.chains += 1
        self.sharing.start(chain)
        if len(chains) > self.config.max_sources:
            old, _ = chains.popitem(last=False)
            self.sharing.forget(old)
            self.stats.source_evictions += 1
        return chain


def _account(record: Record, method: str, authed: bool) -> str:
    """The user a request probes or uses: the account of a REGISTER or of the credentials,
    the extension an OPTIONS or an unauthenticated INVITE tries; "" for a dialled number."""
    msg = record.msg
    if authed:
        user = msg.auth_user_realm[0]
        if user:
            return _clean(user)
    if method == "REGISTER":
        return _clean(msg.to_user or msg.ruri_user)
    if method == "OPTIONS":
        return _clean(msg.ruri_user or msg.to_user)
    if method == "INVITE" and not authed:
        if record.number_type in CHARGEABLE or record.number_type not in ("", "extension", "short"):
            return ""  # a phone number, not an extension
        return _clean(msg.ruri_user or msg.to_user)
    return ""


def _put(chain: Chain, name: str, key: object, value: object) -> None:
    """Add to one of the chain's lazily created mappings (a shared read-only empty before)."""
    d = getattr(chain, name)
    if type(d) is not dict:
        d = {}
        setattr(chain, name, d)
    d[key] = value


def _clean(user: str) -> str:
    return user if len(user) <= _MAX_USER else ""


def _stale(record: Record) -> bool:
    """A 401/407 that only says the nonce expired: not a refused password."""
    chal = record.msg.challenge
    return chal is not None and chal.params.get("stale", "").lower() == "true"


def _count(n: int, noun: str, verb: str, more: bool = False) -> str:
    """'1 extension found', '3+ numbers dialled' (+: more than the chain kept)."""
    return f"{n}{'+' if more else ''} {noun}{'' if n == 1 else 's'} {verb}"


def _unique(ids: list[int]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(i for i in ids if i))[:MAX_EVIDENCE]
