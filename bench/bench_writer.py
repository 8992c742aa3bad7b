"""Message rows into SQLite three ways: inline executemany, the writer process, the C writer thread.

    python bench/bench_writer.py --rows-from STORE [--rows 500000] [--repeat 3]
    python bench/bench_writer.py --rows-from STORE --page-sizes 4096,16384 --report

The rows are real: read (SELECT *) from a store that `sipwatch analyze` made, held in memory as
the tuples store/rows.py builds, then written into a fresh store (WAL, synchronous=NORMAL, the
store's schema) in batches of 5,000:

- inline: store/writer.py insert_rows (Python executemany) in this process;
- process: store/writer.py WriterProcess (rows pickled to a child that runs insert_rows);
- thread: sipwatch._native.SqliteWriter.add_rows (rows packed in C, a thread inserts them
  through SQLite's C API with a prepared statement).

For each: rows/s (wall), and CPU per row of the producer (this thread) and of the writer (the
child process, or the rest of this process's CPU for the thread). Best of --repeat runs.
--page-sizes makes the fresh stores with each page size (the thread writer); --report also
times `sipwatch report` on each result.

--live N: the honeypot sensor's way instead (LiveStoreAction): Records (bench_store.py's
request/response pairs, parsed beforehand) in batches of N, one batch every 20 ms (the sensor's
pump interval: 400 rows = 10,000 requests/s with their replies), through SqliteStore.add() +
submit(), inline (the store before the writer thread) and threaded; CPU per row of the thread
that calls add() (the sensor's event loop) and of the whole process, and the time add() +
submit() holds the caller per batch.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sipwatch import _native
from sipwatch.store import schema, sqlite
from sipwatch.store.sqlite import SqliteStore
from sipwatch.store.writer import WriterProcess, insert_rows

BATCH = 5000
INSERT = schema.insert_sql("sqlite")


def load_rows(path: Path, limit: int) -> list[tuple]:
    cols = ", ".join(schema.MESSAGE_COLUMNS)
    with sqlite3.connect(path) as conn:
        return conn.execute(
            f"SELECT {cols} FROM messages ORDER BY ts, id LIMIT ?", (limit,)
        ).fetchall()


def fresh(path: Path, page_size: int) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if page_size:
        with sqlite3.connect(path) as conn:  # set before anything is written
            conn.execute(f"PRAGMA page_size={page_size}")
            conn.execute("CREATE TABLE _page (x)")
            conn.execute("DROP TABLE _page")
    SqliteStore(path).close()
    return path


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_inline(path: Path, rows: list[tuple]) -> tuple[float, float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-16384")
    wall, cpu = time.perf_counter(), time.thread_time()
    for i in range(0, len(rows), BATCH):
        insert_rows(conn, INSERT, rows[i : i + BATCH])
    conn.close()
    return time.perf_counter() - wall, time.thread_time() - cpu, 0.0


def run_process(path: Path, rows: list[tuple]) -> tuple[float, float, float]:
    child = children_cpu()
    wall, cpu = time.perf_counter(), time.thread_time()
    w = WriterProcess(path, INSERT)
    for i in range(0, len(rows), BATCH):
        w.send(rows[i : i + BATCH])
    w.stop()
    return time.perf_counter() - wall, time.thread_time() - cpu, children_cpu() - child


def run_thread(path: Path, rows: list[tuple]) -> tuple[float, float, float]:
    wall, cpu, proc = time.perf_counter(), time.thread_time(), time.process_time()
    w = _native.SqliteWriter(str(path), INSERT, len(schema.MESSAGE_COLUMNS), BATCH)
    for i in range(0, len(rows), BATCH):
        w.add_rows(rows[i : i + BATCH])
    w.close()
    producer = time.thread_time() - cpu
    return time.perf_counter() - wall, producer, time.process_time() - proc - producer


def report_time(path: Path, repeat: int) -> tuple[float, float]:
    """`sipwatch report` on the store: best wall time and its CPU time (user + system)."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        t, cpu = time.perf_counter(), children_cpu()
        subprocess.run(
            [sys.executable, "-m", "sipwatch.cli", "report", "--db", str(path)],
            check=True, capture_output=True,
        )  # fmt: skip
        best = min(best, (time.perf_counter() - t, children_cpu() - cpu))
    return best


