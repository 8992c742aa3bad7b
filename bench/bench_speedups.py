"""C fast paths vs the pure-Python parser: calls/s on typical attack messages, one core.

    python bench/bench_speedups.py [--seconds 1.0]

parse_head (start line, header dict and message._check in C) vs parse_pure() for each
benchmark message, then the store-row fields (From/To name-addr, top Via branch, digest
username/realm, all of flat() at once) vs the Python field parsers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_parse import SAMPLES, rate  # noqa: E402
from sipwatch.sip import speedups  # noqa: E402
from sipwatch.sip.digest import parse_digest  # noqa: E402
from sipwatch.sip.headers import parse_name_addr, parse_via  # noqa: E402
from sipwatch.sip.message import parse, parse_pure  # noqa: E402


def python_name_addr(value: str) -> tuple:
    na = parse_name_addr(value)
    uri = na.uri
    return (na.display, na.uri_text, uri.scheme, uri.user, uri.host, uri.port, na.tag)


def _flat_py(msg) -> tuple:
    return msg._flat_py()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = ap.parse_args()
    if not speedups.AVAILABLE:
        sys.exit("sipwatch.sip._speedups is not built (pip install -e . with a C compiler)")
    sec = args.seconds
    print(
        f"{'parse_head vs parse_pure()':34s} {'C/s':>12s} {'Python/s':>12s} {'C us':>7s} {'x':>6s}"
    )
    for name, data in SAMPLES.items():
        assert speedups.parse_head(data) is not None, name
        c = rate(lambda d=data: speedups.parse_head(d), sec)
        py = rate(lambda d=data: parse_pure(d), sec)
        nhdr = data[: data.find(b"\r\n\r\n")].count(b"\r\n")
        label = f"{name} ({nhdr} headers)"
        print(f"{label:34s} {c:12,.0f} {py:12,.0f} {1e6 / c:7.2f} {c / py:6.1f}")

    msg = parse(SAMPLES["register_digest"])
    fields = [
        ("name_addr(From)", speedups.name_addr, python_name_addr, msg.get("from")),
        ("name_addr(To)", speedups.name_addr, python_name_addr, msg.get("to")),
        ("name_addr(Contact)", speedups.name_addr, python_name_addr, msg.get("contact")),
        ("via_branch(Via)", speedups.via_branch, lambda v: parse_via(v).branch, msg.get("via")),
        (
            "digest_user_realm(Authorization)",
            speedups.digest_user_realm,
            lambda v: (lambda d: (d.username, d.realm))(parse_digest(v)),
            msg.get("authorization"),
        ),
        ("flat() all at once", lambda m: speedups.flat(m.headers, m.ruri), _flat_py, msg),
    ]
    print(
        f"\n{'field (register_digest)':34s} {'C/s':>12s} {'Python/s':>12s} {'C us':>7s} {'x':>6s}"
    )
    for label, fast, slow, value in fields:
        assert fast(value) is not None and value is not None, label
        c = rate(lambda f=fast, v=value: f(v), sec)
        py = rate(lambda f=slow, v=value: f(v), sec)
        print(f"{label:34s} {c:12,.0f} {py:12,.0f} {1e6 / c:7.2f} {c / py:6.1f}")


if __name__ == "__main__":
    main()
