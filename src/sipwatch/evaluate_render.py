"""Rich tables for an Evaluation: scores per label, confusion matrix, rule hits, mistakes."""

from __future__ import annotations

from rich.table import Table

from sipwatch.evaluate import LABELS, PRIMARY_ORDER, Evaluation


def render(ev: Evaluation) -> list[Table]:
    return [_scores(ev), _confusion(ev), _rules(ev), _mistakes(ev)]


def _scores(ev: Evaluation) -> Table:
    t = Table(title=f"Per-label scores ({len(ev.truth)} sources, {ev.messages} messages)")
    for col in ("label", "support", "TP", "FP", "FN", "precision", "recall", "F1"):
        t.add_column(col, justify="left" if col == "label" else "right")
    for lb in LABELS:
        s = ev.scores[lb]
        if not (s.support or s.fp):
            continue  # a label neither present nor predicted says nothing
        t.add_row(
            lb, str(s.support), str(s.tp), str(s.fp), str(s.fn),
            f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}",
        )  # fmt: skip
    return t


def _confusion(ev: Evaluation) -> Table:
    rows = [lb for lb in PRIMARY_ORDER if lb in ev.confusion]
    cols = [lb for lb in PRIMARY_ORDER if any(c[lb] for c in ev.confusion.values())]
    t = Table(title="Confusion matrix (primary label: rows true, columns predicted)")
    t.add_column("true \\ predicted")
    for c in cols:
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(r, *(str(ev.confusion[r][c] or "") for c in cols))
    return t


def _rules(ev: Evaluation) -> Table:
    t = Table(title="Rule hits")
    t.add_column("rule")
    t.add_column("sources", justify="right")
    t.add_column("events", justify="right")
    for h in sorted(ev.rules.values(), key=lambda h: (-len(h.sources), h.rule)):
        t.add_row(h.rule, str(len(h.sources)), str(h.events))
    return t


def _mistakes(ev: Evaluation) -> Table:
    t = Table(title="False positives and negatives by source")
    t.add_column("source")
    t.add_column("kind")
    t.add_column("label")
    for src, lb in ev.false_positives:
        t.add_row(src, "false positive", lb)
    for src, lb in ev.false_negatives:
        t.add_row(src, "false negative", lb)
    for src in ev.unlabelled:
        t.add_row(src, "unlabelled", "(has events, not in the labels file)")
    if not t.row_count:
        t.add_row("-", "none", "-")
    return t
