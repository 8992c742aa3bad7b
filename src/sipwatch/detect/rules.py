"""Rule packs: YAML files of detection rules, loaded and validated.

A pack is a YAML mapping with a `version`, an optional `pack` name and `description`, and a
list of `rules`. Two kinds of rule:
- signature: conditions over one message (`match`) -> an event for the message's key;
- threshold: the same `match` filter, then a sliding window per `key` with an aggregate
  (count, distinct FIELD, rate, ratio) compared against `threshold`.
Every problem is reported, one line each, as "FILE: rule ID: field: what is wrong", in one
RuleError. Operators add packs and override a rule's threshold, window, severity, suppress
period or enabled flag by id from their config. The language is documented in docs/rules.md.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from sipwatch.detect.events import SEVERITIES, STAGES
from sipwatch.detect.rules_fields import STRING_FIELDS, TEMPLATE_NAMES
from sipwatch.detect.rules_match import compile_match

DEFAULT_PACK = Path(__file__).resolve().parent.parent / "rules" / "default.yaml"

KINDS = ("signature", "threshold")
AGGREGATES = ("count", "distinct", "rate", "ratio")
OVERRIDABLE = ("threshold", "window", "severity", "enabled", "suppress", "min_samples")
DEFAULT_SUPPRESS = 300.0  # seconds: at most one update of an event per key in 5 minutes
MAX_WINDOW = 7 * 86400.0

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")
_PACK_KEYS = frozenset({"pack", "version", "description", "rules"})
_COMMON = frozenset(
    {"id", "kind", "description", "stage", "severity", "match", "key", "suppress", "summary"}
    | {"tags", "enabled", "targets", "require_prior"}
)
_THRESHOLD_ONLY = frozenset({"window", "aggregate", "threshold", "min_samples"})
_DEFAULT_SUMMARY = {
    "signature": "{rule}: {client} -> {server} ({count} messages)",
    "threshold": "{rule}: {key} reached {value} (threshold {threshold} in {window}s)",
}


class RuleError(ValueError):
    """Invalid rule packs or overrides; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    kind: str  # "signature" | "threshold"
    description: str
    stage: str
    severity: str
    match: dict[str, Any]  # as written; compiled by the engine (rules_match.compile_match)
    key: tuple[str, ...] = ("client",)  # fields whose values name the state an event is for
    window: float = 0.0  # threshold: seconds
    aggregate: str = "count"  # threshold: count | distinct | rate | ratio
    field: str = ""  # distinct: the field whose distinct values are counted
    ratio_when: dict[str, Any] | None = None  # ratio: condition of the counted share
    min_samples: int = 1  # ratio: messages needed before the ratio means anything
    threshold: float = 1.0  # count/distinct: at least; rate: per second; ratio: share 0..1
    suppress: float = DEFAULT_SUPPRESS
    summary: str = ""
    tags: tuple[str, ...] = ()
    targets: str = ""  # field whose values list the event's targets ("" = none)
    require_prior: tuple[str, ...] = ()  # rules that must have fired for the same client
    prior_within: float = 3600.0
    enabled: bool = True
    pack: str = ""
    source: str = ""  # file it came from (for messages)


@dataclass(frozen=True, slots=True)
class RulePack:
    name: str
    version: int
    source: str
    description: str = ""
    rules: tuple[Rule, ...] = field(default_factory=tuple)


def parse_pack(text: str, source: str = "<string>") -> RulePack:
    """Parse and validate one pack from YAML text; raises RuleError."""
    problems: list[str] = []
    pack = _parse(text, source, problems)
    if problems or pack is None:
        raise RuleError(problems)
    _check_links([pack], problems)
    if problems:
        raise RuleError(problems)
    return pack


def load_pack(path: str | Path) -> RulePack:
    """Read and validate one pack file; raises RuleError."""
    return parse_pack(_read(Path(path)), str(path))


