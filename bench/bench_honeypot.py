"""Benchmark the honeypot sensor's REGISTER rate against Kamailio answering with 401.

In one run, for each target:

- Kamailio (Debian `kamailio`, bench/kamailio-401.cfg: every REGISTER gets a stateless 401
  digest challenge, nothing else);
- sipwatch: `sipwatch sensor --config CFG`, a config written from `sipwatch sensor
  --example-config` with one UDP listener on 127.0.0.1, the store in bench/out and the
  per-source reply rate limit raised out of the way (every message is still recorded).

bench/loadgen.c (compiled here with `cc -O2` into bench/out/) sends REGISTERs to an existing
extension at a fixed rate for --step-seconds, each with its own Call-ID, branch, From tag and
CSeq, from --sources distinct addresses 127.A.B.C, and counts the replies matched by Call-ID and
branch. The rate goes up through --rates until a step has --max-loss % or more unanswered, then
a binary search between the last good and the first bad rate finds the highest rate with fewer
unanswered. For sipwatch a step also needs every message in the store (requests and replies,
counted in the SQLite store). The target runs pinned to --server-cpu, the generator to
--gen-cpu. Memory: the process tree's RSS and PSS, sampled every 0.2 s, during each step and
over three passes of --mem-sources new, the same again, and other new sources.

    python bench/bench_honeypot.py --append
    python bench/bench_honeypot.py --targets kamailio --rates 10000,20000,40000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from bench_analyze import (  # noqa: E402
    _descendants,
    _rss_kb,
    git_commit,
    machine,
    shown_command,
    version_of,
)
from benchdoc import append_section  # noqa: E402

SCRIPT = "bench_honeypot.py"  # for the command line shown in BENCHMARKS.md
HEADING = "## Honeypot sensor: REGISTER rate against Kamailio"
DEFAULT_RATES = "2000,5000,10000,15000,20000,30000,40000,50000,60000,80000,100000"
LOOPBACK = "127.0.0.1"


# --- small helpers -----------------------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def build_loadgen(out_dir: Path) -> Path:
    """Compile bench/loadgen.c into out_dir (again when the source is newer)."""
    src, exe = BENCH / "loadgen.c", out_dir / "loadgen"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            raise RuntimeError("no C compiler (cc) to build bench/loadgen.c")
        out_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True, timeout=120)
    return exe


def pinned(cpu: int | None, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if cpu is not None else cmd


def udp_rcvbuf_errors() -> int:
    """System-wide UdpRcvbufErrors (datagrams dropped because a socket buffer was full)."""
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()]
    rows = [ln for ln in lines if ln and ln[0] == "Udp:"]
    if len(rows) < 2 or "RcvbufErrors" not in rows[0]:
        return 0
    return int(rows[1][rows[0].index("RcvbufErrors")])


def socket_rcvbuf(port: int) -> str:
    """The receive buffer the kernel gave the socket on 127.0.0.1:port, from `ss`."""
    try:
        res = subprocess.run(
            ["ss", "-uanm", f"sport = :{port}"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(r"rb(\d+)", res.stdout)
    return f"{int(m.group(1)) / 2**20:.0f} MiB" if m else "?"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants (threads included)."""
    total = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def cpu_times(cpu: int | None) -> tuple[int, int]:
    """(busy, total) clock ticks of one CPU from /proc/stat; (0, 0) when not pinned."""
    if cpu is None:
        return 0, 0
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            ticks = [int(x) for x in line.split()[1:9]]  # user .. steal
            return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # minus idle, iowait
    return 0, 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemSampler(threading.Thread):
    """Summed RSS and PSS of a process and its descendants, sampled every `every` seconds.

    PSS splits shared pages between the processes sharing them, so Kamailio's shared memory
    counts once; RSS summed over its processes would count it once per process.
    """

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.rss_kb = self.pss_kb = self.peak_rss_kb = self.peak_pss_kb = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self) -> tuple[int, int]:
        pids = _descendants(self.pid)
        rss, pss = sum(_rss_kb(p) for p in pids), sum(_pss_kb(p) for p in pids)
        with self._lock:
            self.rss_kb, self.pss_kb = rss, pss
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)
        return rss, pss

    def take_peak(self) -> tuple[int, int]:
        """Peak (RSS, PSS) in kB since the last call; starts the next period."""
        with self._lock:
            peak = (self.peak_rss_kb, self.peak_pss_kb)
            self.peak_rss_kb, self.peak_pss_kb = self.rss_kb, self.pss_kb
        return peak

    def stop(self) -> None:
        self._stop.set()


