"""Benchmark `sipwatch analyze` against tshark and sip-doctor on one generated capture.

In one run, on the same file (made by bench/gen_capture.py):

- sipwatch: `sipwatch analyze CAPTURE --db DB` over the whole file (parse + label + store);
- tshark: `tshark -Y sip -T fields` extracting the fields sipwatch stores, over
  --chunk-packet pieces made with `editcap -c`, run one after another (tshark slows down per packet
  as a file grows, so chunks are its fair, fastest baseline);
- sip-doctor: `sip-doctor read --json` on the first chunk only (it is slow and memory-hungry).

Each tool runs as a child of this script and is measured on its own: wall time, ru_maxrss of that
child from wait4() (the largest single process), and the peak summed RSS of the child and all its
descendants, sampled every 20 ms (what matters if a tool forks workers). A sanity check compares
tshark's SIP count with what the generator wrote. Prints a Markdown table; --append adds it with
the command, date and machine to bench/BENCHMARKS.md.

    python bench/bench_analyze.py --packets 1000000 --append
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from benchdoc import append_section  # bench/ is the script's folder

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TIMEOUT = 4 * 3600  # seconds per child; a hung tool must not hang the benchmark

TSHARK_FIELDS = [
    "frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "udp.srcport", "udp.dstport",
    "tcp.srcport", "tcp.dstport", "sip.Method", "sip.Status-Code", "sip.r-uri.user",
    "sip.from.user", "sip.from.tag", "sip.to.user", "sip.Call-ID", "sip.CSeq.seq",
    "sip.CSeq.method", "sip.User-Agent", "sip.Server", "sip.auth.username",
]  # fmt: skip


@dataclass
class Run:
    """One measured child process."""

    wall: float = 0.0
    maxrss_kb: int = 0  # ru_maxrss of the child (largest single process)
    tree_kb: int = 0  # peak summed RSS of the child and its descendants (sampled)
    rc: int = 0


@dataclass
class Row:
    tool: str
    command: str
    input: str
    packets: int
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    @property
    def wall(self) -> float:
        return sum(r.wall for r in self.runs)  # chunks run one after another

    @property
    def pps(self) -> float:
        return self.packets / self.wall if self.wall else 0.0

    @property
    def failed(self) -> bool:
        return not self.runs or any(r.rc for r in self.runs)

    @property
    def rss_mb(self) -> float:
        return max((max(r.maxrss_kb, r.tree_kb) for r in self.runs), default=0) / 1024


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(cmd: list[str], stdout: Path | None = None, env: dict | None = None) -> Run:
    """Run cmd as a child, wait for it with wait4() to get its own rusage."""
    with tempfile.TemporaryFile() as err:
        if stdout:
            with stdout.open("wb") as out:
                run = _measure(cmd, out, err, env)
        else:
            run = _measure(cmd, subprocess.DEVNULL, err, env)
        if run.rc:
            err.seek(0)
            tail = err.read()[-2000:].decode(errors="replace")
            print(f"\n{cmd[0]} exited with {run.rc}:\n{tail}", file=sys.stderr)
    return run


def _measure(cmd: list[str], out: IO[bytes] | int, err: IO[bytes], env: dict | None) -> Run:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, sum(_rss_kb(p) for p in _descendants(proc.pid)))

    def kill() -> None:
        if not done.is_set():
            os.killpg(proc.pid, signal.SIGKILL)  # our own child's process group, by id

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timer = threading.Timer(TIMEOUT, kill)
    timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    timer.cancel()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, usage.ru_maxrss, peak, proc.returncode)


def tool_ok(cmd: list[str], env: dict | None = None) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60, env=env).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def first_line(cmd: list[str]) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (res.stdout or res.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


# --- steps -------------------------------------------------------------------------------------


def make_capture(args: argparse.Namespace) -> tuple[Path, dict]:
    if args.capture:
        man_path = Path(str(args.capture) + ".json")
        return args.capture, json.loads(man_path.read_text()) if man_path.exists() else {}
    cap = args.out_dir / f"attack-{args.packets}-{args.seed}.pcap"
    man_path = Path(str(cap) + ".json")
    if cap.exists() and man_path.exists():
        man = json.loads(man_path.read_text())
        sys.path.insert(0, str(BENCH))
        from gen_capture import GENERATOR_VERSION

        if man.get("generator_version") == GENERATOR_VERSION and man.get("packets") == args.packets:
            print(f"reusing {cap.name} ({args.packets:,} packets)")
            return cap, man
    cmd = [
        sys.executable,
        str(BENCH / "gen_capture.py"),
        "--packets",
        str(args.packets),
        "--seed",
        str(args.seed),
        "--head",
        str(args.chunk),
        "--out",
        str(cap),
    ]
    run = measure(cmd)
    if run.rc:
        sys.exit(f"gen_capture.py failed ({run.rc})")
    print(
        f"generated {cap.name}: {args.packets:,} packets in {run.wall:.1f} s, "
        f"peak RSS {run.maxrss_kb / 1024:.0f} MB"
    )
    return cap, json.loads(man_path.read_text())


def split(cap: Path, chunk: int, work: Path) -> tuple[list[Path], float]:
    chunks_dir = work / "chunks"
    shutil.rmtree(chunks_dir, ignore_errors=True)
    chunks_dir.mkdir(parents=True)
    run = measure(["editcap", "-c", str(chunk), str(cap), str(chunks_dir / "chunk.pcap")])
    if run.rc:
        sys.exit(f"editcap failed ({run.rc})")
    return sorted(chunks_dir.iterdir()), run.wall


def tshark_stat(chunk: Path) -> tuple[int, Counter]:
    """`tshark -q -z sip,stat`: total SIP messages and counts per method / status code."""
    res = subprocess.run(
        ["tshark", "-n", "-q", "-r", str(chunk), "-z", "sip,stat"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    total = (
        int(m.group(1)) if (m := re.search(r"Number of SIP messages: (\d+)", res.stdout)) else -1
    )
    counts: Counter = Counter()
    for m in re.finditer(r"^\s+(?:SIP (\d{3}) .*?|(\S+))\s*:\s*(\d+) Packets", res.stdout, re.M):
        counts[m.group(1) or m.group(2)] += int(m.group(3))
    return total, counts


def sanity(man: dict, chunks: list[Path], chunk: int, tshark_lines: int | None) -> list[str]:
    """Compare what tshark sees as SIP with what the generator says it wrote."""
    notes = []
    if tshark_lines is not None and man.get("packets"):
        ok = tshark_lines == man["packets"]
        notes.append(
            f"tshark found {tshark_lines:,} SIP packets over all chunks, generator wrote "
            f"{man['packets']:,}: {'OK' if ok else 'MISMATCH'}"
        )
    total, counts = tshark_stat(chunks[0])
    if man.get("head_packets") == min(chunk, man.get("packets", 0)):
        want: Counter = Counter()
        for k, v in man["head"].items():
            want[k.lstrip("!")] += v  # malformed messages still count under their method
        ok = total == man["head_packets"] and counts == want
        notes.append(
            f"tshark -z sip,stat on the first chunk: {total:,} SIP messages, per method "
            f"and status {'match' if counts == want else 'DIFFER from'} the generator's "
            f"counts: {'OK' if ok else 'MISMATCH'}"
        )
        if counts != want:
            diff = {
                k: (want.get(k, 0), counts.get(k, 0))
                for k in set(want) | set(counts)
                if want.get(k, 0) != counts.get(k, 0)
            }
            notes.append(f"  (generator, tshark) differences: {diff}")
    else:
        notes.append(f"tshark -z sip,stat on the first chunk: {total:,} SIP messages")
    return notes


def db_rows(db: Path) -> str:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        names = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        counts = {n: con.execute(f'select count(*) from "{n}"').fetchone()[0] for n in names}
        con.close()
    except sqlite3.Error as e:
        return f"store unreadable: {e}"
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{n}: {c:,} rows" for n, c in top)


# --- report ------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{len(os.sched_getaffinity(0))} CPUs ({cpu}), {mem:.0f} GiB RAM, Linux "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def shown_command(script: str = "bench_analyze.py") -> str:
    """The command line as typed (``script`` is the benchmark's file), without this machine's paths."""
    parts = []
    for a in sys.argv[1:]:
        p = Path(a)
        if p.is_absolute():
            try:
                a = str(p.resolve().relative_to(REPO))
            except ValueError:
                a = p.name
        parts.append(a)
    return " ".join([f"python bench/{script}", *parts])


def table(rows: list[Row], target: Row | None) -> str:
    lines = [
        "| tool | input | packets | wall s | packets/s | peak RSS MB | sipwatch speed-up |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        if r.failed:
            lines.append(f"| {r.tool} | {r.input} | {r.packets:,} | failed | | | |")
            continue
        peer = r is not target and not r.tool.startswith("sipwatch")
        ratio = f"{target.pps / r.pps:.1f}×" if target and r.pps and peer else ""
        lines.append(
            f"| {r.tool} | {r.input} | {r.packets:,} | {r.wall:.1f} | {r.pps:,.0f} | "
            f"{r.rss_mb:.0f} | {ratio} |"
        )
    return "\n".join(lines)


def version_of(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001 - any failure only means "unknown"
        return "?"


def git_commit() -> str:
    try:
        res = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        commit = res.stdout.strip() or "uncommitted"
        res = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return commit + ("+changes" if res.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000, help="packets to generate")
    ap.add_argument("--seed", type=int, default=5060)
    ap.add_argument("--chunk", type=int, default=100_000, help="packets per tshark chunk")
    ap.add_argument("--capture", type=Path, help="use this capture instead of generating one")
    ap.add_argument("--out-dir", type=Path, default=BENCH / "out")
    ap.add_argument("--keep", action="store_true", help="keep capture, chunks, outputs and DB")
    ap.add_argument("--skip-sip-doctor", action="store_true")
    ap.add_argument("--skip-tshark", action="store_true")
    ap.add_argument("--skip-sipwatch", action="store_true")
    ap.add_argument(
        "--skip-detect", action="store_true", help="skip the reference run with detection"
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs of sipwatch analyze --no-detect (median shown)"
    )
    ap.add_argument("--append", action="store_true", help="append the results to BENCHMARKS.md")
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    work = args.out_dir / "work"
    work.mkdir(exist_ok=True)
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()[0]

    cap, man = make_capture(args)
    packets = man.get("packets") or args.packets
    chunks, split_s = split(cap, args.chunk, work)
    chunk0 = int(man.get("head_packets") or min(args.chunk, packets))
    print(f"editcap -c {args.chunk}: {len(chunks)} chunks in {split_s:.1f} s")
    rows: list[Row] = []
    notes: list[str] = []
    env = dict(os.environ, NO_COLOR="1")

    sipwatch: Row | None = None
    # measure the sipwatch of this working tree, whatever the installed copy points to
    sw_env = dict(
        env, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    )
    detected: Row | None = None
    if not args.skip_sipwatch:
        if tool_ok(["sipwatch", "analyze", "--help"], sw_env):
            # the goal is parse + label + store: --no-detect; the default run adds the
            # rule engine (issue 4) and is shown for reference
            for flags, label in ((["--no-detect"], "--no-detect "), ([], "")):
                if label == "" and args.skip_detect:
                    continue
                db = work / "bench.sqlite"
                for p in work.glob("bench.sqlite*"):
                    p.unlink()
                row = Row(
                    f"sipwatch {version_of('sipwatch')} ({git_commit()}) "
                    f"{label.strip() or 'with detection'}",
                    f"`sipwatch analyze {label}CAPTURE --db DB`",
                    "the whole file",
                    packets,
                )
                cmd = ["sipwatch", "analyze", "-q", *flags, str(cap), "--db", str(db)]
                repeats = args.repeat if flags else 1
                tries = []
                for i in range(repeats):
                    print(f"sipwatch analyze {label}({i + 1}/{repeats}) ...", flush=True)
                    for p in work.glob("bench.sqlite*"):
                        p.unlink()  # every run into a fresh store
                    tries.append(measure(cmd, env=sw_env))
                # the median run: one run on a shared machine can be 20% off either way
                run = sorted(tries, key=lambda r: r.wall)[len(tries) // 2]
                if repeats > 1:
                    walls = ", ".join(f"{r.wall:.1f}" for r in tries)
                    notes.append(
                        f"sipwatch analyze {label}ran {repeats} times ({walls} s); the table "
                        "shows the median run"
                    )
                row.runs.append(run)
                if run.rc:
                    notes.append(f"sipwatch analyze {label}exited with {run.rc}")
                notes.append(f"sipwatch {label or 'with detection '}store: {db_rows(db)}")
                rows.append(row)
                if flags:
                    sipwatch = row
                else:
                    detected = row
        else:
            notes.append("sipwatch: `sipwatch analyze --help` does not work yet, not measured")

    tshark_lines = None
    tshark: Row | None = None
    doctor: Row | None = None
    if not args.skip_tshark:
        m = re.search(r"\d+\.\d+\.\d+", first_line(["tshark", "--version"]))
        version = f"tshark {m.group(0) if m else '?'}"
        fields = [a for f in TSHARK_FIELDS for a in ("-e", f)]
        tshark = Row(
            version,
            "`tshark -n -r CHUNK -Y sip -T fields -E occurrence=f -e ...`",
            f"{len(chunks)} chunk(s) of up to {args.chunk:,}, one after another",
            packets,
        )
        tsv = work / "tshark.tsv"
        tshark_lines = 0
        for i, c in enumerate(chunks):
            print(f"tshark chunk {i + 1}/{len(chunks)} ...", end="\r", flush=True)
            cmd = [
                "tshark",
                "-n",
                "-r",
                str(c),
                "-Y",
                "sip",
                "-T",
                "fields",
                "-E",
                "occurrence=f",
                *fields,
            ]
            run = measure(cmd, stdout=tsv)
            tshark.runs.append(run)
            with tsv.open("rb") as f:
                tshark_lines += sum(1 for _ in f)
            if run.rc:
                notes.append(f"tshark exited with {run.rc} on chunk {i}")
        print()
        rows.append(tshark)

    if not args.skip_sip_doctor:
        doctor = Row(
            f"sip-doctor {version_of('sip-doctor')}",
            "`sip-doctor read --json CHUNK`",
            f"the first chunk of {chunk0:,}",
            chunk0,
        )
        print("sip-doctor read --json (first chunk) ...", flush=True)
        run = measure(
            ["sip-doctor", "read", "--json", str(chunks[0])], stdout=work / "doctor.json", env=env
        )
        doctor.runs.append(run)
        if run.rc:
            notes.append(f"sip-doctor exited with {run.rc}")
        rows.append(doctor)

    notes += sanity(man, chunks, args.chunk, tshark_lines)
    notes.append(
        f"1-minute load average {load_before:.2f} before the runs, {os.getloadavg()[0]:.2f} "
        "after (other work on the machine slows every tool)"
    )
    md = [
        f"Command: `{shown_command()}`",
        "",
        f"Machine: {machine()}.",
        "",
        f"Capture: {packets:,} packets generated by `bench/gen_capture.py --seed {man.get('seed', args.seed)}` "
        f"({man.get('sources_used', '?'):,} sources, {man.get('first', '?')[:10]} to "
        f"{man.get('last', '?')[:10]}); `editcap -c {args.chunk}` took {split_s:.1f} s "
        "(not counted).",
        "",
        table(rows, sipwatch if sipwatch and not sipwatch.failed else None),
        "",
    ]
    if sipwatch and not sipwatch.failed:
        goals = []
        if tshark and not tshark.failed:
            goals.append(f"sipwatch / tshark = {sipwatch.pps / tshark.pps:.1f}× (goal ≥ 5×)")
        if doctor and not doctor.failed:
            goals.append(f"sipwatch / sip-doctor = {sipwatch.pps / doctor.pps:.1f}× (goal ≥ 20×)")
        goals.append(f"sipwatch peak RSS {sipwatch.rss_mb:.0f} MB (goal < 300 MB)")
        goals.append(
            f"150 million packets at this rate: {150e6 / sipwatch.pps / 60:.0f} minutes (goal < 30)"
        )
        if detected and not detected.failed and tshark and not tshark.failed:
            goals.append(
                f"with detection (the default, issue 4's engine on top) "
                f"{detected.pps / tshark.pps:.1f}× tshark"
            )
        md += ["; ".join(goals) + ".", ""]
    md += [f"- {n}" for n in notes] + [""]
    text = "\n".join(md)
    print()
    print(text)
    result = {
        "date": date,
        "command": shown_command(),
        "machine": machine(),
        "manifest": man,
        "rows": [
            {
                "tool": r.tool,
                "packets": r.packets,
                "wall": r.wall,
                "pps": r.pps,
                "rss_mb": r.rss_mb,
                "runs": [vars(x) for x in r.runs],
            }
            for r in rows
        ],
        "notes": notes,
    }
    (args.out_dir / "bench-result.json").write_text(json.dumps(result, indent=1) + "\n")
    if args.append:
        path = BENCH / "BENCHMARKS.md"
        append_section(path, "## Runs of bench_analyze.py", f"### {date}\n\n{text}")
        print(f"appended to {path.relative_to(REPO)}")

    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
        if not args.capture:
            cap.unlink(missing_ok=True)
            Path(str(cap) + ".json").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
