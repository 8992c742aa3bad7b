"""The rule engine: aggregates, sliding windows, suppression, bounded state, determinism."""

from __future__ import annotations

import json
import textwrap

import orjson
import pytest

import siptraffic as st
from sipwatch.detect.engine import Engine, EngineConfig
from sipwatch.detect.events import MAX_EVIDENCE, SEVERITIES, Event, event_id
from sipwatch.detect.rules import RuleError, parse_pack

A, B, C = "203.0.113.1", "203.0.113.2", "203.0.113.3"


def engine(rules: str, **config) -> Engine:
    text = "version: 1\nrules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")
    return Engine(parse_pack(text, "test.yaml"), EngineConfig(**config))


def feed_all(eng: Engine, records) -> list[Event]:
    out = []
    for r in records:
        out.extend(eng.feed(r))
    return out


COUNT = """
- id: t.count
  kind: threshold
  description: options per client
  severity: low
  match: {method: OPTIONS, is_request: true}
  window: 10
  threshold: 3
  suppress: 60
  summary: "{client} sent {count} OPTIONS"
"""


def options(t: st.Traffic, src: str, n: int, gap: float, user: str = "100") -> list:
    return [t.request("OPTIONS", src, user, dt=gap) for _ in range(n)]


# --- aggregates ----------------------------------------------------------------------------
def test_count_fires_at_threshold_and_only_for_its_key():
    t = st.Traffic()
    a = options(t, A, 2, 1.0)
    b = options(t, B, 5, 1.0)
    eng = engine(COUNT)
    assert feed_all(eng, a) == []
    events = feed_all(eng, b)
    assert len(events) == 1  # fired on B's third message; the next two are suppressed
    ev = events[0]
    assert (ev.rule, ev.kind, ev.severity, ev.src, ev.count) == (
        "t.count",
        "threshold",
        "low",
        B,
        3,
    )
    assert ev.first == b[0].ts and ev.last == b[2].ts
    assert ev.summary == f"{B} sent 3 OPTIONS"
    assert ev.id == event_id("t.count", B, b[0].ts)
    assert eng.stats.suppressed == 2 and eng.stats.matches["t.count"] == 7
    final = eng.flush()
    assert [(e.id, e.count, e.last) for e in final] == [(ev.id, 5, b[4].ts)]


def test_window_slides():
    t = st.Traffic()
    slow = options(t, A, 6, 6.0)  # never 3 within 10 s
    eng = engine(COUNT)
    assert feed_all(eng, slow) == [] and eng.flush() == []
    fast = options(t.at(1), A, 3, 4.0)  # 3 within 8 s
    assert [e.count for e in feed_all(eng, fast)] == [3]


def test_rate():
    rules = """
    - id: t.rate
      kind: threshold
      description: x
      severity: high
      match: {is_request: true}
      key: server
      window: 2
      aggregate: rate
      threshold: 5
      summary: "{server} got {rate}/s"
    """
    t = st.Traffic()
    calm = options(t, A, 8, 0.3)  # 3.3/s
    eng = engine(rules)
    assert feed_all(eng, calm) == []
    storm = options(t.at(5), A, 12, 0.15)  # 6.7/s: 10 messages within 2 s at the 10th
    events = feed_all(eng, storm)
    assert len(events) == 1
    assert events[0].src == "" and events[0].targets == (st.PBX,)
    assert events[0].summary == f"{st.PBX} got 5/s" and events[0].data["value"] == 5.0


def test_distinct_with_targets_and_cap():
    rules = """
    - id: t.distinct
      kind: threshold
      description: x
      severity: medium
      stage: ES
      match: {method: OPTIONS}
      window: 60
      aggregate: {distinct: user}
      threshold: 4
      summary: "{client} tried {distinct}: {targets}"
    """
    t = st.Traffic()
    recs = []
    for user in ["100", "100", "101", "100", "102"]:
        recs.append(t.request("OPTIONS", A, user, dt=1))
    eng = engine(rules, max_distinct=2)  # the cap never goes below the threshold
    assert feed_all(eng, recs) == []
    ev = feed_all(eng, [t.request("OPTIONS", A, "103", dt=1)])
    assert [(e.count, e.targets, e.stage, e.data["field"]) for e in ev] == [
        (6, ("101", "100", "102", "103"), "ES", "user")  # by time last seen
    ]
    assert ev[0].summary == f"{A} tried 4: 101, 100, 102, 103"
    # empty values do not count as distinct values
    assert engine(rules).feed(t.raw(b"OPTIONS sip:x SIP/2.0\r\n\r\n", A)) == []


