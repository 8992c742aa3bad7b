"""Trace-store insert rate: Records (parsed and labelled beforehand) -> SQLite.

    python bench/bench_store.py [--rows 500000] [--db /tmp/bench-store.sqlite]

Prints rows/s for row building alone, for add()+flush() (row building + insert), for a second
add of the same records (all duplicates), and the time of the full report over the result.
CPU time is shown next to wall time because a shared machine makes wall time noisy.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from sipwatch.record import Record
from sipwatch.report.tables import REPORTS, all_tables
from sipwatch.store.base import open_store
from sipwatch.store.rows import message_row

REQUEST = (
    "{method} sip:{user}@192.0.2.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP {src}:5060;branch=z9hG4bK-{n};rport\r\n"
    'From: "{user}"<sip:{user}@192.0.2.1>;tag=3230383{n:x}\r\n'
    "To: <sip:{user}@192.0.2.1>\r\n"
    "Call-ID: {n}-bench@{src}\r\n"
    "CSeq: 1 {method}\r\n"
    "Contact: <sip:{user}@{src}:5060>\r\n"
    "User-Agent: friendly-scanner\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)
RESPONSE = (
    "SIP/2.0 {code} Whatever\r\n"
    "Via: SIP/2.0/UDP {src}:5060;branch=z9hG4bK-{n};rport\r\n"
    'From: "{user}"<sip:{user}@192.0.2.1>;tag=3230383{n:x}\r\n'
    "To: <sip:{user}@192.0.2.1>;tag=srv{n}\r\n"
    "Call-ID: {n}-bench@{src}\r\n"
    "CSeq: 1 {method}\r\n"
    "Server: Asterisk PBX 18\r\n"
    "Content-Length: 0\r\n\r\n"
)


def make_records(n: int, seed: int = 1) -> list[Record]:
    rnd = random.Random(seed)
    out = []
    t0 = 1_700_000_000.0
    for i in range(n // 2):
        src = f"{rnd.randrange(1, 224)}.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
        method, stage, code = rnd.choice(
            [("OPTIONS", "SS", 200), ("REGISTER", "ES", 404), ("REGISTER", "RHJ", 403), ("INVITE", "TF", 401)]
        )  # fmt: skip
        user = str(rnd.randrange(100, 10000))
        fields = {"method": method, "user": user, "src": src, "n": i, "code": code}
        ts = t0 + i * 0.01
        req = Record.from_bytes(
            REQUEST.format(**fields).encode(), ts, "udp", src, 5060, "192.0.2.1", 5060
        )
        rsp = Record.from_bytes(
            RESPONSE.format(**fields).encode(), ts + 0.001, "udp", "192.0.2.1", 5060, src, 5060
        )
        req.stage = rsp.stage = stage
        req.tool = "sipvicious"
        rsp.request_id = req.id
        out += (req, rsp)
    return out


def rate(n: int, wall: float, cpu: float) -> str:
    return f"{n / wall:>10,.0f} rows/s wall  {n / cpu:>10,.0f} rows/s cpu"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--db", type=Path, default=None)
    args = ap.parse_args()
    db = args.db or Path(tempfile.mkdtemp()) / "bench-store.sqlite"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{db}{suffix}"):
            os.remove(f"{db}{suffix}")
    chunk = 10_000  # records are made, labelled and stored in chunks, as in a pipeline run
    build = [0.0, 0.0]
    insert = [0.0, 0.0]
    dup = [0.0, 0.0]
    store = open_store(db)
    for seed in range(args.rows // chunk):
        records = make_records(chunk, seed=seed)
        w, c = time.perf_counter(), time.process_time()
        for r in records:  # first access to the lazily parsed fields (the labeller's reads)
            message_row(r)
        build[0] += time.perf_counter() - w
        build[1] += time.process_time() - c
        w, c = time.perf_counter(), time.process_time()
        store.add(records)
        store.flush()
        insert[0] += time.perf_counter() - w
        insert[1] += time.process_time() - c
    for seed in range(args.rows // chunk):
        records = make_records(chunk, seed=seed)
        for r in records:
            message_row(r)
        w, c = time.perf_counter(), time.process_time()
        store.add(records)
        store.flush()
        dup[0] += time.perf_counter() - w
        dup[1] += time.process_time() - c
    # the insert alone: prebuilt rows through the store's batch writer
    ins = [0.0, 0.0]
    db2 = db.with_name("bench-store-rows.sqlite")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{db2}{suffix}"):
            os.remove(f"{db2}{suffix}")
    store2 = open_store(db2)
    for seed in range(args.rows // chunk):
        rows = [message_row(r) for r in make_records(chunk, seed=seed)]
        w, c = time.perf_counter(), time.process_time()
        store2._pending.extend(rows)  # noqa: SLF001 - measuring the writer alone
        store2.flush()
        ins[0] += time.perf_counter() - w
        ins[1] += time.process_time() - c
    store2.close()
    n = args.rows // chunk * chunk
    print(f"insert only (rows built)   {rate(n, *ins)}")
    print(f"{n:,} rows in chunks of {chunk:,}")
    print(f"row build (first access)   {rate(n, *build)}")
    print(f"add+flush (new rows)       {rate(n, *insert)}")
    print(f"add+flush (all duplicates) {rate(n, *dup)}")
    print(f"counters {store.counters}")
    w = time.perf_counter()
    tables = all_tables(store)
    print(f"all report tables          {time.perf_counter() - w:.2f} s ({len(tables)} tables)")
    for name, fn in REPORTS.items():
        w = time.perf_counter()
        fn(store)
        print(f"  {name:12s} {time.perf_counter() - w:.2f} s")
    store.close()
    print(f"store size {db.stat().st_size / 1e6:.0f} MB ({db.stat().st_size / n:.0f} bytes/row)")


if __name__ == "__main__":
    main()
