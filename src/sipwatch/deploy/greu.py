"""A GRE endpoint in userspace, for hosts without the kernel's GRE module.

One raw IPv4 socket for protocol 47 per local underlay address receives the GRE packets
(outer IP header included); one TUN device per node (``sw-NODE``, the name the plans use)
carries the inner IPv4 packets, so the kernel's own TCP/UDP stack, DNAT and policy routing
work above it unchanged. What leaves is standard GRE (RFC 2784 with the key extension of
RFC 2890): flags with only K set, protocol type 0x0800, the node id as key. Packets from an
unknown peer or with an unknown key, checksums, sequence numbers we do not track, non-IPv4
payloads and GRE version 1 (PPTP) are dropped and counted.

The devices live as long as the endpoint runs: ``sipwatch tunnel gre`` creates them, then
``sipwatch tunnel up --userspace-gre`` (central) or the site plan made with
``--userspace-gre`` configures them like kernel GRE devices.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import selectors
import socket
import struct
from collections import Counter
from dataclasses import dataclass

from sipwatch.deploy.nodes import Inventory, Node

log = logging.getLogger("sipwatch.greu")

GRE_PROTO = 47
ETH_P_IP = 0x0800
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DONT = 0  # let the kernel fragment the outer packet (tunnel MTU 1500)
FLAG_C, FLAG_K, FLAG_S = 0x8000, 0x2000, 0x1000
MAX_PACKET = 65535


class GreError(Exception):
    """The endpoint cannot start (no TUN, no raw socket, bad address); the text says why."""


@dataclass(frozen=True, slots=True)
class Link:
    node: str
    device: str
    local: str
    remote: str
    key: int


def links_for(inv: Inventory, side: str, node: str | None = None) -> list[Link]:
    """The GRE links of one side ("central" or "site") for the inventory's GRE nodes."""
    nodes: list[Node] = [inv.node(node)] if node else list(inv.nodes)
    out = []
    for n in nodes:
        if n.tunnel != "gre":
            continue
        local, remote = (
            (n.central_underlay, n.site_underlay)
            if side == "central"
            else (n.site_underlay, n.central_underlay)
        )
        out.append(Link(n.name, n.device, local, remote, n.id))
    return out


def encapsulate(key: int, inner: bytes) -> bytes:
    """GRE header (K flag, IPv4 payload, key) + the inner packet."""
    return struct.pack("!HHI", FLAG_K, ETH_P_IP, key) + inner


def decapsulate(packet: bytes) -> tuple[str, int | None, bytes] | None:
    """(outer source, key or None, inner IPv4 packet) of one received IPv4+GRE packet, or None
    when it is not a GRE packet this endpoint carries."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if ihl < 20 or len(packet) < ihl + 4:
        return None
    src = socket.inet_ntoa(packet[12:16])
    flags, proto = struct.unpack_from("!HH", packet, ihl)
    if flags & 0x0007 or flags & 0x4000 or proto != ETH_P_IP:  # version 0 only, no routing
        return None
    off = ihl + 4 + (4 if flags & FLAG_C else 0)
    key = None
    if flags & FLAG_K:
        if len(packet) < off + 4:
            return None
        (key,) = struct.unpack_from("!I", packet, off)
        off += 4
    if flags & FLAG_S:
        off += 4
    inner = packet[off:]
    if len(inner) < 20 or inner[0] >> 4 != 4:
        return None
    return src, key, inner


def open_tun(name: str) -> int:
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        raise GreError(f"cannot open /dev/net/tun: {exc.strerror}") from None
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        raise GreError(f"cannot create TUN device {name}: {exc.strerror}") from None
    return fd


class GreEndpoint:
    """Shuttles packets between raw GRE sockets and TUN devices until stop()."""

    def __init__(self, links: list[Link]) -> None:
        if not links:
            raise GreError('no GRE nodes to serve (tunnel = "gre" in the inventory)')
        self.links = links
        self.stats: Counter[str] = Counter()
        self.socks: dict[str, socket.socket] = {}
        self.tuns: dict[int, Link] = {}
        self.by_peer: dict[tuple[str, str, int], int] = {}  # (local, remote, key) -> TUN fd
        self.sel = selectors.DefaultSelector()
        self._stop_r, self._stop_w = os.pipe()

    def open(self) -> None:
        try:
            for link in self.links:
                if link.local not in self.socks:
                    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, GRE_PROTO)
                    self.socks[link.local] = s
                    s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
                    s.bind((link.local, 0))
                    s.setblocking(False)
                    self.sel.register(s, selectors.EVENT_READ, ("sock", link.local))
                fd = open_tun(link.device)
                self.tuns[fd] = link
                self.by_peer[(link.local, link.remote, link.key)] = fd
                self.sel.register(fd, selectors.EVENT_READ, ("tun", fd))
        except OSError as exc:
            self.close()
            raise GreError(f"cannot open a raw GRE socket: {exc.strerror}") from None
        except GreError:
            self.close()
            raise
        self.sel.register(self._stop_r, selectors.EVENT_READ, ("stop", 0))

    def stop(self) -> None:
        """Ask run() to return (safe from a signal handler)."""
        os.write(self._stop_w, b"x")

    def run(self) -> None:
        while self.tuns:
            for key, _ in self.sel.select():
                kind, ref = key.data
                if kind == "stop":
                    return
                if kind == "sock":
                    self._from_underlay(ref)
                else:
                    self._from_tun(ref)

    def _from_underlay(self, local: str) -> None:
        sock = self.socks[local]
        for _ in range(64):  # bounded: give the TUN side its turn
            try:
                packet = sock.recv(MAX_PACKET)
            except BlockingIOError:
                return
            got = decapsulate(packet)
            if got is None:
                self.stats["dropped_malformed"] += 1
                continue
            src, key, inner = got
            fd = self.by_peer.get((local, src, key if key is not None else -1))
            if fd is None:
                self.stats["dropped_unknown_peer"] += 1
                continue
            try:
                os.write(fd, inner)
                self.stats["decapsulated"] += 1
            except OSError:
                self.stats["dropped_tun_write"] += 1

    def _from_tun(self, fd: int) -> None:
        link = self.tuns[fd]
        for _ in range(64):
            try:
                inner = os.read(fd, MAX_PACKET)
            except BlockingIOError:
                return
            except OSError as exc:  # the device was deleted (tunnel down): stop serving it
                log.info("device %s is gone (%s): no longer served", link.device, exc.strerror)
                self.sel.unregister(fd)
                del self.tuns[fd]
                os.close(fd)
                return
            if not inner or inner[0] >> 4 != 4:
                self.stats["dropped_not_ipv4"] += 1
                continue
            try:
                self.socks[link.local].sendto(encapsulate(link.key, inner), (link.remote, 0))
                self.stats["encapsulated"] += 1
            except OSError:
                self.stats["dropped_send"] += 1

    def close(self) -> None:
        for fd in list(self.tuns):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(fd)
            os.close(fd)
        self.tuns.clear()
        for s in self.socks.values():
            s.close()
        self.socks.clear()
        self.sel.close()
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
