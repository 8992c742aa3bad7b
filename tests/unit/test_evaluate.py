"""Metric computations of `sipwatch evaluate`: labels file, per-label scores, confusion, hits."""

from __future__ import annotations

import json

import pytest

from sipwatch.detect.events import Event
from sipwatch.evaluate import (
    EvaluateError,
    LabelScore,
    primary,
    read_labels,
    score,
)
from sipwatch.evaluate_render import render


def ev(rule: str, stage: str, src: str, eid: int = 0, kind: str = "threshold") -> Event:
    return Event(
        id=eid or hash((rule, src)) & (2**63 - 1), rule=rule, kind=kind, severity="medium",
        stage=stage, src=src, targets=(), node="", sensor="", first=0.0, last=0.0, count=1,
        summary="",
    )  # fmt: skip


def test_label_score_arithmetic():
    s = LabelScore("flood", tp=3, fp=1, fn=2)
    assert s.support == 5
    assert s.precision == pytest.approx(0.75)
    assert s.recall == pytest.approx(0.6)
    assert s.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert LabelScore("spit").f1 == 0.0  # nothing true, nothing predicted: no division by zero


def test_read_labels_header_optional_multi_label(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("source_ip,label\n10.0.0.1,extension_scan\n10.0.0.1, Bruteforce\n\n# note\n")
    assert read_labels(f) == {"10.0.0.1": frozenset({"extension_scan", "bruteforce"})}
    g = tmp_path / "g.csv"
    g.write_text("2001:db8:0::1,benign\n")
    assert read_labels(g) == {"2001:db8::1": frozenset({"benign"})}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("10.0.0.1,scan\n", "l.csv:1: unknown label 'scan'"),
        ("source_ip,label\nnot-an-ip,flood\n", "l.csv:2: 'not-an-ip' is not an IP address"),
        ("10.0.0.1,flood,extra\n", "l.csv:1: want 2 columns"),
        ("10.0.0.1,benign\n10.0.0.1,flood\n", "10.0.0.1 is labelled benign and also flood"),
        ("source_ip,label\n", "no labelled source"),
    ],
)
def test_read_labels_errors_are_one_clear_line(tmp_path, text, needle):
    f = tmp_path / "l.csv"
    f.write_text(text)
    with pytest.raises(EvaluateError) as info:
        read_labels(f)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_read_labels_missing_file(tmp_path):
    with pytest.raises(EvaluateError, match="cannot read labels"):
        read_labels(tmp_path / "none.csv")


def test_primary_is_the_most_advanced_label():
    assert primary({"server_scan", "extension_scan", "bruteforce"}) == "bruteforce"
    assert primary({"server_scan", "flood"}) == "flood"
    assert primary({"flood", "extension_scan"}) == "extension_scan"
    assert primary(set()) == "benign"


TRUTH = {
    "10.0.0.1": frozenset({"extension_scan", "bruteforce"}),
    "10.0.0.2": frozenset({"toll_fraud"}),
    "10.0.0.3": frozenset({"benign"}),
    "10.0.0.4": frozenset({"benign"}),
    "10.0.0.5": frozenset({"flood"}),
    "10.0.0.6": frozenset({"server_scan"}),
}
EVENTS = [
    ev("ss.server-sweep", "SS", "10.0.0.1"),
    ev("es.extension-scan", "ES", "10.0.0.1"),
    ev("es.extension-scan", "ES", "10.0.0.1"),  # an update of the same event: counts once
    ev("rhj.bruteforce", "RHJ", "10.0.0.1"),
    ev("tf.international-call", "TF", "10.0.0.2"),
    ev("tool.attack-tool", "", "10.0.0.4", kind="signature"),  # benign flagged by a tool rule
    ev("flood.client", "FLOOD", "10.0.0.5"),
    ev("flood.server", "FLOOD", ""),  # per-target: rule hit, nobody labelled
    ev("es.extension-scan", "ES", "192.0.2.9"),  # not in the labels file
]


def test_scores_multi_label_per_source():
    r = score(TRUTH, EVENTS, messages=42)
    s = r.scores
    assert (s["extension_scan"].tp, s["extension_scan"].fp, s["extension_scan"].fn) == (1, 0, 0)
    assert (s["bruteforce"].tp, s["bruteforce"].recall) == (1, 1.0)
    assert (s["server_scan"].tp, s["server_scan"].fp, s["server_scan"].fn) == (0, 1, 1)
    assert s["server_scan"].precision == 0.0 and s["server_scan"].recall == 0.0
    assert (s["toll_fraud"].tp, s["flood"].tp) == (1, 1)
    # benign: 10.0.0.3 has no event (TP); 10.0.0.4 was flagged by a tool rule (FN for benign);
    # the missed scanner 10.0.0.6 is predicted benign (FP for benign)
    assert (s["benign"].tp, s["benign"].fp, s["benign"].fn) == (1, 1, 1)
    assert s["benign"].recall == 0.5 and s["benign"].precision == 0.5
    assert ("10.0.0.1", "server_scan") in r.false_positives
    assert ("10.0.0.4", "attack") in r.false_positives
    assert ("10.0.0.6", "server_scan") in r.false_negatives
    assert ("10.0.0.4", "benign") in r.false_negatives
    assert r.unlabelled == ["192.0.2.9"]


