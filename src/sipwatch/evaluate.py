"""`sipwatch evaluate`: score the analyzer against a capture whose sources are labelled.

The analysis is the one `sipwatch analyze` runs (stage labeller, password recovery, rule engine
and attack chains), without a trace store. Each event names a source (`Event.src`) and a stage;
the stage gives the evaluation label (STAGE_LABEL). A source predicted with no label is benign.

Label mapping (documented in docs/evaluate.md):
- events with stage SS, ES, RHJ, TF, FLOOD, FUZZ, SPIT -> server_scan, extension_scan,
  bruteforce, toll_fraud, flood, fuzz, spit (rule events and chain events alike);
- events without a stage (tool.* signature rules) mark the source as attacking but add no label:
  its predicted primary label is "attack" and it is not benign;
- information-sharing events (kind "sharing") also mark the source as attacking without a label:
  their stage names what another source did (scanned, cracked the password), which this source
  skipped;
- events without a source (per-target rules such as flood.server) count in the rule hits only.
Scores are multi-label per source: a source labelled {extension_scan, bruteforce} and predicted
{server_scan, extension_scan, bruteforce} is a true positive for two labels and a false positive
for server_scan. Only sources in the labels file are scored.
"""

from __future__ import annotations

import csv
import ipaddress
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sipwatch.detect.events import Event

LABELS = (
    "server_scan",
    "extension_scan",
    "bruteforce",
    "toll_fraud",
    "flood",
    "fuzz",
    "spit",
    "benign",
)
BENIGN = "benign"
UNCLASSIFIED = "attack"  # predicted primary of a source seen only by stage-less (tool) rules
NO_LABEL_KINDS = frozenset({"sharing"})  # events that flag their source but label nothing
STAGE_LABEL = {
    "SS": "server_scan",
    "ES": "extension_scan",
    "RHJ": "bruteforce",
    "TF": "toll_fraud",
    "FLOOD": "flood",
    "FUZZ": "fuzz",
    "SPIT": "spit",
}
# The primary label of a source is its most advanced one. The chain stages rank in attack order;
# flood, fuzz and spit rank above a server scan (a flood of OPTIONS also looks like one) and
# below the extension scan (a fast scanner also trips the flood rule).
PRIMARY_ORDER = (
    BENIGN,
    UNCLASSIFIED,
    "server_scan",
    "fuzz",
    "flood",
    "spit",
    "extension_scan",
    "bruteforce",
    "toll_fraud",
)
_RANK = {label: i for i, label in enumerate(PRIMARY_ORDER)}


class EvaluateError(Exception):
    """A problem the user can fix; its text is the one line to show."""


@dataclass(slots=True)
class LabelScore:
    label: str
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def support(self) -> int:  # sources that truly carry the label
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label, "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "support": self.support, "precision": round(self.precision, 4),
            "recall": round(self.recall, 4), "f1": round(self.f1, 4),
        }  # fmt: skip


@dataclass(slots=True)
class RuleHits:
    rule: str
    sources: set[str] = field(default_factory=set)
    events: int = 0  # distinct event ids (an event updated while it keeps firing counts once)

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "sources": len(self.sources), "events": self.events}


@dataclass(slots=True)
class Evaluation:
    truth: dict[str, frozenset[str]]  # scored source -> true labels
    predicted: dict[str, frozenset[str]]  # scored source -> predicted labels ({} = benign)
    attacking: set[str]  # sources with at least one event (scored or not)
    scores: dict[str, LabelScore]
    confusion: dict[str, Counter]  # true primary -> Counter(predicted primary)
    rules: dict[str, RuleHits]
    source_rules: dict[str, set[str]]  # source -> rules with an event for it
    false_positives: list[tuple[str, str]]  # (source, label predicted but not true)
    false_negatives: list[tuple[str, str]]  # (source, true label not predicted)
    unlabelled: list[str]  # sources with events that the labels file does not name
    messages: int = 0

    def primary_true(self, src: str) -> str:
        return primary(self.truth[src])

    def primary_predicted(self, src: str) -> str:
        return predicted_primary(self.predicted[src], src in self.attacking)

    def to_dict(self) -> dict[str, object]:
        present = [lb for lb in LABELS if self.scores[lb].support or self.scores[lb].fp]
        return {
            "messages": self.messages,
            "sources": len(self.truth),
            "labels": {lb: self.scores[lb].to_dict() for lb in present},
            "confusion": {t: dict(sorted(c.items())) for t, c in sorted(self.confusion.items())},
            "rules": [h.to_dict() for h in sorted(self.rules.values(), key=lambda h: h.rule)],
            "false_positives": [{"source": s, "label": lb} for s, lb in self.false_positives],
            "false_negatives": [{"source": s, "label": lb} for s, lb in self.false_negatives],
            "unlabelled": self.unlabelled,
            "per_source": {
                s: {
                    "true": sorted(self.truth[s]),
                    "predicted": sorted(self.predicted[s]) or [BENIGN],
                    "primary_true": self.primary_true(s),
                    "primary_predicted": self.primary_predicted(s),
                    "rules": sorted(self.source_rules.get(s, ())),
                }
                for s in sorted(self.truth, key=_addr_key)
            },
        }


def primary(labels: Iterable[str]) -> str:
    """The most advanced of ``labels`` (benign when there is none)."""
    return max(labels, key=lambda lb: _RANK.get(lb, 0), default=BENIGN)


def predicted_primary(labels: frozenset[str], attacked: bool) -> str:
    if labels:
        return primary(labels)
    return UNCLASSIFIED if attacked else BENIGN


def _addr(text: str) -> str:
    """One spelling per address (IPv6 compressed); a non-address is kept as written."""
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        return text.strip()