# --- one REGISTER by hand: readiness and settling ----------------------------------------------


def probe(port: int, user: str, timeout: float = 0.5) -> bool:
    """One REGISTER from 127.0.0.1; True when a reply with its Call-ID comes back in time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        s.settimeout(timeout)
        sport = s.getsockname()[1]
        call_id = f"probe-{os.getpid()}-{time.monotonic_ns()}@sipwatch.bench"
        msg = (
            f"REGISTER sip:{LOOPBACK} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{sport};branch=z9hG4bK-{time.monotonic_ns()};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{user}@{LOOPBACK}>;tag=probe\r\n"
            f"To: <sip:{user}@{LOOPBACK}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 REGISTER\r\n"
            f"Contact: <sip:{user}@{LOOPBACK}:{sport}>\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        s.sendto(msg.encode(), (LOOPBACK, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(65535)
            except TimeoutError:
                return False
            if call_id.encode() in data:
                return True
    return False


# --- the servers under test --------------------------------------------------------------------


class Server:
    """A target process we started: its own session, stopped by its process group id."""

    def __init__(
        self, name: str, cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None
    ) -> None:
        self.name, self.cmd, self.log = name, cmd, log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
            cwd=cwd,
        )  # fmt: skip
        self.sampler = MemSampler(self.proc.pid)
        self.sampler.start()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_bytes()[-chars:].decode(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, port: int, user: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if probe(port, user):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, grace: float) -> int | None:
        """SIGTERM to our child's process group, SIGKILL after `grace` seconds."""
        self.sampler.stop()
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        self._log.close()
        return self.proc.returncode


def start_kamailio(port: int, cpu: int | None, children: int, work: Path) -> Server:
    run_dir = work / "kamailio-run"
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = ["kamailio", "-f", str(BENCH / "kamailio-401.cfg"), "-l", f"udp:{LOOPBACK}:{port}",
           "-n", str(children), "-Y", str(run_dir), "-DD", "-E"]  # fmt: skip
    return Server("kamailio", pinned(cpu, cmd), work / "kamailio.log")


# --- the sensor's configuration ----------------------------------------------------------------


def example_config(env: dict) -> str:
    """The sensor's commented example config: from the CLI, else from the module."""
    try:
        res = subprocess.run(
            ["sipwatch", "sensor", "--example-config"], capture_output=True, text=True,
            timeout=60, env=env,
        )  # fmt: skip
        if res.returncode == 0 and "[[listen]]" in res.stdout:
            return res.stdout
    except (OSError, subprocess.TimeoutExpired):
        pass
    from sipwatch.honeypot.config import EXAMPLE_CONFIG

    return EXAMPLE_CONFIG


def sensor_config(base: str, port: int, store: Path) -> tuple[dict, str, list[str]]:
    """The example config with the benchmark's listener, store and limits.

    Returns the config, an existing extension (the To user) and notes on what was changed or
    could not be found (a changed config format shows up here, not as a crash).
    """
    data = tomllib.loads(base)
    notes: list[str] = []
    sensor = data.setdefault("sensor", {})
    sensor.update(store=str(store), pcap_dir="", user="", log_interval=1)
    data["listen"] = [{"transport": "udp", "address": LOOPBACK, "port": port}]
    safety = data.setdefault("safety", {})
    for key, value in (("reply_rate", 1_000_000.0), ("reply_burst", 10_000_000)):
        if key not in safety:
            notes.append(f"[safety] {key} not in the example config; set anyway")
        safety[key] = value
    exts = data.get("accounts", {}).get("extensions") or []
    user = str(exts[0]).split("-")[0].strip() if exts else ""
    if not user:
        user = "100"
        data.setdefault("accounts", {})["extensions"] = ["100"]
        notes.append("no [accounts] extensions in the example config; using 100")
    return data, user, notes


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def toml_dumps(data: dict, prefix: str = "") -> str:
    """Tables, arrays of tables and scalars: what a sensor config holds."""
    scalars, tables, arrays = [], [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))
        else:
            scalars.append(f"{_toml_key(key)} = {_toml_value(value)}")
    out = "\n".join(scalars) + ("\n" if scalars else "")
    for key, value in tables:
        name = f"{prefix}{_toml_key(key)}"
        out += f"\n[{name}]\n" + toml_dumps(value, name + ".")
    for key, items in arrays:
        name = f"{prefix}{_toml_key(key)}"
        for item in items:
            out += f"\n[[{name}]]\n" + toml_dumps(item, name + ".")
    return out