def load_packs(
    paths: str | Path | list[str | Path] | tuple = (),
    *,
    default: bool = True,
    overrides: dict[str, Any] | None = None,
    source: str = "config",
) -> list[RulePack]:
    """The default pack (unless default=False), then `paths`, with `overrides` applied.

    Every problem of every file (and of the overrides) is reported in one RuleError.
    """
    problems: list[str] = []
    packs: list[RulePack] = []
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = ([DEFAULT_PACK] if default else []) + [Path(p) for p in paths]
    for path in files:
        try:
            text = _read(path)
        except RuleError as e:
            problems.extend(e.problems)
            continue
        pack = _parse(text, str(path), problems)
        if pack is not None:
            packs.append(pack)
    if not problems:
        _check_links(packs, problems)
    if not problems and overrides:
        packs = _apply_overrides(packs, overrides, source, problems)
    if problems:
        raise RuleError(problems)
    return packs


def all_rules(packs: list[RulePack]) -> list[Rule]:
    """Rules of all packs in order (disabled ones included)."""
    return [r for p in packs for r in p.rules]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError([f"{path}: cannot read: {e}"]) from None


# --- parsing ---------------------------------------------------------------------------------
def _parse(text: str, source: str, problems: list[str]) -> RulePack | None:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f"line {where.line + 1}: " if where is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        problems.append(f"{source}: yaml: {line}{what}")
        return None
    except RecursionError:  # PyYAML builds nested documents recursively
        problems.append(f"{source}: yaml: nested too deeply")
        return None
    if not isinstance(doc, dict):
        problems.append(f"{source}: pack: must be a mapping with `version` and `rules`")
        return None
    for k in sorted(set(map(str, doc)) - _PACK_KEYS):
        problems.append(f"{source}: {k}: unknown pack field (use {', '.join(sorted(_PACK_KEYS))})")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(f"{source}: version: must be a whole number >= 1")
        version = 0
    name = doc.get("pack", Path(source).stem)
    if not isinstance(name, str) or not name:
        problems.append(f"{source}: pack: must be a non-empty name")
        name = ""
    rules_doc = doc.get("rules")
    if not isinstance(rules_doc, list) or not rules_doc:
        problems.append(f"{source}: rules: must be a non-empty list of rules")
        return None
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(rules_doc):
        rule = _rule(item, i, name, source, problems)
        if rule is None:
            continue
        if rule.id in seen:
            problems.append(f"{source}: rule {rule.id}: id: defined twice")
        seen.add(rule.id)
        rules.append(rule)
    desc = doc.get("description", "")
    return RulePack(name, version, source, desc if isinstance(desc, str) else "", tuple(rules))


def _rule(item: object, index: int, pack: str, source: str, problems: list[str]) -> Rule | None:
    if not isinstance(item, dict):
        problems.append(f"{source}: rule #{index + 1}: must be a mapping")
        return None
    rid = item.get("id")
    ok_id = isinstance(rid, str) and _ID.match(rid) is not None
    label = f"rule {rid}" if ok_id else f"rule #{index + 1}"
    start = len(problems)

    def bad(fld: str, what: str) -> None:
        problems.append(f"{source}: {label}: {fld}: {what}")

    if not ok_id:
        bad("id", "required: lower-case letters, digits and . _ - (e.g. es.extension-scan)")
    kind = item.get("kind")
    if kind not in KINDS:
        bad("kind", f"must be one of {', '.join(KINDS)}")
        kind = "signature"
    allowed = _COMMON | (_THRESHOLD_ONLY if kind == "threshold" else frozenset())
    for k in sorted(set(map(str, item)) - allowed):
        extra = " (only for threshold rules)" if k in _THRESHOLD_ONLY else ""
        bad(k, f"unknown rule field{extra}")
    desc = item.get("description")
    if not isinstance(desc, str) or not desc.strip():
        bad("description", "required: say what the rule detects and why its threshold")
    stage = item.get("stage", "")
    if stage not in STAGES:
        bad("stage", f"must be one of {', '.join(s for s in STAGES if s)} (or empty)")
    severity = item.get("severity")
    if severity not in SEVERITIES:
        bad("severity", f"must be one of {', '.join(SEVERITIES)}")
    match = item.get("match", {})
    mproblems: list[str] = []
    compile_match(match, None, mproblems)
    for p in mproblems:
        problems.append(f"{source}: {label}: {p}")
    key = _key(item.get("key", "client"), bad)
    suppress = _number(item.get("suppress", DEFAULT_SUPPRESS), "suppress", bad, low=0.0)
    tags = item.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        bad("tags", "must be a list of strings")
        tags = []
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        bad("enabled", "must be true or false")
    targets = item.get("targets", "")
    if targets and targets not in STRING_FIELDS:
        bad("targets", f"unknown field {targets!r}")
    prior, within = _prior(item.get("require_prior"), bad)
    extra: dict[str, Any] = {}
    if kind == "threshold":
        extra = _threshold(item, bad, problems, source, label)
        if not targets and extra.get("field"):
            targets = extra["field"]
    summary = item.get("summary", _DEFAULT_SUMMARY[kind])
    _check_summary(summary, bad)
    if len(problems) > start:
        return None
    return Rule(
        id=rid,  # type: ignore[arg-type]
        kind=kind,
        description=desc.strip(),  # type: ignore[union-attr]
        stage=stage,
        severity=severity,  # type: ignore[arg-type]
        match=match,
        key=key,
        suppress=suppress,
        summary=summary,
        tags=tuple(tags),
        targets=targets,
        require_prior=prior,
        prior_within=within,
        enabled=enabled,
        pack=pack,
        source=source,
        **extra,
    )