def test_distinct_values_expire():
    rules = """
    - id: t.distinct
      kind: threshold
      description: x
      severity: medium
      match: {method: OPTIONS}
      window: 10
      aggregate: {distinct: user}
      threshold: 3
    """
    t = st.Traffic()
    eng = engine(rules)
    assert feed_all(eng, [t.request("OPTIONS", A, u, dt=6) for u in "1234"]) == []
    got = feed_all(eng, [t.request("OPTIONS", A, u, dt=1) for u in "56"])
    assert [e.data["value"] for e in got] == [3]


def test_ratio():
    rules = """
    - id: t.ratio
      kind: threshold
      description: x
      severity: medium
      match: {is_request: false}
      window: 60
      aggregate: {ratio: {status: "400-499"}, min_samples: 5}
      threshold: 0.8
      summary: "{client}: {ratio} failures of {samples}"
    """
    t = st.Traffic()
    eng = engine(rules)
    ok = [t.response(t.request("OPTIONS", A, "100", dt=1), 200) for _ in range(2)]
    bad = [t.response(t.request("OPTIONS", A, "100", dt=1), 404) for _ in range(9)]
    events = feed_all(eng, [*ok, *bad[:7]])  # 7 of 9 = 78 %
    assert events == []
    events = feed_all(eng, bad[7:8])  # 8 of 10
    assert [e.summary for e in events] == [f"{A}: 80% failures of 10"]
    few = engine(rules)
    assert (
        feed_all(few, [t.response(t.request("OPTIONS", B, "1", dt=1), 404) for _ in range(4)]) == []
    )


# --- signatures, priors, suppression -------------------------------------------------------
SIG = """
- id: t.sig
  kind: signature
  description: x
  severity: critical
  stage: TF
  match: {method: INVITE, is_request: true}
  suppress: 100
  targets: user
  tags: [fraud]
  summary: "{client} called {user} ({count})"
"""


def test_signature_emission_and_suppression():
    t = st.Traffic()
    calls = [t.request("INVITE", A, f"00972{n}", dt=30) for n in range(6)]  # every 30 s
    eng = engine(SIG)
    got = [feed_all(eng, [c]) for c in calls]
    emitted = [[(e.count, e.targets[-1]) for e in g] for g in got]
    # first at once; then at most once per 100 s while it keeps firing
    assert emitted == [[(1, "009720")], [], [], [], [(5, "009724")], []]
    ids = {e.id for g in got for e in g}
    assert len(ids) == 1
    assert got[0][0].tags == ("fraud",) and got[0][0].kind == "signature"
    # quiet for longer than suppress: the old episode's last state, then a new id
    later = feed_all(eng, [t.request("INVITE", A, "0097299", dt=500)])
    assert [(e.count, e.id in ids) for e in later] == [(6, True), (1, False)]
    assert later[1].first == later[1].last == t.t
    assert eng.stats.opened == 2


def test_suppress_zero_reports_every_message():
    t = st.Traffic()
    eng = engine(SIG.replace("suppress: 100", "suppress: 0"))
    got = feed_all(eng, [t.request("INVITE", A, "0097211", dt=1) for _ in range(3)])
    assert len({e.id for e in got}) == 3


def test_require_prior():
    rules = (
        COUNT
        + """
- id: t.after
  kind: signature
  description: x
  severity: high
  match: {method: INVITE}
  require_prior: {rules: [t.count], within: 100}
"""
    )
    t = st.Traffic()
    eng = engine(rules)
    assert feed_all(eng, [t.request("INVITE", A, "1", dt=1)]) == []  # no prior yet
    feed_all(eng, options(t, A, 3, 1))
    assert fired_rules(feed_all(eng, [t.request("INVITE", A, "1", dt=1)])) == {"t.after"}
    assert feed_all(eng, [t.request("INVITE", B, "1", dt=1)]) == []  # another client
    assert feed_all(eng, [t.request("INVITE", A, "2", dt=200)]) == []  # too long ago
    assert eng.stats.keys["prior"] == 1


def fired_rules(events):
    return {e.rule for e in events}


# --- bounded state -------------------------------------------------------------------------
def test_lru_bound_and_evictions():
    t = st.Traffic()
    eng = engine(COUNT, max_keys=3)
    recs = [t.request("OPTIONS", f"198.18.0.{i}", "100", dt=0.01) for i in range(10)]
    feed_all(eng, recs)
    st_ = eng.stats
    assert st_.keys["client"] == 3 and st_.evictions["client"] == 7
    # the most recently used keys stay: an old key starts over, a recent one goes on
    feed_all(eng, options(t, "198.18.0.9", 1, 0.01))  # 2 in its window now
    assert [e.count for e in feed_all(eng, options(t, "198.18.0.9", 1, 0.01))] == [3]