def sensor_available(env: dict) -> bool:
    try:
        res = subprocess.run(
            ["sipwatch", "sensor", "--help"], capture_output=True, timeout=60, env=env
        )
        return res.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def check_sensor_config(path: Path, env: dict) -> list[str]:
    res = subprocess.run(
        ["sipwatch", "sensor", "--check-config", "--config", str(path)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    if res.returncode == 0:
        return []
    return (res.stderr or res.stdout).strip().splitlines() or [f"exit code {res.returncode}"]


def start_sensor(cfg: Path, cpu: int | None, work: Path, env: dict) -> Server:
    cmd = ["sipwatch", "sensor", "--config", str(cfg)]
    return Server("sipwatch", pinned(cpu, cmd), work / "sensor.log", env=env, cwd=work)


def sensor_counters(log: Path) -> dict[str, int]:
    """The last `counters k=v ...` line the sensor logged (every second in the benchmark)."""
    try:
        text = log.read_bytes()[-20000:].decode(errors="replace")
    except OSError:
        return {}
    found = re.findall(r"counters((?: \w+=\d+)+)", text)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[-1])} if found else {}


def store_rows(db: Path, t0: float, t1: float) -> tuple[int, int]:
    """(requests in, replies out) the sensor stored with a time in [t0, t1] (read-only)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            rows = con.execute(
                "select direction, count(*) from messages where ts >= ? and ts <= ? "
                "group by direction",
                (t0, t1),
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return -1, -1
    counts = dict(rows)
    return counts.get("in", 0), counts.get("out", 0)


def store_totals(db: Path) -> dict[str, int]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            rows = con.execute("select direction, count(*) from messages group by direction")
            return {str(d): n for d, n in rows}
        finally:
            con.close()
    except sqlite3.Error:
        return {}


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Step:
    rate: int
    sources: int
    sent: int = 0
    answered: int = 0
    unanswered_pct: float = 100.0
    send_rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    kernel_drops: int = 0  # UdpRcvbufErrors during the step, minus the generator's own
    generator_drops: int = 0
    stored: tuple[int, int] | None = None  # sipwatch: (requests, replies) stored for the step
    peak_rss_mb: float = 0.0
    peak_pss_mb: float = 0.0
    cpu_pct: float = 0.0  # CPU time the target used during the step / step time
    core_busy_pct: float | None = None  # the target's core busy, by anything (pinned runs)
    ok: bool = False
    note: str = ""

    @property
    def store_complete(self) -> bool:
        """Every answered request and every reply is in the store (requests the kernel
        dropped before the sensor saw them cannot be; they count as unanswered)."""
        return self.stored is not None and min(self.stored) >= self.answered

    @property
    def generator_limited(self) -> bool:
        return self.send_rate < 0.99 * self.rate or self.generator_drops > 0


@dataclass
class Target:
    name: str
    version: str
    port: int
    user: str
    steps: list[Step] = field(default_factory=list)
    best: int | None = None
    first_bad: int | None = None
    memory: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, args: argparse.Namespace, loadgen: Path) -> None:
        self.args, self.loadgen = args, loadgen
        self.run_id = (os.getpid() % 10000) * 1000

    def loadgen_run(self, port: int, user: str, rate: int, seconds: float, sources: int,
                    first: int) -> dict:  # fmt: skip
        self.run_id += 1
        cmd = pinned(self.args.gen_cpu, [
            str(self.loadgen), "--target", f"{LOOPBACK}:{port}", "--rate", str(rate),
            "--duration", str(seconds), "--sources", str(sources), "--first-source", str(first),
            "--user", user, "--run-id", str(self.run_id), "--wait", str(self.args.reply_wait),
        ])  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        if res.returncode != 0:
            raise RuntimeError(f"loadgen exited with {res.returncode}: {res.stderr.strip()}")
        return json.loads(res.stdout)

    def step(self, target: Target, srv: Server, rate: int, seconds: float, sources: int,
             first: int = 0, db: Path | None = None) -> Step:  # fmt: skip
        step = Step(rate, sources)
        srv.sampler.take_peak()
        core0 = cpu_times(self.args.server_cpu)
        drops0, cpu0, t0 = udp_rcvbuf_errors(), cpu_seconds(srv.proc.pid), time.time()
        r = self.loadgen_run(target.port, target.user, rate, seconds, sources, first)
        t1 = time.time()
        step.cpu_pct = 100 * (cpu_seconds(srv.proc.pid) - cpu0) / max(t1 - t0, 1e-3)
        core1 = cpu_times(self.args.server_cpu)
        if core1[1] > core0[1]:
            step.core_busy_pct = 100 * (core1[0] - core0[0]) / (core1[1] - core0[1])
        step.generator_drops = r["generator_rx_dropped"]
        step.kernel_drops = max(0, udp_rcvbuf_errors() - drops0 - step.generator_drops)
        step.sent, step.answered = r["sent"], r["answered"]
        step.unanswered_pct, step.send_rate = r["unanswered_pct"], r["send_rate"]
        step.p50_ms, step.p99_ms = r["latency_us"]["p50"] / 1e3, r["latency_us"]["p99"] / 1e3
        if r["status_other"]:
            step.note = f"{r['status_other']} replies other than 401"
        step.ok = step.unanswered_pct < self.args.max_loss and not r["status_other"]
        if db is not None:
            step.stored = self.wait_stored(db, t0 - 0.01, t1)
            if not step.store_complete:
                step.ok = False
                step.note = (step.note + "; " if step.note else "") + "store incomplete"
        self.settle(target, srv)
        rss, pss = srv.sampler.take_peak()
        step.peak_rss_mb, step.peak_pss_mb = rss / 1024, pss / 1024
        if step.generator_limited:
            step.ok = False
            step.note = (step.note + "; " if step.note else "") + "generator too slow"
        return step

    def wait_stored(self, db: Path, t0: float, t1: float) -> tuple[int, int]:
        """Rows stored for [t0, t1] once they stop growing (the store trails the replies)."""
        last, stable_since, deadline = (-2, -2), time.monotonic(), time.monotonic() + 60
        while time.monotonic() < deadline:
            n = store_rows(db, t0, t1)
            if n != last:
                last, stable_since = n, time.monotonic()
            elif time.monotonic() - stable_since >= 1.5:
                break
            time.sleep(0.3)
        return last

    def settle(self, target: Target, srv: Server) -> None:
        """Until the target answers promptly again (its queues drained), at most 60 s."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not srv.alive():
                raise RuntimeError(f"{srv.name} died:\n{srv.log_tail()}")
            if probe(target.port, target.user, timeout=0.3):
                break
        time.sleep(0.5)

    def search(self, target: Target, srv: Server, db: Path | None) -> None:
        """Up through the rates to the first failure, then bisect between good and bad."""
        a = self.args

        def run(rate: int) -> Step:
            s = self.step(target, srv, rate, a.step_seconds, a.sources, 0, db)
            target.steps.append(s)
            stored = ", stored {:,} + {:,}".format(*s.stored) if s.stored is not None else ""
            print(f"  {target.name} {rate:>7,} req/s: {s.unanswered_pct:7.3f}% unanswered, "
                  f"p99 {s.p99_ms:7.1f} ms, {s.peak_rss_mb:6.0f} MB RSS{stored}"
                  f"{'' if s.ok else '  FAIL'} {s.note}", flush=True)  # fmt: skip
            return s

        for rate in a.rates:
            s = run(rate)
            if s.ok:
                target.best = rate
                continue
            if s.generator_limited:
                target.notes.append(f"the generator could not send {rate:,} req/s; search stopped")
                return
            target.first_bad = rate
            break
        lo, hi = target.best, target.first_bad
        if lo is None or hi is None:
            return
        for _ in range(a.refine):
            if hi - lo <= max(a.resolution, lo * 0.03):
                break
            mid = int(round((lo + hi) / 2 / 100) * 100)
            s = run(mid)
            if s.ok:
                lo = target.best = mid
            elif s.generator_limited:
                break
            else:
                hi = target.first_bad = mid

    def memory(self, target: Target, srv: Server, db: Path | None) -> None:
        """Three passes: N new sources, the same N again, N other new ones (2N distinct)."""
        a = self.args
        n = a.mem_sources
        rate = a.mem_rate or int(min(10_000, 0.8 * (target.best or 2000)))
        seconds = n / rate
        passes = [("new", 10_000_000), ("same again", 10_000_000), ("other new", 10_000_000 + n)]
        srv.sampler.sample()
        before = srv.sampler.rss_kb / 1024
        target.memory.append({"pass": "before", "distinct": 0, "rss_mb": before,
                              "pss_mb": srv.sampler.pss_kb / 1024})  # fmt: skip
        for name, first in passes:
            s = self.step(target, srv, rate, seconds, n, first, db)
            distinct = n if name != "other new" else 2 * n
            srv.sampler.sample()
            row = {
                "pass": f"{n:,} {name}", "distinct": distinct, "rate": rate,
                "unanswered_pct": s.unanswered_pct, "stored": s.stored,
                "peak_rss_mb": s.peak_rss_mb, "rss_mb": srv.sampler.rss_kb / 1024,
                "pss_mb": srv.sampler.pss_kb / 1024,
            }  # fmt: skip
            target.memory.append(row)
            print(f"  {target.name} memory, {row['pass']} sources at {rate:,} req/s: "
                  f"{s.unanswered_pct:.3f}% unanswered, RSS {row['rss_mb']:.0f} MB "
                  f"(peak {s.peak_rss_mb:.0f}), PSS {row['pss_mb']:.0f} MB", flush=True)  # fmt: skip


