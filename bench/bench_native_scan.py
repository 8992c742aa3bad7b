"""The bulk path's C scanner (sipwatch._native sw_scan) vs the Python parser, one core.

    python bench/bench_native_scan.py [--packets 20000] [--rounds 5]

Over the SIP payloads of a generated attack capture (bench/gen_capture.py; written to
bench/out/ and reused), messages per CPU-second of:

- sw_scan alone (the ``scan_count`` hook: a C loop over the list, no Python object built);
- the ``scan()`` test hook (sw_scan plus a dict of 25 Python values per message);
- ``sipwatch.sip.message.parse`` (with the C accelerator when it is built);
- parse + the fields sw_scan gives (flat(), Call-ID, Contact, Content-Type, anomalies, ...):
  the Python work sw_scan replaces;
- parse + ``store.rows.message_row`` (the whole row, Record.id's hash and the day included).

Then the time of one sw_scan call for each typical message of bench/bench_parse.py.
Best of --rounds runs each (load only ever slows a run).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_parse import SAMPLES  # noqa: E402
from sipwatch import _native  # noqa: E402
from sipwatch.capture.api import read_captures  # noqa: E402
from sipwatch.record import Record  # noqa: E402
from sipwatch.sip import speedups  # noqa: E402
from sipwatch.sip.message import parse  # noqa: E402
from sipwatch.store.rows import message_row  # noqa: E402


class Payload(NamedTuple):
    raw: bytes
    ts: float


def keep_raw(raw: bytes, ts: float, *_seen: object, **_more: object) -> Payload:
    return Payload(raw, ts)


def payloads_of(packets: int) -> list[bytes]:
    path = HERE / "out" / f"scan-{packets}.pcap"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, str(HERE / "gen_capture.py"), "--packets", str(packets),
             "--out", str(path)],
            check=True,
        )  # fmt: skip
    return [p.raw for p in read_captures([str(path)], make_record=keep_raw)]


def best_rate(fn: Callable[[], object], count: int, rounds: int) -> float:
    """Best of `rounds` runs of fn() (which handles `count` messages), in messages/CPU-s."""
    best = 0.0
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        best = max(best, count / max(time.process_time() - t0, 1e-9))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--packets", type=int, default=20000, help="size of the generated capture")
    ap.add_argument("--rounds", type=int, default=5, help="runs per measurement (best is kept)")
    args = ap.parse_args()
    if not hasattr(_native, "scan_count"):
        sys.exit("sipwatch._native was built without the scanner (scan.c)")
    payloads = payloads_of(args.packets)
    n = len(payloads)
    handled = _native.scan_count(payloads)
    size = sum(map(len, payloads)) / n
    print(
        f"{n:,} payloads (mean {size:.0f} bytes); sw_scan handles {handled:,} ({handled / n:.1%})"
    )
    print(f"C accelerator for parse(): {'built' if speedups.AVAILABLE else 'not built'}")

    scan = _native.scan

    def each(fn: Callable[[bytes], object]) -> Callable[[], None]:
        def run() -> None:  # results are dropped at once, as a streaming pipeline does
            for raw in payloads:
                fn(raw)

        return run

    def row(raw: bytes) -> tuple:
        return message_row(
            Record(1.7e9, "udp", "203.0.113.9", 5060, "192.0.2.1", 5060, raw, parse(raw))
        )

    def fields(raw: bytes) -> tuple:
        m = parse(raw)  # then what sw_scan gives: the row's parsed fields, from_display, ...
        h = m.headers
        return (m.flat(), h.get("call-id"), h.get("contact"), h.get("content-type"),
                ",".join(m.anomalies), len(m.body), m.has_credentials)  # fmt: skip

    runs = [
        ("sw_scan (scan_count, no objects)", lambda: _native.scan_count(payloads)),
        ("scan() hook (dict per message)", each(scan)),
        ("parse()", each(parse)),
        ("parse() + the same fields", each(fields)),
        ("parse() + message_row()", each(row)),
    ]
    rates = [(name, best_rate(fn, n, args.rounds)) for name, fn in runs]
    base = rates[3][1]
    print(f"\n{'over the capture':36s} {'messages/s':>12s} {'us/msg':>8s} {'x py':>8s}")
    for name, r in rates:
        print(f"{name:36s} {r:12,.0f} {1e6 / r:8.3f} {r / base:8.1f}")

    print(f"\n{'one message, sw_scan':36s} {'bytes':>6s} {'ns/call':>8s}")
    for name, raw in SAMPLES.items():
        batch = [raw] * 20000
        assert _native.scan_count([raw]) == 1, name
        r = best_rate(lambda b=batch: _native.scan_count(b), len(batch), args.rounds)
        print(f"{name:36s} {len(raw):6d} {1e9 / r:8.0f}")


if __name__ == "__main__":
    main()
