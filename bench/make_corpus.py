"""Build a labelled corpus: real tools against the honeypot sensor on loopback, tcpdump recording.

    python bench/make_corpus.py --out DIR      -> DIR/corpus.pcap, DIR/labels.csv

Each actor has its own 127.0.0.x source address, so the labels file can name it; an actor that
does several things (the multi-stage attacker) has one row per label. SIPVicious svwar and
svcrack ignore their -b option, so they run through a tiny launcher that binds their socket to
the actor's address. Needs root (tcpdump on lo), sipp, SIPVicious and tcpdump; the whole run
takes about 30 s. Used by tests/integration/test_evaluate_corpus.py; the actors and the scores
are described in docs/evaluate.md and docs/detection.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import attacktools  # noqa: E402  (tests/attacktools.py: the tools from a chosen source address)

SERVERS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")  # the sensor listens on all three
STRONG = "Zq8-vT3r-Lm6x-Pw2k"
TYPO_PW = "Blue-Fox-77"
CALL_PW = "Green-Owl-42"
CALLER_PW = "Red-Kite-31"  # 105: a user who calls national numbers
CRACKED_PW = "amsterdam1"  # 150: in the bruteforcer's word list, not a trivial password
SPAM_PW = "Tin-Gull-68"  # 199: the account the SPIT dialer uses
NEEDED = ("sipvicious_svmap", "sipvicious_svwar", "sipvicious_svcrack", "sipp", "tcpdump")

# actor address -> its labels (one row each in labels.csv)
ACTORS: dict[str, tuple[str, ...]] = {
    "127.0.0.11": ("server_scan",),  # svmap over the three server addresses
    "127.0.0.12": ("extension_scan",),  # svwar -e100-199
    "127.0.0.13": ("bruteforce",),  # svcrack on 101 (finds 1234) and on 150 (finds amsterdam1)
    "127.0.0.14": ("toll_fraud",),  # SIPp authenticated INVITEs to international/premium numbers
    "127.0.0.15": ("flood",),  # SIPp OPTIONS at 400/s
    # one address through all four stages: svmap, svwar, svcrack, then a call with what it found
    "127.0.0.16": ("server_scan", "extension_scan", "bruteforce", "toll_fraud"),
    "127.0.0.17": ("toll_fraud",),  # registers as 150 with 13's password, calls abroad: sharing
    "127.0.0.18": ("spit",),  # SIPp dialer: 40 national numbers at 10 calls/s, own account
    "127.0.0.19": ("fuzz",),  # SIPp malformed messages (2 rounds of 17) and 6 binary datagrams
    "127.0.0.21": ("benign",),  # SIPp registrations with the right password
    "127.0.0.22": ("benign",),  # a user who mistypes the password once, then gets it right
    "127.0.0.23": ("benign",),  # OPTIONS keepalives (a monitoring probe)
    "127.0.0.24": ("benign",),  # calls between extensions
    "127.0.0.25": ("benign",),  # after the attacks: 3 calls to national numbers
}
MULTI_STAGE = "127.0.0.16"
SHARER, CRACKER = "127.0.0.17", "127.0.0.13"  # the sharer uses what the cracker found
TRIVIAL_USER = "127.0.0.14"  # uses 101/1234 found by 13 too, but 1234 proves no link
SPIT_CALLEES = [f"020{7460000 + 37 * i:07d}" for i in range(40)]  # Amsterdam numbers (NL)


def missing_tools() -> list[str]:
    return [t for t in NEEDED if shutil.which(t) is None]


def _free_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ok = True
        for host in SERVERS[1:]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    ok = False
        if ok:
            return port
    raise RuntimeError("no free port")


def _config(work: Path, port: int) -> str:
    listen = "".join(
        f'[[listen]]\ntransport = "udp"\naddress = "{a}"\nport = {port}\n' for a in SERVERS
    )
    return f"""[sensor]
name = "corpus"
store = "{work / "sensor.sqlite"}"
region = "NL"
log_interval = 60

{listen}
[personality]
name = "asterisk"

[accounts]
extensions = ["100-105", "150", "199"]
[accounts.passwords]
101 = "1234"
102 = "{STRONG}"
103 = "{TYPO_PW}"
104 = "{CALL_PW}"
105 = "{CALLER_PW}"
150 = "{CRACKED_PW}"
199 = "{SPAM_PW}"