# --- report ------------------------------------------------------------------------------------


def summary_table(targets: list[Target], mem_sources: int, max_loss: float) -> str:
    head = (
        f"| target | highest rate with < {max_loss:g}% unanswered | first failing rate | "
        "p99 latency there | peak RSS there |"
    )
    if mem_sources:  # no memory passes: no memory columns
        head += f" RSS after {mem_sources:,} sources | RSS after {2 * mem_sources:,} sources |"
    lines = [head, "|---|--:|--:|--:|--:|" + ("--:|--:|" if mem_sources else "")]
    for t in targets:
        best = next((s for s in t.steps if s.rate == t.best and s.ok), None)
        mem = [m for m in t.memory if m["pass"] != "before"]
        m100 = f"{mem[0]['rss_mb']:.0f} MB" if mem else "-"
        m200 = f"{mem[-1]['rss_mb']:.0f} MB" if len(mem) == 3 else "-"
        lines.append(
            f"| {t.version} | {f'{t.best:,} req/s' if t.best else 'none'} | "
            f"{f'{t.first_bad:,}' if t.first_bad else '-'} | "
            f"{f'{best.p99_ms:.1f} ms' if best else '-'} | "
            f"{f'{best.peak_rss_mb:.0f} MB' if best else '-'} |"
            + (f" {m100} | {m200} |" if mem_sources else "")
        )
    return "\n".join(lines)


