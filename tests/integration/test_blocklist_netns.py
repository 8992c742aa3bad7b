"""The blocklist action against the kernel: nftables (and ipset) in network namespaces.

Two namespaces made here, joined by a veth pair: "sensor" runs a UDP listener and the
firewall, "clients" holds an attacker and an allowlisted peer (IPv4 and IPv6, documentation
addresses). After the action blocks, the attacker's datagrams are dropped and the
allowlisted peer's still arrive. Needs root, ip (iproute2) and nft (nftables); ipset and
iptables for the ipset test.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time

import pytest

from actionevents import make_event
from sipwatch.actions import build_sinks
from sipwatch.actions.blocklist import BlocklistSink
from sipwatch.actions.firewall import IpsetSet

pytestmark = pytest.mark.tools

PORT = 5060
SENSOR_ADDRS = ["192.0.2.1/24", "198.51.100.1/24", "2001:db8:5::1/64"]
CLIENT_ADDRS = ["192.0.2.10/24", "192.0.2.12/24", "198.51.100.10/24", "2001:db8:5::10/64",
                "2001:db8:5::20/64"]  # fmt: skip
ATTACKER4, ATTACKER6 = "192.0.2.10", "2001:db8:5::10"
FRIEND4, FRIEND6 = "198.51.100.10", "2001:db8:5::20"
ALLOWLIST = ["198.51.100.0/24", "2001:db8:5::20/128"]
TARGET = {ATTACKER4: "192.0.2.1", "192.0.2.12": "192.0.2.1", FRIEND4: "198.51.100.1",
          ATTACKER6: "2001:db8:5::1", FRIEND6: "2001:db8:5::1"}  # fmt: skip

LISTENER = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(2048)
    print(addr[0].removeprefix("::ffff:"), data.decode(), flush=True)
"""

SENDER = """
import socket, sys
src, dst, port, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fam = socket.AF_INET6 if ":" in src else socket.AF_INET
with socket.socket(fam, socket.SOCK_DGRAM) as s:
    s.bind((src, 0))
    s.sendto(payload.encode(), (dst, port))
"""


def _sh(*argv: str, input: str | None = None) -> str:
    out = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{' '.join(argv)}: {out.stderr}"
    return out.stdout


class Lab:
    """sensor and clients namespaces, a veth between them, a listener in sensor."""

    def __init__(self) -> None:
        tag = f"{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.sensor, self.clients = f"swbl-s-{tag}", f"swbl-c-{tag}"
        self.got: queue.Queue[tuple[str, str]] = queue.Queue()
        self.listener: subprocess.Popen | None = None

    def up(self) -> Lab:
        s, c = self.sensor, self.clients
        _sh("ip", "netns", "add", s)
        _sh("ip", "netns", "add", c)
        _sh("ip", "link", "add", "vs", "netns", s, "type", "veth", "peer", "name", "vc", "netns", c)
        for ns, dev, addrs in ((s, "vs", SENSOR_ADDRS), (c, "vc", CLIENT_ADDRS)):
            for a in addrs:
                _sh("ip", "-n", ns, "addr", "add", a, "dev", dev, *(["nodad"] if ":" in a else []))
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _sh("ip", "-n", ns, "link", "set", dev, "up")
        self.listener = subprocess.Popen(
            ["ip", "netns", "exec", s, sys.executable, "-u", "-c", LISTENER, str(PORT)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.listener.stdout is not None
        assert self.listener.stdout.readline().strip() == "ready"
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.listener is not None and self.listener.stdout is not None
        for line in self.listener.stdout:
            src, _, payload = line.strip().partition(" ")
            self.got.put((src, payload))

    def send(self, src: str, payload: str) -> None:
        _sh("ip", "netns", "exec", self.clients, sys.executable, "-c", SENDER, src, TARGET[src],
            str(PORT), payload)  # fmt: skip

    def received(self, wanted: set[str], limit: float = 10.0) -> set[str]:
        """Payloads seen until all of ``wanted`` arrived (or the limit passed)."""
        seen: set[str] = set()
        end = time.monotonic() + limit
        while not wanted <= seen and time.monotonic() < end:
            with contextlib.suppress(queue.Empty):
                seen.add(self.got.get(timeout=0.1)[1])
        while True:  # whatever else is already there
            try:
                seen.add(self.got.get_nowait()[1])
            except queue.Empty:
                return seen

    def down(self) -> None:
        if self.listener is not None:
            self.listener.kill()
            self.listener.wait(timeout=30)
        for ns in (self.sensor, self.clients):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)

    def nft(self, *args: str) -> str:
        return _sh("ip", "netns", "exec", self.sensor, "nft", *args)


@pytest.fixture
def lab():
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and nftables")
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian package {pkg})")
    lab = Lab()
    try:
        yield lab.up()
    finally:
        lab.down()


