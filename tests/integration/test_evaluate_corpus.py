"""`sipwatch evaluate` on a labelled corpus made by real tools against the honeypot (loopback).

bench/make_corpus.py records SIPVicious (svmap, svwar, svcrack) and SIPp attacks (toll fraud,
OPTIONS flood) plus benign SIPp/Python clients, each actor from its own 127.0.0.x address. The
test wants every attacking source labelled correctly and no benign source flagged; sip-doctor
(`read --json`, its `security` findings) runs beside it when installed, and every attacking
source it names must also be one sipwatch labels correctly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from make_corpus import ACTORS, make_corpus, missing_tools  # noqa: E402

SIPWATCH = [sys.executable, "-m", "sipwatch.cli"]
ATTACKERS = {a: lb for a, lb in ACTORS.items() if lb != "benign"}
BENIGN = {a for a, lb in ACTORS.items() if lb == "benign"}


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


def test_every_attacking_source_gets_its_label(scores: dict):
    for label in set(ATTACKERS.values()):
        assert scores["labels"][label]["recall"] == 1.0, (label, scores["per_source"])
    for src, label in ATTACKERS.items():
        assert scores["per_source"][src]["primary_predicted"] == label, scores["per_source"][src]


def test_no_benign_source_is_flagged(scores: dict):
    flagged = {fp["source"] for fp in scores["false_positives"]}
    assert not flagged & BENIGN, scores["false_positives"]
    assert scores["labels"]["benign"]["recall"] == 1.0
    assert scores["unlabelled"] == []


def test_the_table_output_names_the_rules(corpus: tuple[Path, Path]):
    pcap, labels = corpus
    res = subprocess.run(
        [*SIPWATCH, "evaluate", str(pcap), "--labels", str(labels)],
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, COLUMNS="160"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    for rule in ("ss.server-sweep", "es.extension-scan", "flood.client", "tf.international-call"):
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
    named = {f["source"] for f in json.loads(res.stdout).get("security", [])}
    print(f"sip-doctor names {sorted(named)}; attackers {sorted(ATTACKERS)}")
    ours = {s for s, v in scores["per_source"].items() if v["primary_predicted"] != "benign"}
    assert named & set(ATTACKERS) <= ours
    assert set(ATTACKERS) <= ours
    assert not ours & BENIGN
