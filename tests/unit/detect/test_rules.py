"""Rule packs: loading, validation messages, overrides, and every match field."""

from __future__ import annotations

import re
import textwrap

import pytest

import siptraffic as st
import sipwatch.sip.message as sipmessage
from sipwatch.detect.rules import DEFAULT_PACK, RuleError, load_pack, load_packs, parse_pack
from sipwatch.detect.rules_fields import ANOMALY_CODES, ERROR_CODES, normalise_watchlist
from sipwatch.detect.rules_match import compile_match, message_flags
from sipwatch.detect.stages import BENIGN_ANOMALIES, BENIGN_ERRORS, StageLabeler

GOOD = """
version: 1
rules:
  - id: t.one
    kind: signature
    description: one
    severity: low
    match: {is_request: true}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RuleError) as got:
        parse_pack(textwrap.dedent(text), "pack.yaml")
    return got.value.problems


def rule(body: str) -> str:
    """A pack with one rule whose fields are `body` (YAML, indented as a rule's)."""
    return "version: 1\nrules:\n  - id: t.r\n" + textwrap.indent(textwrap.dedent(body), "    ")


# --- loading -----------------------------------------------------------------------------------
def test_default_pack_loads_and_is_documented():
    packs = load_packs()
    assert [p.name for p in packs] == ["default"]
    rules = packs[0].rules
    assert len(rules) >= 15
    assert all(r.description and r.severity and r.source == str(DEFAULT_PACK) for r in rules)
    docs = (DEFAULT_PACK.parents[3] / "docs" / "rules.md").read_text()
    for r in rules:
        assert f"`{r.id}`" in docs, f"docs/rules.md does not describe {r.id}"


def test_extra_pack_and_overrides(tmp_path):
    extra = tmp_path / "site.yaml"
    extra.write_text(GOOD)
    packs = load_packs([extra], overrides={"es.extension-scan": {"threshold": 25, "window": 60}})
    assert [p.name for p in packs] == ["default", "site"]
    es = next(r for r in packs[0].rules if r.id == "es.extension-scan")
    assert (es.threshold, es.window) == (25.0, 60.0)
    off = load_packs(overrides={"tool.attack-tool": {"enabled": False, "severity": "high"}})
    tool = next(r for r in off[0].rules if r.id == "tool.attack-tool")
    assert not tool.enabled and tool.severity == "high"


def test_override_errors():
    with pytest.raises(RuleError) as got:
        load_packs(
            overrides={
                "no.such": {"threshold": 3},
                "tf.premium-call": {"threshold": 3},
                "es.extension-scan": {"window": -1, "match": {}, "severity": "huge"},
            }
        )
    assert got.value.problems == [
        "config: rule no.such: overrides: no such rule",
        "config: rule tf.premium-call: threshold: only threshold rules have it",
        "config: rule es.extension-scan: window: must be a number of at least 0.001 and at most 604800",
        "config: rule es.extension-scan: match: cannot be overridden (only threshold, window, severity, enabled, suppress, min_samples)",
        "config: rule es.extension-scan: severity: must be one of info, low, medium, high, critical",
    ]


def test_unreadable_and_yaml_errors(tmp_path):
    with pytest.raises(RuleError, match=r"missing.yaml: cannot read"):
        load_pack(tmp_path / "missing.yaml")
    assert problems("version: 1\nrules: [\n") == [
        "pack.yaml: yaml: line 3: expected the node content, but found '<stream end>'"
    ]
    assert problems("- a\n- b\n") == [
        "pack.yaml: pack: must be a mapping with `version` and `rules`"
    ]


def test_pack_level_errors():
    assert problems("version: one\nfoo: 1\nrules: []\n") == [
        "pack.yaml: foo: unknown pack field (use description, pack, rules, version)",
        "pack.yaml: version: must be a whole number >= 1",
        "pack.yaml: rules: must be a non-empty list of rules",
    ]


def test_every_rule_problem_is_reported_once_per_line():
    got = problems(
        """
        version: 1
        rules:
          - kind: signature
            description: no id
            severity: low
          - id: Bad Id
            kind: nonsense
            severity: low
            description: x
          - id: t.a
            kind: signature
            description: ""
            stage: XX
            severity: urgent
            window: 5
            colour: red
          - id: t.b
            kind: threshold
            description: b
            severity: low
            key: client+nobody
            window: 0
            threshold: -1
            aggregate: {distinct: shoe_size}
            summary: "{client} did {nothing}"
            tags: [ok, 3]
            enabled: maybe
            targets: elsewhere
            require_prior: {rules: [t.zzz], within: 0}
          - id: t.a
            kind: signature
            description: twice
            severity: low
          - "just a string"
        """
    )
    assert got == [
        "pack.yaml: rule #1: id: required: lower-case letters, digits and . _ - (e.g. es.extension-scan)",
        "pack.yaml: rule #2: id: required: lower-case letters, digits and . _ - (e.g. es.extension-scan)",
        "pack.yaml: rule #2: kind: must be one of signature, threshold",
        "pack.yaml: rule t.a: colour: unknown rule field",
        "pack.yaml: rule t.a: window: unknown rule field (only for threshold rules)",
        "pack.yaml: rule t.a: description: required: say what the rule detects and why its threshold",
        "pack.yaml: rule t.a: stage: must be one of SS, ES, RHJ, TF, FLOOD, FUZZ, SPIT (or empty)",
        "pack.yaml: rule t.a: severity: must be one of info, low, medium, high, critical",
        "pack.yaml: rule t.b: key: must be field names joined by + (e.g. client+user); unknown: nobody",
        "pack.yaml: rule t.b: tags: must be a list of strings",
        "pack.yaml: rule t.b: enabled: must be true or false",
        "pack.yaml: rule t.b: targets: unknown field 'elsewhere'",
        "pack.yaml: rule t.b: require_prior.within: must be a number of at least 1 and at most 604800",
        "pack.yaml: rule t.b: window: must be a number of at least 0.001 and at most 604800",
        "pack.yaml: rule t.b: aggregate.distinct: unknown field 'shoe_size'",
        "pack.yaml: rule t.b: threshold: must be a number of at least 1e-09",
        "pack.yaml: rule t.b: summary: unknown placeholder {nothing}",
        "pack.yaml: rule #6: must be a mapping",
    ]


def test_duplicate_ids_and_unknown_prior(tmp_path):
    assert problems(GOOD + GOOD.split("rules:\n")[1]) == [
        "pack.yaml: rule t.one: id: defined twice"
    ]
    assert problems(
        rule("kind: signature\ndescription: x\nseverity: low\nrequire_prior: t.zzz\n")
    ) == ["pack.yaml: rule t.r: require_prior: unknown rule t.zzz"]
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(GOOD)
    b.write_text(GOOD)
    with pytest.raises(RuleError) as got:
        load_packs([a, b], default=False)
    assert got.value.problems == [f"{b}: rule t.one: id: already defined in {a}"]


def test_threshold_aggregate_forms():
    base = "kind: threshold\ndescription: x\nseverity: low\nwindow: 60\n"
    ok = parse_pack(rule(base + "threshold: 2\naggregate: rate\n")).rules[0]
    assert (ok.aggregate, ok.threshold) == ("rate", 2.0)
    ratio = parse_pack(
        rule(base + "threshold: 0.9\naggregate: {ratio: {status: [404]}, min_samples: 7}\n")
    ).rules[0]
    assert (ratio.aggregate, ratio.min_samples, ratio.ratio_when) == ("ratio", 7, {"status": [404]})
    assert problems(rule(base + "threshold: 2\naggregate: {ratio: {}, distinct: user}\n")) == [
        "pack.yaml: rule t.r: aggregate: must be count, rate, {distinct: FIELD} or {ratio: MATCH, min_samples: N}"
    ]
    assert problems(rule(base + "threshold: 1.5\naggregate: {ratio: {method: INVITE}}\n")) == [
        "pack.yaml: rule t.r: aggregate.ratio: is_request and method belong in `match`",
        "pack.yaml: rule t.r: threshold: must be a number of at least 1e-09 and at most 1",
    ]
    assert problems(rule(base + "aggregate: sum\nthreshold: 2\n")) == [
        "pack.yaml: rule t.r: aggregate: must be count, rate, {distinct: FIELD} or {ratio: MATCH, min_samples: N}"
    ]


# --- match blocks: validation messages ---------------------------------------------------------
@pytest.mark.parametrize(
    ("match", "message"),
    [
        ("[1]", "match: must be a mapping of field: condition"),
        ("{colour: red}", "match.colour: unknown field"),
        ("{is_request: yes please}", "match.is_request: must be true or false"),
        ("{method: []}", "match.method: must be a method name or a list of them"),
        (
            "{status: [99]}",
            'match.status: 99 is not a status code (100-699) or a range like "400-499"',
        ),
        (
            "{status: '500-400'}",
            "match.status: '500-400' is not a status code (100-699) or a range like \"400-499\"",
        ),
        (
            "{to_user: {regex: '('}}",
            "match.to_user.regex: bad regular expression: missing ), unterminated subpattern at position 0",
        ),
        (
            "{to_user: {len: 'x'}}",
            'match.to_user.len: must be a length or a range like "3-6" (or "7-" for at least 7)',
        ),
        ("{to_user: {numeric: 1}}", "match.to_user.numeric: must be true or false"),
        (
            "{to_user: {shape: round}}",
            "match.to_user: unknown test(s) shape (use contains, empty, in, len, nocase, numeric, prefix, regex)",
        ),
        ("{to_user: [{a: 1}]}", "match.to_user: {'a': 1} is not a string"),
        ("{to_user: []}", "match.to_user: must not be an empty list"),
        ("{user_agent: {contains: ''}}", "match.user_agent.contains: must not be empty"),
        (
            "{header: {regex: x}}",
            "match.header: must be a mapping with a header `name` (and regex, contains or absent)",
        ),
        (
            "{header: {name: X-A, absent: true, regex: x}}",
            "match.header: absent cannot be combined with regex or contains",
        ),
        ("{header: {name: X-A, size: 3}}", "match.header: unknown test(s) size"),
        ("{anomalies: [no_such_anomaly]}", "match.anomalies: unknown code(s) no_such_anomaly"),
        ("{error: [nonsense]}", "match.error: unknown code(s) nonsense"),
        ("{src: [300.1.1.1]}", "match.src: '300.1.1.1' is not an address or CIDR network"),
        ("{any: []}", "match.any: must be a non-empty list of match mappings"),
        ("{any: [{colour: red}]}", "match.any[0].colour: unknown field"),
        ("{not: {colour: red}}", "match.not.colour: unknown field"),
        ("{fuzz: 3}", "match.fuzz: must be true or false"),
    ],
)
def test_match_problems(match, message):
    text = rule(f"kind: signature\ndescription: x\nseverity: low\nmatch: {match}\n")
    assert problems(text) == [f"pack.yaml: rule t.r: {message}"]


def test_codes_follow_the_parser_docstring():
    doc = sipmessage.__doc__
    if not doc:
        pytest.skip("docstrings stripped (python -OO)")
    errors, anomalies = doc.split("``anomalies``")
    codes = lambda part: {  # noqa: E731
        c
        for line in part.splitlines()
        if (m := re.match(r"\|\s*([a-z_][a-z0-9_ ,/]*?)\s*\|", line)) and m[1] != "code"
        for c in re.split(r"[ ,/]+", m[1])
    }
    assert codes(errors) == ERROR_CODES
    assert codes(anomalies) == ANOMALY_CODES


# --- match blocks: every field against real messages -------------------------------------------
def message_fields():
    """A few labelled records to test conditions on."""
    t = st.Traffic()
    scan = t.request("OPTIONS", "203.0.113.9", "100", ua="friendly-scanner", tag=st.sv_tag("100"))
    scan_reply = t.response(scan, 404)
    crack = t.request("REGISTER", "203.0.113.9", "101", password="1234", tag=st.sv_tag("101:1234"))
    call = t.request(
        "INVITE",
        "10.1.2.3",
        "0088216123456",
        from_user="101",
        ua="Zoiper rv2.8",
        headers=[("X-Campaign", "Summer Sale")],
        password="s3cret-Pass",
        auth_user="101",
    )
    phone = t.request("REGISTER", "10.1.2.3", "101", ua="Yealink SIP-T46S")
    junk = t.raw(b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n", "10.9.9.9")
    broken = t.raw(b"INVITE sip:1@x SIP/2.0\r\nFrom: <sip:a@x>\r\n\r\n", "203.0.113.66")
    t.run()
    return {
        "scan": scan,
        "scan_reply": scan_reply,
        "crack": crack,
        "call": call,
        "phone": phone,
        "junk": junk,
        "broken": broken,
    }


def matching(spec: dict, recs: dict, watchlists=None) -> set[str]:
    problems: list[str] = []
    c = compile_match(spec, watchlists, problems)
    assert problems == []
    out = set()
    for name, r in recs.items():
        m = r.msg
        if c.is_request is not None and c.is_request != m.is_request:
            continue
        meth = (m.method if m.is_request else m.cseq_method).upper()
        if c.methods is not None and meth not in c.methods:
            continue
        if c.status is not None and not c.status(m.status):
            continue
        if c.pred is None or c.pred(r, m):
            out.add(name)
    return out


@pytest.fixture(scope="module")
def recs():
    return message_fields()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"method": ["options"]}, {"scan", "scan_reply"}),
        ({"is_request": False}, {"scan_reply", "junk"}),
        ({"status": "400-499"}, {"scan_reply"}),
        ({"status": [404, 200]}, {"scan_reply"}),
        ({"ruri_user": "100"}, {"scan"}),
        ({"to_user": ["100", "101"]}, {"scan", "scan_reply", "crack", "phone"}),
        ({"to_user": {"regex": "^00"}}, {"call"}),
        ({"to_user": {"numeric": True, "len": "4-"}}, {"call"}),
        ({"to_user": {"len": 3}, "is_request": True}, {"scan", "crack", "phone"}),
        ({"from_user": {"prefix": "10"}, "method": "INVITE"}, {"call"}),
        ({"auth_user": "101"}, {"crack", "call"}),
        ({"auth_user": {"empty": True}, "is_request": True}, {"scan", "phone", "broken"}),
        ({"user": "0088216123456"}, {"call"}),
        ({"user_agent": {"contains": "FRIENDLY"}}, {"scan"}),
        ({"user_agent": {"regex": "yealink|zoiper"}}, {"call", "phone"}),
        ({"user_agent": {"regex": "Yealink", "nocase": False}}, {"phone"}),
        ({"header": {"name": "x-campaign"}}, {"call"}),
        ({"header": {"name": "X-Campaign", "contains": "sale"}}, {"call"}),
        ({"header": {"name": "X-Campaign", "regex": "^Summer"}}, {"call"}),
        (
            {"header": {"name": "User-Agent", "absent": True}, "is_request": True},
            {"crack", "broken"},
        ),
        ({"anomalies": "any"}, {"broken"}),
        ({"anomalies": ["missing_call_id"]}, {"broken"}),
        ({"fuzz": True}, {"junk", "broken"}),
        ({"error": ["not_sip"]}, {"junk"}),
        ({"error": "any"}, {"junk"}),
        ({"tool": "any"}, {"scan", "scan_reply", "crack"}),
        ({"tool": ["sipvicious"], "is_request": True}, {"scan", "crack"}),
        ({"stage": "RHJ"}, {"crack"}),
        ({"stage": ["SS"], "is_request": True}, {"scan"}),
        ({"number_type": ["satellite/intl_network"]}, {"call"}),
        ({"number_country": "001"}, {"call"}),
        ({"number_in": "fraud"}, {"call"}),
        ({"has_credentials": True}, {"crack", "call"}),
        ({"password_recovered": True}, {"crack", "call"}),
        ({"src": ["10.0.0.0/8"]}, {"call", "phone", "junk"}),
        ({"dst": "203.0.113.9/32"}, {"scan_reply"}),
        ({"client": ["203.0.113.0/24"]}, {"scan", "scan_reply", "crack", "broken"}),
        ({"server": "203.0.113.9"}, set()),
        ({"transport": ["udp"], "method": "REGISTER"}, {"crack", "phone"}),
        (
            {"any": [{"stage": "TF"}, {"tool": "sipvicious"}], "is_request": True},
            {"scan", "crack", "call"},
        ),
        ({"not": {"is_request": True}, "fuzz": False}, {"scan_reply"}),
    ],
)
def test_each_match_field(recs, spec, expected):
    assert matching(spec, recs, {"fraud": normalise_watchlist(["+882 16"])}) == expected


