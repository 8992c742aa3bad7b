"""The bulk path's C scanner (sipwatch._native sw_scan) vs the Python parser, one core.

    python bench/bench_native_scan.py [--packets 20000] [--rounds 5]
    python bench/bench_native_scan.py --why CAPTURE [CAPTURE ...]

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

--why: for the SIP payloads of the given captures (files or folders), which share sw_scan
handles, what its refusals cost (sw_scan over all of them, then parse() + message_row() for
each it refuses: the row path's time per message), and why it refuses them: the first check
that refuses each message (in sw_scan's order: head, _check, request-URI, From, To, Via,
credentials) and every check that would. The stage is found with the C that sw_scan shares
(speedups.parse_head, flat, name_addr, digest_user_realm); the cause within a stage is a
description of the value's shape, to tell which widening would pay.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import Counter
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
from sipwatch.sip.headers import parse_name_addr  # noqa: E402
from sipwatch.sip.message import parse  # noqa: E402
from sipwatch.sip.uri import SIP_URI_FAST  # noqa: E402
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


# --- --why ----------------------------------------------------------------------------------
_TOKEN = re.compile(rb"[!%*+.0-9A-Z_`a-z~'-]+")
_URI_FAST = re.compile(SIP_URI_FAST)


def _head_why(d: bytes) -> str:
    """Why sipcore's sc_scan_head refuses a message (its checks, in its order)."""
    if len(d) < 4:
        return "shorter than 4 bytes"
    if d[:1] in b"\r\n":
        return "leading CR/LF"
    end = d.find(b"\r\n\r\n")
    head = d[: end if end >= 0 else len(d)]
    if head.count(b"\n") != head.count(b"\r\n"):
        return "bare LF"
    if end < 0:
        return "no CRLFCRLF"
    lines = head.split(b"\r\n")
    if any(len(line) > 8192 for line in lines):
        return "line longer than 8192"
    if len(lines) > 257:
        return "more than 256 header lines"
    for line in lines[1:]:
        m = _TOKEN.match(line)
        if line[:1] in b" \t":
            return "folding"
        if m is None or not line[m.end() :].lstrip(b" \t").startswith(b":"):
            return "header line without token name and ':'"
    for line in [lines[0], *(x.partition(b":")[2] for x in lines[1:])]:
        if any(not (32 <= c < 127 or c == 9) for c in line):
            return "byte outside printable ASCII and HT"
    first = lines[0]
    if first[:4].lower() == b"sip/":
        return "status line shape"
    parts = first.split(b" ")
    if len(parts) != 3 or parts[2] != b"SIP/2.0":
        return "request line whitespace or version"
    if _TOKEN.fullmatch(parts[0]) is None or len(parts[0]) > 32:
        return "method"
    return "request-URI: long, bad scheme or URI headers"


def _uri_why(u: str) -> str:
    """The first unusual feature of a URI's shape."""
    if u[:4] != "sip:":
        scheme = u.partition(":")[0].lower()
        return f"scheme {scheme if scheme in ('sips', 'tel', 'sip') else 'other'}"
    for chars, why in (("[]", "IPv6 reference"), ("?", "URI headers"), ("%", "%-escape")):
        if any(c in u for c in chars):
            return why
    if u.count("@") > 1:
        return "two @"
    if "@" in u and ":" in u[4:].partition("@")[0]:
        return "password"
    if ";" in u:
        return "URI parameters"
    return "host or port shape" if _URI_FAST.fullmatch(u) is None else "usual"


def _name_addr_why(v: str) -> str:
    s = v.strip(" \t")
    lt = s.find("<")
    if s[:1] == '"' and "\\" in s[: lt if lt >= 0 else len(s)]:
        return "escape in the display name"
    tail = s[s.find(">", lt) + 1 :] if lt >= 0 else s.partition(";")[2]
    if re.search(r'["\s]', tail):
        return "parameters with a quote or space"
    na = parse_name_addr(v)
    return "empty" if na is None else f"URI: {_uri_why(na.uri_text)}"


