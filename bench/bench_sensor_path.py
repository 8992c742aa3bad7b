"""The sensor's per-request CPU cost without sockets: where a REGISTER's microseconds go.

    python bench/bench_sensor_path.py [--requests 60000] [--sources 1000] [--no-detect]
                                      [--profile] [--config FILE]

Builds the sensor of the example config (or FILE) on a fresh SQLite store in a temporary
folder, then hands it REGISTERs shaped like bench/loadgen.c's (an existing extension, no
credentials, so each gets a 401 challenge): Sensor.handle for each datagram (parse, answer,
record), Sensor.pump every --pump-every datagrams (labels, analyzer, store), as the event loop does
(130: what its 20 ms pump interval sees at 6,500 requests/s). It
prints microseconds per request for the answer path and the pump separately, and with
--profile the functions that take the time (cProfile, sorted by own time). The figure is one
core's CPU cost; the socket calls bench_honeypot.py adds on top are not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

from sipwatch import gctune
from sipwatch.honeypot.config import EXAMPLE_CONFIG, parse_config
from sipwatch.honeypot.sensor import Sensor
from sipwatch.honeypot.server import Inbound


def register(seq: int, src: str, sport: int, user: str) -> bytes:
    return (
        f"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src}:{sport};branch=z9hG4bK-lg1-{seq};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f'From: "{user}" <sip:{user}@127.0.0.1>;tag={seq * 2654435761 & 0xFFFFFFFFFFFF:016x}\r\n'
        f'To: "{user}" <sip:{user}@127.0.0.1>\r\n'
        f"Call-ID: lg1-{seq}@sipwatch.bench\r\n"
        f"CSeq: {seq % 1000000 + 1} REGISTER\r\n"
        f"Contact: <sip:{user}@{src}:{sport}>\r\n"
        f"User-Agent: sipwatch-loadgen/1\r\n"
        f"Expires: 3600\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def config_text(base: str, store: Path, detect: bool) -> str:
    import tomllib

    from bench_honeypot import toml_dumps  # the benchmark's own TOML writer

    data = tomllib.loads(base)
    data.setdefault("sensor", {}).update(store=str(store), pcap_dir="", user="")
    data.setdefault("safety", {}).update(reply_rate=1_000_000.0, reply_burst=10_000_000)
    data.setdefault("detection", {})["enabled"] = detect
    return toml_dumps(data)


def run(sensor: Sensor, datagrams: list[Inbound], every: int) -> tuple[float, float]:
    handle, pump = sensor.handle, sensor.pump
    answer = analyse = 0.0
    clock = time.perf_counter
    for i in range(0, len(datagrams), every):
        t0 = clock()
        for inbound in datagrams[i : i + every]:
            handle(inbound)
        t1 = clock()
        pump()
        answer += t1 - t0
        analyse += clock() - t1
    return answer, analyse


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=60_000)
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--pump-every", type=int, default=130, help="datagrams between pumps")
    ap.add_argument("--no-detect", action="store_true", help="[detection] enabled = false")
    ap.add_argument("--profile", action="store_true", help="cProfile the measured run")
    ap.add_argument("--config", type=Path, help="base sensor config (default: the example)")
    args = ap.parse_args()
    base = args.config.read_text() if args.config else EXAMPLE_CONFIG
    with tempfile.TemporaryDirectory(prefix="sipwatch-bench-") as tmp:
        text = config_text(base, Path(tmp) / "store.sqlite", not args.no_detect)
        sensor = Sensor(parse_config(text, "bench"))
        sensor.open()
        sensor.pipeline.start(inline=True)  # as Sensor.start does: pumped by the caller
        if sensor.checkpointer is not None:
            sensor.checkpointer.start()
        gctune.for_serving()
        user = "100"
        now = time.time()

        def datagrams(first: int, n: int) -> list[Inbound]:
            out = []
            for seq in range(first, first + n):
                s = seq % args.sources
                src, sport = f"127.{1 + s // 65536}.{s // 256 % 256}.{s % 256}", 5060 + s % 1000
                raw = register(seq, src, sport, user)
                out.append(Inbound(raw, "udp", src, sport, "127.0.0.1", 5060, now + seq * 1e-4))
            return out

        # warm: tables, caches, store
        run(sensor, datagrams(0, min(args.requests, 5000)), args.pump_every)
        work = datagrams(10**6, args.requests)
        prof = cProfile.Profile() if args.profile else None
        if prof is not None:
            prof.enable()
        answer, analyse = run(sensor, work, args.pump_every)
        if prof is not None:
            prof.disable()
        t0 = time.perf_counter()
        asyncio.run(sensor.stop())  # the writer thread's backlog: part of the cost
        closing = time.perf_counter() - t0
    n = args.requests
    total = answer + analyse + closing
    print(
        f"{n:,} REGISTERs from {args.sources:,} sources, detection {'off' if args.no_detect else 'on'}"
    )
    print(f"  answer (parse, respond, record): {answer / n * 1e6:7.1f} us/request")
    print(f"  pump (labels, analyzer, store):  {analyse / n * 1e6:7.1f} us/request")
    print(f"  store backlog at stop:           {closing / n * 1e6:7.1f} us/request")
    print(
        f"  together:                        {total / n * 1e6:7.1f} us/request = {n / total:,.0f} req/s"
    )
    if prof is not None:
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
