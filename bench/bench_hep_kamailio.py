"""Kamailio's siptrace -> sipwatch's HEP collector under load (issue 7).

    python bench/bench_hep_kamailio.py [--rates 2500,5000,10000,15000] [--step-seconds 5]

Kamailio 5.6 (Debian package) answers every REGISTER with a stateless 401 digest challenge
(bench/kamailio-401.cfg) and, with the siptrace module in core-event mode, mirrors each
REGISTER it receives and each 401 it sends as HEP v3 to a `sipwatch sensor` that only runs a
HEP collector (labeller, password recovery, rules, attack chains and the SQLite store on, as
in `bench_hep.py ingest`). bench/loadgen.c sends the REGISTERs at each rate for a few seconds
and counts Kamailio's answers; then the script waits until the store stops growing.

Per step: REGISTERs sent and answered (Kamailio), the HEP messages that should arrive (each
answered REGISTER and its 401: 2 per answer), the rows stored, and the loss between Kamailio
and the store; the sensor on CPU 0, Kamailio and the generator on CPU 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from bench_honeypot import (  # noqa: E402
    LOOPBACK,
    build_loadgen,
    free_udp_port,
    pinned,
    udp_rcvbuf_errors,
)

SIPTRACE = """
loadmodule "siptrace.so"
modparam("siptrace", "duplicate_uri", "sip:{addr}:{hep}")
modparam("siptrace", "hep_mode_on", 1)
modparam("siptrace", "hep_version", 3)
modparam("siptrace", "hep_capture_id", 2001)
modparam("siptrace", "trace_to_database", 0)
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_mode", 1)
"""


def kamailio_config(hep_port: int) -> str:
    """bench/kamailio-401.cfg with every message it receives and sends mirrored as HEP."""
    base = (BENCH / "kamailio-401.cfg").read_text()
    at = base.index("request_route")
    return base[:at] + SIPTRACE.format(addr=LOOPBACK, hep=hep_port) + "\n" + base[at:]


def stored_rows(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def settle(db: Path, limit: float = 60.0) -> int:
    """The store's row count once it has not grown for 2 s (at most `limit` seconds)."""
    last, since, end = -2, time.monotonic(), time.monotonic() + limit
    while time.monotonic() < end:
        n = stored_rows(db)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= 2.0:
            break
        time.sleep(0.1)
    return last


def wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited: {path.read_text(errors='replace')[-800:]}")
        time.sleep(0.1)
    raise RuntimeError(f"no {text!r} in {path} after {timeout} s")


def wait_bound(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Until something listens on UDP port `port` (Kamailio logs nothing at debug=0)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = subprocess.run(["ss", "-Hlun", f"sport = :{port}"], capture_output=True, text=True)
        if out.stdout.strip():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on udp port {port} after {timeout} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="2500,5000,10000,15000", help="REGISTER/s, ascending")
    ap.add_argument("--step-seconds", type=float, default=5.0)
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--sensor-cpu", type=int, default=0)
    ap.add_argument("--other-cpu", type=int, default=1, help="Kamailio and the generator")
    ap.add_argument("--out-dir", type=Path, default=BENCH / "out")
    args = ap.parse_args(argv)
    for tool in ("kamailio", "taskset"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (scripts/install-test-deps.sh)", file=sys.stderr)
            return 2
    rates = [int(r) for r in args.rates.split(",")]
    loadgen = build_loadgen(args.out_dir)
    work = args.out_dir / "hep-kamailio"
    shutil.rmtree(work, ignore_errors=True)
    (work / "kamailio-run").mkdir(parents=True)
    hep_port, sip_port = free_udp_port(), free_udp_port()
    (work / "sensor.toml").write_text(
        f'listen = []\n[sensor]\nname = "bench"\nstore = "hep.sqlite"\nlog_interval = 1\n'
        f'[hep]\nlisten = ["{LOOPBACK}:{hep_port}"]\n'
    )
    (work / "kamailio.cfg").write_text(kamailio_config(hep_port))
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    db = work / "hep.sqlite"
    sensor_log, kam_log = (work / "sensor.log").open("w"), (work / "kamailio.log").open("w")
    sensor = subprocess.Popen(
        pinned(args.sensor_cpu, [sys.executable, "-m", "sipwatch.cli", "sensor", "--config",
                                 "sensor.toml"]),
        cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=sensor_log,
    )  # fmt: skip
    kamailio = subprocess.Popen(
        pinned(args.other_cpu, ["kamailio", "-f", str(work / "kamailio.cfg"), "-l",
                                f"udp:{LOOPBACK}:{sip_port}", "-Y", str(work / "kamailio-run"),
                                "-DD", "-E"]),
        stdout=kam_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    steps = []
    try:
        wait_for(work / "sensor.log", "listening on hep-udp", sensor)
        wait_bound(sip_port, kamailio)
        time.sleep(1.0)
        before = settle(db, 10.0)
        for i, rate in enumerate(rates):
            drops0 = udp_rcvbuf_errors()
            cmd = pinned(args.other_cpu, [
                str(loadgen), "--target", f"{LOOPBACK}:{sip_port}", "--rate", str(rate),
                "--duration", str(args.step_seconds), "--sources", str(args.sources),
                "--first-source", str(i * args.sources), "--user", "100",
                "--run-id", str(os.getpid() % 10000 * 100 + i), "--wait", "1",
            ])  # fmt: skip
            res = subprocess.run(
                cmd, capture_output=True, text=True, timeout=args.step_seconds + 120
            )
            if res.returncode != 0:
                raise RuntimeError(f"loadgen exited with {res.returncode}: {res.stderr.strip()}")
            gen = json.loads(res.stdout)
            after = settle(db)
            expected = 2 * gen["answered"]
            got = after - before
            steps.append({
                "rate": rate, "sent": gen["sent"], "send_rate": gen["send_rate"],
                "answered": gen["answered"], "hep_expected": expected, "stored": got,
                "loss_pct": round(100 * (expected - got) / expected, 3) if expected else 0.0,
                "udp_rcvbuf_errors": udp_rcvbuf_errors() - drops0,
            })  # fmt: skip
            before = after
            print(json.dumps(steps[-1]), flush=True)
    finally:
        for proc in (kamailio, sensor):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        sensor_log.close()
        kam_log.close()
    print()
    print(
        "| REGISTER/s | sent | answered by Kamailio | HEP expected | stored | loss | UDP buffer drops |"
    )
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for s in steps:
        print(f"| {s['rate']:,} | {s['sent']:,} | {s['answered']:,} | {s['hep_expected']:,} | "
              f"{s['stored']:,} | {s['loss_pct']:.3f}% | {s['udp_rcvbuf_errors']:,} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