def live(batch: int, n: int, repeat: int, tmp: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_store import make_records

    records = make_records(n)
    for r in records:  # ids and parsed fields computed before any timing
        _ = r.id, r.msg.flat()
    print(f"{len(records):,} records in batches of {batch}; load average {os.getloadavg()[0]:.2f}")
    print(
        "| store | caller CPU µs/row | process CPU µs/row | add()+submit() per batch: median, max ms |"
    )
    print("|---|--:|--:|--:|")
    for threaded in (False, True) * repeat:
        path = Path(tmp) / "live.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        store = sqlite.SqliteStore(path, threaded=threaded)
        held = []
        cpu, proc = time.thread_time(), time.process_time()
        tick = time.perf_counter()
        for i in range(0, len(records), batch):
            tick += 0.02
            time.sleep(max(0.0, tick - time.perf_counter()))
            t = time.perf_counter()
            store.add(records[i : i + batch])
            store.submit()
            held.append(time.perf_counter() - t)
        caller = time.thread_time() - cpu
        store.flush()
        total = time.process_time() - proc
        store.close()
        held.sort()
        name = "threaded (writer thread)" if threaded else "inline (executemany)"
        print(f"| {name} | {caller / len(records) * 1e6:.2f} | {total / len(records) * 1e6:.2f} |"
              f" {held[len(held) // 2] * 1e3:.2f}, {held[-1] * 1e3:.1f} |", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows-from", type=Path, help="a store made by analyze")
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ways", default="inline,process,thread")
    ap.add_argument("--page-sizes", default="", help="e.g. 4096,16384 (thread writer only)")
    ap.add_argument("--report", action="store_true", help="also time `sipwatch report`")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument(
        "--live", type=int, default=0, metavar="N", help="the sensor's way, batches of N"
    )
    args = ap.parse_args()
    if args.live:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            live(args.live, args.rows if args.rows != 500_000 else 100_000, args.repeat, Path(tmp))
        return
    if args.rows_from is None:
        ap.error("--rows-from is required (a store made by sipwatch analyze)")

    rows = load_rows(args.rows_from, args.rows)
    print(f"{len(rows):,} rows from {args.rows_from}; load average {os.getloadavg()[0]:.2f}")
    ways = {"inline": run_inline, "process": run_process, "thread": run_thread}
    plan = [(w, 0) for w in args.ways.split(",")]
    if args.page_sizes:
        plan = [("thread", int(p)) for p in args.page_sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(
            "| way | page size | rows/s (wall) | producer CPU µs/row | writer CPU µs/row |"
            + (" `sipwatch report` s (CPU s) | file MB |" if args.report else "")
        )
        print("|---|--:|--:|--:|--:|" + ("--:|--:|" if args.report else ""))
        for way, page in plan:
            path = Path(tmp) / f"{way}-{page}.sqlite"
            best = None
            for _ in range(args.repeat):
                wall, producer, writer = ways[way](fresh(path, page), rows)
                if best is None or wall < best[0]:
                    best = (wall, producer, writer)
            wall, producer, writer = best
            with sqlite3.connect(path) as conn:
                stored = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
                size = conn.execute("PRAGMA page_size").fetchone()[0]
            assert stored == len(rows), (way, stored)
            line = (f"| {way} | {size} | {len(rows) / wall:,.0f} | {producer / len(rows) * 1e6:.2f}"
                    f" | {writer / len(rows) * 1e6:.2f} |")  # fmt: skip
            if args.report:
                wall, cpu = report_time(path, args.repeat)
                line += f" {wall:.2f} ({cpu:.2f}) | {path.stat().st_size / 1e6:.0f} |"
            print(line, flush=True)


if __name__ == "__main__":
    main()