def _via_why(v: str) -> str:
    if "," in v:
        first = next((p.strip(" \t") for p in v.split(",") if p.strip(" \t")), "")
        return "several via-parms" + (f" ({_via_why(first)})" if first else "")
    if not v.startswith("SIP/2.0/"):
        return "protocol spelling"
    if re.search(r'["\s]', v.partition(";")[2]):
        return "parameters with a quote or space"
    return "IPv6 reference" if "[" in v or "]" in v else "sent-by shape"


def refusals(raw: bytes) -> list[str]:
    """Every check that makes sw_scan refuse raw, in its order (empty when it handles it)."""
    if _native.scan(raw) is not None:
        return []
    head = speedups.parse_head(raw)
    end = raw.find(b"\r\n\r\n")
    if head is None or any(not (32 <= c < 127 or c in (9, 10, 13)) for c in raw[:end]):
        return [f"head: {_head_why(raw)}"]
    if head[8] is None:
        return ["_check: unusual CSeq number (or, before, bytes after the body)"]
    msg = parse(raw)
    h = msg.headers
    out = []
    if msg.is_request and speedups.flat({}, msg.ruri) is None:
        out.append(f"request-URI: {_uri_why(msg.ruri)}")
    for key, name in (("from", "From"), ("to", "To")):
        if h.get(key) and speedups.name_addr(h[key][0]) is None:
            out.append(f"{name}: {_name_addr_why(h[key][0])}")
    if h.get("via") and speedups.flat({"via": h["via"]}, "") is None:
        out.append(f"Via: {_via_why(h['via'][0])}")
    cred = h.get("authorization") or h.get("proxy-authorization")
    if cred and speedups.digest_user_realm(cred[0]) is None:
        out.append("credentials: " + ("escape" if "\\" in cred[0] else "quoted ',' or shape"))
    return out or ["other"]


def row(raw: bytes) -> tuple:
    """The Python path of one message: parse() and the store row."""
    return message_row(
        Record(1.7e9, "udp", "203.0.113.9", 5060, "192.0.2.1", 5060, raw, parse(raw))
    )


def why(sources: list[str], rounds: int) -> None:
    payloads = [p.raw for p in read_captures(sources, make_record=keep_raw)]
    n = len(payloads)
    handled = _native.scan_count(payloads)
    first: Counter[str] = Counter()
    every: Counter[str] = Counter()
    refused = []
    for raw in payloads:
        found = refusals(raw)
        if found:
            refused.append(raw)
            first[found[0]] += 1
            every.update(set(found))
    print(f"{n:,} SIP payloads; sw_scan handles {handled:,} ({handled / max(n, 1):.2%})")
    # what the refusals cost: sw_scan over all, then the Python path for each refused one
    c_rate = best_rate(lambda: _native.scan_count(payloads), n, rounds)
    py_rate = best_rate(lambda: [row(raw) for raw in refused], len(refused), rounds)
    t = 1e6 * (n / c_rate + (len(refused) / py_rate if refused else 0.0)) / max(n, 1)
    print(
        f"sw_scan {1e6 / c_rate:.3f} us/msg; parse()+message_row() of a refused one "
        f"{1e6 / py_rate if refused else 0.0:.2f} us; both: {t:.3f} us per message"
    )
    for title, table in (("first check that refuses", first), ("any check that refuses", every)):
        print(f"\n| {title} | messages | share |\n|---|---:|---:|")
        for cause, count in table.most_common():
            print(f"| {cause} | {count:,} | {count / n:.2%} |")


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
    ap.add_argument("--why", nargs="+", metavar="CAPTURE", help="why sw_scan refuses messages")
    args = ap.parse_args()
    if not hasattr(_native, "scan_count"):
        sys.exit("sipwatch._native was built without the scanner (scan.c)")
    if args.why:
        why(args.why, args.rounds)
        return
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
