"""A rule's `match` block: validated and compiled into a fast predicate.

compile_match() checks a match mapping and turns it into:
- dispatch constraints (is_request, methods, status) that the engine uses to index rules, so a
  message only meets the rules that can match it;
- one residual predicate `(record, msg) -> bool` for everything else (None: always true).
Problems are appended to a list as "field: what is wrong" (rules.py prefixes file and rule),
so one load reports every mistake at once.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sipwatch.detect.rules_fields import (
    ADDRESS_FIELDS,
    ANOMALY_CODES,
    BOOL_FAST,
    BOOL_FIELDS,
    ERROR_CODES,
    RECORD_ATTRS,
    STRING_FIELDS,
    in_networks,
    real_anomalies,
)
from sipwatch.record import Record
from sipwatch.sip.message import SipMessage, canonical_name

Pred = Callable[[Record, SipMessage], bool]
StatusPred = Callable[[int], bool]

_STRING_OPTS = frozenset({"in", "regex", "contains", "prefix", "numeric", "len", "empty", "nocase"})
_HEADER_OPTS = frozenset({"name", "regex", "contains", "absent"})
_ANY_SHORTHAND = frozenset({"tool", "error"})  # `tool: any` = the field is not empty
_MEMO_MAX = 4096  # remembered verdicts per regex condition
_MEMO_LEN = 256  # longer values are tested each time (they would hold memory)
_LEN_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d*)\s*)?$")


@dataclass(slots=True)
class Compiled:
    is_request: bool | None = None  # None: requests, responses and unparsed payloads
    methods: frozenset[str] | None = None  # None: any method
    status: StatusPred | None = None  # None: any status (requests have status 0)
    pred: Pred | None = None  # residual conditions; None: always true
    watchlists: tuple[str, ...] = ()  # watch lists the block names
    # top-level yes/no conditions on FLAGS, pulled out for the engine's dispatch table (a
    # message meets only the rules its flags admit); `fast_pred` is `pred` without them
    needs: tuple[tuple[int, bool], ...] = ()  # (index in FLAGS, required value)
    fast_pred: Pred | None = None


# The message flags the engine dispatches on besides is_request/method/status: cheap to read,
# and the conditions on them fail for most messages (no credentials, not malformed, no tool).
FLAGS = ("fuzz", "has_credentials", "password_recovered", "tool")


def message_flags(r: Record, m: SipMessage) -> tuple[bool, bool, bool, bool]:
    """The values of FLAGS for one message, in their order."""
    return (r.fuzz, m.has_credentials, r.password != "", r.tool != "")


def flag_condition(name: str, value: object) -> bool | None:
    """The flag value a top-level condition requires, or None when it is not a plain flag test."""
    if name == "tool":  # `tool: any` (some tool) or `tool: ""` (none)
        return {"any": True, "": False}.get(value) if isinstance(value, str) else None
    return value if isinstance(value, bool) else None


def compile_match(
    spec: object,
    watchlists: dict[str, frozenset[str]] | None = None,
    problems: list[str] | None = None,
    where: str = "match",
) -> Compiled:
    """Check and compile a match mapping; problems go to `problems` (when given)."""
    b = _Builder(watchlists or {}, problems if problems is not None else [])
    return b.top(spec, where)


def all_of(preds: list[Pred]) -> Pred | None:
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        p0, p1 = preds
        return lambda r, m: p0(r, m) and p1(r, m)
    ps = tuple(preds)

    def every(r: Record, m: SipMessage) -> bool:
        # plain loops here and below: faster than all()/any() over a generator (hot path)
        for p in ps:  # noqa: SIM110
            if not p(r, m):
                return False
        return True

    return every


class _Builder:
    def __init__(self, watchlists: dict[str, frozenset[str]], problems: list[str]) -> None:
        self.watchlists = watchlists
        self.problems = problems
        self.named: list[str] = []

    def bad(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    # --- blocks ------------------------------------------------------------------------
    def top(self, spec: object, where: str) -> Compiled:
        out = Compiled()
        if not isinstance(spec, dict):
            self.bad(where, "must be a mapping of field: condition")
            return out
        rest = dict(spec)
        if "is_request" in rest:
            v = rest.pop("is_request")
            if isinstance(v, bool):
                out.is_request = v
            else:
                self.bad(f"{where}.is_request", "must be true or false")
        if "method" in rest:
            out.methods = self.methods(rest.pop("method"), f"{where}.method")
        if "status" in rest:
            out.status = self.status(rest.pop("status"), f"{where}.status")
        out.pred = self.block(rest, where)
        out.watchlists = tuple(dict.fromkeys(self.named))
        needs = {}
        for i, name in enumerate(FLAGS):
            flag = flag_condition(name, rest[name]) if name in rest else None
            if flag is not None:
                needs[name] = (i, flag)
        out.fast_pred = out.pred
        if needs:
            out.needs = tuple(needs.values())
            # the rest compiled again (already checked above: its problems are not new)
            others = {k: v for k, v in rest.items() if k not in needs}
            out.fast_pred = _Builder(self.watchlists, []).block(others, where)
        return out

    def block(self, spec: object, where: str) -> Pred | None:
        """All conditions of a mapping (nested blocks included) as one predicate."""
        if not isinstance(spec, dict):
            self.bad(where, "must be a mapping of field: condition")
            return None
        preds: list[Pred] = []
        for name, value in spec.items():
            at = f"{where}.{name}"
            p = self.condition(str(name), value, at)
            if p is not None:
                preds.append(p)
        return all_of(preds)

    def condition(self, name: str, value: Any, at: str) -> Pred | None:
        if name == "is_request":
            return self.boolean(BOOL_FIELDS[name], value, at)
        if name == "method":
            ms = self.methods(value, at)
            return (
                (lambda r, m: (m.method if m.is_request else m.cseq_method).upper() in ms)
                if ms
                else None
            )
        if name == "status":
            sp = self.status(value, at)
            return (lambda r, m: sp(m.status)) if sp else None
        if name == "any":
            return self.any_of(value, at)
        if name == "not":
            inner = self.block(value, at)
            return (lambda r, m: not inner(r, m)) if inner else None
        if name in BOOL_FIELDS:
            if isinstance(value, bool) and name in BOOL_FAST:
                return BOOL_FAST[name][value]
            return self.boolean(BOOL_FIELDS[name], value, at)
        if name == "anomalies":
            return self.anomalies(value, at)
        if name in ("header", "headers"):
            return self.headers(value, at)
        if name == "number_in":
            return self.number_in(value, at)
        if name in ADDRESS_FIELDS:
            return self.addresses(STRING_FIELDS[name], value, at)
        if name in STRING_FIELDS:
            if name in _ANY_SHORTHAND and value == "any":
                get = STRING_FIELDS[name]
                if name in RECORD_ATTRS:
                    ag = operator.attrgetter(name)
                    return lambda r, m: ag(r) != ""
                return lambda r, m: bool(get(r, m))
            if name == "error":
                self.check_codes(value, ERROR_CODES, at)
            return self.string(name, value, at, nocase=name == "user_agent")
        self.bad(at, "unknown field")
        return None

    def any_of(self, value: Any, at: str) -> Pred | None:
        if not isinstance(value, list) or not value:
            self.bad(at, "must be a non-empty list of match mappings")
            return None
        subs = [self.block(v, f"{at}[{i}]") for i, v in enumerate(value)]
        if any(s is None for s in subs):
            return None  # an empty (always true) alternative makes the whole `any` true
        if len(subs) == 2:
            a, b = subs
            return lambda r, m: a(r, m) or b(r, m)  # type: ignore[misc]
        ps = tuple(subs)

        def some(r: Record, m: SipMessage) -> bool:
            for p in ps:  # noqa: SIM110
                if p(r, m):  # type: ignore[misc]
                    return True
            return False

        return some

    # --- dispatch fields ---------------------------------------------------------------
    def methods(self, value: Any, at: str) -> frozenset[str] | None:
        vals = value if isinstance(value, list) else [value]
        if not vals or not all(isinstance(v, str) and v.strip() for v in vals):
            self.bad(at, "must be a method name or a list of them")
            return None
        return frozenset(v.strip().upper() for v in vals)

    def status(self, value: Any, at: str) -> StatusPred | None:
        vals = value if isinstance(value, list) else [value]
        codes: set[int] = set()
        ranges: list[tuple[int, int]] = []
        for v in vals:
            if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 699:
                codes.add(v)
                continue
            m = re.fullmatch(r"\s*(\d{3})\s*-\s*(\d{3})\s*", v) if isinstance(v, str) else None
            if m and 100 <= int(m[1]) <= int(m[2]) <= 699:
                ranges.append((int(m[1]), int(m[2])))
                continue
            self.bad(at, f'{v!r} is not a status code (100-699) or a range like "400-499"')
            return None
        for lo, hi in ranges:
            codes.update(range(lo, hi + 1))
        allowed = frozenset(codes)
        return allowed.__contains__

    # --- value conditions --------------------------------------------------------------
    def boolean(self, get: Callable, value: Any, at: str) -> Pred | None:
        if not isinstance(value, bool):
            self.bad(at, "must be true or false")
            return None
        if value:
            return lambda r, m: bool(get(r, m))
        return lambda r, m: not get(r, m)

    def string(self, name: str, value: Any, at: str, nocase: bool = False) -> Pred | None:
        get = STRING_FIELDS[name]
        ag = operator.attrgetter(name) if name in RECORD_ATTRS else None  # one C call
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            s = str(value)
            if ag is not None:
                return lambda r, m: ag(r) == s
            return lambda r, m: get(r, m) == s
        if isinstance(value, list):
            vals = self.strings(value, at)
            if vals is None:
                return None
            allowed = frozenset(vals)
            if ag is not None:
                return lambda r, m: ag(r) in allowed
            return lambda r, m: get(r, m) in allowed
        if not isinstance(value, dict) or not value:
            self.bad(at, "must be a string, a list of strings or a mapping of tests")
            return None
        unknown = sorted(set(map(str, value)) - _STRING_OPTS)
        if unknown:
            self.bad(
                at, f"unknown test(s) {', '.join(unknown)} (use {', '.join(sorted(_STRING_OPTS))})"
            )
            return None
        nc = value.get("nocase", nocase)
        if not isinstance(nc, bool):
            self.bad(f"{at}.nocase", "must be true or false")
            return None
        tests = [
            t for t in (self.string_test(k, v, f"{at}.{k}", nc) for k, v in value.items()) if t
        ]
        if len(tests) != len([k for k in value if k != "nocase"]):
            return None
        low = str.lower if nc else None
        if "regex" in value:  # the same few values (User-Agents) repeat: remember verdicts
            ts = tuple(tests)
            fold = low or str
            test = _remembered(lambda v: _all_str(ts, fold(v)))
            return lambda r, m: test(get(r, m))
        if len(tests) == 1:
            t0 = tests[0]
            if low is not None:
                return lambda r, m: t0(get(r, m).lower())
            return lambda r, m: t0(get(r, m))
        ts = tuple(tests)
        if low is not None:
            return lambda r, m: _all_str(ts, get(r, m).lower())
        return lambda r, m: _all_str(ts, get(r, m))

    def string_test(self, kind: str, v: Any, at: str, nocase: bool) -> Callable[[str], bool] | None:
        fold = (lambda s: s.lower()) if nocase else (lambda s: s)
        if kind == "nocase":
            return None
        if kind == "in":
            vals = self.strings(v if isinstance(v, list) else [v], at)
            if vals is None:
                return None
            allowed = frozenset(fold(s) for s in vals)
            return allowed.__contains__
        if kind in ("contains", "prefix"):
            vals = self.strings(v if isinstance(v, list) else [v], at)
            if vals is None or not all(vals):
                if vals is not None:
                    self.bad(at, "must not be empty")
                return None
            parts = tuple(fold(s) for s in vals)
            if kind == "prefix":
                return lambda s: s.startswith(parts)
            if len(parts) == 1:
                p0 = parts[0]
                return lambda s: p0 in s
            return lambda s: any(p in s for p in parts)
        if kind == "regex":
            if not isinstance(v, str) or not v:
                self.bad(at, "must be a non-empty regular expression")
                return None
            try:
                rx = re.compile(v, re.IGNORECASE if nocase else 0)
            except re.error as e:
                self.bad(at, f"bad regular expression: {e}")
                return None
            search = rx.search
            return lambda s: search(s) is not None
        if kind in ("numeric", "empty"):
            if not isinstance(v, bool):
                self.bad(at, "must be true or false")
                return None
            if kind == "numeric":
                return (
                    (lambda s: s.isascii() and s.isdigit())
                    if v
                    else (lambda s: not (s.isascii() and s.isdigit()))
                )
            return (lambda s: not s) if v else (lambda s: bool(s))
        # len: n, "a-b" or "a-"
        lo_hi = _length_range(v)
        if lo_hi is None:
            self.bad(at, 'must be a length or a range like "3-6" (or "7-" for at least 7)')
            return None
        lo, hi = lo_hi
        return lambda s: lo <= len(s) <= hi

    def strings(self, vals: list, at: str) -> list[str] | None:
        out = []
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                self.bad(at, f"{v!r} is not a string")
                return None
            out.append(str(v))
        if not out:
            self.bad(at, "must not be an empty list")
            return None
        return out

    def check_codes(self, value: Any, known: frozenset[str], at: str) -> None:
        vals = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        unknown = [v for v in vals if isinstance(v, str) and v and v not in known]
        if unknown:
            self.bad(at, f"unknown code(s) {', '.join(unknown)}")

    def anomalies(self, value: Any, at: str) -> Pred | None:
        if value == "any":
            return lambda r, m: bool(m.anomalies) and bool(real_anomalies(m))
        vals = self.strings(value if isinstance(value, list) else [value], at)
        if vals is None:
            return None
        self.check_codes(vals, ANOMALY_CODES, at)
        wanted = frozenset(vals)
        return lambda r, m: bool(m.anomalies) and not wanted.isdisjoint(m.anomalies)

    def headers(self, value: Any, at: str) -> Pred | None:
        items = value if isinstance(value, list) else [value]
        preds = [
            self.header(v, f"{at}[{i}]" if isinstance(value, list) else at)
            for i, v in enumerate(items)
        ]
        if not items or any(p is None for p in preds):
            if not items:
                self.bad(at, "must be a mapping or a non-empty list of mappings")
            return None
        return all_of(preds)  # type: ignore[arg-type]

    def header(self, v: Any, at: str) -> Pred | None:
        if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not v["name"].strip():
            self.bad(at, "must be a mapping with a header `name` (and regex, contains or absent)")
            return None
        unknown = sorted(set(map(str, v)) - _HEADER_OPTS)
        if unknown:
            self.bad(at, f"unknown test(s) {', '.join(unknown)}")
            return None
        key = canonical_name(v["name"])
        absent = v.get("absent", False)
        if not isinstance(absent, bool):
            self.bad(f"{at}.absent", "must be true or false")
            return None
        if absent:
            if "regex" in v or "contains" in v:
                self.bad(at, "absent cannot be combined with regex or contains")
                return None
            return lambda r, m: key not in m.headers
        tests = [
            self.string_test(k, v[k], f"{at}.{k}", k == "contains")
            for k in ("regex", "contains")
            if k in v
        ]
        if any(t is None for t in tests):
            return None
        if not tests:
            return lambda r, m: key in m.headers
        ts = tuple(tests)
        lower = "contains" in v

        def test(r: Record, m: SipMessage) -> bool:
            for val in m.headers.get(key, ()):
                s = val.lower() if lower else val
                if all(t(s) for t in ts):  # type: ignore[misc]
                    return True
            return False

        if lower and "regex" in v:
            self.bad(at, "use either regex or contains, not both")
            return None
        return test

    def number_in(self, value: Any, at: str) -> Pred | None:
        names = self.strings(value if isinstance(value, list) else [value], at)
        if names is None:
            return None
        self.named.extend(names)
        prefixes = frozenset().union(*(self.watchlists.get(n, frozenset()) for n in names))
        if not prefixes:
            return lambda r, m: False
        lengths = tuple(sorted({len(p) for p in prefixes}))

        def listed(r: Record, m: SipMessage) -> bool:
            number = r.number
            if not number:
                return False
            for n in lengths:  # noqa: SIM110
                if number[:n] in prefixes:
                    return True
            return False

        return listed

    def addresses(self, get: Callable, value: Any, at: str) -> Pred | None:
        vals = self.strings(value if isinstance(value, list) else [value], at)
        if vals is None:
            return None
        nets = []
        for v in vals:
            try:
                nets.append(ipaddress.ip_network(v.strip(), strict=False))
            except ValueError:
                self.bad(at, f"{v!r} is not an address or CIDR network")
                return None
        return in_networks(get, tuple(nets))


def _remembered(test: Callable[[str], bool]) -> Callable[[str], bool]:
    """test(value), remembered for short values (a regex costs 1-2 us, a lookup 0.05); the
    table is bounded in entries and size, and cleared when full (values an attacker varies
    per message only cost the lookup)."""
    cache: dict[str, bool] = {}

    def remembered(value: str) -> bool:
        hit = cache.get(value)
        if hit is None:
            hit = test(value)
            if len(value) <= _MEMO_LEN:
                if len(cache) >= _MEMO_MAX:
                    cache.clear()
                cache[value] = hit
        return hit

    return remembered


def _all_str(tests: tuple, s: str) -> bool:
    for t in tests:  # noqa: SIM110
        if not t(s):
            return False
    return True


def _length_range(v: Any) -> tuple[int, int] | None:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v, v
    m = _LEN_RANGE.match(v) if isinstance(v, str) else None
    if m is None:
        return None
    lo = int(m[1])
    hi = lo if m.lastindex == 1 and "-" not in v else (int(m[2]) if m[2] else 1 << 30)
    return (lo, hi) if lo <= hi else None