def test_evicted_open_event_emits_its_last_state():
    t = st.Traffic()
    eng = engine(COUNT, max_keys=1)
    first = feed_all(eng, options(t, A, 4, 0.1))
    assert [e.count for e in first] == [3]
    pushed = feed_all(eng, options(t, B, 1, 0.1))  # evicts A, whose event has a 4th message
    assert [(e.id, e.count) for e in pushed] == [(first[0].id, 4)]
    assert eng.stats.evictions["client"] == 1


def test_idle_state_expires_and_tick():
    t = st.Traffic()
    eng = engine(COUNT, sweep_every=1)
    feed_all(eng, options(t, A, 4, 0.1))
    assert eng.stats.keys["client"] == 1
    closing = eng.tick(t.t + 61)  # horizon = max(window, suppress) = 60 s
    assert [e.count for e in closing] == [4]
    assert eng.stats.keys["client"] == 0 and eng.stats.expired["client"] == 1
    assert eng.flush() == []


def test_distinct_cap_bounds_memory():
    rules = """
    - id: t.d
      kind: threshold
      description: x
      severity: low
      match: {method: OPTIONS}
      window: 600
      aggregate: {distinct: user}
      threshold: 3
    """
    t = st.Traffic()
    eng = engine(rules, max_distinct=5)
    feed_all(eng, [t.request("OPTIONS", A, str(u), dt=0.01) for u in range(50)])
    entry = eng._tables["client"][A]
    assert len(entry[2].x) == 5 and entry[2].over == 45
    ev = eng.flush()
    assert ev[0].data["value"] == 50 and len(ev[0].evidence) == MAX_EVIDENCE


def test_many_keys_one_message_each_keep_no_objects():
    # a spoofed flood: each key's first message is kept bare (no window object, no evidence id)
    t = st.Traffic()
    eng = engine(COUNT)
    recs = options(t, "198.18.1.1", 1, 0.01) + options(t, "198.18.1.2", 1, 0.01)
    feed_all(eng, recs)
    assert [type(e[2]) for e in eng._tables["client"].values()] == [float, float]
    assert all(r._id == 0 for r in recs)


# --- determinism and the event format --------------------------------------------------------
def attack(t: st.Traffic) -> None:
    for i in range(30):
        req = t.request("REGISTER", A, str(100 + i), ua="friendly-scanner", dt=0.05)
        t.response(req, 404)
    for pw in ["1234", "0000", "1111", "2222", "9999", "admin", "secret", "abc", "x", "y", "z"]:
        req = t.request("REGISTER", A, "101", password=pw, tag=st.sv_tag(f"101:{pw}"), dt=0.1)
        t.response(req, 403)
    t.response(t.request("REGISTER", A, "101", password="s3cret-Pass", dt=0.1), 200)
    for _ in range(3):
        t.request("INVITE", A, "0088216000111", password="s3cret-Pass", auth_user="101", dt=5)


def test_same_records_same_events():
    t = st.Traffic()
    attack(t)
    first = t.run()
    for r in t.records:
        r._id = 0
    again = t.run()
    assert len(first) > 5
    assert [e.to_dict() for e in first] == [e.to_dict() for e in again]


def test_event_format_is_json():
    t = st.Traffic()
    attack(t)
    for e in t.run():
        d = e.to_dict()
        assert json.loads(orjson.dumps(d)) == d
        assert Event.from_dict(d) == e
        assert e.severity in SEVERITIES and e.severity_rank() == SEVERITIES.index(e.severity)
        assert 0 < len(e.evidence) <= MAX_EVIDENCE and e.first <= e.last


def test_endless_new_methods_keep_the_dispatch_table_bounded():
    t = st.Traffic()
    eng = Engine.load()
    for i in range(5000):
        t.request(f"M{i}", A, "100", dt=1)
    assert feed_all(eng, t.records) == []
    assert len(eng._dispatch) == 4096


def test_bad_watchlist_config():
    with pytest.raises(RuleError, match="config: watchlists: x: must be a list of numbers"):
        Engine.load(config=EngineConfig(watchlists={"x": ["call me"]}))
    eng = engine(SIG.replace("match: {", "match: {number_in: mine, "))
    assert eng.warnings == ["watch list 'mine' is not configured: it is empty"]
    assert Engine.load().warnings == []
