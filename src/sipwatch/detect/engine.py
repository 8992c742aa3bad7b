"""The detection engine: labelled records in, events out. Sans-I/O and deterministic.

Time is only ever `record.ts`, so a capture replayed offline gives the events (and event ids)
the live sensor gave. Rules are compiled once: each message meets only the rules whose
is_request/method/status and flags (rules_match.FLAGS: malformed, credentials, password,
tool) admit it (a dispatch table cached by those values), then the rule's remaining
conditions, then, for threshold rules, its sliding window in the state of the message's key.
State lives in one LRU table per key kind ("client", "client+user", ...), each bounded
(EngineConfig.max_keys); what is dropped is counted in `stats`.

Events: a rule that fires for a key opens an episode and emits an Event; while it keeps firing
the episode is updated (same id) and re-emitted at most once per the rule's `suppress` period;
once the key has been quiet for `suppress`, its next firing opens a new episode (new id). The
last state of an episode is emitted when it closes (quiet, expired or evicted) or on flush().
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sipwatch.detect.engine_rules import COUNT, DISTINCT, RATIO, SIG, CompiledRule, build_event
from sipwatch.detect.engine_state import Episode, Table
from sipwatch.detect.events import MAX_EVIDENCE, Event, event_id
from sipwatch.detect.rules import RuleError, RulePack, load_packs
from sipwatch.detect.rules_fields import client, key_text, normalise_watchlist
from sipwatch.detect.rules_match import message_flags
from sipwatch.record import Record

_BARE = (float, int, tuple)  # a key's first message kept without a window object
# (is_request, method, status, flags) combinations cached; methods are attacker text
_DISPATCH_MAX = 4096


@dataclass(slots=True)
class EngineConfig:
    max_keys: int = 262_144  # entries per state table (LRU); a key is e.g. one client address
    table_keys: dict[str, int] = field(default_factory=dict)  # per table, e.g. {"client": 10**6}
    max_distinct: int = 1024  # distinct values remembered per key and rule (then only counted)
    max_targets: int = 20  # targets listed per event
    watchlists: dict[str, list[str]] = field(default_factory=dict)  # name -> numbers/prefixes
    sweep_every: int = 1024  # records between sweeps of expired state


@dataclass(slots=True)
class EngineStats:
    records: int = 0
    matches: dict[str, int] = field(default_factory=dict)  # rule id -> messages that matched
    events: int = 0  # emissions (new events and updates)
    opened: int = 0  # distinct event ids
    suppressed: int = 0  # firings inside an event's suppress period (no emission)
    evictions: dict[str, int] = field(default_factory=dict)  # table -> entries dropped when full
    expired: dict[str, int] = field(default_factory=dict)  # table -> entries dropped when idle
    keys: dict[str, int] = field(default_factory=dict)  # table -> entries now


class Engine:
    """Feed records in order (labelled by StageLabeler, PasswordRecovery); get events back."""

    def __init__(
        self, packs: Iterable[RulePack] | RulePack, config: EngineConfig | None = None
    ) -> None:
        self.config = cfg = config or EngineConfig()
        self.packs = [packs] if isinstance(packs, RulePack) else list(packs)
        self.rules = [r for p in self.packs for r in p.rules if r.enabled]
        watch = _watchlists(cfg.watchlists)
        self._compiled = [CompiledRule(r, watch, cfg.max_distinct) for r in self.rules]
        self.warnings: list[str] = []
        # the default pack's watch list is empty until configured: only other packs warn
        named = {n for c in self._compiled for n in c.disp.watchlists if c.rule.pack != "default"}
        for n in sorted(named - set(watch)):
            self.warnings.append(f"watch list {n!r} is not configured: it is empty")
        self._tables: dict[str, Table] = {}
        groups: dict[str, list[CompiledRule]] = {}
        for c in self._compiled:
            groups.setdefault("+".join(c.rule.key), []).append(c)
        for name, members in groups.items():
            horizon = max(max(c.window, c.suppress) for c in members)
            table = Table(name, max(1, cfg.table_keys.get(name, cfg.max_keys)), horizon)
            # the broadest rules take the low bits: their masks are the small, shared ints
            table.rules = sorted(members, key=CompiledRule.narrowness)
            for i, c in enumerate(table.rules):
                c.table, c.bit, c.lower = table, 1 << i, (1 << i) - 1
            self._tables[name] = table
        priors = {p for c in self._compiled for p in c.prior}
        for c in self._compiled:
            c.feeds_prior = c.id in priors
        within = max((c.within for c in self._compiled if c.prior), default=0.0)
        self._prior = Table("prior", max(1, cfg.table_keys.get("prior", cfg.max_keys)), within)
        self._dispatch: dict[tuple, tuple[CompiledRule, ...]] = {}
        self._records = 0
        self._events = 0
        self._opened = 0
        self._suppressed = 0
        self._now = 0.0
        self._sweep_in = cfg.sweep_every

    @classmethod
    def load(
        cls,
        paths: str | Path | list[str | Path] | tuple = (),
        *,
        default: bool = True,
        overrides: dict[str, Any] | None = None,
        config: EngineConfig | None = None,
    ) -> Engine:
        """An engine over the default pack (unless default=False) plus the packs at `paths`."""
        return cls(load_packs(paths, default=default, overrides=overrides), config)

    # --- the hot path ---------------------------------------------------------------------
    def feed(self, rec: Record) -> list[Event]:
        """Evaluate one record; return the events it emitted (new ones and updates)."""
        msg = rec.msg
        req = msg.is_request
        dkey = (req, msg.method if req else msg.cseq_method, msg.status, *message_flags(rec, msg))
        rules = self._dispatch.get(dkey)
        if rules is None:
            rules = self._resolve(dkey)
        self._records += 1
        ts = rec.ts
        if ts > self._now:
            self._now = ts
        out: list[Event] = []
        for c in rules:
            pred = c.pred
            if pred is not None and not pred(rec, msg):
                continue
            c.matches += 1
            self._update(c, rec, msg, ts, out)
        self._sweep_in -= 1
        if not self._sweep_in:
            self._sweep_in = self.config.sweep_every
            self._sweep(self._now, out)
        return out

    def _resolve(self, dkey: tuple) -> tuple[CompiledRule, ...]:
        req, method, status = dkey[:3]
        flags = dkey[3:]
        upper = method.upper()
        found = []
        for c in self._compiled:
            d = c.disp
            if d.is_request is not None and d.is_request != req:
                continue
            if any(flags[i] != want for i, want in d.needs):
                continue
            if d.methods is not None and upper not in d.methods:
                continue
            if d.status is not None and not d.status(status):
                continue
            found.append(c)
        rules = tuple(found)
        if len(self._dispatch) < _DISPATCH_MAX:
            self._dispatch[dkey] = rules
        return rules

    def _update(self, c: CompiledRule, rec: Record, msg: Any, ts: float, out: list[Event]) -> None:
        kind = c.kind
        value = ""
        if kind == DISTINCT:
            value = c.field(rec, msg)  # type: ignore[misc]
            if not value:
                return  # an empty value (e.g. password unknown) is not a distinct value
        key = c.key(rec, msg)
        table: Table = c.table
        bit = c.bit
        entry = table.get(key)
        if entry is None:
            if c.lazy:  # a first message cannot fire: keep it bare (see CompiledRule.lazy)
                table[key] = [ts, bit, ts if kind == COUNT else (value, ts)]
                if len(table) > table.cap:
                    self._evict(table, out)
                return
            entry = table[key] = [ts, 0]
            if len(table) > table.cap:
                self._evict(table, out)
            pos = 0
            state = None
        else:
            table.move_to_end(key)
            if ts > entry[0]:
                entry[0] = ts
            mask = entry[1]
            if mask & bit:
                pos = 2 + (mask & c.lower).bit_count()
                state = entry[pos]
            else:
                pos = 0
                state = None
        win: Any = None
        if kind == SIG:
            ep = state
            progress: float = 1
        else:
            if state is None:
                if c.lazy:
                    table.insert(key, entry, bit, ts if kind == COUNT else (value, ts))
                    return
                state = c.cls()
                entry = table.insert(key, entry, bit, state)
            elif state.__class__ is not c.cls:  # a bare first message: now a real window
                state = entry[pos] = c.materialise(state)
            if kind == COUNT:
                progress = state.add(ts, c.window, c.gran)
                fire = progress >= c.thr
            elif kind == DISTINCT:
                progress = state.add(value, ts, c.window, c.cap)
                fire = progress >= c.thr
            else:
                n = state.add(ts, c.window, c.gran, c.hit(rec, msg))
                fire = n >= c.min_samples and state.h >= c.thr * n
                progress = state.h / n
            if not fire:
                if state.ep is None and (state.n if kind == RATIO else progress) > c.ev_from:
                    _keep_evidence(state, rec.id)
                return
            win = state
            ep = state.ep
        if c.prior and not self._prior_ok(c, rec, msg, ts):
            return
        if c.feeds_prior:
            self._note_prior(c, rec, msg, ts)
        if ep is not None and ts - ep.last < c.suppress:
            # the open episode goes on: the hot path of a long attack
            ep.count += 1
            if ts > ep.last:
                ep.last = ts
            ep.value = progress
            ep.dirty = True
            if len(ep.evidence) < MAX_EVIDENCE:
                ep.evidence.append(rec.id)
            targets = ep.targets
            if len(targets) < self.config.max_targets:
                v = value or (c.target(rec, msg) if c.target is not None else "")
                if v and v not in targets:
                    targets.append(v)
            if ts - ep.last_emit >= c.suppress:
                out.append(self._emit(c, ep, ts))
            else:
                self._suppressed += 1
            return
        if ep is not None and ep.dirty:  # quiet for `suppress`: the old episode's last state
            out.append(self._emit(c, ep, ep.last))
        ep = self._open(c, key, rec, msg, ts, progress, win)
        out.append(self._emit(c, ep, ts))
        if win is not None:
            win.ep = ep
        elif pos:
            entry[pos] = ep
        else:
            table.insert(key, entry, bit, ep)

    def _open(
        self,
        c: CompiledRule,
        key: object,
        rec: Record,
        msg: Any,
        ts: float,
        progress: float,
        win: Any,
    ) -> Episode:
        """A new episode (a new event id) for this rule and key."""
        ep = Episode()
        ep.keytext = key_text(key)
        ep.first = ts if win is None else min(win.first(), ts)
        ep.id = event_id(c.id, ep.keytext, ep.first)
        ep.last = ts
        ep.value = progress
        if win is not None:
            ep.count = win.n
            ev = win.ev
            if ev is not None:
                ep.evidence = [ev] if ev.__class__ is int else ev
                win.ev = None
            if not ep.evidence or ep.evidence[-1] != rec.id:
                ep.evidence.append(rec.id)
                del ep.evidence[:-MAX_EVIDENCE]
        else:
            ep.count = 1
            ep.evidence = [rec.id]
        if c.src_idx >= 0:
            ep.src = key[c.src_idx] if isinstance(key, tuple) else key  # type: ignore[assignment]
        ep.node, ep.sensor = rec.node, rec.sensor
        ep.ctx = {n: get(rec, msg) for n, get in c.ctx}
        parts = key if isinstance(key, tuple) else (key,)
        targets = [parts[i] for i in c.tgt_idx]  # type: ignore[index]
        if c.kind == DISTINCT:
            targets.extend(win.values())
        elif c.target is not None:
            targets.append(c.target(rec, msg))
        ep.targets = [t for t in dict.fromkeys(targets) if t][: self.config.max_targets]
        self._opened += 1
        return ep

    def _emit(self, c: CompiledRule, ep: Episode, now: float) -> Event:
        ep.dirty = False
        ep.last_emit = now
        self._events += 1
        return build_event(c, ep)

    # --- require_prior --------------------------------------------------------------------
    def _note_prior(self, c: CompiledRule, rec: Record, msg: Any, ts: float) -> None:
        who = client(rec, msg)
        table = self._prior
        fired = table.get(who)
        if fired is None:
            fired = table[who] = [ts, {}]
            if len(table) > table.cap:
                table.popitem(last=False)
                table.evictions += 1
        else:
            table.move_to_end(who)
            fired[0] = max(fired[0], ts)
        fired[1][c.id] = ts

    def _prior_ok(self, c: CompiledRule, rec: Record, msg: Any, ts: float) -> bool:
        fired = self._prior.get(client(rec, msg))
        if fired is None:
            return False
        for rid in c.prior:
            t = fired[1].get(rid)
            if t is not None and ts - t <= c.within:
                return True
        return False

    # --- bounded state --------------------------------------------------------------------
    def _close(self, table: Table, entry: list, out: list[Event]) -> None:
        """Emit the last state of the entry's open episodes that changed since emitted."""
        mask = entry[1]
        pos = 2
        while mask:  # one step per rule with state here (runs for every dropped key)
            low = mask & -mask
            state = entry[pos]
            pos += 1
            mask ^= low
            if state.__class__ in _BARE:
                continue
            c = table.rules[low.bit_length() - 1]
            ep = state if c.kind == SIG else state.ep
            if ep is not None and ep.dirty:
                out.append(self._emit(c, ep, ep.last))

    def _evict(self, table: Table, out: list[Event]) -> None:
        _, entry = table.popitem(last=False)
        table.evictions += 1
        self._close(table, entry, out)

    def _sweep(self, now: float, out: list[Event]) -> None:
        """Drop entries idle for longer than anything in them can matter (LRU order)."""
        for table in (*self._tables.values(), self._prior):
            horizon = now - table.horizon
            while table:
                key = next(iter(table))
                entry = table[key]
                if entry[0] > horizon:
                    break
                del table[key]
                table.expired += 1
                if table is not self._prior:
                    self._close(table, entry, out)

    def tick(self, now: float) -> list[Event]:
        """Live sources: drop state idle as of `now` (emitting closed episodes' last state)."""
        out: list[Event] = []
        self._sweep(max(now, self._now), out)
        return out

    def flush(self) -> list[Event]:
        """End of input: emit the latest state of every event not emitted since it changed."""
        out: list[Event] = []
        for table in self._tables.values():
            for entry in table.values():
                self._close(table, entry, out)
        return out

    @property
    def stats(self) -> EngineStats:
        tables = [*self._tables.values(), self._prior]
        return EngineStats(
            records=self._records,
            matches={c.id: c.matches for c in self._compiled},
            events=self._events,
            opened=self._opened,
            suppressed=self._suppressed,
            evictions={t.name: t.evictions for t in tables},
            expired={t.name: t.expired for t in tables},
            keys={t.name: len(t) for t in tables},
        )


def _keep_evidence(state: Any, rid: int) -> None:
    """Remember a message id before an event opens: one bare id, then a list of the latest."""
    ev = state.ev
    if ev is None:
        state.ev = rid
    elif ev.__class__ is int:
        state.ev = [ev, rid]
    else:
        ev.append(rid)
        if len(ev) > MAX_EVIDENCE:
            del ev[0]


def _watchlists(lists: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    out, problems = {}, []
    for name, entries in (lists or {}).items():
        norm = normalise_watchlist(entries)
        if norm is None:
            problems.append(f"config: watchlists: {name}: must be a list of numbers (E.164)")
        else:
            out[str(name)] = norm
    if problems:
        raise RuleError(problems)
    return out
