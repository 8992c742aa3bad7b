"""Central sensor approach end to end, in network namespaces made here (VXLAN tunnels).

An attacker namespace reaches three site namespaces at their public addresses; each site runs
its `sipwatch tunnel plan --side site` script (VXLAN to the central namespace, DNAT of 5060),
the central namespace runs `sipwatch tunnel up` and `sipwatch sensor --nodes`. The namespaces
and links below are all the hand-made setup: what the plans assume exists (a public address
at the site, an underlay link to the central host).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.sensorproc import SIPWATCH, query, terminate, wait_rows

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2 (ip)"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables (nft)"),
    pytest.mark.skipif(
        shutil.which("sipvicious_svmap") is None, reason="needs SIPVicious (pip install sipvicious)"
    ),
]

ATTACKER = "192.0.2.100"
SIPP_DIR = Path(__file__).resolve().parent.parent / "data" / "sipp"
SITES = 3


def public(i: int) -> str:
    return f"203.0.113.{10 * i}"


def central_under(i: int) -> str:
    return f"198.51.100.{4 * i + 1}"


def site_under(i: int) -> str:
    return f"198.51.100.{4 * i + 2}"


def central_tunnel(i: int) -> str:
    return f"10.99.{i}.2"


def inventory(tunnel: str = "vxlan") -> str:
    parts = []
    for i in range(1, SITES + 1):
        parts.append(
            f'[[node]]\nname = "site{i}"\nsite = "Site {i}"\npublic = ["{public(i)}"]\n'
            f'tunnel = "{tunnel}"\nid = {100 + i}\nsite_underlay = "{site_under(i)}"\n'
            f'central_underlay = "{central_under(i)}"\ntunnel_subnet = "10.99.{i}.0/30"\n'
            f'central_tunnel = "{central_tunnel(i)}"\n'
        )
    return "\n".join(parts)


def sh(*argv: str, ns: str | None = None, check: bool = True, **kw) -> subprocess.CompletedProcess:
    cmd = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"{cmd} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


@pytest.fixture
def nets():
    tag = f"{os.getpid() % 100000}{time.monotonic_ns() % 1000}"
    names = {"a": f"swtA{tag}", "c": f"swtC{tag}"}
    names.update({f"s{i}": f"swtS{i}_{tag}" for i in range(1, SITES + 1)})
    made: list[str] = []
    try:
        for ns in names.values():
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        a, c = names["a"], names["c"]
        sh("ip", "-n", a, "addr", "add", f"{ATTACKER}/32", "dev", "lo")
        for i in range(1, SITES + 1):
            s = names[f"s{i}"]
            # attacker <-> site: the site's public address
            sh("ip", "-n", a, "link", "add", f"a{i}", "type", "veth", "peer", "name", "pub",
               "netns", s)  # fmt: skip
            sh("ip", "-n", a, "link", "set", f"a{i}", "up")
            sh("ip", "-n", a, "route", "add", f"{public(i)}/32", "dev", f"a{i}", "src", ATTACKER)
            sh("ip", "-n", s, "link", "set", "pub", "up")
            sh("ip", "-n", s, "addr", "add", f"{public(i)}/32", "dev", "pub")
            sh("ip", "-n", s, "route", "add", f"{ATTACKER}/32", "dev", "pub")
            # site <-> central: the underlay
            sh("ip", "-n", c, "link", "add", f"u{i}", "type", "veth", "peer", "name", "under",
               "netns", s)  # fmt: skip
            sh("ip", "-n", c, "link", "set", f"u{i}", "up")
            sh("ip", "-n", c, "addr", "add", f"{central_under(i)}/30", "dev", f"u{i}")
            sh("ip", "-n", s, "link", "set", "under", "up")
            sh("ip", "-n", s, "addr", "add", f"{site_under(i)}/30", "dev", "under")
        yield names
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)


class CentralSensor:
    def __init__(self, ns: str, work: Path, nodes: Path) -> None:
        cfg = work / "sensor.toml"
        self.db = work / "central.sqlite"
        cfg.write_text(
            f'[sensor]\nname = "central-sensor"\nstore = "{self.db}"\n\n'
            '[[listen]]\ntransport = "udp"\naddress = "0.0.0.0"\nport = 5060\n\n'
            '[[listen]]\ntransport = "tcp"\naddress = "0.0.0.0"\nport = 5060\n\n'
            '[accounts]\nextensions = ["100-105"]\n[accounts.passwords]\n101 = "1234"\n'
        )
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *SIPWATCH, "sensor", "--config", str(cfg),
             "--nodes", str(nodes)],  # fmt: skip
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                if sum("listening on" in x for x in self.lines) >= 2:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        for _ in range(300):  # up to 30 s
            if ready.wait(0.1) or self.proc.poll() is not None:
                break
        if not ready.is_set():
            self.stop()
            raise AssertionError("sensor did not start:\n" + "\n".join(self.lines[-30:]))

    def stop(self) -> int:
        return terminate(self.proc)


def options(to: str, call_id: str) -> bytes:
    return (
        f"OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {ATTACKER}:5099;branch=z9hG4bK{call_id}\r\n"
        f"From: <sip:probe@{ATTACKER}>;tag=1\r\nTo: <sip:{to}>\r\nCall-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


_TCP_PROBE = """import socket, sys
s = socket.create_connection((sys.argv[1], 5060), timeout=10)
s.sendall(sys.stdin.buffer.read())
data = b""
while b"\\r\\n\\r\\n" not in data:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(s.getpeername()[0], data.split(b"\\r\\n", 1)[0].decode())
"""

_UDP_PROBE = """import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(sys.stdin.buffer.read(), (sys.argv[1], 5060))
data, peer = s.recvfrom(65535)
print(peer[0], data.split(b"\\r\\n", 1)[0].decode())
"""


class Background:
    """A process in a namespace, ready when its stderr shows ``ready``; stop() by its handle."""

    def __init__(self, ns: str, argv: list[str], ready: str, cwd: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv], cwd=cwd, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
        seen = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                if ready in line:
                    seen.set()

        threading.Thread(target=read, daemon=True).start()
        for _ in range(300):  # up to 30 s
            if seen.wait(0.1) or self.proc.poll() is not None:
                break
        if not seen.is_set():
            self.stop()
            raise AssertionError(f"{argv[:4]} did not start:\n" + "\n".join(self.lines[-20:]))

    def stop(self) -> int:
        code = terminate(self.proc)
        time.sleep(0.05)
        return code


def test_vxlan_plans_attribute_each_site(nets, tmp_path: Path) -> None:
    scenario(nets, tmp_path, "vxlan")


def test_userspace_gre_attributes_each_site(nets, tmp_path: Path) -> None:
    if shutil.which("tcpdump") is None or shutil.which("tshark") is None:
        pytest.skip("needs tcpdump and tshark for the underlay check")
    scenario(nets, tmp_path, "gre")


def scenario(nets, tmp_path: Path, tunnel: str) -> None:
    nodes = tmp_path / "nodes.toml"
    nodes.write_text(inventory(tunnel))
    c = nets["c"]
    sh(*SIPWATCH, "nodes", "check", str(nodes))
    gre = tunnel == "gre"
    userspace = ["--userspace-gre"] if gre else []
    helpers: list[Background] = []
    try:
        if gre:  # this kernel has no GRE module: sipwatch's own endpoint on both ends
            for i in range(1, SITES + 1):
                helpers.append(Background(nets[f"s{i}"], [*SIPWATCH, "tunnel", "gre", str(nodes),
                               "--side", "site", "--node", f"site{i}"], "GRE endpoint ready",
                               tmp_path))  # fmt: skip
            helpers.append(Background(c, [*SIPWATCH, "tunnel", "gre", str(nodes), "--side",
                           "central"], "GRE endpoint ready", tmp_path))  # fmt: skip
        scenario_body(nets, tmp_path, tunnel, nodes, userspace)
    finally:
        for h in helpers:
            h.stop()
    for h in helpers:
        assert "GRE endpoint stopped" in "\n".join(h.lines), h.lines[-10:]


def scenario_body(nets, tmp_path: Path, tunnel: str, nodes: Path, userspace: list[str]) -> None:
    c = nets["c"]
    undo: dict[int, str] = {}
    for i in range(1, SITES + 1):  # the site scripts, exactly as printed
        script = sh(*SIPWATCH, "tunnel", "plan", str(nodes), "--node", f"site{i}",
                    "--side", "site", *userspace).stdout  # fmt: skip
        assert "dnat to" in script and (tunnel in script)
        sh("sh", "-s", ns=nets[f"s{i}"], input=script)
        tail = script.split("# to remove it again:\n", 1)[1]
        undo[i] = "".join(line[4:] + "\n" for line in tail.splitlines())
    sh(*SIPWATCH, "tunnel", "up", str(nodes), *userspace, ns=c)
    sh(*SIPWATCH, "tunnel", "up", str(nodes), *userspace, ns=c)  # idempotent
    rules = sh("ip", "rule", "show", ns=c).stdout
    assert rules.count("lookup 101") == SITES, rules

    pcap = tmp_path / "underlay.pcap"
    dump = None
    if tunnel == "gre":
        dump = subprocess.Popen(
            ["ip", "netns", "exec", c, "tcpdump", "-i", "u1", "-U", "--immediate-mode", "-s0",
             "-w", str(pcap), "proto", "47"],  # fmt: skip
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):  # bounded: until tcpdump has written its file header
            if pcap.exists() and pcap.stat().st_size > 0:
                break
            time.sleep(0.05)
    sensor = CentralSensor(c, tmp_path, nodes)
    try:
        work = tmp_path / "attacker"
        work.mkdir()
        env = dict(os.environ, HOME=str(work))
        for i in range(1, SITES + 1):
            svmap = sh("sipvicious_svmap", public(i), ns=nets["a"], check=False, cwd=work,
                       env=env)  # fmt: skip
            assert f"{public(i)}:5060" in svmap.stdout, svmap.stdout + svmap.stderr
            svwar = sh("sipvicious_svwar", "-e100-105", public(i), ns=nets["a"], check=False,
                       cwd=work, env=env)  # fmt: skip
            assert "100" in svwar.stdout and "reqauth" in svwar.stdout, svwar.stdout + svwar.stderr
            # TCP through the tunnel: the answer comes from the public address
            tcp = sh(sys.executable, "-c", _TCP_PROBE, public(i), ns=nets["a"],
                     input=options(public(i), f"tcp-{i}").decode())  # fmt: skip
            assert tcp.stdout.split()[0] == public(i)
            assert "SIP/2.0 200" in tcp.stdout
        # a full-size datagram (1450 bytes) passes the tunnel: the underlay fragments it
        big = options(public(2), "big").replace(b"Max-Forwards", b"X-Pad: " + b"p" * 1230
                                                 + b"\r\nMax-Forwards")  # fmt: skip
        assert len(big) >= 1450
        udp = sh(sys.executable, "-c", _UDP_PROBE, public(2), ns=nets["a"], input=big.decode())
        assert udp.stdout.split()[0] == public(2) and "SIP/2.0 200" in udp.stdout
        if shutil.which("sipp"):  # SIPp over TCP: REGISTER with digest, answered through site3
            xml = tmp_path / "register.xml"
            xml.write_text((SIPP_DIR / "register_auth.xml").read_text().replace("@FINAL@", "200"))
            sipp = sh("sipp", f"{public(3)}:5060", "-sf", str(xml), "-t", "t1", "-i", ATTACKER,
                      "-p", "5090", "-m", "1", "-nostdin", "-timeout", "15s", "-timeout_error",
                      "-s", "101", "-au", "101", "-ap", "1234", ns=nets["a"], check=False,
                      cwd=work)  # fmt: skip
            assert sipp.returncode == 0, sipp.stdout[-2000:] + sipp.stderr[-2000:]
        # a non-node address: the underlay address of the central host, from a site
        udp = sh(sys.executable, "-c", _UDP_PROBE, central_under(1), ns=nets["s1"],
                 input=options(central_under(1), "direct").decode())  # fmt: skip
        assert udp.stdout.split()[0] == central_under(1)

        rows = wait_rows(sensor.db, "SELECT 1 FROM messages WHERE call_id = 'direct'", 2)
        assert len(rows) == 2
        inbound = query(
            sensor.db,
            "SELECT src, dst, node, sensor, transport FROM messages WHERE direction = 'in'",
        )
    finally:
        code = sensor.stop()
        if dump is not None:
            time.sleep(0.3)  # the last packets reach the file
            terminate(dump)
    assert code == 0, "\n".join(sensor.lines[-30:])
    if dump is not None:  # the underlay carries standard GRE that tshark decodes as SIP
        dec = sh("tshark", "-r", str(pcap), "-Y", "gre && sip", "-T", "fields", "-e", "gre.key",
                 "-e", "sip.CSeq.method", "-e", "ip.src")  # fmt: skip
        lines = [x.split("\t") for x in dec.stdout.splitlines() if x.strip()]
        assert lines, dec.stdout + dec.stderr
        assert {int(x[0], 0) for x in lines} == {101}  # site1's key
        assert {"OPTIONS", "REGISTER"} <= {x[1] for x in lines}  # svmap, svwar
        assert any(x[2] == f"{site_under(1)},{ATTACKER}" for x in lines)  # outer, inner source

    by_node: dict[str, set[tuple[str, str]]] = {}
    for src, dst, node, name, _transport in inbound:
        assert name == "central-sensor"
        by_node.setdefault(node, set()).add((src, dst))
        if node:
            assert src == ATTACKER  # the attacker's real address, not the site's
    for i in range(1, SITES + 1):
        assert by_node[f"site{i}"] == {(ATTACKER, central_tunnel(i))}
    assert by_node[""] == {(site_under(1), central_under(1))}
    transports = {(node, t) for _s, _d, node, _n, t in inbound}
    assert {(f"site{i}", "tcp") for i in range(1, SITES + 1)} <= transports
    stored = query(sensor.db, "SELECT node, length(raw) FROM messages WHERE call_id = 'big'")
    assert ("site2", len(big)) in stored
    if shutil.which("sipp"):
        regs = query(sensor.db, "SELECT node, src FROM messages "
                     "WHERE method = 'REGISTER' AND transport = 'tcp'")  # fmt: skip
        assert len(regs) == 2 and set(regs) == {("site3", ATTACKER)}
        answers = query(sensor.db, "SELECT DISTINCT status FROM messages WHERE node = 'site3' "
                        "AND transport = 'tcp' AND direction = 'out'")  # fmt: skip
        assert {401, 200} <= {st for (st,) in answers}
    out = query(sensor.db, "SELECT DISTINCT node FROM messages WHERE direction = 'out'")
    assert {n for (n,) in out} == {"", *(f"site{i}" for i in range(1, SITES + 1))}

    sh(*SIPWATCH, "tunnel", "down", str(nodes), ns=c)
    assert '"protocol":"245"' not in sh("ip", "-j", "rule", "show", ns=c).stdout
    assert "sw-" not in sh("ip", "link", "show", ns=c).stdout
    again = sh(*SIPWATCH, "tunnel", "down", str(nodes), ns=c)
    assert "nothing to do" in again.stderr
    for i in range(1, SITES + 1):  # the site script's own undo lines leave nothing behind
        s = nets[f"s{i}"]
        sh("sh", "-es", ns=s, input=undo[i])
        assert "sipwatch" not in sh("nft", "list", "tables", ns=s).stdout
        assert "sw-" not in sh("ip", "link", "show", ns=s).stdout