def _round(lab: Lab, tag: str, sources: list[str], expect: list[str]) -> None:
    """Send one datagram from each source (attackers first); exactly ``expect`` arrive."""
    for src in sources:
        lab.send(src, f"{tag}-{src}")
    # datagrams sent earlier on the same link arrive earlier: once the last expected one is
    # here, a dropped one would have been here too
    seen = lab.received({f"{tag}-{s}" for s in expect})
    assert seen == {f"{tag}-{s}" for s in expect}, seen


def _elements(lab: Lab, name: str) -> dict[str, int]:
    doc = json.loads(lab.nft("-j", "list", "set", "inet", "sipwatch", name))
    (s,) = [x["set"] for x in doc["nftables"] if "set" in x]
    return {e["elem"]["val"]: e["elem"]["timeout"] for e in s.get("elem", [])}


def test_nftables_blocks_the_attacker_and_spares_the_allowlist(lab):
    everyone = [ATTACKER4, ATTACKER6, FRIEND4, FRIEND6]
    _round(lab, "before", everyone, everyone)
    config = {
        "blocklist": {
            "timeout": 3600,
            "allowlist": ALLOWLIST,
            "nftables": {"create": True, "command": ["ip", "netns", "exec", lab.sensor, "nft"]},
        }
    }
    (sink,) = build_sinks(config)
    sink.emit([
        make_event(src=ATTACKER4, severity="high"),
        make_event(src=FRIEND4, severity="critical"),
        make_event(src=FRIEND6, severity="critical"),
        make_event(src=ATTACKER6, severity="critical", rule="flood.source", stage="FLOOD"),
        make_event(src="192.0.2.12", severity="medium"),  # below the default minimum (high)
    ])  # fmt: skip
    assert sink.flush(30)
    st = sink.stats
    assert (st.blocked, st.allowlisted, st.filtered, st.failed) == (2, 2, 1, 0), st
    assert _elements(lab, "blocklist4") == {ATTACKER4: 3600}
    assert _elements(lab, "blocklist6") == {ATTACKER6: 3600}
    _round(lab, "after", [ATTACKER4, ATTACKER6, "192.0.2.12", FRIEND4, FRIEND6],
           ["192.0.2.12", FRIEND4, FRIEND6])  # fmt: skip
    sink.close()

    # a restart: create again keeps the set and does not stack rules
    again = BlocklistSink(backends=sink.backends, timeout=7200, refresh_before=7200)
    chain = lab.nft("list", "chain", "inet", "sipwatch", "input")
    assert chain.count("drop") == 2, chain
    assert _elements(lab, "blocklist4") == {ATTACKER4: 3600}
    again.emit([make_event(src=ATTACKER4, severity="critical")])  # not known to it: re-added
    assert again.flush(30)
    assert _elements(lab, "blocklist4") == {ATTACKER4: 7200}  # the timeout was renewed
    again.close()
    _round(lab, "still", [ATTACKER4, FRIEND4], [FRIEND4])


def test_ipset_blocks_the_attacker(lab):
    for tool, pkg in (("ipset", "ipset"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian package {pkg})")
    prefix = ["ip", "netns", "exec", lab.sensor]
    sink = BlocklistSink(
        backends=[IpsetSet(command=[*prefix, "ipset"], create=True)],
        allowlist=ALLOWLIST, timeout=900,
    )  # fmt: skip
    for fam, name in (("iptables", "sipwatch4"), ("ip6tables", "sipwatch6")):
        _sh(*prefix, fam, "-I", "INPUT", "-m", "set", "--match-set", name, "src", "-j", "DROP")
    sink.emit([make_event(src=s, severity="critical") for s in (ATTACKER4, ATTACKER6, FRIEND4)])
    assert sink.flush(30)
    saved = _sh(*prefix, "ipset", "save")
    assert f"add sipwatch4 {ATTACKER4} timeout " in saved
    assert f"add sipwatch6 {ATTACKER6} timeout " in saved
    assert FRIEND4 not in saved
    _round(lab, "ipset", [ATTACKER4, ATTACKER6, FRIEND4, FRIEND6], [FRIEND4, FRIEND6])
    sink.close()
