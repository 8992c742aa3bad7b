"""The password recovery in C (sipwatch._native.Recovery) vs PasswordRecovery: µs per request.

    python bench/bench_native_passwords.py [--capture FILE | --packets 100000] [--repeat 5]
                                           [--config analyze|default]

The digest-authenticated requests (Authorization or Proxy-Authorization) of a capture
(gen_capture.py's unless --capture is given) are labelled by the stage labeller (tool and
tool_data: svcrack's claim), their credentials parsed and their ids computed before timing.
Each run takes a fresh recovery (--config analyze: `sipwatch analyze`'s, analyze_recovery();
default: PasswordRecovery()'s, the honeypot's 1,000 candidates) through all of them in order;
the best of --repeat runs counts, in CPU time of this process, garbage collector off:

- recover(cred, method, body, claim)   the search alone, Python vs C (through a Digest)
- label(record)                        what a pipeline calls, Python vs C (through a Record)
- sw_recover                           the C entry of the bulk path alone, over sw_msg views
                                       built from the records beforehand (Recovery._sw_recover)
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

from benchdata import capture_records  # bench/ is the script's folder
from sipwatch.detect.fingerprints import SIPVICIOUS
from sipwatch.detect.passwords import PasswordRecovery, analyze_recovery
from sipwatch.detect.stages import StageLabeler
from sipwatch.native import part
from sipwatch.record import Record

HERE = Path(__file__).resolve().parent


def cpu(fn) -> float:  # type: ignore[no-untyped-def]
    gc.collect()
    gc.disable()
    try:
        t = time.process_time()
        fn()
        return time.process_time() - t
    finally:
        gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--capture", type=Path, help="an existing capture instead of gen_capture")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--config", choices=("analyze", "default"), default="analyze")
    args = ap.parse_args()
    recovery_type = part("Recovery")
    if recovery_type is None:
        sys.exit("sipwatch._native has no Recovery (build it: python setup.py build_ext -i)")

    records = capture_records(args.packets, args.capture)
    labeller = StageLabeler()
    for r in records:
        labeller.label(r)
    reqs: list[Record] = []
    for r in records:
        msg = r.msg
        if msg.is_request and msg.has_credentials and msg.credentials is not None:
            _ = r.id
            reqs.append(r)
    args_of = [
        (r.msg.credentials, r.msg.method, r.msg.body, r.tool_data if r.tool == SIPVICIOUS else "")
        for r in reqs
    ]
    n = len(reqs)

    def make(native: bool):  # type: ignore[no-untyped-def]
        if args.config == "analyze":
            return analyze_recovery(native=native)
        return recovery_type() if native else PasswordRecovery()

    def recover(native: bool) -> float:
        rec = make(native)
        fn = rec.recover
        return cpu(lambda: [fn(*a) for a in args_of])

    def label(native: bool) -> float:
        rec = make(native)
        fn = rec.label
        return cpu(lambda: [fn(r) for r in reqs])

    def sw_recover() -> float:
        gc.collect()
        gc.disable()
        try:
            _, seconds = make(True)._sw_recover(reqs)
        finally:
            gc.enable()
        return seconds

    # every way gives the same passwords and stats (the tests check it in depth)
    py, c = make(False), make(True)
    want = [py.recover(*a) for a in args_of]
    assert [c.recover(*a) for a in args_of] == want
    assert c.stats == py.stats
    got, _ = make(True)._sw_recover(reqs)
    assert got == want

    t = {
        "recover, Python": min(recover(False) for _ in range(args.repeat)),
        "recover, C": min(recover(True) for _ in range(args.repeat)),
        "label, Python": min(label(False) for _ in range(args.repeat)),
        "label, C": min(label(True) for _ in range(args.repeat)),
        "sw_recover (prebuilt views)": min(sw_recover() for _ in range(args.repeat)),
    }
    found = sum(1 for w in want if w)
    name = args.capture.name if args.capture else f"gen_capture --packets {args.packets}"
    print(f"{name}: {len(records):,} records, {n:,} digest requests ({found:,} recovered), "
          f"config {args.config}")  # fmt: skip
    print(f"{'':30s} {'requests/s':>12s} {'us/request':>11s} {'x Python':>9s}")
    for key, secs in t.items():
        ref = t["label, Python"] if key.startswith(("label", "sw_")) else t["recover, Python"]
        print(f"{key:30s} {n / secs:12,.0f} {secs / n * 1e6:11.2f} {ref / secs:9.1f}")


if __name__ == "__main__":
    main()
