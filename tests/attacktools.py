"""Run the real attack tools from a chosen loopback source address at a chosen target.

SIPVicious binds to '' or 0.0.0.0 whatever its -b option says, so svmap/svwar/svcrack run
through a tiny launcher that binds their socket to the actor's address; SIPp takes -i.
Scenarios live in tests/data/sipp/ with @NAME@ placeholders filled per run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SIPP_DIR = Path(__file__).resolve().parent / "data" / "sipp"
TOOLS = ("sipvicious_svmap", "sipvicious_svwar", "sipvicious_svcrack", "sipp")

_LAUNCH = """import importlib, socket, sys
_bind, _ip = socket.socket.bind, sys.argv[1]
def bind(self, addr):
    if isinstance(addr, tuple) and addr[0] in ("", "0.0.0.0"):
        addr = (_ip, *addr[1:])
    return _bind(self, addr)
socket.socket.bind = bind
tool = sys.argv[2]
del sys.argv[1:3]
sys.argv[0] = "sipvicious_" + tool
sys.exit(importlib.import_module("sipvicious." + tool).main())
"""


def missing_tools(tools: tuple[str, ...] = TOOLS) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def run(cmd: list[str], work: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(work))  # SIPVicious keeps sessions under ~/.sipvicious
    return subprocess.run(
        cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def sipvicious(
    tool: str, actor: str, port: int, args: list[str], work: Path
) -> subprocess.CompletedProcess[str]:
    """svmap / svwar / svcrack from `actor` (args name the targets)."""
    return run([sys.executable, "-c", _LAUNCH, actor, tool, "-p", str(port), *args], work)


def sipp(
    scenario: str, actor: str, target: str, port: int, args: list[str], work: Path, **subst: str
) -> subprocess.CompletedProcess[str]:
    """A SIPp client scenario from `actor` to target:port."""
    text = (SIPP_DIR / scenario).read_text()
    for key, value in subst.items():
        text = text.replace(f"@{key}@", value)
    xml = work / f"{actor}-{time.monotonic_ns()}.xml"
    xml.write_text(text)
    cmd = [
        "sipp", f"{target}:{port}", "-sf", str(xml), "-i", actor, "-p", "0", "-nostdin",
        "-timeout", "20s", "-max_recv_loops", "100", *args,
    ]  # fmt: skip
    return run(cmd, work)


def call(
    actor: str, target: str, port: int, user: str, password: str, number: str, work: Path,
    n: int = 1, personality: str = "asterisk",
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Authenticated INVITEs to `number` as the honeypot personality answers them."""
    from sipwatch.honeypot.personality import load_personality

    p = load_personality(personality)
    args = ["-m", str(n), "-s", number, "-au", user, "-ap", password]
    return sipp(
        "invite_auth.xml", actor, target, port, args, work,
        USER=user, CHALLENGE=str(p.invite_challenge), FINAL=str(p.invite_final[-1]),
    )  # fmt: skip
