"""The stage labeller in C (sipwatch._native.Labeller) vs StageLabeler: records/s, one core.

    python bench/bench_native_labeller.py [--packets 100000] [--capture FILE] [--repeat 3]

The records of a gen_capture.py capture (written to a temporary folder unless --capture is
given) are read once; their flat fields and ids are computed before timing (both labellers
read them; whoever comes first in the pipeline pays for them). Each run labels all records
with a fresh labeller, in order, from empty labels; the best of --repeat runs counts, in CPU
time of this process (other load on the machine changes little), with the garbage collector
off. Both labellers share one NumberClassifier, warmed beforehand, so `phonenumbers` (the same
Python code for both) is measured once, apart:

- StageLabeler.label(record)      the Python labeller
- Labeller.label(record)          the C labeller through a Record (read the Record, sw_label,
                                  write the labels back)
- sw_label                        the C entry of the bulk path alone, over sw_msg views built
                                  from the records beforehand (Labeller._time_sw_label)
- of which classify()             NumberClassifier.classify for the same users, timed alone
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

from benchdata import capture_records  # bench/ is the script's folder
from sipwatch.detect.stages import StageLabeler
from sipwatch.native import part
from sipwatch.record import Record
from sipwatch.sip.numbers import NumberClassifier

HERE = Path(__file__).resolve().parent
CLEAN = {
    "stage": "",
    "tool": "",
    "tool_data": "",
    "fuzz": False,
    "number": "",
    "number_type": "",
    "number_country": "",
    "request_id": 0,
}


class Recording(NumberClassifier):
    """A NumberClassifier that notes what it is asked (to time classify() alone)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def classify(self, user: str):  # type: ignore[no-untyped-def]
        self.asked.append(user)
        return super().classify(user)


def clean(records: list[Record]) -> None:
    for r in records:
        for k, v in CLEAN.items():
            setattr(r, k, v)


def cpu(fn) -> float:  # type: ignore[no-untyped-def]
    gc.collect()
    gc.disable()
    try:
        t = time.process_time()
        fn()
        return time.process_time() - t
    finally:
        gc.enable()


def best(runs: int, records: list[Record], fn) -> float:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(runs):
        clean(records)
        out.append(cpu(lambda: fn(records)))
    return min(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--capture", type=Path, help="an existing capture instead of gen_capture")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    labeller = part("Labeller")
    if labeller is None:
        sys.exit("sipwatch._native has no Labeller (build it: python setup.py build_ext -i)")

    records = capture_records(args.packets, args.capture)
    for r in records:
        r.msg.flat()
        _ = r.id
    n = len(records)

    # the users both labellers will ask classify() about, and a classifier that knows them
    numbers = Recording()
    for _ in StageLabeler(numbers=numbers).label_all(records):
        pass
    asked = numbers.asked
    warm = NumberClassifier()
    for u in asked:
        warm.classify(u)

    def python(recs: list[Record]) -> None:
        label = StageLabeler(numbers=warm).label
        for r in recs:
            label(r)

    def c_record(recs: list[Record]) -> None:
        label = labeller(numbers=warm).label
        for r in recs:
            label(r)

    def classify(_: list[Record]) -> None:
        c = warm.classify
        for u in asked:
            c(u)

    t_py = best(args.repeat, records, python)
    t_c = best(args.repeat, records, c_record)
    t_sw = []
    for _ in range(args.repeat):
        clean(records)
        gc.collect()
        gc.disable()
        try:
            count, seconds = labeller(numbers=warm)._time_sw_label(records)
        finally:
            gc.enable()
        assert count == n
        t_sw.append(seconds)
    t_sw_best = min(t_sw)
    t_cls = best(args.repeat, records, classify)

    print(
        f"{args.capture.name if args.capture else f'gen_capture --packets {args.packets}'}: {n:,} records"
    )
    print(f"{'':32s} {'records/s':>12s} {'us/record':>10s} {'x Python':>9s}")
    for name, t in (
        ("StageLabeler.label(record)", t_py),
        ("Labeller.label(record)", t_c),
        ("sw_label (prebuilt views)", t_sw_best),
    ):
        print(f"{name:32s} {n / t:12,.0f} {t / n * 1e6:10.3f} {t_py / t:9.1f}")
    print(
        f"{'  of which classify()':32s} {'':12s} {t_cls / n * 1e6:10.3f}"
        f"   ({len(asked):,} calls, {t_cls / max(len(asked), 1) * 1e6:.2f} us each)"
    )
    print(f"{'sw_label without classify()':32s} {'':12s} {(t_sw_best - t_cls) / n * 1e6:10.3f}")


if __name__ == "__main__":
    main()