def test_nonce_fetch_is_svcracks_request_for_a_nonce_and_its_answer():
    t = st.Traffic()
    fetch = t.request("REGISTER", "203.0.113.5", "101", ua="friendly-scanner", tag=st.SVCRACK_TAG)
    challenge = t.response(fetch, 401)
    tag = st.sv_tag("101:1234")
    guess = t.request("REGISTER", "203.0.113.5", "101", tag=tag, password="1234", cseq=2)
    refused = t.response(guess, 403)
    phone = t.request("REGISTER", "10.0.0.21", "102", ua="Yealink SIP-T46S")
    recs = {"fetch": fetch, "challenge": challenge, "guess": guess, "refused": refused}
    recs["phone"] = phone
    labeller = StageLabeler()
    for r in recs.values():
        labeller.label(r)
    assert fetch.stage == challenge.stage == "RHJ"  # part of the guessing, yet no password
    assert matching({"nonce_fetch": True}, recs) == {"fetch", "challenge"}
    assert matching({"nonce_fetch": False, "stage": "RHJ"}, recs) == {"guess", "refused"}


def test_unconfigured_watch_list_matches_nothing(recs):
    assert matching({"number_in": "fraud"}, recs) == set()
    got: list[str] = []
    assert compile_match({"number_in": ["a", "b"]}, None, got).watchlists == ("a", "b")


