"""Firewall backends of the blocklist: an nftables set and an ipset.

Commands are argument lists run without a shell, and every address in them was parsed by
``ipaddress`` and printed back from the parsed object, so nothing an attacker sent reaches a
command line as text. Table, set and chain names are checked against a strict pattern when
the config is read. A command prefix (``["nft"]``, ``["sudo", "nft"]``, ``["ip", "netns",
"exec", "NS", "nft"]``) says how to reach the tool.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

IPAddress = IPv4Address | IPv6Address
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,30}")  # nft/ipset object names we accept
NFT_FAMILIES = ("inet", "ip", "ip6", "bridge", "netdev", "arp")
MAX_TIMEOUT = 2_147_483  # ipset's limit; also plenty for nft (24 days)
_RUN_TIMEOUT = 30.0


class FirewallError(RuntimeError):
    pass


class FirewallBackend(Protocol):
    name: str

    def setup(self) -> None: ...

    def add(self, items: Sequence[tuple[IPAddress, int]]) -> None: ...


def run(argv: Sequence[str], script: str | None = None) -> str:
    """Run a tool (no shell), feeding ``script`` on stdin; FirewallError with its stderr."""
    try:
        proc = subprocess.run(
            list(argv), input=script, capture_output=True, text=True, timeout=_RUN_TIMEOUT,
            env={**os.environ, "LC_ALL": "C"}, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FirewallError(f"{argv[0]}: {exc}") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise FirewallError(f"{' '.join(argv)}: exit {proc.returncode}: {' | '.join(detail[:3])}")
    return proc.stdout


class NftablesSet:
    """Adds addresses to ``family table set4/set6`` with a per-element timeout."""

    name = "nftables"

    def __init__(
        self,
        *,
        command: Sequence[str] = ("nft",),
        family: str = "inet",
        table: str = "sipwatch",
        set4: str = "blocklist4",
        set6: str | None = "blocklist6",
        chain: str = "input",
        priority: int = -10,
        create: bool = False,
    ) -> None:
        for value in (table, set4, chain, *([set6] if set6 else [])):
            if not NAME.fullmatch(value):
                raise ValueError(f"bad nftables name {value!r}")
        if family not in NFT_FAMILIES:
            raise ValueError(f"bad nftables family {family!r}")
        self.command = list(command)
        self.family, self.table, self.set4, self.set6 = family, table, set4, set6
        self.chain, self.priority, self.create = chain, int(priority), create

    def setup(self) -> None:
        """Create table, sets and the drop chain when asked; idempotent, keeps set contents."""
        if not self.create:
            return
        t = f"{self.family} {self.table}"
        lines = [
            f"add table {t}",
            f"add set {t} {self.set4} {{ type ipv4_addr; flags timeout; }}",
        ]
        if self.set6:
            lines.append(f"add set {t} {self.set6} {{ type ipv6_addr; flags timeout; }}")
        lines += [
            f"add chain {t} {self.chain} {{ type filter hook input priority {self.priority}; "
            "policy accept; }",
            f"flush chain {t} {self.chain}",  # so a restart does not stack duplicate rules
            f"add rule {t} {self.chain} ip saddr @{self.set4} drop",
        ]
        if self.set6:
            lines.append(f"add rule {t} {self.chain} ip6 saddr @{self.set6} drop")
        run([*self.command, "-f", "-"], "\n".join(lines) + "\n")

    def add(self, items: Sequence[tuple[IPAddress, int]]) -> None:
        """Add (or refresh) (address, timeout seconds) pairs; IPv6 skipped without set6."""
        t = f"{self.family} {self.table}"
        lines: list[str] = []
        for name, version in ((self.set4, 4), (self.set6, 6)):
            mine = [(str(a), int(s)) for a, s in items if a.version == version]
            if not name or not mine:
                continue
            plain = ", ".join(a for a, _ in mine)
            timed = ", ".join(f"{a} timeout {s}s" for a, s in mine)
            # add/delete/add in one transaction: an element already in the set keeps its old
            # timeout on a plain add; this way it always gets the new one, present or not
            lines += [
                f"add element {t} {name} {{ {plain} }}",
                f"delete element {t} {name} {{ {plain} }}",
                f"add element {t} {name} {{ {timed} }}",
            ]
        if lines:
            run([*self.command, "-f", "-"], "\n".join(lines) + "\n")


class IpsetSet:
    """Adds addresses to ipset ``hash:ip`` sets (``ipset add NAME IP timeout N -exist``)."""

    name = "ipset"

    def __init__(
        self,
        *,
        command: Sequence[str] = ("ipset",),
        set4: str = "sipwatch4",
        set6: str | None = "sipwatch6",
        create: bool = False,
        maxelem: int = 65536,
    ) -> None:
        for value in (set4, *([set6] if set6 else [])):
            if not NAME.fullmatch(value):
                raise ValueError(f"bad ipset name {value!r}")
        self.command = list(command)
        self.set4, self.set6, self.create, self.maxelem = set4, set6, create, int(maxelem)

    def setup(self) -> None:
        if not self.create:
            return
        lines = [f"create {self.set4} hash:ip family inet timeout 0 maxelem {self.maxelem}"]
        if self.set6:
            lines.append(
                f"create {self.set6} hash:ip family inet6 timeout 0 maxelem {self.maxelem}"
            )
        run([*self.command, "-exist", "restore"], "\n".join(lines) + "\n")

    def add(self, items: Sequence[tuple[IPAddress, int]]) -> None:
        """Add (or refresh: ``-exist`` resets the timeout) (address, seconds) pairs."""
        lines = []
        for a, seconds in items:
            name = self.set4 if a.version == 4 else self.set6
            if name:
                lines.append(f"add {name} {a} timeout {int(seconds)}")
        if lines:
            run([*self.command, "-exist", "restore"], "\n".join(lines) + "\n")
