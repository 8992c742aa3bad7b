"""`sipwatch evaluate` on a labelled corpus made by real tools against the honeypot (loopback).

bench/make_corpus.py records SIPVicious (svmap, svwar, svcrack) and SIPp attacks (toll fraud,
OPTIONS flood, SPIT dialer, malformed messages), one address that goes through all four stages,
one that uses credentials another cracked, plus benign SIPp/Python clients, each actor from its
own 127.0.0.x address. The test wants every label (all eight) found with recall 1.0, no benign
source flagged, the chain events for the multi-stage actor and the sharing event for the one
that reuses cracked credentials. sip-doctor (`read --json`, its `security` findings) runs beside
it when installed, and every attacking source it names must also be one sipwatch labels
correctly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sipwatch.evaluate import LABELS, run_events

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from make_corpus import (  # noqa: E402
    ACTORS,
    CRACKER,
    MULTI_STAGE,
    SHARER,
    TRIVIAL_USER,
    make_corpus,
    missing_tools,
)

SIPWATCH = [sys.executable, "-m", "sipwatch.cli"]
ATTACKERS = {a: set(lbs) for a, lbs in ACTORS.items() if lbs != ("benign",)}
BENIGN = {a for a, lbs in ACTORS.items() if lbs == ("benign",)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/install-test-deps.sh)")
    if os.geteuid() != 0:
        pytest.skip("tcpdump on lo needs root")
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def scores(corpus: tuple[Path, Path]) -> dict:
    pcap, labels = corpus
    res = subprocess.run(
        [*SIPWATCH, "evaluate", str(pcap), "--labels", str(labels), "--region", "NL", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def events(corpus: tuple[Path, Path]) -> list:
    """The events `sipwatch analyze` would store (the analysis evaluate scores)."""
    pcap, _ = corpus
    return run_events([str(pcap)], region="NL")[0]


def test_the_corpus_has_every_label():
    assert {lb for lbs in ACTORS.values() for lb in lbs} == set(LABELS)


def test_every_label_is_found_with_recall_1(scores: dict):
    for label in LABELS:
        s = scores["labels"][label]
        assert s["support"] >= 1, label
        assert (s["recall"], s["precision"]) == (1.0, 1.0), (label, s, scores["per_source"])


def test_every_attacking_source_gets_exactly_its_labels(scores: dict):
    for src, labels in ATTACKERS.items():
        got = scores["per_source"][src]
        assert set(got["predicted"]) == labels, got
        assert got["primary_predicted"] == got["primary_true"], got
    assert scores["false_negatives"] == []


def test_no_benign_source_is_flagged(scores: dict):
    flagged = {fp["source"] for fp in scores["false_positives"]}
    assert not flagged & BENIGN, scores["false_positives"]
    for src in BENIGN:
        assert scores["per_source"][src]["rules"] == [], scores["per_source"][src]
    assert scores["labels"]["benign"]["recall"] == 1.0
    assert scores["unlabelled"] == []  # nor the server: answers that echo a fuzzer's headers


def test_the_multi_stage_actor_moves_through_the_chain(events: list):
    chain = [e for e in events if e.rule == "chain.stage-advance"]
    assert {e.src for e in chain} == {MULTI_STAGE}  # single-stage actors make no move
    moves = list(dict.fromkeys((e.data["from"], e.stage) for e in chain))
    assert moves == [("SS", "ES"), ("ES", "RHJ"), ("RHJ", "TF")]
    assert len({e.id for e in chain}) == 1  # one chain, updated as it advances
    last = chain[-1]
    assert last.severity == "critical"  # it found credentials before it called
    assert all(last.data["stages"][s]["reached"] for s in ("SS", "ES", "RHJ", "TF"))
    assert last.data["credentials_found"] == 1 and last.data["numbers_dialled"] == 1
    assert "sipvicious" in last.data["tools"]


def test_the_sharer_is_linked_to_the_cracker(events: list):
    sharing = [e for e in events if e.kind == "sharing"]
    assert {(e.rule, e.src) for e in sharing} == {("sharing.credentials", SHARER)}
    ev = sharing[-1]
    assert ev.data["discovered_by"] == [CRACKER] and ev.data["items"] == ["150"]
    assert ev.data["match"] == ["login"]
    # the toll-fraud caller also uses what the cracker found (101/1234), but 1234 is a password
    # every guesser tries first: knowing it links nobody
    assert TRIVIAL_USER not in {e.src for e in sharing}


def test_the_table_output_names_the_rules(corpus: tuple[Path, Path]):
    pcap, labels = corpus
    res = subprocess.run(
        [*SIPWATCH, "evaluate", str(pcap), "--labels", str(labels), "--region", "NL"],
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, COLUMNS="160"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    for rule in (
        "ss.server-sweep", "es.extension-scan", "rhj.auth-failures", "flood.client",
        "tf.international-call", "spit.call-spray", "fuzz.malformed-burst",
        "chain.stage-advance", "sharing.credentials",
    ):  # fmt: skip
        assert rule in res.stdout


def test_sipwatch_finds_what_sip_doctor_finds_and_more(corpus: tuple[Path, Path], scores: dict):
    if shutil.which("sip-doctor") is None:
        pytest.skip("needs sip-doctor (pip install sip-doctor)")
    pcap, _ = corpus
    res = subprocess.run(
        ["sip-doctor", "read", "--json", str(pcap)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    findings = json.loads(res.stdout).get("security", [])
    named = {f["source"] for f in findings}
    kinds: dict[str, set[str]] = {}
    for f in findings:
        kinds.setdefault(f["source"], set()).add(f["kind"])
    print(f"sip-doctor names {sorted(kinds.items())}; attackers {sorted(ATTACKERS)}")
    ours = {s for s, v in scores["per_source"].items() if v["primary_predicted"] != "benign"}
    assert named & set(ATTACKERS) <= ours
    assert set(ATTACKERS) <= ours
    assert not ours & BENIGN