def test_watch_list_entries_are_normalised():
    assert normalise_watchlist(["+882 16", "0044-20", 4930]) == frozenset(
        {"+88216", "+4420", "4930"}
    )
    assert normalise_watchlist(["+44 (0) 20 abc"]) is None
    assert normalise_watchlist("+44") is None


def test_labeller_and_conditions_agree_on_fuzz(recs):
    # the `fuzz` condition is the labeller's flag: SSDP counts as fuzz there, which is why the
    # default pack excludes error not_sip explicitly
    assert recs["junk"].fuzz and recs["junk"].msg.error == "not_sip"
    assert StageLabeler().label(recs["broken"]).fuzz


FLAG_SPECS = [
    {"has_credentials": True},
    {"has_credentials": False, "method": "REGISTER"},
    {"fuzz": True, "any": [{"is_request": True}, {"error": "any"}]},
    {"fuzz": False},
    {"tool": "any"},
    {"tool": "", "user_agent": {"regex": "scanner"}},
    {"tool": "sipvicious"},  # a value, not a flag test: stays in the predicate
    {"password_recovered": True, "has_credentials": True},
]


@pytest.mark.parametrize(
    "spec", FLAG_SPECS + [r.match for r in load_pack(DEFAULT_PACK).rules], ids=str
)
def test_flag_dispatch_matches_what_the_whole_predicate_matches(recs, spec):
    """The engine tests a rule's top-level flag conditions in its dispatch table and the rest
    with fast_pred; together they must take exactly the messages the whole predicate takes."""
    c = compile_match(spec, None, [])
    for name, r in recs.items():
        whole = c.pred is None or c.pred(r, r.msg)
        admitted = all(message_flags(r, r.msg)[i] == want for i, want in c.needs)
        split = admitted and (c.fast_pred is None or c.fast_pred(r, r.msg))
        assert split == whole, name