def test_confusion_uses_primary_labels():
    r = score(TRUTH, EVENTS)
    assert r.confusion["bruteforce"] == {"bruteforce": 1}
    assert r.confusion["toll_fraud"] == {"toll_fraud": 1}
    assert r.confusion["benign"] == {"benign": 1, "attack": 1}
    assert r.confusion["server_scan"] == {"benign": 1}
    assert sum(sum(c.values()) for c in r.confusion.values()) == len(TRUTH)


def test_rule_hits_count_sources_and_distinct_events():
    r = score(TRUTH, EVENTS)
    assert r.rules["es.extension-scan"].events == 2  # two ids (10.0.0.1 and 192.0.2.9)
    assert r.rules["es.extension-scan"].sources == {"10.0.0.1", "192.0.2.9"}
    assert r.rules["flood.server"].events == 1 and not r.rules["flood.server"].sources


def test_event_sources_are_normalised_like_the_labels():
    r = score({"2001:db8::1": frozenset({"flood"})}, [ev("flood.client", "FLOOD", "2001:DB8:0::1")])
    assert r.scores["flood"].tp == 1


def test_sharing_events_flag_their_source_but_label_nothing():
    # a source that logs in with credentials another one cracked did not guess passwords:
    # the sharing event (stage RHJ, the discoverer's stage) must not make it a bruteforcer
    truth = {"10.0.0.7": frozenset({"toll_fraud"}), "10.0.0.8": frozenset({"benign"})}
    events = [
        ev("sharing.credentials", "RHJ", "10.0.0.7", kind="sharing"),
        ev("tf.international-call", "TF", "10.0.0.7", kind="signature"),
        ev("sharing.extensions", "ES", "10.0.0.8", kind="sharing"),
    ]
    r = score(truth, events)
    assert r.predicted["10.0.0.7"] == {"toll_fraud"}
    assert r.scores["bruteforce"].fp == 0 and r.scores["toll_fraud"].tp == 1
    # a sharer with nothing else is still flagged (not benign), with no label of its own
    assert r.predicted["10.0.0.8"] == frozenset() and "10.0.0.8" in r.attacking
    assert ("10.0.0.8", "attack") in r.false_positives
    assert r.primary_predicted("10.0.0.8") == "attack"
    assert r.source_rules["10.0.0.7"] == {"sharing.credentials", "tf.international-call"}


def test_one_source_with_every_stage_scores_each_label():
    # the multi-stage attacker of the corpus: four rows in the labels file, four labels
    truth = {"10.0.0.9": frozenset({"server_scan", "extension_scan", "bruteforce", "toll_fraud"})}
    events = [
        ev("ss.server-sweep", "SS", "10.0.0.9"),
        ev("chain.stage-advance", "ES", "10.0.0.9", eid=7, kind="chain"),
        ev("chain.stage-advance", "RHJ", "10.0.0.9", eid=7, kind="chain"),  # same chain event
        ev("chain.stage-advance", "TF", "10.0.0.9", eid=7, kind="chain"),
    ]
    r = score(truth, events)
    assert r.predicted["10.0.0.9"] == truth["10.0.0.9"]
    assert all(r.scores[lb].recall == 1.0 for lb in truth["10.0.0.9"])
    assert r.rules["chain.stage-advance"].events == 1
    assert r.confusion == {"toll_fraud": {"toll_fraud": 1}}


def test_json_and_tables_render():
    r = score(TRUTH, EVENTS, messages=42)
    data = json.loads(json.dumps(r.to_dict()))
    assert data["labels"]["bruteforce"]["recall"] == 1.0
    assert "spit" not in data["labels"]  # neither present nor predicted
    assert data["per_source"]["10.0.0.1"]["primary_predicted"] == "bruteforce"
    assert data["per_source"]["10.0.0.3"]["predicted"] == ["benign"]
    assert data["per_source"]["10.0.0.1"]["rules"] == [
        "es.extension-scan", "rhj.bruteforce", "ss.server-sweep",
    ]  # fmt: skip
    assert data["per_source"]["10.0.0.3"]["rules"] == []
    assert [t.title.split(" (")[0] for t in render(r)] == [
        "Per-label scores",
        "Confusion matrix",
        "Rule hits",
        "False positives and negatives by source",
    ]


def test_cli_bad_labels_is_one_error_line(tmp_path):
    from typer.testing import CliRunner

    from sipwatch.cli import app

    bad = tmp_path / "l.csv"
    bad.write_text("10.0.0.1,nonsense\n")
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "x.pcap"), "--labels", str(bad)])
    assert res.exit_code == 2
    assert "unknown label 'nonsense'" in res.output