def _addr_key(text: str) -> tuple:
    try:
        ip = ipaddress.ip_address(text)
        return (ip.version, int(ip), "")
    except ValueError:
        return (9, 0, text)


def read_labels(path: str | Path) -> dict[str, frozenset[str]]:
    """source_ip,label rows (header optional, several rows per source = several labels)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise EvaluateError(f"cannot read labels {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise EvaluateError(f"{path}: not a text (UTF-8) CSV file") from None
    labels: dict[str, set[str]] = defaultdict(set)
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if n == 1 and cells[0].lower() in ("source_ip", "source", "src", "ip"):
            continue  # the header
        if len(cells) != 2:
            raise EvaluateError(f"{path}:{n}: want 2 columns source_ip,label, got {len(cells)}")
        src, label = cells[0], cells[1].lower()
        try:
            ip = ipaddress.ip_address(src.strip("[]"))
        except ValueError:
            raise EvaluateError(f"{path}:{n}: {src!r} is not an IP address") from None
        if label not in LABELS:
            raise EvaluateError(
                f"{path}:{n}: unknown label {cells[1]!r} (one of {', '.join(LABELS)})"
            )
        labels[str(ip)].add(label)
    for src, have in labels.items():
        if BENIGN in have and len(have) > 1:
            raise EvaluateError(f"{path}: {src} is labelled benign and also {_others(have)}")
    if not labels:
        raise EvaluateError(f"{path}: no labelled source")
    return {src: frozenset(have) for src, have in labels.items()}


def _others(have: set[str]) -> str:
    return ", ".join(sorted(have - {BENIGN}))


def score(
    truth: Mapping[str, frozenset[str]], events: Iterable[Event], messages: int = 0
) -> Evaluation:
    """Compare the events' per-source labels with ``truth``; pure (unit-tested directly)."""
    truth = {_addr(s): frozenset(v) for s, v in truth.items()}
    found: dict[str, set[str]] = defaultdict(set)
    attacking: set[str] = set()
    by_source: dict[str, set[str]] = defaultdict(set)
    rules: dict[str, RuleHits] = {}
    seen: set[tuple[str, int]] = set()
    for ev in events:
        hits = rules.setdefault(ev.rule, RuleHits(ev.rule))
        if (ev.rule, ev.id) not in seen:
            seen.add((ev.rule, ev.id))
            hits.events += 1
        if not ev.src:
            continue  # a per-target event: no source to blame
        src = _addr(ev.src)
        hits.sources.add(src)
        attacking.add(src)
        by_source[src].add(ev.rule)
        label = None if ev.kind in NO_LABEL_KINDS else STAGE_LABEL.get(ev.stage)
        if label is not None:
            found[src].add(label)
    predicted = {s: frozenset(found.get(s, ())) for s in truth}
    scores = {lb: LabelScore(lb) for lb in LABELS}
    confusion: dict[str, Counter] = defaultdict(Counter)
    fps: list[tuple[str, str]] = []
    fns: list[tuple[str, str]] = []
    for src in sorted(truth, key=_addr_key):
        want = truth[src]
        got = set(predicted[src])
        if not got and src not in attacking:
            got = {BENIGN}
        for lb in LABELS:
            if lb in want and lb in got:
                scores[lb].tp += 1
            elif lb in got:
                scores[lb].fp += 1
                fps.append((src, lb))
            elif lb in want:
                scores[lb].fn += 1
                fns.append((src, lb))
        if not predicted[src] and src in attacking and BENIGN in want:
            fps.append((src, UNCLASSIFIED))  # flagged by a tool rule only: still flagged
        confusion[primary(want)][predicted_primary(predicted[src], src in attacking)] += 1
    unlabelled = sorted(attacking - set(truth), key=_addr_key)
    return Evaluation(
        truth=truth, predicted=predicted, attacking=attacking, scores=scores,
        confusion=dict(confusion), rules=rules, source_rules=dict(by_source),
        false_positives=fps, false_negatives=fns, unlabelled=unlabelled, messages=messages,
    )  # fmt: skip


class _Collect:
    """Event sink that keeps every emitted event (updates included; score() de-duplicates)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, events: list[Event]) -> None:
        self.events.extend(events)

    def close(self) -> None:
        pass


def run_events(
    captures: Sequence[str], rules: Sequence[str] = (), region: str | None = None
) -> tuple[list[Event], int]:
    """The events `sipwatch analyze` would store for ``captures``, and the message count."""
    from sipwatch.analyze import AnalyzeError, _detector, _region
    from sipwatch.capture.api import read_captures
    from sipwatch.capture.errors import CaptureError
    from sipwatch.detect.detector import EventAction
    from sipwatch.detect.passwords import analyze_recovery
    from sipwatch.detect.stages import LabelerConfig, labeller_class
    from sipwatch.pipeline import Pipeline

    try:
        labeler = labeller_class()(LabelerConfig(default_region=_region(region)))
        detector = _detector(rules)
        records = read_captures(list(captures))
    except (AnalyzeError, CaptureError) as exc:
        raise EvaluateError(str(exc)) from None
    sink = _Collect()
    pipe = Pipeline(
        [labeler.label, analyze_recovery().label, *detector.analyzers],
        [EventAction(detector, None, sinks=[sink])],
    )
    try:
        pipe.run(records)
    except CaptureError as exc:
        raise EvaluateError(str(exc)) from None
    finally:
        pipe.close()
    return sink.events, pipe.stats.records


def evaluate(
    captures: Sequence[str],
    labels_csv: str | Path,
    rules: Sequence[str] = (),
    region: str | None = None,
) -> Evaluation:
    """Run the analyzer over ``captures`` and score it against the labels file."""
    truth = read_labels(labels_csv)
    events, messages = run_events(captures, rules, region)
    return score(truth, events, messages)
