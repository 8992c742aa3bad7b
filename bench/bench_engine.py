"""Benchmark the rule engine (detect/engine.py) with the default rule pack.

Two measurements (issue 4: >= 150,000 records/s on one core over >= 1,000,000 records; state
for 1,000,000 distinct sources <= 500 MB):

1. Throughput: the records of bench/gen_capture.py's capture (made when missing) are read with
   sipwatch.capture.api.read_captures and labelled by StageLabeler and PasswordRecovery, as
   `sipwatch analyze` does, before any timing; then `engine.feed` alone is timed over the
   pre-built records (and `flush` at the end), `--repeat` times with a fresh engine. Record ids
   are reset before each run, so the engine pays for the ids its evidence needs. The
   labeller's own rate over the same records is the in-run reference.
2. Spoofed sources: a flood in which every request comes from a new address (one request per
   source and, with --responses, the server's answer), streamed so that only the engine keeps
   anything. Memory is what tracemalloc sees allocated after the run (engine state, including
   the address strings it keeps), with tables large enough to hold every source; then the
   same flood without tracemalloc and with the default table size (262,144 keys) gives the
   rate and the evictions.

    python bench/bench_engine.py --packets 1000000 --spoofed 1000000
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from benchdata import attack_capture
from sipwatch.capture.api import read_captures
from sipwatch.detect.engine import Engine, EngineConfig
from sipwatch.detect.passwords import PasswordRecovery
from sipwatch.detect.stages import LabelerConfig, StageLabeler
from sipwatch.record import Record

REPO = Path(__file__).resolve().parent.parent
SERVER = "192.0.2.10"
_GC_GEN0 = 50_000  # as Pipeline.run sets it


def load(path: Path) -> tuple[list[Record], float, float]:
    """Records of the capture, labelled; returns (records, read+parse s, labeller s)."""
    labeller, recovery = StageLabeler(), PasswordRecovery()
    t0 = time.perf_counter()
    records = list(read_captures([str(path)]))
    t1 = time.perf_counter()
    for r in records:
        labeller.label(r)
    t2 = time.perf_counter()
    for r in records:
        recovery.label(r)
    return records, t1 - t0, t2 - t1


def time_engine(records: list[Record], repeat: int) -> tuple[list[float], Engine, list]:
    times, engine, events = [], None, []
    threshold = gc.get_threshold()
    for _ in range(repeat):
        for r in records:
            r._id = 0  # the engine computes the ids it needs, as it would live
        gc.collect()
        gc.set_threshold(_GC_GEN0, *threshold[1:])
        engine = Engine.load()
        feed = engine.feed
        events = []
        t = time.perf_counter()
        for r in records:
            got = feed(r)
            if got:
                events.extend(got)
        events.extend(engine.flush())
        times.append(time.perf_counter() - t)
        gc.set_threshold(*threshold)
    return times, engine, events  # type: ignore[return-value]


# --- spoofed sources -------------------------------------------------------------------------
_REQ = (
    "%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s:5060;branch=z9hG4bK%d\r\nMax-Forwards: 70\r\n"
    "From: <sip:%s@%s>;tag=%x\r\nTo: <sip:%s@%s>\r\nCall-ID: %d@%s\r\nCSeq: 1 %s\r\n"
    "User-Agent: Flood/1.0\r\nContent-Length: 0\r\n\r\n"
)
_RESP = (
    "SIP/2.0 %d %s\r\nVia: SIP/2.0/UDP %s:5060;branch=z9hG4bK%d\r\n"
    "From: <sip:%s@%s>;tag=%x\r\nTo: <sip:%s@%s>;tag=hp1\r\nCall-ID: %d@%s\r\nCSeq: 1 %s\r\n"
    "Content-Length: 0\r\n\r\n"
)
_ANSWER = {"INVITE": (404, "Not Found"), "REGISTER": (401, "Unauthorized"), "OPTIONS": (200, "OK")}


def spoofed(n: int, responses: bool) -> Iterator[Record]:
    """n requests from n different addresses (INVITE, REGISTER, OPTIONS in turn) to one server."""
    for i in range(n):
        a = 0x0B000000 + ((i * 2654435761) & 0x3FFFFFFF)  # a bijection: every address new
        src = f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}"
        method = ("INVITE", "REGISTER", "OPTIONS")[i % 3]
        ext = str(100 + i % 900)
        ruri = f"sip:{SERVER}" if method == "REGISTER" else f"sip:{ext}@{SERVER}"
        ts = 1.7e9 + i * 0.0001
        raw = _REQ % (method, ruri, src, i, ext, SERVER, i, ext, SERVER, i, src, method)
        yield Record.from_bytes(raw.encode(), ts, "udp", src, 5060, SERVER, 5060)
        if responses:
            code, reason = _ANSWER[method]
            raw = _RESP % (code, reason, src, i, ext, SERVER, i, ext, SERVER, i, src, method)
            yield Record.from_bytes(raw.encode(), ts + 0.00005, "udp", SERVER, 5060, src, 5060)


def spoofed_run(n: int, responses: bool, max_keys: int, trace: bool) -> dict:
    # the labeller's own tables are kept tiny so that the memory seen is the engine's
    labeller = StageLabeler(LabelerConfig(max_sources=1024, max_requests=1024))
    engine = Engine.load(config=EngineConfig(max_keys=max_keys))
    gc.collect()
    if trace:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0] if trace else 0
    spent = 0.0
    records = 0
    clock = time.perf_counter
    for r in spoofed(n, responses):
        labeller.label(r)
        t = clock()
        engine.feed(r)
        spent += clock() - t
        records += 1
    engine.flush()
    gc.collect()
    mem = tracemalloc.get_traced_memory()[0] - base if trace else 0
    if trace:
        tracemalloc.stop()
    st = engine.stats
    return {
        "records": records,
        "rate": records / spent,
        "mem": mem,
        "keys": st.keys["client"],
        "evictions": st.evictions["client"],
        "events": st.events,
    }


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=5060)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--spoofed", type=int, default=1_000_000, help="sources (0: skip)")
    args = ap.parse_args(argv)

    print(f"Machine: {machine()}\n")
    path = attack_capture(args.packets, args.seed)
    records, read_s, label_s = load(path)
    n = len(records)
    times, engine, events = time_engine(records, args.repeat)
    best, med = min(times), statistics.median(times)
    st = engine.stats
    print(f"Capture: {path.name}, {n:,} records (read+parse {read_s:.1f} s, not timed)\n")
    print("| step | records | best s | median s | records/s (best) | records/s (median) |")
    print("|---|--:|--:|--:|--:|--:|")
    print(f"| StageLabeler.label (reference) | {n:,} | {label_s:.2f} | | {n / label_s:,.0f} | |")
    print(
        f"| Engine.feed, default pack ({len(engine.rules)} rules) | {n:,} | {best:.2f} | "
        f"{med:.2f} | {n / best:,.0f} | {n / med:,.0f} |"
    )
    print(f"\nengine / labeller = {label_s / med:.2f}× (median run)")
    ids = {e.id: e for e in events}
    per_rule = Counter(e.rule for e in ids.values())
    print(
        f"events: {st.events:,} emissions, {len(ids):,} distinct ids; suppressed {st.suppressed:,}"
    )
    print(
        "events per rule (distinct ids): "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(per_rule.items()))
    )
    print(f"tables: keys {st.keys}, evictions {sum(st.evictions.values())}")

    if args.spoofed:
        for responses in (False, True):
            what = "request + answer" if responses else "one request"
            m = spoofed_run(args.spoofed, responses, 2 * args.spoofed, trace=True)
            r = spoofed_run(args.spoofed, responses, EngineConfig().max_keys, trace=False)
            print(
                f"\nSpoofed flood, {args.spoofed:,} sources, {what} each ({m['records']:,} records):\n"
                f"- all sources kept ({m['keys']:,} client keys): engine state "
                f"{m['mem'] / 2**20:,.0f} MiB = {m['mem'] / m['keys']:,.0f} bytes per source\n"
                f"- default table size: {r['rate']:,.0f} records/s, {r['keys']:,} client keys kept, "
                f"{r['evictions']:,} evicted, {r['events']:,} events"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
