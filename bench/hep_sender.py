"""Send HEP v3 packets over UDP at a fixed rate, bounded in count (bench/bench_hep.py uses it).

    python bench/hep_sender.py --target 127.0.0.1:9060 --count 500000 --rate 50000 [--pcap F]

The packets are HEP encodings of the SIP messages of a capture (default: a generated set of
REGISTER/INVITE/OPTIONS requests and responses from many sources), each sent once, in
order, paced in 2 ms slices. Prints one JSON line: sent, seconds, achieved rate.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sipwatch.capture.hep_encode import encode_record  # noqa: E402
from sipwatch.record import Record  # noqa: E402

METHODS = ("REGISTER", "INVITE", "OPTIONS")


def synthetic(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        method = METHODS[i % 3]
        src = f"203.0.{(i >> 8) & 255}.{i & 255}"
        raw = (
            f"{method} sip:{100 + i % 900}@192.0.2.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {src}:5060;branch=z9hG4bK-{i}\r\n"
            f"From: <sip:{100 + i % 900}@192.0.2.1>;tag=t{i}\r\nTo: <sip:{100 + i % 900}@192.0.2.1>\r\n"
            f"Call-ID: bench-{i}@{src}\r\nCSeq: 1 {method}\r\nUser-Agent: friendly-scanner\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        rec = Record.from_bytes(raw, 1_700_000_000 + i * 1e-4, "udp", src, 5060, "192.0.2.1", 5060)
        out.append(encode_record(rec, agent_id=2001 + i % 4))
    return out


def from_capture(path: str, n: int) -> list[bytes]:
    from sipwatch.capture import read_captures

    out = []
    for rec in read_captures([path]):
        out.append(encode_record(rec, agent_id=2001))
        if len(out) >= n:
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="127.0.0.1:9060")
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=50_000, help="packets per second")
    ap.add_argument("--pcap", default="", help="take the SIP messages from this capture")
    args = ap.parse_args()
    host, _, port = args.target.rpartition(":")
    distinct = min(args.count, 1_000_000)  # distinct messages: the store keeps duplicates once
    packets = from_capture(args.pcap, distinct) if args.pcap else synthetic(distinct)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)
    addr = (host, int(port))
    per_slice = max(1, int(args.rate * 0.002))
    sent = 0
    start = time.perf_counter()
    send = sock.sendto
    n = len(packets)
    while sent < args.count:
        due = start + sent / args.rate
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        for _ in range(min(per_slice, args.count - sent)):
            try:
                send(packets[sent % n], addr)
            except BlockingIOError:  # a full send buffer: try this one again next slice
                break
            sent += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({"sent": sent, "seconds": round(elapsed, 3), "rate": round(sent / elapsed)}))


if __name__ == "__main__":
    main()
