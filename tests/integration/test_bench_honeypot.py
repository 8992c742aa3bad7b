"""The honeypot benchmark's parts work: load generator, Kamailio reference, sensor config.

bench/bench_honeypot.py finds the highest REGISTER rate each target answers; its figures are
only as good as the generator's counting, so the generator is checked here against a tiny
responder built from sipwatch's own parser (exact counts, distinct sources, unique ids) and
against Kamailio with bench/kamailio-401.cfg (every REGISTER answered with 401).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sipwatch.sip.build import build_response
from sipwatch.sip.message import parse

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_honeypot", BENCH / "bench_honeypot.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_honeypot"] = mod
    spec.loader.exec_module(mod)
    return mod


bh = _load_bench()

needs_cc = pytest.mark.skipif(
    not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler to build loadgen.c"
)


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory) -> Path:
    return bh.build_loadgen(tmp_path_factory.mktemp("loadgen"))


def _run(loadgen: Path, port: int, rate: int, seconds: float, sources: int) -> dict:
    cmd = [str(loadgen), "--target", f"127.0.0.1:{port}", "--rate", str(rate), "--duration",
           str(seconds), "--sources", str(sources), "--wait", "2", "--run-id", "7"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(res.stdout)


@needs_cc
def test_loadgen_counts_replies_from_a_sipwatch_built_responder(loadgen: Path) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # room for the whole burst: on a loaded machine this thread may not run for a while, and
    # the default buffer (~170 such datagrams) would drop what the test counts
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    port = sock.getsockname()[1]
    seen: list[tuple[str, object]] = []
    stop = threading.Event()

    def respond() -> None:
        n = 0
        while n < 10_000:
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                if stop.is_set():  # stopped, and nothing left to read
                    return
                continue
            n += 1
            msg = parse(data)
            seen.append((addr[0], msg))
            if n % 100 != 0:  # leave every 100th unanswered: the generator must notice
                sock.sendto(build_response(msg, 401, to_tag="t").to_bytes(), addr)

    t = threading.Thread(target=respond, daemon=True)
    t.start()
    try:
        r = _run(loadgen, port, rate=1000, seconds=0.5, sources=50)
    finally:
        stop.set()
        t.join(5)
        sock.close()
    assert r["sent"] == 500 == len(seen)
    assert r["answered"] == r["status_401"] == 495
    assert r["unanswered"] == 5 and abs(r["unanswered_pct"] - 1.0) < 1e-9
    assert r["foreign"] == r["bad_branch"] == r["duplicates"] == r["send_errors"] == 0
    msgs = [m for _, m in seen]
    assert all(m.method == "REGISTER" and not m.error and m.to_user == "100" for m in msgs)
    assert len({src for src, _ in seen}) == 50  # 50 distinct source addresses
    assert all(src.startswith("127.") and src != "127.0.0.1" for src, _ in seen)
    for attr in ("call_id", "top_branch", "from_tag"):
        assert len({getattr(m, attr) for m in msgs}) == 500, attr


@needs_cc
@pytest.mark.skipif(not shutil.which("kamailio"), reason="kamailio is not installed")
def test_kamailio_answers_every_register_with_401(loadgen: Path, tmp_path: Path) -> None:
    port = bh.free_udp_port()
    srv = bh.start_kamailio(port, None, 1, tmp_path)
    try:
        srv.wait_ready(port, "100", timeout=20)
        r = _run(loadgen, port, rate=2000, seconds=1.0, sources=500)
    finally:
        srv.stop(grace=10)
    assert not srv.alive()
    assert r["sent"] == 2000
    assert r["answered"] == r["status_401"] == 2000, r
    assert r["foreign"] == r["bad_branch"] == r["duplicates"] == 0


def test_sensor_config_from_the_example_is_valid(tmp_path: Path) -> None:
    config = pytest.importorskip("sipwatch.honeypot.config")
    data, user, notes = bh.sensor_config(config.EXAMPLE_CONFIG, 5099, tmp_path / "s.sqlite")
    assert notes == [] and user == "100"
    path = tmp_path / "sensor.toml"
    path.write_text(bh.toml_dumps(data))
    cfg = config.load_config(path)
    assert [(x.transport, x.address, x.port) for x in cfg.listen] == [("udp", "127.0.0.1", 5099)]
    assert cfg.sensor.store == str(tmp_path / "s.sqlite") and cfg.sensor.pcap_dir == ""
    assert cfg.safety.reply_rate >= 1_000_000  # the rate limit must not cap the benchmark
    assert cfg.safety.max_sources == config.SensorConfig().safety.max_sources  # bounds kept
