"""Central store ingest: uplink batches (Store.store_batch) into PostgreSQL and SQLite.

    python bench/bench_store_ingest.py [--rows 1000000] [--batch 5000]
        [--pg postgresql://postgres@127.0.0.1/test] [--engines postgresql,sqlite]
        [--writers 2] [--copy-variants] [--report-rows 10000000]

The rows are what sensors send: real SIP messages (SIPVicious-style scans, extension scans,
password guessing with digest credentials, toll-fraud INVITEs) from a population of attackers,
each hitting one node or several, over --days days; parsed and turned into message rows ONCE,
before any timing. Then each engine takes them as numbered batches of --batch rows, every batch
one store_batch() call (one transaction, exactly-once bookkeeping included), into a fresh store;
then the same rows again under new batch numbers (every message a duplicate: a sensor's replay).
For PostgreSQL also --writers uplinks at once (one connection each, as a central serving several
sensors does: the server then inserts on more than one core).

PostgreSQL runs in a throwaway database on the server --pg names (dropped afterwards). The peer
figure is heplify-server's published rate into PostgreSQL (it cannot be installed here).
--report-rows N fills the PostgreSQL store up to N messages (copies of the rows shifted by whole
days, new ids), runs ensure_indexes() and times the correlation reports nodes, distribution and
matrix (report/correlation.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from sipwatch.record import Record
from sipwatch.store.base import Store, open_store
from sipwatch.store.pgcopy import MessageCopier
from sipwatch.store.rows import day_of, message_row

HEPLIFY_PPS = 19_400  # heplify-server into PostgreSQL, as its authors publish it
GOALS = {"postgresql": 100_000, "sqlite": 50_000}
T0 = 1_709_251_200.0  # 2024-03-01 00:00 UTC

REQUEST = (
    "{method} sip:{user}@{dst} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP {src}:{sport};branch=z9hG4bK-{n:x};rport\r\n"
    'From: "{user}"<sip:{user}@{dst}>;tag=3230383{n:x}\r\n'
    "To: <sip:{user}@{dst}>\r\n"
    "Call-ID: {n}-{sport}@{src}\r\n"
    "CSeq: 1 {method}\r\n"
    "Contact: <sip:{user}@{src}:{sport}>\r\n"
    "{auth}"
    "User-Agent: {ua}\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)
AUTH = (
    'Authorization: Digest username="{user}", realm="asterisk", nonce="{n:x}", '
    'uri="sip:{dst}", response="{n:032x}", algorithm=MD5\r\n'
)
RESPONSE = (
    "SIP/2.0 {code} {reason}\r\n"
    "Via: SIP/2.0/UDP {src}:{sport};branch=z9hG4bK-{n:x};rport\r\n"
    'From: "{user}"<sip:{user}@{dst}>;tag=3230383{n:x}\r\n'
    "To: <sip:{user}@{dst}>;tag=as{n:x}\r\n"
    "Call-ID: {n}-{sport}@{src}\r\n"
    "CSeq: 1 {method}\r\n"
    "Server: Asterisk PBX 18.10.0\r\n"
    "Content-Length: 0\r\n\r\n"
)
# stage: (method, status, reason, credentials, weight)
BEHAVIOUR = {
    "SS": ("OPTIONS", 200, "OK", False, 5),
    "ES": ("REGISTER", 404, "Not Found", False, 3),
    "RHJ": ("REGISTER", 403, "Forbidden", True, 3),
    "TF": ("INVITE", 401, "Unauthorized", False, 1),
}
TOOLS = ("friendly-scanner", "sipcli/v1.8", "VaxSIPUserAgent/3.1", "pplsip", "sundayddr")


def make_rows(n: int, nodes: int = 8, days: int = 3, seed: int = 1) -> list[tuple]:
    """n message rows (request/response pairs) from a realistic attacker population."""
    rnd = random.Random(seed)
    n_src = max(10, n // 50)
    attackers = []
    for _ in range(n_src):
        src = f"{rnd.randrange(1, 224)}.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
        r = rnd.random()  # most attackers hit one node, some a few, a tenth of them all
        k = 1 if r < 0.7 else rnd.randrange(2, nodes) if r < 0.9 else nodes
        stage = rnd.choices(list(BEHAVIOUR), [b[4] for b in BEHAVIOUR.values()])[0]
        attackers.append((src, rnd.sample(range(nodes), k), stage, rnd.choice(TOOLS)))
    weights = [1 / (i + 1) for i in range(n_src)]  # a few attackers send most of the traffic
    picks = rnd.choices(attackers, weights, k=n // 2)
    span = days * 86400.0
    rows: list[tuple] = []
    for i, (src, targets, stage, ua) in enumerate(picks):
        method, code, reason, creds, _ = BEHAVIOUR[stage]
        node = rnd.choice(targets)
        dst = f"192.0.2.{node + 1}"
        user = (
            str(rnd.randrange(100, 10000))
            if stage != "TF"
            else f"00{rnd.randrange(10**10, 10**11)}"
        )
        f = {"method": method, "user": user, "src": src, "dst": dst, "n": i, "code": code,
             "reason": reason, "sport": 5060 + i % 7, "ua": ua}  # fmt: skip
        f["auth"] = AUTH.format(**f) if creds else ""
        ts = T0 + span * i / (n // 2)
        seen = {"node": f"n{node + 1}", "sensor": f"sensor{node % 3 + 1}"}
        req = Record.from_bytes(
            REQUEST.format(**f).encode(), ts, "udp", src, f["sport"], dst, 5060, **seen
        )
        rsp = Record.from_bytes(
            RESPONSE.format(**f).encode(), ts + 0.002, "udp", dst, 5060, src, f["sport"], **seen
        )
        req.stage = rsp.stage = stage
        req.tool = "sipvicious" if ua == "friendly-scanner" else ""
        rsp.request_id = req.id
        rows += (message_row(req), message_row(rsp))
    return rows


def shifted(rows: list[tuple], k: int, days: int) -> Iterator[tuple]:
    """Copy k of the rows: k*days days later, new ids (a bigger store with the same shape)."""
    dt = k * days * 86400.0
    salt = k * 0x9E3779B97F4A7C15
    mask = (1 << 63) - 1
    for r in rows:
        ts = r[1] + dt
        yield ((r[0] + salt) & mask, ts, day_of(ts), *r[3:])


@contextlib.contextmanager
def fresh(engine: str, pg_admin: str) -> Iterator[str]:
    if engine == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield str(Path(tmp) / "bench.sqlite")
        return
    import psycopg

    name = f"sw_bench_{secrets.token_hex(4)}"
    with psycopg.connect(pg_admin, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield pg_admin.rpartition("/")[0] + "/" + name
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def server_cpu(store: Store) -> Callable[[], float]:
    """CPU seconds used so far by the store's PostgreSQL backend (0 for SQLite, or not local)."""
    if store.engine != "postgresql":
        return lambda: 0.0
    pid = store.query("SELECT pg_backend_pid()")[0][0]

    def read() -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    return read