def test_flag_conditions_leave_the_predicate_for_the_dispatch():
    c = compile_match({"has_credentials": False, "tool": "any", "fuzz": True}, None, [])
    assert sorted(c.needs) == [(0, True), (1, False), (3, True)]
    assert c.fast_pred is None
    assert compile_match({"tool": "sipvicious"}, None, []).needs == ()


def test_exploit_shape_asks_only_for_what_sets_the_fuzz_flag():
    """fuzz.exploit-shape says `fuzz: true` so the dispatch skips clean messages; that is only
    right while every error and anomaly it lists sets the labeller's fuzz flag."""
    rule = next(r for r in load_pack(DEFAULT_PACK).rules if r.id == "fuzz.exploit-shape")
    assert rule.match["fuzz"] is True
    errors = {e for alt in rule.match["any"] for e in alt.get("error", [])}
    anomalies = {a for alt in rule.match["any"] for a in alt.get("anomalies", [])}
    assert errors and anomalies
    assert not errors & BENIGN_ERRORS
    assert not anomalies & BENIGN_ANOMALIES


def test_regex_verdicts_are_remembered_and_stay_right(monkeypatch):
    import sipwatch.detect.rules_match as rm

    monkeypatch.setattr(rm, "_MEMO_MAX", 3)
    calls: list[str] = []

    def counted(v: str) -> bool:
        calls.append(v)
        return re.search("scan", v) is not None

    test = rm._remembered(counted)
    seen = ["a-scanner", "pbx", "a-scanner", "pbx", "x" * 300, "x" * 300, "b", "c", "scan"]
    assert [test(v) for v in seen] == [True, False, True, False, False, False, False, False, True]
    # each short value tested once until the table filled (3) and was cleared; long ones always
    assert calls == ["a-scanner", "pbx", "x" * 300, "x" * 300, "b", "c", "scan"]


@pytest.mark.parametrize("nocase", [True, False])
def test_a_remembered_regex_condition_matches_as_the_regex(nocase):
    spec = {"user_agent": {"regex": "^Friendly-scanner|sipvicious$", "nocase": nocase}}
    c = compile_match(spec, None, [])
    rx = re.compile(spec["user_agent"]["regex"], re.IGNORECASE if nocase else 0)
    t = st.Traffic()
    for ua in ["friendly-scanner", "Friendly-scanner", "x sipvicious", "SIPVICIOUS", "pbx"] * 2:
        rec = t.request("OPTIONS", "203.0.113.9", "100", ua=ua)
        assert c.pred(rec, rec.msg) is (rx.search(ua) is not None), ua
