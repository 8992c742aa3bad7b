"""Stage labels on real SIPVicious traffic.

svmap, svwar and svcrack run against a small responder on 127.0.0.1 while tcpdump records;
the capture is then read back and labelled, the way `sipwatch analyze` would.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sipwatch.capture import read_captures
from sipwatch.detect.stages import StageLabeler
from sipwatch.record import Record

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sipresponder import SipResponder  # noqa: E402

pytestmark = pytest.mark.tools

TOOLS = ("tcpdump", "sipvicious_svmap", "sipvicious_svwar", "sipvicious_svcrack")


def _skip(reason: str) -> None:
    print(f"SKIP: {reason}")
    pytest.skip(reason)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], cwd: Path) -> None:
    # HOME points into tmp: SIPVicious saves its sessions under ~/.sipvicious
    env = dict(os.environ, HOME=str(cwd))
    subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Record], dict[str, int]]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        _skip(f"needs {', '.join(missing)}")
    if os.geteuid() != 0:
        _skip("tcpdump on lo needs root")
    tmp = tmp_path_factory.mktemp("sipvicious")
    pcap = tmp / "sipvicious.pcap"
    (tmp / "passwords.txt").write_text("0000\nletmein\n1234\nsecret\n")
    ports = {"svmap": _free_udp_port(), "svwar": _free_udp_port(), "svcrack": _free_udp_port()}
    with SipResponder() as responder:
        p = str(responder.port)
        dump = subprocess.Popen(
            [
                "tcpdump",
                "-i",
                "lo",
                "-U",
                "--immediate-mode",
                "-s0",
                "-w",
                str(pcap),
                f"udp port {p}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            # tcpdump says "listening on lo" once the capture runs
            ready, _, _ = select.select([dump.stderr], [], [], 20)
            if not ready:
                _skip("tcpdump did not start")
            dump.stderr.readline()
            target = "127.0.0.1"
            _run(["sipvicious_svmap", "-p", p, "-P", str(ports["svmap"]), target], tmp)
            _run(["sipvicious_svwar", "-e100-110", "-p", p, "-P", str(ports["svwar"]), target], tmp)
            _run(
                [
                    "sipvicious_svcrack",
                    "-u101",
                    "-d",
                    str(tmp / "passwords.txt"),
                    "-p",
                    p,
                    "-P",
                    str(ports["svcrack"]),
                    target,
                ],
                tmp,
            )
            time.sleep(1.0)  # let tcpdump write the last packets
        finally:
            dump.send_signal(signal.SIGINT)
            dump.wait(timeout=20)
        ports["responder"] = responder.port
    records = list(read_captures([str(pcap)]))
    labeller = StageLabeler()
    for r in records:
        labeller.label(r)
    return records, ports


def _requests(records: list[Record], sport: int, method: str) -> list[Record]:
    return [r for r in records if r.msg.is_request and r.msg.method == method and r.sport == sport]


def test_svmap_options_are_server_scan(capture) -> None:
    records, ports = capture
    opts = _requests(records, ports["svmap"], "OPTIONS")
    assert opts, "svmap sent no OPTIONS"
    for r in opts:
        assert (r.stage, r.tool) == ("SS", "sipvicious")
        assert r.tool_data == f"127.0.0.1:{ports['responder']}"


def test_svwar_registers_are_extension_scan(capture) -> None:
    records, ports = capture
    regs = _requests(records, ports["svwar"], "REGISTER")
    assert regs, "svwar sent no REGISTER"
    for r in regs:
        assert (r.stage, r.tool) == ("ES", "sipvicious")
        assert r.tool_data == r.msg.to.uri.user
    assert {str(n) for n in range(100, 111)} <= {r.tool_data for r in regs}


def test_svcrack_authorized_registers_are_password_guesses(capture) -> None:
    records, ports = capture
    regs = _requests(records, ports["svcrack"], "REGISTER")
    tries = [r for r in regs if r.msg.credentials is not None]
    assert tries, "svcrack sent no authorized REGISTER"
    for r in tries:
        assert (r.stage, r.tool) == ("RHJ", "sipvicious")
        assert r.tool_data.startswith("101:")
    assert "101:1234" in {r.tool_data for r in tries}
    # its nonce-fetching REGISTERs carry no credentials but svcrack's fixed tag: same stage
    fetches = [r for r in regs if r.msg.credentials is None]
    assert fetches
    assert all((r.stage, r.tool) == ("RHJ", "sipvicious") for r in fetches)


def test_responses_inherit_their_requests_labels(capture) -> None:
    records, ports = capture
    by_id = {r.id: r for r in records if r.msg.is_request}
    responses = [r for r in records if not r.msg.is_request and r.sport == ports["responder"]]
    assert responses
    for resp in responses:
        req = by_id.get(resp.request_id)
        assert req is not None, f"unmatched {resp.msg.status} {resp.msg.cseq_method}"
        assert (resp.stage, resp.tool, resp.tool_data) == (req.stage, req.tool, req.tool_data)
    found = [r for r in responses if r.msg.status == 200 and r.msg.cseq_method == "REGISTER"]
    assert [(r.stage, r.tool_data) for r in found] == [("RHJ", "101:1234")]
    codes = {(r.msg.status, r.stage) for r in responses}
    assert {(200, "SS"), (401, "ES"), (404, "ES"), (403, "RHJ")} <= codes