def ingest(store: Store, rows: list[tuple], batch: int, first_seq: int) -> tuple[float, ...]:
    """store_batch() every batch; (wall s, this process's CPU s, the server backend's CPU s)."""
    backend = server_cpu(store)
    w, c, s = time.perf_counter(), time.process_time(), backend()
    for seq, i in enumerate(range(0, len(rows), batch), start=first_seq):
        store.store_batch("bench", seq, rows[i : i + batch])
    return time.perf_counter() - w, time.process_time() - c, backend() - s


def ingest_parallel(url: str, rows: list[tuple], batch: int, writers: int) -> tuple[float, ...]:
    """Batches of `writers` sensors at once, each its own store (connection), as a central
    serving several uplinks does; (wall s, client CPU s, servers' CPU s)."""
    stores = [open_store(url) for _ in range(writers)]
    backends = [server_cpu(s) for s in stores]
    starts = [b() for b in backends]
    batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            for seq, chunk in enumerate(batches[k::writers]):
                stores[k].store_batch(f"sensor{k}", seq, chunk)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(writers)]
    w, c = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    server = sum(b() - s0 for b, s0 in zip(backends, starts, strict=True))
    inserted = sum(s.counters["inserted"] for s in stores)
    for s in stores:
        s.close()
    if errors:
        raise errors[0]
    assert inserted == len(rows), inserted
    return wall, cpu, server


class TextCopier(MessageCopier):
    """The store's COPY path in text format instead of binary (for --copy-variants)."""

    def __init__(self, conn: object) -> None:
        super().__init__(conn)  # type: ignore[arg-type]
        self._copy_direct = self._copy_direct.replace(" (FORMAT BINARY)", "")
        self._copy_stage = self._copy_stage.replace(" (FORMAT BINARY)", "")

    def _write(self, statement: str, rows: Sequence[tuple]) -> None:
        with self.conn.cursor().copy(statement) as copy:
            for row in rows:
                copy.write_row(row)


