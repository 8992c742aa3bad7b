"""Per-key state of the engine: sliding windows, open events (episodes), LRU tables.

Windows are bounded whatever the traffic: counts live in at most ~BUCKETS buckets per window
(a bucket starts at its first message and spans window/BUCKETS seconds; it leaves the window
when that first message is `window` seconds old, so a count can lag by one bucket), and
distinct values in a dict capped at `cap` entries (beyond it new values are only counted).
Objects use __slots__ and start small: a million keys must fit in a few hundred MB.
"""

from __future__ import annotations

from collections import OrderedDict

BUCKETS = 20  # buckets per window: counts are exact to within window/20 seconds


class Episode:
    """One open event: a rule firing for a key, until the key is quiet for `suppress`."""

    __slots__ = (
        "id",
        "first",
        "last",
        "count",
        "evidence",
        "targets",
        "last_emit",
        "dirty",
        "value",
        "src",
        "node",
        "sensor",
        "ctx",
        "keytext",
    )

    def __init__(self) -> None:
        self.id = 0
        self.first = 0.0
        self.last = 0.0
        self.count = 0
        self.evidence: list[int] = []
        self.targets: list[str] = []
        self.last_emit = 0.0
        self.dirty = False
        self.value: float = 0
        self.src = ""
        self.node = ""
        self.sensor = ""
        self.ctx: dict[str, object] = {}
        self.keytext = ""


class CountWin:
    """Messages in the window (count and rate rules), in buckets."""

    __slots__ = ("n", "bt", "bn", "old", "ev", "ep")

    def __init__(self) -> None:
        self.n = 0  # messages in the window
        self.bt = 0.0  # newest bucket: start (its first message's time) and count
        self.bn = 0
        self.old: list | None = None  # older buckets, flat: [start, count, start, count, ...]
        # ids of the latest messages before an event opens: one id, then a list
        self.ev: list[int] | int | None = None
        self.ep: Episode | None = None

    @classmethod
    def one(cls, ts: float) -> CountWin:
        """A window holding one message (seen at ts)."""
        w = cls()
        w.n = w.bn = 1
        w.bt = ts
        return w

    def add(self, ts: float, window: float, gran: float) -> int:
        horizon = ts - window
        old = self.old
        if old:
            while old and old[0] <= horizon:
                self.n -= old[1]
                del old[:2]
        bn = self.bn
        if bn and self.bt <= horizon:  # the newest bucket expired: so did everything
            self.n = bn = 0
        if bn and ts - self.bt < gran:
            self.bn = bn + 1
        else:
            if bn:
                if old is None:
                    self.old = [self.bt, bn]
                else:
                    old.append(self.bt)
                    old.append(bn)
            self.bt = ts
            self.bn = 1
        self.n += 1
        return self.n

    def first(self) -> float:
        old = self.old
        return old[0] if old else self.bt


class RatioWin:
    """Messages in the window and how many of them met the ratio's condition."""

    __slots__ = ("n", "h", "bt", "bn", "bh", "old", "ev", "ep")

    def __init__(self) -> None:
        self.n = 0
        self.h = 0
        self.bt = 0.0
        self.bn = 0
        self.bh = 0
        self.old: list | None = None  # flat: [start, count, hits, ...]
        self.ev: list[int] | int | None = None
        self.ep: Episode | None = None

    def add(self, ts: float, window: float, gran: float, hit: bool) -> int:
        horizon = ts - window
        old = self.old
        if old:
            while old and old[0] <= horizon:
                self.n -= old[1]
                self.h -= old[2]
                del old[:3]
        if self.bn and self.bt <= horizon:
            self.n = self.h = self.bn = self.bh = 0
        if self.bn and ts - self.bt < gran:
            self.bn += 1
            self.bh += hit
        else:
            if self.bn:
                if old is None:
                    old = self.old = []
                old.extend((self.bt, self.bn, self.bh))
            self.bt, self.bn, self.bh = ts, 1, int(hit)
        self.n += 1
        self.h += hit
        return self.n

    def first(self) -> float:
        old = self.old
        return old[0] if old else self.bt


class DistinctWin:
    """Distinct values in the window: value -> time last seen, oldest first, capped.

    Most keys (a spoofed source, a one-off probe) only ever show one value: `x` holds it as a
    string, with its time in `t`, until a second value turns `x` into the dict.
    """

    __slots__ = ("x", "t", "over", "n", "ev", "ep")

    def __init__(self) -> None:
        self.x: str | dict[str, float] | None = None
        self.t = 0.0
        self.over = 0  # new values seen while the dict was full (counted, not stored)
        self.n = 0  # messages since the window was last empty
        self.ev: list[int] | int | None = None
        self.ep: Episode | None = None

    @classmethod
    def one(cls, value: str, ts: float) -> DistinctWin:
        """A window holding one value (seen at ts)."""
        w = cls()
        w.x = value
        w.t = ts
        w.n = 1
        return w

    def add(self, value: str, ts: float, window: float, cap: int) -> int:
        vals = self.x
        if vals is None or vals.__class__ is str:
            if vals is not None and self.t <= ts - window:
                vals = None  # expired
                self.n = 0
            if vals is None or vals == value:
                self.x = value
                self.t = ts
                self.n += 1
                return 1
            vals = self.x = {vals: self.t}  # type: ignore[dict-item]
        elif vals:
            horizon = ts - window
            while vals:  # expire from the oldest; stop at the first value still inside
                k = next(iter(vals))
                if vals[k] > horizon:  # type: ignore[index]
                    break
                del vals[k]  # type: ignore[attr-defined]
            if not vals:
                self.over = 0
                self.n = 0
        if value in vals:
            del vals[value]  # type: ignore[attr-defined]  # re-insert: ordered by last seen
            vals[value] = ts  # type: ignore[index]
        elif len(vals) < cap:
            vals[value] = ts  # type: ignore[index]
        else:
            self.over += 1
        self.n += 1
        return len(vals) + self.over

    def values(self) -> list[str]:
        """The values in the window, oldest first."""
        x = self.x
        if x is None:
            return []
        return [x] if x.__class__ is str else list(x)  # type: ignore[list-item]

    def first(self) -> float:
        x = self.x
        if x is None or x.__class__ is str:
            return self.t
        return x[next(iter(x))] if x else 0.0  # type: ignore[index]


class Table(OrderedDict):
    """An LRU table of key -> entry, one per key kind ("client", "client+user", ...).

    An entry is a list [last touched, mask, state, state, ...]: bit i of the mask says that
    the table's rule i has state for this key, and the states follow in rule order. So an
    entry is only as long as the rules its key met (most keys meet one or two), and a rule
    finds its state at 2 + the number of lower bits set.
    """

    def __init__(self, name: str, cap: int, horizon: float) -> None:
        super().__init__()
        self.name = name
        self.cap = cap
        self.horizon = horizon  # an entry untouched this long holds nothing live
        self.rules: list = []  # the rules keyed by this kind, in bit order
        self.evictions = 0
        self.expired = 0
        self._masks: dict[int, int] = {}  # one int object per mask value (shared by entries)

    def insert(self, key: object, entry: list, bit: int, state: object) -> list:
        """A copy of `entry` with `state` added for the rule of `bit` (exactly sized)."""
        mask = entry[1]
        pos = 2 + (mask & (bit - 1)).bit_count()
        new = entry[:pos] + [state] + entry[pos:]  # concatenation sizes the list exactly
        m = mask | bit
        new[1] = self._masks.setdefault(m, m)
        self[key] = new  # same key: keeps its place in the LRU order
        return new