def _threshold(item: dict, bad: Any, problems: list[str], source: str, label: str) -> dict:
    out: dict[str, Any] = {}
    out["window"] = _number(item.get("window"), "window", bad, low=0.001, high=MAX_WINDOW)
    agg = item.get("aggregate", "count")
    if isinstance(agg, dict) and len(agg) >= 1:
        kinds = [k for k in agg if k in ("distinct", "ratio")]
        extra = sorted(set(map(str, agg)) - {"distinct", "ratio", "min_samples"})
        if len(kinds) != 1 or extra or ("min_samples" in agg and kinds != ["ratio"]):
            bad(
                "aggregate",
                "must be count, rate, {distinct: FIELD} or {ratio: MATCH, min_samples: N}",
            )
            return out
        name = kinds[0]
        out["aggregate"] = name
        if name == "distinct":
            fld = agg["distinct"]
            if fld not in STRING_FIELDS:
                bad("aggregate.distinct", f"unknown field {fld!r}")
            out["field"] = fld
        else:
            when = agg["ratio"]
            mp: list[str] = []
            c = compile_match(when, None, mp, "aggregate.ratio")
            if c.is_request is not None or c.methods is not None:
                mp.append("aggregate.ratio: is_request and method belong in `match`")
            problems.extend(f"{source}: {label}: {p}" for p in mp)
            out["ratio_when"] = when
            ms = agg.get("min_samples", 10)
            if isinstance(ms, bool) or not isinstance(ms, int) or ms < 1:
                bad("aggregate.min_samples", "must be a whole number >= 1")
            out["min_samples"] = ms
    elif agg in ("count", "rate"):
        out["aggregate"] = agg
    else:
        bad("aggregate", "must be count, rate, {distinct: FIELD} or {ratio: MATCH, min_samples: N}")
        return out
    high = 1.0 if out["aggregate"] == "ratio" else None
    out["threshold"] = _number(item.get("threshold"), "threshold", bad, low=1e-9, high=high)
    return out


def _key(value: object, bad: Any) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in value.split("+")) if isinstance(value, str) else ()
    unknown = [p for p in parts if p not in STRING_FIELDS]
    if not parts or unknown or len(set(parts)) != len(parts):
        what = ", ".join(unknown) if unknown else repr(value)
        bad("key", f"must be field names joined by + (e.g. client+user); unknown: {what}")
        return ("client",)
    return parts


def _number(value: object, name: str, bad: Any, low: float, high: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):  # type: ignore[operator]
        rng = f" and at most {high:g}" if high is not None else ""
        bad(
            name,
            f"must be a number of at least {low:g}{rng}" if low else f"must be a number >= 0{rng}",
        )
        return max(low, 1.0)
    return float(value)  # type: ignore[arg-type]