def copy_variants(pg: str, rows: list[tuple], batch: int) -> None:
    """The ways of COPYing new rows that were measured to choose the store's."""
    variants = {
        "binary COPY into messages (the store's path)": None,
        "binary COPY into staging + INSERT ON CONFLICT": "staged",
        "text COPY into messages": "text",
    }
    for what, how in variants.items():
        with fresh("postgresql", pg) as url:
            store = open_store(url)
            if how == "staged":
                store._copier._staged_left = 1 << 60  # noqa: SLF001 - always the staging path
            elif how == "text":
                store._copier = TextCopier(store._conn)  # noqa: SLF001
            wall, *cpu = ingest(store, rows, batch, 0)
            store.close()
        print(line(what, len(rows), wall, *cpu), flush=True)


def line(what: str, n: int, wall: float, cpu: float, server: float) -> str:
    # records per CPU-second (client + server) does not depend on what else loads the machine
    per_cpu = n / (cpu + server)
    return (
        f"  {what:28s} {n / wall:>10,.0f} records/s  ({wall:5.1f} s wall; CPU client "
        f"{cpu / wall:4.0%}, server {server / wall:4.0%}; {per_cpu:,.0f} records per CPU-s)"
    )


def report_timing(store: Store, rows: list[tuple], target: int, batch: int, days: int) -> None:
    from sipwatch.report import correlation

    have = store.query("SELECT COUNT(*) FROM messages")[0][0]
    k, seq = 1, 10**6
    w = time.perf_counter()
    while have < target:
        chunk = list(shifted(rows, k, days))[: target - have]
        for i in range(0, len(chunk), batch):
            store.store_batch("fill", seq, chunk[i : i + batch])
            seq += 1
        have += len(chunk)
        k += 1
    fill = time.perf_counter() - w
    print(f"  filled to {have:,} messages in {fill:.0f} s", flush=True)
    # what a central does now and then: report indexes, and the contacts index on ended days
    w = time.perf_counter()
    store.ensure_indexes()
    print(f"  ensure_indexes {time.perf_counter() - w:.0f} s", flush=True)
    for name in ("nodes", "distribution", "matrix"):
        fn = getattr(correlation, name)
        times = []
        for _ in range(2):
            w = time.perf_counter()
            table = fn(store)
            times.append(time.perf_counter() - w)
        print(
            f"  report {name:14s} first {times[0]:5.2f} s, again {times[1]:5.2f} s"
            f"  ({len(table.rows)} rows; goal < 5 s)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1/test")
    ap.add_argument("--engines", default="postgresql,sqlite")
    ap.add_argument("--report-rows", type=int, default=0)
    ap.add_argument("--copy-variants", action="store_true", help="PostgreSQL: text, staged")
    ap.add_argument("--writers", type=int, default=2, help="PostgreSQL: concurrent uplinks too")
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    w = time.perf_counter()
    rows = make_rows(args.rows, days=args.days)
    srcs = len({r[4] for r in rows[::2]})
    print(
        f"{len(rows):,} rows from {srcs:,} attackers over {args.days} days built in "
        f"{time.perf_counter() - w:.0f} s (not timed); batches of {args.batch:,}"
    )
    for engine in args.engines.split(","):
        with fresh(engine, args.pg) as url:
            print(f"{engine}:", flush=True)
            store = open_store(url)
            try:
                wall, *cpu = ingest(store, rows, args.batch, 0)
                rate = len(rows) / wall
                print(line("store_batch, new rows", len(rows), wall, *cpu), flush=True)
                assert store.counters["inserted"] == len(rows), store.counters
                wall, *cpu = ingest(store, rows, args.batch, 10**5)
                print(line("store_batch, all duplicates", len(rows), wall, *cpu), flush=True)
                assert store.counters["duplicates"] == len(rows), store.counters
                print(
                    f"  goal {GOALS[engine]:,} records/s: {rate / GOALS[engine]:.2f}x; "
                    f"heplify-server (published) {HEPLIFY_PPS:,} packets/s into PostgreSQL: "
                    f"sipwatch/heplify = {rate / HEPLIFY_PPS:.1f}x"
                )
                if engine == "postgresql" and args.copy_variants:
                    copy_variants(args.pg, rows, args.batch)
                if engine == "postgresql" and args.writers > 1:
                    with fresh(engine, args.pg) as url2:
                        open_store(url2).close()  # migrated before the writers start
                        wall, *cpu = ingest_parallel(url2, rows, args.batch, args.writers)
                    what = f"{args.writers} uplinks at once, new"
                    print(line(what, len(rows), wall, *cpu), flush=True)
                    print(f"  goal: {len(rows) / wall / GOALS[engine]:.2f}x", flush=True)
                if engine == "postgresql" and args.report_rows:
                    report_timing(store, rows, args.report_rows, args.batch, args.days)
            finally:
                store.close()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
