"""Rules as the engine runs them, and the Events their episodes become.

CompiledRule holds everything the hot path needs as plain attributes (predicate, key getter,
window, threshold, slot in its key table). build_event() turns an episode into the Event that
actions receive; the same episode always gives the same id, targets and evidence.
"""

from __future__ import annotations

import string
from typing import Any

from sipwatch.detect.engine_state import BUCKETS, CountWin, DistinctWin, Episode, RatioWin
from sipwatch.detect.events import MAX_EVIDENCE, Event
from sipwatch.detect.rules import Rule, RuleError
from sipwatch.detect.rules_fields import CLIENT_PARTS, STRING_FIELDS, key_getter
from sipwatch.detect.rules_match import compile_match

SIG, COUNT, DISTINCT, RATIO = range(4)
_FORMATTER = string.Formatter()


class CompiledRule:
    """A rule ready for the hot path."""

    __slots__ = (
        "rule", "id", "kind", "pred", "disp", "key", "table", "bit", "lower", "window", "gran",
        "thr", "min_samples", "cap", "suppress", "field", "hit", "prior", "within", "target",
        "feeds_prior", "matches", "ev_from", "lazy", "cls", "src_idx", "tgt_idx", "ctx",
        "summary", "names",
    )  # fmt: skip

    def __init__(
        self, rule: Rule, watchlists: dict[str, frozenset[str]], max_distinct: int
    ) -> None:
        problems: list[str] = []
        self.rule = rule
        self.id = rule.id
        self.disp = compile_match(rule.match, watchlists, problems)
        self.pred = self.disp.fast_pred  # the engine's dispatch tests disp.needs
        self.kind = SIG
        self.window = rule.window
        self.gran = rule.window / BUCKETS
        self.thr = rule.threshold
        self.min_samples = rule.min_samples
        self.cap = max(max_distinct, int(rule.threshold) + 1)
        self.suppress = rule.suppress
        self.field = STRING_FIELDS.get(rule.field)
        self.hit: Any = None
        if rule.kind == "threshold":
            if rule.aggregate == "distinct":
                self.kind = DISTINCT
            elif rule.aggregate == "ratio":
                self.kind = RATIO
                self.hit = _one_predicate(compile_match(rule.ratio_when, watchlists, problems))
            else:
                self.kind = COUNT
                if rule.aggregate == "rate":
                    self.thr = rule.threshold * rule.window  # per second -> messages in window
        if problems:
            raise RuleError([f"{rule.source}: rule {rule.id}: {p}" for p in problems])
        self.cls: Any = {COUNT: CountWin, DISTINCT: DistinctWin, RATIO: RatioWin}.get(self.kind)
        # a key's first message that cannot fire is kept as a bare value (a float, or a
        # (value, time) tuple), not an object: most keys of a spoofed flood send one message
        self.lazy = self.kind in (COUNT, DISTINCT) and self.thr > 1
        self.key = key_getter(rule.key)
        self.table: Any = None
        self.bit = 0  # this rule's bit in its key table's entries (set by the engine)
        self.lower = 0
        self.prior = rule.require_prior
        self.within = rule.prior_within
        self.target = STRING_FIELDS.get(rule.targets) if self.kind != DISTINCT else None
        self.feeds_prior = False
        self.matches = 0
        # before an event opens, ids are kept only for the messages closest to the threshold,
        # and never for a key's first message: most keys (a spoofed source) never send another
        need = self.min_samples if self.kind == RATIO else self.thr
        self.ev_from = max(1, need - MAX_EVIDENCE - 1)
        parts = rule.key
        self.src_idx = next((i for i, p in enumerate(parts) if p in CLIENT_PARTS), -1)
        self.tgt_idx = tuple(i for i, p in enumerate(parts) if p not in CLIENT_PARTS)
        names = {n for _, n, _, _ in _FORMATTER.parse(rule.summary) if n}
        getters = {**STRING_FIELDS, "status": _status}
        self.ctx = tuple((n, getters[n]) for n in sorted(names) if n in getters)
        self.summary = rule.summary
        self.names = tuple(sorted(names))

    def materialise(self, bare: Any) -> Any:
        """The window object for a key's first message kept bare (see `lazy`)."""
        if self.kind == COUNT:
            return CountWin.one(bare)
        return DistinctWin.one(*bare)

    def narrowness(self) -> int:
        """How many dispatch constraints the rule has (fewer: it meets more messages)."""
        d = self.disp
        return (d.is_request is not None) + (d.methods is not None) * 2 + (d.status is not None) * 2


def _status(r: Any, m: Any) -> int:
    return m.status


def _one_predicate(c: Any) -> Any:
    """A ratio condition as one predicate (its status test folded back in)."""
    pred, status = c.pred, c.status
    if status is None:
        return pred or (lambda r, m: True)
    if pred is None:
        return lambda r, m: status(m.status)
    return lambda r, m: status(m.status) and pred(r, m)


# --- events ----------------------------------------------------------------------------------
def build_event(c: CompiledRule, ep: Episode) -> Event:
    """The Event an episode stands for, as of now."""
    rule = c.rule
    targets = tuple(ep.targets)
    data: dict[str, object] = {"key": ep.keytext}
    if rule.kind == "threshold":
        data.update(
            aggregate=rule.aggregate,
            value=round(shown(rule, ep.value), 6),
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
        summary=summary(c, ep, targets),
        evidence=tuple(ep.evidence),
        data=data,
        tags=rule.tags,
    )


def summary(c: CompiledRule, ep: Episode, targets: tuple[str, ...]) -> str:
    """The rule's summary template filled in (fields from the episode's first message)."""
    rule = c.rule
    fields: dict[str, object] = dict(ep.ctx)
    for name in c.names:  # only what the template uses
        if name not in fields:
            fields[name] = _VALUES[name](rule, ep, targets)
    try:
        return c.summary.format_map(fields)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return f"{rule.id}: {ep.keytext} ({ep.count} messages)"


_VALUES: dict[str, Any] = {
    "rule": lambda rule, ep, t: rule.id,
    "severity": lambda rule, ep, t: rule.severity,
    "key": lambda rule, ep, t: ep.keytext,
    "targets": lambda rule, ep, t: ", ".join(t),
    "first": lambda rule, ep, t: ep.first,
    "last": lambda rule, ep, t: ep.last,
    "count": lambda rule, ep, t: ep.count,
    "samples": lambda rule, ep, t: ep.count,
    "value": lambda rule, ep, t: _num(shown(rule, ep.value)),
    "distinct": lambda rule, ep, t: _num(shown(rule, ep.value)),
    "threshold": lambda rule, ep, t: _num(rule.threshold),
    "window": lambda rule, ep, t: _num(rule.window),
    "rate": lambda rule, ep, t: _num(round(shown(rule, ep.value), 1)),
    "ratio": lambda rule, ep, t: (
        f"{ep.value:.0%}" if rule.aggregate == "ratio" else _num(shown(rule, ep.value))
    ),
    "hits": lambda rule, ep, t: _num(round(shown(rule, ep.value) * ep.count)),
    "duration": lambda rule, ep, t: _num(round(ep.last - ep.first, 1)),
    "status": lambda rule, ep, t: "",
}


def shown(rule: Rule, value: float) -> float:
    """An episode keeps what the window counted; a rate rule shows it per second."""
    return value / rule.window if rule.aggregate == "rate" else value


def _num(v: float) -> int | float:
    """Whole numbers print without a fraction in summaries."""
    return int(v) if float(v).is_integer() else v