def _prior(value: object, bad: Any) -> tuple[tuple[str, ...], float]:
    if value is None:
        return (), 3600.0
    within: object = 3600.0
    rules = value
    if isinstance(value, dict):
        rules, within = value.get("rules"), value.get("within", 3600.0)
        if set(value) - {"rules", "within"}:
            bad("require_prior", "only `rules` and `within` are allowed")
    if isinstance(rules, str):
        rules = [rules]
    if not isinstance(rules, list) or not rules or not all(isinstance(r, str) for r in rules):
        bad("require_prior", "must be a rule id, a list of ids, or {rules: [...], within: SECONDS}")
        return (), 3600.0
    w = _number(within, "require_prior.within", bad, low=1.0, high=MAX_WINDOW)
    return tuple(rules), w


def _check_summary(summary: object, bad: Any) -> None:
    if not isinstance(summary, str) or not summary:
        bad("summary", "must be a non-empty template string")
        return
    try:
        for _, name, _spec, _conv in string.Formatter().parse(summary):
            if name is None:
                continue
            if name not in TEMPLATE_NAMES:
                bad("summary", f"unknown placeholder {{{name}}}")
    except ValueError as e:
        bad("summary", f"bad template: {e}")


def _check_links(packs: list[RulePack], problems: list[str]) -> None:
    """Ids unique across packs; require_prior names existing rules."""
    seen: dict[str, str] = {}
    for pack in packs:
        for r in pack.rules:
            if r.id in seen and seen[r.id] != pack.source:
                problems.append(f"{pack.source}: rule {r.id}: id: already defined in {seen[r.id]}")
            seen.setdefault(r.id, pack.source)
    for pack in packs:
        for r in pack.rules:
            for p in r.require_prior:
                if p not in seen:
                    problems.append(f"{pack.source}: rule {r.id}: require_prior: unknown rule {p}")
                elif p == r.id:
                    problems.append(f"{pack.source}: rule {r.id}: require_prior: names itself")


def _apply_overrides(
    packs: list[RulePack], overrides: object, source: str, problems: list[str]
) -> list[RulePack]:
    if not isinstance(overrides, dict):
        problems.append(f"{source}: overrides: must be a mapping of rule id: {{field: value}}")
        return packs
    by_id = {r.id: r for r in all_rules(packs)}
    changed: dict[str, Rule] = {}
    for rid, change in overrides.items():
        label = f"{source}: rule {rid}: "
        rule = by_id.get(rid)
        if rule is None:
            problems.append(f"{label}overrides: no such rule")
            continue
        if not isinstance(change, dict):
            problems.append(f"{label}overrides: must be a mapping of field: value")
            continue
        start = len(problems)

        def bad(fld: str, what: str, label: str = label) -> None:
            problems.append(f"{label}{fld}: {what}")

        new: dict[str, Any] = {}
        for k, v in change.items():
            if k not in OVERRIDABLE:
                bad(k, f"cannot be overridden (only {', '.join(OVERRIDABLE)})")
            elif k in ("threshold", "window", "min_samples") and rule.kind != "threshold":
                bad(k, "only threshold rules have it")
            elif k == "severity":
                if v not in SEVERITIES:
                    bad(k, f"must be one of {', '.join(SEVERITIES)}")
                new[k] = v
            elif k == "enabled":
                if not isinstance(v, bool):
                    bad(k, "must be true or false")
                new[k] = v
            elif k == "min_samples":
                if (
                    rule.aggregate != "ratio"
                    or isinstance(v, bool)
                    or not isinstance(v, int)
                    or v < 1
                ):
                    bad(k, "a whole number >= 1, for ratio rules only")
                new[k] = v
            elif k == "window":
                new[k] = _number(v, k, bad, low=0.001, high=MAX_WINDOW)
            elif k == "suppress":
                new[k] = _number(v, k, bad, low=0.0)
            else:
                high = 1.0 if rule.aggregate == "ratio" else None
                new[k] = _number(v, k, bad, low=1e-9, high=high)
        if len(problems) == start:
            changed[rid] = replace(rule, **new)
    return [replace(p, rules=tuple(changed.get(r.id, r) for r in p.rules)) for p in packs]