[safety]
reply_rate = 5000
reply_burst = 10000
"""


class _Proc:
    """A background process whose stderr is read until a line shows it is ready."""

    def __init__(self, cmd: list[str], ready: str, cwd: Path, count: int = 1) -> None:
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
        threading.Thread(target=self._read, args=(ready, count), daemon=True).start()

    def _read(self, ready: str, count: int) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if sum(ready in x for x in self.lines) >= count:
                self._ready.set()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.1):
                return
            if self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"{self.proc.args[0]} did not start:\n" + "\n".join(self.lines[-20:]))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _sv(tool: str, actor: str, port: int, args: list[str], work: Path) -> None:
    attacktools.sipvicious(tool, actor, port, args, work)


def _sipp(
    scenario: str, actor: str, port: int, args: list[str], work: Path, **subst: str
) -> subprocess.CompletedProcess[str]:
    return attacktools.sipp(scenario, actor, "127.0.0.1", port, args, work, **subst)


def _register(actor: str, port: int, user: str, password: str, final: str, work: Path) -> None:
    args = ["-m", "1", "-s", user, "-au", user, "-ap", password]
    _sipp("register_auth.xml", actor, port, args, work, FINAL=final)


def _call(actor: str, port: int, user: str, pw: str, number: str, work: Path, n: int = 1) -> None:
    attacktools.call(actor, "127.0.0.1", port, user, pw, number, work, n=n)


def _keepalives(actor: str, port: int, n: int, gap: float) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((actor, 0))
        s.settimeout(1)
        lport = s.getsockname()[1]
        for i in range(n):
            msg = (
                f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {actor}:{lport};branch=z9hG4bK-ka{i};rport\r\n"
                f"From: <sip:monitor@{actor}>;tag=ka{i}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
                f"Call-ID: keepalive-{i}@{actor}\r\nCSeq: {i + 1} OPTIONS\r\n"
                "Max-Forwards: 70\r\nUser-Agent: corpus-monitor/1.0\r\nContent-Length: 0\r\n\r\n"
            )
            s.sendto(msg.encode(), ("127.0.0.1", port))
            with contextlib.suppress(TimeoutError):  # a lost reply is fine for a probe
                s.recvfrom(65535)
            time.sleep(gap)


def _benign(port: int, work: Path) -> None:
    for _ in range(3):
        _register("127.0.0.21", port, "102", STRONG, "200", work)
        time.sleep(0.5)
    _register("127.0.0.22", port, "103", "Blue-Fox-76", "403", work)  # the typo
    time.sleep(1)
    _register("127.0.0.22", port, "103", TYPO_PW, "200", work)
    _register("127.0.0.24", port, "104", CALL_PW, "200", work)
    _call("127.0.0.24", port, "104", CALL_PW, "105", work)
    _call("127.0.0.24", port, "104", CALL_PW, "150", work)


def _benign_after(port: int, work: Path) -> None:
    """A phone that first shows up after the attacks and calls a few national numbers."""
    _register("127.0.0.25", port, "105", CALLER_PW, "200", work)
    for number in ("0201234567", "0104567890", "0301234567"):
        _call("127.0.0.25", port, "105", CALLER_PW, number, work)


def _crack(actor: str, port: int, user: str, words: list[str], work: Path) -> None:
    wordlist = work / f"words-{actor}-{user}.txt"
    wordlist.write_text("\n".join(words) + "\n")
    _sv("svcrack", actor, port, [f"-u{user}", "-d", str(wordlist), "127.0.0.1"], work)


def _spit(actor: str, port: int, work: Path) -> None:
    """A dialer with its own account calling 40 numbers, 10 calls a second."""
    from sipwatch.honeypot.personality import load_personality

    p = load_personality("asterisk")
    callees = work / "callees.csv"
    callees.write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in SPIT_CALLEES))
    n = str(len(SPIT_CALLEES))
    args = ["-inf", str(callees), "-r", "10", "-m", n, "-au", "199", "-ap", SPAM_PW]
    _sipp(
        "spit_calls.xml", actor, port, args, work,
        USER="199", CHALLENGE=str(p.invite_challenge), FINAL=str(p.invite_final[-1]),
    )  # fmt: skip


def _fuzz(actor: str, port: int, work: Path) -> None:
    """SIPp sends the malformed cases of fuzz_malformed.xml (2 rounds of 17), then a bounded
    Python sender sends what an XML scenario cannot hold: binary bytes (6 datagrams, from a
    fixed seed)."""
    many = "\n".join(f"X-Pad-{i}: {i}" for i in range(300))
    _sipp(
        "fuzz_malformed.xml", actor, port, ["-m", "2", "-r", "20"], work,
        LONG_VALUE="A" * 9000, LONG_VIA="v" * 1100, LONG_URI="u" * 300, MANY_HEADERS=many,
    )  # fmt: skip
    rng = random.Random(5060)
    junk = [bytes(rng.randrange(256) for _ in range(64)) for _ in range(2)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((actor, 0))
        lport = s.getsockname()[1]
        sip = (
            f"OPTIONS sip:100@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {actor}:{lport};branch=z9hG4bK-bin{{i}}\r\n"
            f"From: <sip:fuzz@{actor}>;tag=bin{{i}}\r\nTo: <sip:100@127.0.0.1:{port}>\r\n"
            f"Call-ID: bin{{i}}@{actor}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        datagrams = [
            *junk,  # not SIP at all: noise to the rules
            junk[0] + sip.format(i=1).encode(),  # binary bytes before a start line
            b"\x00" * 16 + sip.format(i=2).encode(),
            sip.format(i=3).encode().replace(b"Via:", b"V\x00ia:"),  # a NUL in a header name
            sip.format(i=4).encode().replace(b"Call-ID: ", b"Call-ID: \xff\xfe\x00"),
        ]
        for d in datagrams:
            s.sendto(d, ("127.0.0.1", port))
            time.sleep(0.02)


def _attacks(port: int, work: Path) -> None:
    _sv("svmap", "127.0.0.11", port, ["127.0.0.1-3"], work)
    _sv("svwar", "127.0.0.12", port, ["-e100-199", "127.0.0.1"], work)
    words = ["0000", "letmein", "password", "101", "12345", "1234"]
    _crack(CRACKER, port, "101", words, work)
    _crack(
        CRACKER, port, "150", ["150", "qwerty", "welcome1", "summer2019", "0000", CRACKED_PW], work
    )
    _call(TRIVIAL_USER, port, "101", "1234", "00442079460000", work, n=3)
    _call(TRIVIAL_USER, port, "101", "1234", "0900123456", work, n=2)
    # the sharer: straight to 150 with the password 13 cracked, no scan, no guessing
    _register(SHARER, port, "150", CRACKED_PW, "200", work)
    _call(SHARER, port, "150", CRACKED_PW, "0048221234567", work, n=2)
    # one address through SS -> ES -> RHJ -> TF
    _sv("svmap", MULTI_STAGE, port, ["127.0.0.1-3"], work)
    _sv("svwar", MULTI_STAGE, port, ["-e100-199", "127.0.0.1"], work)
    _crack(MULTI_STAGE, port, "101", words, work)
    _call(MULTI_STAGE, port, "101", "1234", "00972599123456", work, n=2)
    _spit("127.0.0.18", port, work)
    _fuzz("127.0.0.19", port, work)
    _sipp("options_flood.xml", "127.0.0.15", port, ["-r", "400", "-m", "2400"], work)


def make_corpus(out: Path) -> tuple[Path, Path]:
    """Record the corpus into ``out``; return (pcap, labels csv)."""
    missing = missing_tools()
    if missing:
        raise RuntimeError(f"needs {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    port = _free_port()
    pcap = out / "corpus.pcap"
    (work / "sensor.toml").write_text(_config(work, port))
    sensor = _Proc(
        [sys.executable, "-m", "sipwatch.cli", "sensor", "--config", str(work / "sensor.toml")],
        "sipwatch.sensor: listening on", work, count=len(SERVERS),
    )  # fmt: skip
    try:
        sensor.wait_ready(30)
        dump = _Proc(
            ["tcpdump", "-i", "lo", "-n", "-U", "-w", str(pcap), f"udp port {port}"],
            "listening on", work,
        )  # fmt: skip
        try:
            dump.wait_ready(15)
            ka = threading.Thread(target=_keepalives, args=("127.0.0.23", port, 8, 2.0))
            ka.start()
            _benign(port, work)
            _attacks(port, work)
            _benign_after(port, work)
            ka.join(30)
            time.sleep(1)  # the last replies
        finally:
            dump.stop(signal.SIGINT)
    finally:
        sensor.stop()
    labels = out / "labels.csv"
    rows = "".join(f"{a},{lb}\n" for a, lbs in ACTORS.items() for lb in lbs)
    labels.write_text("source_ip,label\n" + rows)
    return pcap, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the corpus")
    args = parser.parse_args()
    started = time.monotonic()
    pcap, labels = make_corpus(args.out)
    print(f"{pcap} ({pcap.stat().st_size} bytes), {labels}: {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
