"""Central ingest through the HTTP API: uplink batches POSTed to a running `sipwatch central`.

    python bench/bench_central_ingest.py [--rows 400000] [--batch 5000] [--uplinks 2]
        [--engines postgresql,sqlite] [--pg postgresql://postgres@127.0.0.1/test] [--repeat 5]

bench_store_ingest.py measures the store alone; this adds what a sensor's batch goes through
on the way: HTTP, gzip, msgpack decoding, validation of every value, attribution to the
sensor, the exactly-once bookkeeping and the metrics. The rows (bench_store_ingest.make_rows)
are encoded into batches before the clock starts, as a sensor has them sealed in its spool.
--uplinks sensors send at once, each its own share of the batches, one request after the
other (as the uplink does). The peer figure is heplify-server's published ~19,400 packets/s
into PostgreSQL (it cannot be installed here). Each engine runs --repeat times, each time
into a fresh database; the median is the figure (one run of a few seconds on a shared VM can
be 20% off either way), with the range beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]
from bench_store_ingest import GOALS, HEPLIFY_PPS, fresh, make_rows  # noqa: E402
from centralproc import CentralProcess  # noqa: E402
from sipwatch.central.batchcodec import encode  # noqa: E402
from sipwatch.central.registry import Registry  # noqa: E402
from sipwatch.store.base import open_store  # noqa: E402

HEADERS = {"Content-Type": "application/msgpack", "Content-Encoding": "gzip"}


def _send(url: str, token: str, bodies: list[bytes], errors: list[str]) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
        for body in bodies:
            r = c.post("/api/v1/ingest", content=body, headers=HEADERS)
            if r.status_code != 200 or not r.json()["stored"]:
                errors.append(f"{r.status_code} {r.text[:200]}")
                return


def run(engine: str, url: str, rows: list[tuple], batch: int, uplinks: int, work: Path) -> float:
    nodes = sorted({r[40] for r in rows})  # schema.MESSAGE_COLUMNS: node
    with open_store(url) as store:
        reg = Registry(store)
        tokens = [reg.add_sensor(f"bench{i}", nodes) for i in range(uplinks)]
    chunks = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    shares: list[list[bytes]] = [[] for _ in range(uplinks)]
    for k, chunk in enumerate(chunks):
        shares[k % uplinks].append(encode(k // uplinks + 1, chunk, []))
    central = CentralProcess(url, work).start()
    errors: list[str] = []
    try:
        threads = [
            threading.Thread(target=_send, args=(central.url, t, share, errors))
            for t, share in zip(tokens, shares, strict=True)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
    finally:
        central.stop()
    if errors:
        raise SystemExit(f"{engine}: ingest failed: {errors[0]}")
    with open_store(url, readonly=True) as store:
        stored = store.query("SELECT COUNT(*) FROM messages")[0][0]
    assert stored == len(rows), (stored, len(rows))
    return len(rows) / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--uplinks", type=int, default=2)
    ap.add_argument("--engines", default="postgresql,sqlite")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1/test")
    ap.add_argument("--repeat", type=int, default=5, help="runs per engine (median reported)")
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = make_rows(args.rows)
    print(f"{len(rows):,} rows, batches of {args.batch:,}, {args.uplinks} uplinks at once")
    import tempfile

    for engine in args.engines.split(","):
        rates = []
        for _ in range(max(1, args.repeat)):
            with fresh(engine, args.pg) as url, tempfile.TemporaryDirectory() as tmp:
                rates.append(run(engine, url, rows, args.batch, args.uplinks, Path(tmp)))
        rate = statistics.median(rates)
        print(
            f"{engine}: {rate:,.0f} records/s through the API, median of {len(rates)} "
            f"(runs {', '.join(f'{r:,.0f}' for r in rates)}; goal {GOALS[engine]:,}: "
            f"{rate / GOALS[engine]:.2f}x; heplify-server published {HEPLIFY_PPS:,}/s: "
            f"{rate / HEPLIFY_PPS:.1f}x)",
            flush=True,
        )


if __name__ == "__main__":
    main()
