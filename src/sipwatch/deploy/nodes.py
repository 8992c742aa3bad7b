"""The node inventory: which sites send their port 5060 through which tunnel to the central sensor.

One TOML file, one ``[[node]]`` table per node::

    [[node]]
    name = "berlin"                  # letters, digits, - and _; at most 12 characters
    site = "Berlin DC"               # free text (default: the name)
    latitude = 52.52                 # optional, both or neither
    longitude = 13.40
    public = ["203.0.113.10"]        # the address(es) attackers reach at the site (IPv4)
    tunnel = "vxlan"                 # "gre" (default) or "vxlan"
    id = 101                         # VXLAN VNI / GRE key; also names routing table 10000 + id
    site_underlay = "198.51.100.2"   # the site router's address the tunnel runs between ...
    central_underlay = "198.51.100.1"  # ... and the central host's
    tunnel_subnet = "10.99.1.0/30"   # inside the tunnel
    central_tunnel = "10.99.1.2"     # the central sensor's address for this node (DNAT target)
    site_tunnel = "10.99.1.1"        # optional: default the first other host of tunnel_subnet

The inventory is the single source the sensor (attribution), the tunnel plans and the docs use
for node names. ``load_inventory`` checks the whole file in one pass and raises InventoryError
with one line per problem.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TUNNEL_TYPES = ("gre", "vxlan")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,11}")  # the device name is "sw-" + name
TABLE_BASE = 10000  # routing table and rule priority of a node: TABLE_BASE + id
MAX_ID = 65535

_KNOWN = {
    "name", "site", "latitude", "longitude", "public", "tunnel", "id", "site_underlay",
    "central_underlay", "tunnel_subnet", "central_tunnel", "site_tunnel",
}  # fmt: skip
_REQUIRED = ("name", "public", "id", "site_underlay", "central_underlay", "tunnel_subnet",
             "central_tunnel")  # fmt: skip


class InventoryError(Exception):
    """The inventory cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    site: str
    public: tuple[str, ...]
    tunnel: str
    id: int
    site_underlay: str
    central_underlay: str
    tunnel_subnet: str
    central_tunnel: str
    site_tunnel: str
    latitude: float | None = None
    longitude: float | None = None

    @property
    def device(self) -> str:
        """The tunnel's network device, the same name at both ends (at most 15 characters)."""
        return f"sw-{self.name}"

    @property
    def table(self) -> int:
        """Routing table (and rule priority) on the central host for this node's replies."""
        return TABLE_BASE + self.id

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.tunnel_subnet).prefixlen


@dataclass(frozen=True, slots=True)
class Inventory:
    nodes: tuple[Node, ...]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise InventoryError([f"no node named {name!r} (known: {', '.join(self.names())})"])

    def names(self) -> list[str]:
        return [n.name for n in self.nodes]


