"""HEP benchmarks: the decoder's rate against tshark, and the collector's UDP ingest.

    python bench/bench_hep.py decode [--packets 100000]
    python bench/bench_hep.py ingest [--rate 50000 --count 500000]

decode: HEP v3 encodings of the SIP messages of bench/out/attack-1000000-5060.pcap (made by
bench/gen_capture.py when missing; --synthetic: generated INVITE/REGISTER/OPTIONS requests
from 65,536 addresses, each with a scanner's User-Agent, so nearly every record opens an
event: the worst case for the rules), decoded on one core, CPU time:
the HEP layer alone (chunk walk, addresses, ports, time, node: everything but the SIP
parse), with the C walk and with pure Python, and the whole path to a parsed Record. The
peer is tshark's HEP dissector on a pcap of the same packets (`-d udp.port==9060,hep`), when
this tshark has one (`tshark -G protocols`); the ratio is reported when it does.

ingest: `sipwatch sensor` with only a HEP collector (analyzer, rules and the SQLite store
running) pinned to CPU 0, bench/hep_sender.py pinned to CPU 1 sending --count packets at
--rate over UDP on loopback. Loss = packets sent that are not in the store at the end;
the kernel's UdpRcvbufErrors (nstat) and the sensor's own counters say where they went.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(BENCH))

from benchdata import attack_capture  # noqa: E402
from hep_sender import from_capture, synthetic  # noqa: E402
from sipwatch.capture import hep  # noqa: E402


def packets(n: int, use_synthetic: bool) -> list[bytes]:
    return synthetic(n) if use_synthetic else from_capture(str(attack_capture()), n)


def _rate(fn, pkts: list[bytes], repeat: int = 3) -> float:
    best = 0.0
    for _ in range(repeat):
        t = time.process_time()
        for p in pkts:
            fn(p)
        dt = time.process_time() - t
        best = max(best, len(pkts) / dt)
    return best


def _write_pcap(path: Path, pkts: list[bytes], port: int = 9060) -> None:
    """The packets as IPv4/UDP datagrams 127.0.0.1:40000 -> :port (link type RAW)."""
    with open(path, "wb") as f:
        f.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        for i, p in enumerate(pkts):
            udp = struct.pack("!HHHH", 40000, port, 8 + len(p), 0) + p
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                             b"\x7f\0\0\1", b"\x7f\0\0\1") + udp  # fmt: skip
            f.write(struct.pack("=IIII", 1_700_000_000 + i // 1000, i % 1000, len(ip), len(ip)))
            f.write(ip)


def tshark_has_hep() -> bool:
    if shutil.which("tshark") is None:
        return False
    out = subprocess.run(["tshark", "-G", "protocols"], capture_output=True, text=True)
    return any(line.split("\t")[-1] == "hep" for line in out.stdout.splitlines())


def decode(args) -> dict:
    pkts = packets(args.packets, args.synthetic)

    def tup(*a):
        return a

    fast = hep.HepDecoder(make_record=tup)
    res = {"packets": len(pkts), "accelerated": hep.ACCELERATED}
    res["hep_layer_c"] = round(_rate(fast.record, pkts))
    saved = hep._scan3
    hep._scan3 = hep._scan3_py
    try:
        res["hep_layer_python"] = round(_rate(hep.HepDecoder(make_record=tup).record, pkts))
    finally:
        hep._scan3 = saved
    res["record_with_sip_parse"] = round(_rate(hep.HepDecoder().record, pkts))
    if tshark_has_hep():
        pcap = OUT / "hep-bench.pcap"
        _write_pcap(pcap, pkts)
        t = time.perf_counter()
        subprocess.run(["tshark", "-r", str(pcap), "-d", "udp.port==9060,hep", "-T", "fields",
                        "-e", "frame.number"], stdout=subprocess.DEVNULL, check=True)  # fmt: skip
        res["tshark"] = round(len(pkts) / (time.perf_counter() - t))
        res["ratio_hep_layer_vs_tshark"] = round(res["hep_layer_c"] / res["tshark"], 1)
    else:
        v = subprocess.run(["tshark", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        res["tshark"] = f"no HEP dissector in {v or 'tshark (not installed)'}"
    return res


def _nstat(counter: str) -> int:
    out = subprocess.run(["nstat", "-az", counter], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == counter:
            return int(parts[1])
    return 0


_COLLECTOR_ONLY = """
import asyncio, json, signal, sys
from sipwatch.capture.hep import HepDecoder
from sipwatch.capture.hep_collector import HepCollector
async def main():
    got = [0]
    def count(rec):
        got[0] += 1
    col = HepCollector([sys.argv[1]], HepDecoder(), count)
    await col.start()
    print("listening on hep-udp", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await col.close()
    print("final counters hep_records=%d" % got[0], file=sys.stderr, flush=True)
asyncio.run(main())
"""


def collector_only(args) -> dict:
    """The collector alone (decode to parsed Records, counted): no analyzer, no store."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen(
        ["taskset", "-c", str(args.server_cpu), sys.executable, "-c", _COLLECTOR_ONLY,
         f"127.0.0.1:{args.port}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and "listening" in proc.stdout.readline()
    rcvbuf0 = _nstat("UdpRcvbufErrors")
    sender = subprocess.run(
        ["taskset", "-c", str(args.gen_cpu), sys.executable, str(BENCH / "hep_sender.py"),
         "--target", f"127.0.0.1:{args.port}", "--count", str(args.count), "--rate",
         str(args.rate)] + ([] if args.synthetic else ["--pcap", str(attack_capture())]),
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    got = int(err.rsplit("hep_records=", 1)[1].split()[0])
    sent = json.loads(sender.stdout)
    return {"sent": sent["sent"], "send_rate": sent["rate"], "received": got,
            "loss_percent": round(100 * (sent["sent"] - got) / sent["sent"], 3),
            "udp_rcvbuf_errors": _nstat("UdpRcvbufErrors") - rcvbuf0}  # fmt: skip


def ingest(args) -> dict:
    if args.collector_only:
        return collector_only(args)
    OUT.mkdir(exist_ok=True)
    work = OUT / "hep-ingest"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    port = args.port
    (work / "sensor.toml").write_text(
        f'listen = []\n[sensor]\nname = "bench"\nstore = "hep.sqlite"\nlog_interval = 1\n'
        f'[hep]\nlisten = ["127.0.0.1:{port}"]\n'
        + ("[detection]\nenabled = false\n" if args.no_detect else "")
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    sensor = subprocess.Popen(
        ["taskset", "-c", str(args.server_cpu), sys.executable, "-m", "sipwatch.cli", "sensor",
         "--config", "sensor.toml"],
        cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    assert sensor.stderr is not None
    for _ in range(200):
        line = sensor.stderr.readline()
        lines.append(line)
        if "listening on hep-udp" in line or not line:
            break
    rcvbuf0 = _nstat("UdpRcvbufErrors")
    sender = subprocess.run(
        ["taskset", "-c", str(args.gen_cpu), sys.executable, str(BENCH / "hep_sender.py"),
         "--target", f"127.0.0.1:{port}", "--count", str(args.count), "--rate", str(args.rate)]
        + ([] if args.synthetic else ["--pcap", str(attack_capture())]),
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    sent = json.loads(sender.stdout)
    db = work / "hep.sqlite"
    last, stable = -1, 0
    for _ in range(600):  # until the store stops growing (bounded: 60 s)
        time.sleep(0.1)
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            rows = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            conn.close()
        except sqlite3.Error:
            rows = last
        stable = stable + 1 if rows == last else 0
        last = rows
        if stable >= 20:
            break
    sensor.send_signal(signal.SIGTERM)
    rest = sensor.communicate(timeout=120)[1]
    final = [x for x in rest.splitlines() if "final counters" in x]
    rcvbuf = _nstat("UdpRcvbufErrors") - rcvbuf0
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    conn.close()
    counters = (
        dict(kv.split("=", 1) for kv in final[-1].split("final counters ")[1].split())
        if final
        else {}
    )
    return {
        "sent": sent["sent"], "send_rate": sent["rate"], "stored": rows,
        "loss_percent": round(100 * (sent["sent"] - rows) / sent["sent"], 3),
        "udp_rcvbuf_errors": rcvbuf,
        "hep_records": counters.get("hep_records"), "queue_dropped": counters.get("queue_dropped"),
        "hep_rejected": counters.get("hep_rejected"), "events": counters.get("events"),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("decode")
    d.add_argument("--packets", type=int, default=100_000)
    d.add_argument("--synthetic", action="store_true", help="generated messages, not the capture")
    i = sub.add_parser("ingest")
    i.add_argument("--rate", type=float, default=50_000)
    i.add_argument("--count", type=int, default=500_000)
    i.add_argument("--port", type=int, default=19060)
    i.add_argument("--server-cpu", type=int, default=0)
    i.add_argument("--gen-cpu", type=int, default=1)
    i.add_argument("--synthetic", action="store_true", help="generated messages, not the capture")
    i.add_argument("--no-detect", action="store_true", help="[detection] enabled = false")
    i.add_argument(
        "--collector-only",
        action="store_true",
        help="only the collector (parsed Records, counted): no analyzer, no store",
    )
    args = ap.parse_args()
    res = decode(args) if args.what == "decode" else ingest(args)
    res["traffic"] = "synthetic" if args.synthetic else attack_capture().name
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
