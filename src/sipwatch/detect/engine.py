"""The detection engine: labelled records in, events out. Sans-I/O and deterministic.

Time is only ever `record.ts`, so a capture replayed offline gives the events (and event ids)
the live sensor gave. Rules are compiled once: each message meets only the rules whose
is_request/method/status admit it (a dispatch table cached by those three values), then the
rule's remaining conditions, then, for threshold rules, its sliding window in the state of the
message's key. State lives in one LRU table per key kind ("client", "client+user", ...), each
bounded (EngineConfig.max_keys); what is dropped is counted in `stats`.

Events: a rule that fires for a key opens an episode and emits an Event; while it keeps firing
the episode is updated (same id) and re-emitted at most once per the rule's `suppress` period;
once the key has been quiet for `suppress`, its next firing opens a new episode (new id). The
last state of an episode is emitted when it closes (quiet, expired or evicted) or on flush().
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sipwatch.detect.engine_state import BUCKETS, CountWin, DistinctWin, Episode, RatioWin, Table
from sipwatch.detect.events import MAX_EVIDENCE, Event, event_id
from sipwatch.detect.rules import Rule, RuleError, RulePack, load_packs
from sipwatch.detect.rules_fields import CLIENT_PARTS, STRING_FIELDS, client, key_getter, key_text
from sipwatch.detect.rules_match import compile_match, normalise_watchlist
from sipwatch.record import Record

_SIG, _COUNT, _DISTINCT, _RATIO = range(4)
_DISPATCH_MAX = 4096  # (is_request, method, status) combinations cached; methods are attacker text
_FORMATTER = string.Formatter()


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


class _Compiled:
    """A rule ready for the hot path."""

    __slots__ = (
        "rule", "id", "kind", "pred", "disp", "key", "table", "slot", "window", "gran", "thr",
        "min_samples", "cap", "suppress", "field", "hit", "prior", "within", "target",
        "feeds_prior", "matches", "ev_from", "src_idx", "tgt_idx", "ctx", "summary", "new",
    )  # fmt: skip

    def __init__(self, rule: Rule, watchlists: dict[str, frozenset[str]], cfg: EngineConfig):
        problems: list[str] = []
        self.rule = rule
        self.id = rule.id
        self.disp = compile_match(rule.match, watchlists, problems)
        self.pred = self.disp.pred
        self.kind = _SIG
        self.window = rule.window
        self.gran = rule.window / BUCKETS
        self.thr = rule.threshold
        self.min_samples = rule.min_samples
        self.cap = max(cfg.max_distinct, int(rule.threshold) + 1)
        self.suppress = rule.suppress
        self.field = STRING_FIELDS.get(rule.field)
        self.hit = None
        if rule.kind == "threshold":
            if rule.aggregate == "distinct":
                self.kind = _DISTINCT
            elif rule.aggregate == "ratio":
                self.kind = _RATIO
                self.hit = _always(compile_match(rule.ratio_when, watchlists, problems))
            else:
                self.kind = _COUNT
                if rule.aggregate == "rate":
                    self.thr = rule.threshold * rule.window  # per second -> messages in window
        if problems:
            raise RuleError([f"{rule.source}: rule {rule.id}: {p}" for p in problems])
        self.new = {_COUNT: CountWin, _DISTINCT: DistinctWin, _RATIO: RatioWin}.get(self.kind)
        self.key = key_getter(rule.key)
        self.table: Table | None = None
        self.slot = 0
        self.prior = rule.require_prior
        self.within = rule.prior_within
        self.target = STRING_FIELDS.get(rule.targets) if self.kind != _DISTINCT else None
        self.feeds_prior = False
        self.matches = 0
        # before an event opens, ids are kept only for the messages closest to the threshold,
        # and never for a key's first message: most keys (a spoofed source) never send another
        need = self.min_samples if self.kind == _RATIO else self.thr
        self.ev_from = max(1, need - MAX_EVIDENCE - 1)
        parts = rule.key
        self.src_idx = next((i for i, p in enumerate(parts) if p in CLIENT_PARTS), -1)
        self.tgt_idx = tuple(i for i, p in enumerate(parts) if p not in CLIENT_PARTS)
        names = {n for _, n, _, _ in _FORMATTER.parse(rule.summary) if n}
        self.ctx = tuple((n, STRING_FIELDS[n]) for n in sorted(names) if n in STRING_FIELDS)
        self.summary = rule.summary


def _narrowness(c: _Compiled) -> int:
    """How many dispatch constraints a rule has (fewer: it meets more messages)."""
    d = c.disp
    return (d.is_request is not None) + (d.methods is not None) * 2 + (d.status is not None) * 2


def _always(c: Any) -> Any:
    """A ratio condition as one predicate (dispatch fields folded back in)."""
    pred, status = c.pred, c.status
    if status is None:
        return pred or (lambda r, m: True)
    if pred is None:
        return lambda r, m: status(m.status)
    return lambda r, m: status(m.status) and pred(r, m)


class Engine:
    """Feed records in order (labelled by StageLabeler, PasswordRecovery); get events back."""

    def __init__(
        self, packs: Iterable[RulePack] | RulePack, config: EngineConfig | None = None
    ) -> None:
        self.config = cfg = config or EngineConfig()
        if isinstance(packs, RulePack):
            packs = [packs]
        self.packs = list(packs)
        self.warnings: list[str] = []
        watch = self._watchlists(cfg.watchlists)
        self.rules = [r for p in self.packs for r in p.rules if r.enabled]
        self._compiled = [_Compiled(r, watch, cfg) for r in self.rules]
        # the default pack's watch list is empty until configured: only other packs warn
        named = {n for c in self._compiled for n in c.disp.watchlists if c.rule.pack != "default"}
        for n in sorted(named - set(watch)):
            self.warnings.append(f"watch list {n!r} is not configured: it is empty")
        self._tables: dict[str, Table] = {}
        groups: dict[str, list[_Compiled]] = {}
        for c in self._compiled:
            groups.setdefault("+".join(c.rule.key), []).append(c)
        for name, members in groups.items():
            horizon = max(max(c.window, c.suppress) for c in members)
            cap = cfg.table_keys.get(name, cfg.max_keys)
            # the broadest rules take the first slots: an entry's list grows only as far as
            # the highest slot its key uses
            members.sort(key=_narrowness)
            table = Table(name, max(1, cap), horizon, len(members))
            table.rules = members  # type: ignore[attr-defined]
            for slot, c in enumerate(members, start=1):
                c.table, c.slot = table, slot
            self._tables[name] = table
        priors = {p for c in self._compiled for p in c.prior}
        for c in self._compiled:
            c.feeds_prior = c.id in priors
        within = max((c.within for c in self._compiled if c.prior), default=0.0)
        self._prior = Table("prior", max(1, cfg.table_keys.get("prior", cfg.max_keys)), within, 0)
        self._dispatch: dict[tuple, tuple[_Compiled, ...]] = {}
        self._records = 0
        self._events = 0
        self._opened = 0
        self._suppressed = 0
        self._now = 0.0
        self._sweep_in = cfg.sweep_every

    @classmethod
    def load(
        cls,
        paths: list[str | Path] | tuple = (),
        *,
        default: bool = True,
        overrides: dict[str, Any] | None = None,
        config: EngineConfig | None = None,
    ) -> Engine:
        """An engine over the default pack (unless default=False) plus `paths`."""
        return cls(load_packs(paths, default=default, overrides=overrides), config)

    def _watchlists(self, lists: dict[str, list[str]]) -> dict[str, frozenset[str]]:
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

    # --- the hot path ---------------------------------------------------------------------
    def feed(self, rec: Record) -> list[Event]:
        """Evaluate one record; return the events it emitted (new ones and updates)."""
        msg = rec.msg
        req = msg.is_request
        dkey = (req, msg.method if req else msg.cseq_method, msg.status)
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

    def _resolve(self, dkey: tuple) -> tuple[_Compiled, ...]:
        req, method, status = dkey
        upper = method.upper()
        found = []
        for c in self._compiled:
            d = c.disp
            if d.is_request is not None and d.is_request != req:
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

    def _update(self, c: _Compiled, rec: Record, msg: Any, ts: float, out: list[Event]) -> None:
        kind = c.kind
        value = ""
        if kind == _DISTINCT:
            value = c.field(rec, msg)  # type: ignore[misc]
            if not value:
                return  # an empty value (e.g. password unknown) is not a distinct value
        key = c.key(rec, msg)
        table: Table = c.table  # type: ignore[assignment]
        entry = table.get(key)
        if entry is None:
            # as long as the highest slot used: most keys only ever meet one or two rules
            entry = [None] * (c.slot + 1)
            entry[0] = ts
            table[key] = entry
            if len(table) > table.cap:
                self._evict(table, out)
        else:
            table.move_to_end(key)
            if ts > entry[0]:
                entry[0] = ts
        slot = c.slot
        if slot >= len(entry):
            entry.extend([None] * (slot + 1 - len(entry)))
        state = entry[slot]
        win: Any = None
        if kind == _SIG:
            ep = state
            progress: float = 1
        else:
            if state is None:
                state = entry[slot] = c.new()
            if kind == _COUNT:
                progress = state.add(ts, c.window, c.gran)
                fire = progress >= c.thr
            elif kind == _DISTINCT:
                progress = state.add(value, ts, c.window, c.cap)
                fire = progress >= c.thr
            else:
                n = state.add(ts, c.window, c.gran, c.hit(rec, msg))
                fire = n >= c.min_samples and state.h >= c.thr * n
                progress = state.h / n
            if not fire:
                if state.ep is None and (state.n if kind == _RATIO else progress) > c.ev_from:
                    ev = state.ev
                    if ev is None:
                        state.ev = rec.id  # one id needs no list (most keys stop here)
                    elif ev.__class__ is int:
                        state.ev = [ev, rec.id]
                    else:
                        ev.append(rec.id)
                        if len(ev) > MAX_EVIDENCE:
                            del ev[0]
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
        ep = self._open(c, key, rec, msg, ts, progress, value, win)
        out.append(self._emit(c, ep, ts))
        if win is None:
            entry[slot] = ep
        else:
            win.ep = ep

    def _open(
        self,
        c: _Compiled,
        key: object,
        rec: Record,
        msg: Any,
        ts: float,
        progress: float,
        value: str,
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
        targets = [parts[i] for i in c.tgt_idx if parts[i]]  # type: ignore[index]
        if c.kind == _DISTINCT:
            targets.extend(win.values())
        elif c.target is not None:
            targets.append(c.target(rec, msg))
        ep.targets = [t for t in dict.fromkeys(targets) if t][: self.config.max_targets]
        self._opened += 1
        return ep

    # --- events ---------------------------------------------------------------------------
    def _emit(self, c: _Compiled, ep: Episode, now: float) -> Event:
        ep.dirty = False
        ep.last_emit = now
        self._events += 1
        rule = c.rule
        targets = tuple(ep.targets)
        data: dict[str, object] = {"key": ep.keytext}
        if rule.kind == "threshold":
            data.update(
                aggregate=rule.aggregate,
                value=round(_shown(rule, ep.value), 6),
                threshold=rule.threshold,
                window=rule.window,
            )
            if rule.field:
                data["field"] = rule.field
        return Event(
            id=ep.id,
            rule=rule.id,
            kind=rule.kind,
            severity=rule.severity,
            stage=rule.stage,
            src=ep.src,
            targets=targets,
            node=ep.node,
            sensor=ep.sensor,
            first=ep.first,
            last=ep.last,
            count=ep.count,
            summary=self._summary(c, ep, targets),
            evidence=tuple(ep.evidence),
            data=data,
            tags=rule.tags,
        )

    def _summary(self, c: _Compiled, ep: Episode, targets: tuple[str, ...]) -> str:
        rule = c.rule
        value = _shown(rule, ep.value)
        fields: dict[str, object] = dict(ep.ctx)
        fields.update(
            rule=rule.id,
            severity=rule.severity,
            key=ep.keytext,
            targets=", ".join(targets),
            first=ep.first,
            last=ep.last,
            count=ep.count,
            value=_num(value),
            distinct=_num(value),
            threshold=_num(rule.threshold),
            window=_num(rule.window),
            rate=_num(round(value, 1)),
            ratio=f"{value:.0%}" if rule.aggregate == "ratio" else _num(value),
            samples=ep.count,
            hits=_num(round(value * ep.count)),
            duration=_num(round(ep.last - ep.first, 1)),
            status="",
        )
        try:
            return c.summary.format_map(fields)
        except (ValueError, KeyError, IndexError, TypeError):
            return f"{rule.id}: {ep.keytext} ({ep.count} messages)"

    # --- require_prior --------------------------------------------------------------------
    def _note_prior(self, c: _Compiled, rec: Record, msg: Any, ts: float) -> None:
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

    def _prior_ok(self, c: _Compiled, rec: Record, msg: Any, ts: float) -> bool:
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
        """An entry leaves its table: emit the last state of its open episodes."""
        for c in table.rules:  # type: ignore[attr-defined]
            if c.slot >= len(entry):
                continue
            state = entry[c.slot]
            ep = state if c.kind == _SIG else getattr(state, "ep", None)
            if ep is not None and ep.dirty:
                out.append(self._emit(c, ep, ep.last))

    def _evict(self, table: Table, out: list[Event]) -> None:
        _, entry = table.popitem(last=False)
        table.evictions += 1
        self._close(table, entry, out)

    def _sweep(self, now: float, out: list[Event]) -> None:
        for table in self._tables.values():
            horizon = now - table.horizon
            while table:
                key = next(iter(table))
                entry = table[key]
                if entry[0] > horizon:
                    break
                del table[key]
                table.expired += 1
                self._close(table, entry, out)
        prior = self._prior
        horizon = now - prior.horizon
        while prior:
            key = next(iter(prior))
            if prior[key][0] > horizon:
                break
            del prior[key]
            prior.expired += 1

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


def _shown(rule: Rule, value: float) -> float:
    """An episode keeps what the window counted; a rate rule shows it per second."""
    return value / rule.window if rule.aggregate == "rate" else value


def _num(v: float) -> int | float:
    """Whole numbers print without a fraction in summaries."""
    return int(v) if float(v).is_integer() else v