def load_inventory(path: str | Path) -> Inventory:
    """Read and check an inventory file (InventoryError lists every problem)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise InventoryError([f"{path}: not UTF-8 text"]) from None
    return parse_inventory(text, str(path))


def parse_inventory(text: str, where: str = "inventory") -> Inventory:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError([f"{where}: not valid TOML: {exc}"]) from None
    return _Checker(where).inventory(data)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(slots=True)
class _Facts:
    """What is valid of one node (None: missing or bad), for the checks across nodes: so a
    node with one bad field still shows its clashes with the others in the same pass."""

    name: str
    id: int | None
    public: tuple[str, ...]
    central_tunnel: str | None
    site_tunnel: str | None
    site_underlay: str | None
    tunnel_subnet: str | None


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where
        self.problems: list[str] = []
        self.facts: list[_Facts] = []

    def bad(self, where: str, text: str) -> None:
        self.problems.append(f"{self.where}: {where}: {text}")

    def inventory(self, data: dict[str, Any]) -> Inventory:
        for key in data:
            if key != "node":
                self.bad(key, "unknown key (known: [[node]] tables)")
        raw = data.get("node", [])
        if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
            self.bad("node", "expected [[node]] tables")
            raw = []
        if not raw and not self.problems:
            self.bad("node", "no [[node]] tables: the inventory is empty")
        nodes = [n for i, t in enumerate(raw) if (n := self.node(i, t)) is not None]
        self.cross(self.facts)
        if self.problems:
            raise InventoryError(self.problems)
        return Inventory(tuple(nodes))

    def addr(self, where: str, value: Any) -> str | None:
        if not isinstance(value, str):
            self.bad(where, f"expected an IPv4 address as a string (got {_show(value)})")
            return None
        try:
            a = ipaddress.ip_address(value)
        except ValueError:
            self.bad(where, f"not an IP address (got {_show(value)})")
            return None
        if a.version != 4:
            self.bad(where, f"only IPv4 is supported for now (got {_show(value)})")
            return None
        if a.is_unspecified or a.is_multicast or a.is_loopback:
            self.bad(where, f"not a unicast address (got {_show(value)})")
            return None
        return str(a)

    def node(self, index: int, t: dict[str, Any]) -> Node | None:
        label = t.get("name") if isinstance(t.get("name"), str) else f"#{index + 1}"
        w = f"node {label}"
        before = len(self.problems)
        for key in t:
            if key not in _KNOWN:
                self.bad(f"{w} {key}", f"unknown key (known: {', '.join(sorted(_KNOWN))})")
        for key in _REQUIRED:
            if key not in t:
                self.bad(f"{w} {key}", "missing")
        name = t.get("name", "")
        if "name" in t and (not isinstance(name, str) or not NAME_RE.fullmatch(name)):
            self.bad(f"{w} name", "1-12 letters, digits, - or _, starting with a letter or digit "
                     f"(got {_show(name)})")  # fmt: skip
        site = t.get("site", name)
        if not isinstance(site, str) or any(ord(c) < 32 for c in site):
            self.bad(f"{w} site", f"expected text (got {_show(site)})")
        tunnel = t.get("tunnel", "gre")
        if tunnel not in TUNNEL_TYPES:
            self.bad(f"{w} tunnel", f'expected "gre" or "vxlan" (got {_show(tunnel)})')
        nid = t.get("id", 0)
        if "id" in t and (
            not isinstance(nid, int) or isinstance(nid, bool) or not 1 <= nid <= MAX_ID
        ):
            self.bad(f"{w} id", f"expected a whole number 1-{MAX_ID} (got {_show(nid)})")
        coords: list[float | None] = []
        for key, limit in (("latitude", 90), ("longitude", 180)):
            v = t.get(key)
            if v is not None and (
                not isinstance(v, int | float) or isinstance(v, bool) or not -limit <= v <= limit
            ):
                self.bad(f"{w} {key}", f"expected a number -{limit}..{limit} (got {_show(v)})")
                v = None
            coords.append(float(v) if v is not None else None)
        if ("latitude" in t) != ("longitude" in t):
            self.bad(f"{w} latitude", "give latitude and longitude together, or neither")
        public_raw = t.get("public", [])
        if isinstance(public_raw, str):
            public_raw = [public_raw]
        public: list[str] = []
        if not isinstance(public_raw, list) or ("public" in t and not public_raw):
            self.bad(f"{w} public", f"expected a list of addresses (got {_show(public_raw)})")
        else:
            public = [a for v in public_raw if (a := self.addr(f"{w} public", v))]
        ends = {k: self.addr(f"{w} {k}", t[k]) for k in ("site_underlay", "central_underlay",
                "central_tunnel") if k in t}  # fmt: skip
        net = None
        if "tunnel_subnet" in t:
            try:
                net = ipaddress.ip_network(str(t["tunnel_subnet"]), strict=True)
                if net.version != 4 or net.prefixlen > 30:
                    self.bad(f"{w} tunnel_subnet", "expected an IPv4 network of /30 or larger")
                    net = None
            except ValueError:
                self.bad(f"{w} tunnel_subnet", "expected a network such as 10.99.1.0/30 "
                         f"(got {_show(t['tunnel_subnet'])})")  # fmt: skip
        site_tunnel = None
        if "site_tunnel" in t:
            site_tunnel = self.addr(f"{w} site_tunnel", t["site_tunnel"])
        central_tunnel = ends.get("central_tunnel")
        if net is not None:
            hosts = [str(h) for h in net.hosts()]
            for key, a in (("central_tunnel", central_tunnel), ("site_tunnel", site_tunnel)):
                if a and a not in hosts:
                    self.bad(f"{w} {key}", f"{a} is not a host address of {net}")
            if site_tunnel is None and "site_tunnel" not in t:
                site_tunnel = next((h for h in hosts if h != central_tunnel), None)
        if site_tunnel and site_tunnel == central_tunnel:
            self.bad(f"{w} site_tunnel", "must differ from central_tunnel")
        su, cu = ends.get("site_underlay"), ends.get("central_underlay")
        if su and su == cu:
            self.bad(f"{w} site_underlay", "must differ from central_underlay")
        id_ok = isinstance(nid, int) and not isinstance(nid, bool) and 1 <= nid <= MAX_ID
        self.facts.append(_Facts(
            name if isinstance(name, str) and name else str(label), nid if id_ok else None,
            tuple(public), central_tunnel, site_tunnel if site_tunnel != central_tunnel else None, su, str(net) if net else None,
        ))  # fmt: skip
        if len(self.problems) > before:
            return None
        assert net is not None and site_tunnel and su and cu and central_tunnel
        return Node(
            name=name, site=site, public=tuple(public), tunnel=tunnel, id=nid,
            site_underlay=su, central_underlay=cu, tunnel_subnet=str(net),
            central_tunnel=central_tunnel, site_tunnel=site_tunnel,
            latitude=coords[0], longitude=coords[1],
        )  # fmt: skip

    def cross(self, nodes: list[_Facts]) -> None:
        seen: dict[str, str] = {}
        for n in nodes:
            if n.name.lower() in seen:
                self.bad(f"node {n.name} name", "duplicate node name (names ignore case)")
            seen[n.name.lower()] = n.name
        ids: dict[int, str] = {}
        for n in nodes:
            if n.id is None:
                continue
            if n.id in ids:
                self.bad(f"node {n.name} id", f"{n.id} is already the id of node {ids[n.id]}")
            ids.setdefault(n.id, n.name)
        # an address may appear once among public and tunnel addresses of all nodes
        owner: dict[str, str] = {}
        for n in nodes:
            for kind, addrs in (("public", n.public), ("central_tunnel", (n.central_tunnel,)),
                                ("site_tunnel", (n.site_tunnel,))):  # fmt: skip
                for a in addrs:
                    if a is None:
                        continue
                    if a in owner:
                        self.bad(f"node {n.name} {kind}", f"{a} is already used by {owner[a]}")
                    else:
                        owner[a] = f"node {n.name} {kind}"
        for n in nodes:  # a site's underlay address must not be an address traffic is sent to
            if (
                n.site_underlay
                and n.site_underlay in owner
                and not owner[n.site_underlay].startswith(f"node {n.name} ")
            ):
                self.bad(f"node {n.name} site_underlay",
                         f"{n.site_underlay} is already used by {owner[n.site_underlay]}")  # fmt: skip
        nets = [(n.name, ipaddress.ip_network(n.tunnel_subnet)) for n in nodes if n.tunnel_subnet]
        for i, (a, na) in enumerate(nets):
            for b, nb in nets[:i]:
                if na.overlaps(nb):
                    self.bad(f"node {a} tunnel_subnet", f"{na} overlaps {nb} of node {b}")


def attribution_map(inv: Inventory) -> dict[str, str]:
    """Central tunnel address -> node name (also in the IPv4-mapped IPv6 form a dual-stack
    listener reports)."""
    out: dict[str, str] = {}
    for n in inv.nodes:
        out[n.central_tunnel] = n.name
        out[f"::ffff:{n.central_tunnel}"] = n.name
    return out