def steps_table(targets: list[Target]) -> str:
    lines = [
        "| target | req/s | sent | answered | unanswered | p50 ms | p99 ms | kernel drops | "
        "target CPU | its core busy | stored requests / replies | peak RSS MB | peak PSS MB | |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for t in targets:
        for s in sorted(t.steps, key=lambda s: s.rate):
            stored = "{:,} / {:,}".format(*s.stored) if s.stored is not None else ""
            busy = f"{s.core_busy_pct:.0f}%" if s.core_busy_pct is not None else ""
            lines.append(
                f"| {t.name} | {s.rate:,} | {s.sent:,} | {s.answered:,} | "
                f"{s.unanswered_pct:.3f}% | {s.p50_ms:.2f} | {s.p99_ms:.1f} | {s.kernel_drops:,} | "
                f"{s.cpu_pct:.0f}% | {busy} | {stored} | {s.peak_rss_mb:.0f} | {s.peak_pss_mb:.0f} | "
                f"{'ok' if s.ok else 'FAIL'}{' ' + s.note if s.note else ''} |"
            )
    return "\n".join(lines)


def memory_table(targets: list[Target]) -> str:
    lines = [
        "| target | pass | distinct sources so far | unanswered | RSS MB after | PSS MB after | "
        "peak RSS MB |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for t in targets:
        for m in t.memory:
            una = f"{m['unanswered_pct']:.3f}%" if "unanswered_pct" in m else ""
            peak = f"{m['peak_rss_mb']:.0f}" if "peak_rss_mb" in m else ""
            lines.append(
                f"| {t.name} | {m['pass']} | {m['distinct']:,} | {una} | {m['rss_mb']:.0f} | "
                f"{m['pss_mb']:.0f} | {peak} |"
            )
    return "\n".join(lines)


def goals(targets: dict[str, Target], mem_sources: int) -> str:
    kam, sw = targets.get("kamailio"), targets.get("sipwatch")
    out = []
    if kam and kam.best:
        out.append(f"Kamailio: {kam.best:,} REGISTER/s with < 0.1% unanswered on one core.")
    if sw:
        if sw.best and kam and kam.best:
            ratio = sw.best / kam.best
            out.append(
                f"sipwatch / Kamailio = {ratio:.2f} (goal ≥ 0.5: "
                f"{'met' if ratio >= 0.5 else 'NOT met'})."
            )
        if sw.best is not None or sw.steps:
            ok = (sw.best or 0) >= 10_000
            out.append(
                f"sipwatch sustains {sw.best or 0:,} req/s with every message stored "
                f"(goal ≥ 10,000 on one core: {'met' if ok else 'NOT met'})."
            )
        mem = [m for m in sw.memory if m["pass"] != "before"]
        if len(mem) == 3:
            grow = mem[2]["rss_mb"] - mem[0]["rss_mb"]
            bounded = grow <= max(0.1 * mem[0]["rss_mb"], 20)
            out.append(
                f"sipwatch RSS {mem[0]['rss_mb']:.0f} MB after {mem_sources:,} distinct sources, "
                f"{mem[2]['rss_mb']:.0f} MB after {2 * mem_sources:,} ({grow:+.0f} MB; memory "
                f"{'bounded' if bounded else 'still growing'})."
            )
    return " ".join(out)


METHOD = """\
Goal (issue 3): the honeypot sensor, with every message recorded in the store, sustains at
least **50%** of Kamailio's REGISTER rate and at least **10,000 requests/s on one core**, and
its memory stays bounded under 100,000 distinct source addresses.

`bench/bench_honeypot.py` measures, one after the other, Kamailio 5.6 (Debian package,
`bench/kamailio-401.cfg`: a stateless 401 digest challenge from `www_challenge`, qop=auth, for
every REGISTER, nothing else; two UDP receiver processes) and `sipwatch sensor` (the example
config with one UDP listener on 127.0.0.1, a fresh SQLite store, no pcap, the per-source reply
rate limit raised out of the way; the state bounds keep their defaults). Both get an 8 MiB UDP
receive buffer. The target is pinned to one CPU with `taskset`, the load generator
`bench/loadgen.c` (built by the script with `cc -O2`) to the other. The generator sends
REGISTERs to an existing extension at a fixed rate for 5 s per step, each with its own Call-ID,
Via branch, From tag and CSeq, from 1,000 source addresses 127.A.B.C (chosen per datagram with
`IP_PKTINFO`), and matches the replies by Call-ID and branch; a reply counts when it arrives
within 1 s of the last request. The rate goes up through 2k, 5k, 10k, 15k, 20k, 30k, ... until
a step has ≥ 0.1% unanswered, then bisects between the last good and the first bad rate (to
~3%). For sipwatch a step also needs every answered request and every reply of the step in the
store (counted in SQLite by time). Columns: `kernel drops` is the rise of `UdpRcvbufErrors`
(system-wide) during the step; `target CPU` the CPU time of the target's processes over the
step's wall time; `its core busy` how busy the target's CPU was with anything (the rest is other
work on the machine, or kernel work for the target's packets). Memory is the summed RSS and PSS
(PSS counts Kamailio's shared memory once) of the target's processes, sampled every 0.2 s; the
memory passes then send 100,000 REGISTERs from 100,000 new source addresses, the same again,
and from 100,000 other new ones, at min(10,000, 0.8 × the target's best rate) per second.

```sh
python bench/bench_honeypot.py --append        # both targets, about 5 minutes
python bench/bench_honeypot.py --targets kamailio --rates 20000,40000 --mem-sources 0
```

Options: `--targets`, `--rates`, `--step-seconds`, `--sources`, `--max-loss`, `--refine`,
`--mem-sources` (0 = no memory passes), `--mem-rate`, `--server-cpu`, `--gen-cpu`,
`--kamailio-children`, `--sensor-config FILE` (a base config instead of the example one),
`--keep`, `--append`. Results also go to `bench/out/honeypot-result.json`.
"""


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default="kamailio,sipwatch", help="comma-separated")
    ap.add_argument("--rates", default=DEFAULT_RATES, help="comma-separated req/s, ascending")
    ap.add_argument("--step-seconds", type=float, default=5.0)
    ap.add_argument("--sources", type=int, default=1000, help="source addresses in rate steps")
    ap.add_argument("--max-loss", type=float, default=0.1, help="percent unanswered allowed")
    ap.add_argument("--refine", type=int, default=5, help="bisection steps after a failure")
    ap.add_argument("--resolution", type=int, default=500, help="req/s to stop bisecting at")
    ap.add_argument("--reply-wait", type=float, default=1.0, help="seconds to wait for replies")
    ap.add_argument("--mem-sources", type=int, default=100_000, help="0 = no memory passes")
    ap.add_argument("--mem-rate", type=int, default=0, help="req/s (default min(10k, 0.8 best))")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--gen-cpu", type=int, default=1)
    ap.add_argument("--kamailio-children", type=int, default=2)
    ap.add_argument(
        "--sensor-config", type=Path, help="base sensor config instead of the example one "
        "(listener, store, pcap, user and reply rate limit are still set by the benchmark)",
    )  # fmt: skip
    ap.add_argument("--out-dir", type=Path, default=BENCH / "out")
    ap.add_argument("--keep", action="store_true", help="keep the store and logs")
    ap.add_argument("--append", action="store_true", help="append the results to BENCHMARKS.md")
    args = ap.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    args.rates = sorted({int(r) for r in args.rates.split(",") if r.strip()})
    if not args.rates or args.rates[0] <= 0 or args.rates[-1] > 2_000_000:
        ap.error("--rates: positive numbers up to 2,000,000")
    if not 0.5 <= args.step_seconds <= 60 or not 0 <= args.refine <= 10:
        ap.error("--step-seconds 0.5..60, --refine 0..10")
    if not 1 <= args.sources <= 1_000_000 or not 0 <= args.mem_sources <= 1_000_000:
        ap.error("--sources 1..1,000,000, --mem-sources 0..1,000,000")
    if set(args.targets) - {"kamailio", "sipwatch"}:
        ap.error("--targets: kamailio and/or sipwatch")
    cpus = os.sched_getaffinity(0)
    if args.server_cpu not in cpus or args.gen_cpu not in cpus or args.server_cpu == args.gen_cpu:
        print(f"CPUs {sorted(cpus)}: cannot pin target and generator apart; not pinning")
        args.server_cpu = args.gen_cpu = None
    return args


def run_target(bench: Bench, name: str, work: Path, env: dict) -> Target | str:
    """Measure one target; a string says why it was not measured."""
    a = bench.args
    port = free_udp_port()
    db: Path | None = None
    if name == "kamailio":
        if not shutil.which("kamailio"):
            return "kamailio: not installed (Debian package `kamailio`), not measured"
        res = subprocess.run(["kamailio", "-v"], capture_output=True, text=True, timeout=30)
        m = re.search(r"kamailio (\d+\.\d+\.\d+)", res.stdout)
        target = Target("kamailio", f"Kamailio {m.group(1) if m else '?'}", port, "100")
        srv = start_kamailio(port, a.server_cpu, a.kamailio_children, work)
        target.notes.append(f"Kamailio: {a.kamailio_children} UDP receiver processes")
    else:
        if not sensor_available(env):
            return "sipwatch: `sipwatch sensor --help` does not work yet, not measured"
        db = work / "sensor.sqlite"
        for p in work.glob("sensor.sqlite*"):
            p.unlink()
        base = a.sensor_config.read_text() if a.sensor_config else example_config(env)
        data, user, notes = sensor_config(base, port, db)
        cfg = work / "sensor.toml"
        cfg.write_text(toml_dumps(data))
        problems = check_sensor_config(cfg, env)
        if problems:
            return "sipwatch: the benchmark's sensor config is rejected: " + "; ".join(problems)
        target = Target("sipwatch", f"sipwatch {version_of('sipwatch')} ({git_commit()})",
                        port, user, notes=notes)  # fmt: skip
        srv = start_sensor(cfg, a.server_cpu, work, env)
    try:
        srv.wait_ready(port, target.user, timeout=60)
        target.notes.append(f"{name}: UDP receive buffer {socket_rcvbuf(port)}")
        print(f"{target.version} on {LOOPBACK}:{port} (pid {srv.proc.pid})", flush=True)
        # warm-up, not counted: imports, caches, store tables
        bench.step(target, srv, 1000, 1.0, a.sources, 0, None)
        bench.search(target, srv, db)
        if a.mem_sources:
            bench.memory(target, srv, db)
        if db is not None:
            counters = sensor_counters(srv.log)
            if counters:
                target.notes.append(
                    "sipwatch counters at the end: "
                    + ", ".join(f"{k} {v:,}" for k, v in counters.items()
                                if k in ("received", "answered", "rate_limited", "queue_dropped",
                                         "recorded", "store_errors", "sources"))
                )  # fmt: skip
    finally:
        rc = srv.stop(grace=120 if db else 15)
        if rc not in (0, -signal.SIGTERM, None):
            target.notes.append(f"{name} exited with {rc} on SIGTERM")
    if db is not None:
        totals = store_totals(db)
        target.notes.append(
            "sipwatch store after shutdown: "
            + ", ".join(f"{n:,} {d}" for d, n in sorted(totals.items()))
        )
    return target


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # stop our servers on Ctrl-C and SIGTERM too (a shell's background job ignores SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    work = args.out_dir / "honeypot"
    work.mkdir(exist_ok=True)
    host = machine()  # before pinning: it counts the CPUs this process may use
    if args.gen_cpu is not None:
        os.sched_setaffinity(0, {args.gen_cpu})  # keep this script off the target's core
    loadgen = build_loadgen(args.out_dir)
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()[0]
    # measure the sipwatch of this working tree, whatever the installed copy points to
    env = dict(os.environ, NO_COLOR="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    bench = Bench(args, loadgen)
    targets: dict[str, Target] = {}
    notes: list[str] = []
    for name in args.targets:
        try:
            got = run_target(bench, name, work, env)
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
            print(exc, file=sys.stderr)
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            last = f" ... {lines[-1]}" if len(lines) > 1 else ""
            got = f"{name}: failed: {lines[0] if lines else type(exc).__name__}{last}"
        if isinstance(got, str):
            notes.append(got)
            print(got)
        else:
            targets[name] = got
            notes += got.notes
    pin = (
        f"target on CPU {args.server_cpu}, generator on CPU {args.gen_cpu}"
        if args.server_cpu is not None
        else "not pinned"
    )
    notes.append(
        f"{pin}; 1-minute load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    ts = list(targets.values())
    md = [
        f"Command: `{shown_command(SCRIPT)}`",
        "",
        f"Machine: {host}.",
        "",
        summary_table(ts, args.mem_sources, args.max_loss),
        "",
        goals(targets, args.mem_sources),
        "",
        "Steps:",
        "",
        steps_table(ts),
        "",
    ]
    if any(t.memory for t in ts):
        md += ["Memory:", "", memory_table(ts), ""]
    md += [f"- {n}" for n in notes] + [""]
    text = "\n".join(md)
    print()
    print(text)
    result = {
        "date": date, "command": shown_command(SCRIPT), "machine": host,
        "targets": {k: asdict(t) for k, t in targets.items()}, "notes": notes,
    }  # fmt: skip
    (args.out_dir / "honeypot-result.json").write_text(json.dumps(result, indent=1) + "\n")
    if args.append:
        append_section(BENCH / "BENCHMARKS.md", HEADING, f"### {date}\n\n{text}", METHOD)
        print("appended to bench/BENCHMARKS.md")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # the servers are already stopped by run_target's finally
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
