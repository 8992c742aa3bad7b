"""HEP collector: asyncio UDP and TCP listeners in, Records out (through HepDecoder).

Every listen address gets a UDP endpoint and a TCP server on the same port, as HOMER's
collectors do. Over UDP one datagram is one HEP packet. Over TCP the stream is framed by the
HEP3 length field (bytes 4-5 of each packet); a stream that does not start a HEP3 header
where one is due cannot be resynchronised and is closed (counted). Connections are bounded
in number and buffered bytes, and the UDP socket asks for a large receive buffer (root may
force it past net.core.rmem_max) so bursts wait in the kernel while the event loop stores.

The collector does no analysis: each Record goes to ``deliver`` (the sensor's
``pipeline.offer``, which counts what it must drop).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from sipwatch.capture.hep import HEADER, MAX_PACKET, HepDecoder, frame_length
from sipwatch.record import Record

log = logging.getLogger("sipwatch.hep")

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
UDP_BURST = 256  # datagrams read per wake-up before the loop gets a turn


@dataclass(slots=True)
class CollectorStats:
    udp_packets: int = 0
    tcp_packets: int = 0
    tcp_connections: int = 0  # accepted so far
    tcp_open: int = 0
    tcp_refused: int = 0  # over max_connections
    tcp_framing_errors: int = 0  # streams closed because they were not HEP3-framed
    delivered: int = 0  # Records handed to the pipeline

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


def parse_address(text: str) -> tuple[str, int]:
    """'ADDRESS:PORT' (IPv6 in brackets) -> (address, port); ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected ADDRESS:PORT, e.g. 0.0.0.0:9060 (got {text!r})")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    ipaddress.ip_address(host)  # ValueError for a name
    return host, int(port)


class _Tcp(asyncio.Protocol):
    def __init__(self, collector: HepCollector) -> None:
        self.c = collector
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        c = self.c
        self.transport = transport
        if c.stats.tcp_open >= c.max_connections:
            c.stats.tcp_refused += 1
            transport.abort()
            return
        c.stats.tcp_connections += 1
        c.stats.tcp_open += 1
        c._conns.add(transport)

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        if self.transport in self.c._conns:
            self.c._conns.discard(self.transport)
            self.c.stats.tcp_open -= 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        c = self.c
        pos = 0
        n = len(buf)
        while n - pos >= HEADER:
            size = frame_length(buf, pos)
            if size < 0 or size > MAX_PACKET:
                c.stats.tcp_framing_errors += 1
                c.decoder.stats.reject("bad_magic")
                assert self.transport is not None
                self.transport.abort()
                buf.clear()
                return
            if n - pos < size:
                break
            c.stats.tcp_packets += 1
            rec = c.decoder.record(bytes(buf[pos : pos + size]))
            pos += size
            if rec is not None:
                c.stats.delivered += 1
                c.deliver(rec)
        if pos:
            del buf[:pos]


class HepCollector:
    """UDP + TCP HEP listeners on each ``listen`` address, feeding ``deliver``."""

    def __init__(
        self,
        listen: list[str],
        decoder: HepDecoder,
        deliver: Callable[[Record], object],
        *,
        max_connections: int = 256,
        rcvbuf: int = 32 * 1024 * 1024,
    ) -> None:
        self.addresses = [parse_address(a) for a in listen]
        self.decoder = decoder
        self.deliver = deliver
        self.max_connections = max_connections
        self.rcvbuf = rcvbuf
        self.stats = CollectorStats()
        self.bound: list[str] = []  # "udp 0.0.0.0:9060", "tcp ..." (real ports when 0 given)
        self._udp: list[socket.socket] = []
        self._tcp: list[asyncio.AbstractServer] = []
        self._conns: set = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for host, port in self.addresses:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    self._grow_buffer(sock)
                    sock.bind((host, port))
                except OSError:
                    sock.close()
                    raise
                port = sock.getsockname()[1]  # port 0: the TCP server takes the same one
                sock.setblocking(False)
                # a reader of our own rather than a DatagramProtocol: asyncio's transport takes
                # one datagram per wake-up, this drains up to UDP_BURST per wake-up (3x the rate)
                loop.add_reader(sock.fileno(), self._read_udp, sock)
                self._udp.append(sock)
                server = await loop.create_server(
                    lambda: _Tcp(self), host, port, reuse_address=True
                )
                self._tcp.append(server)
                shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
                self.bound += [f"hep-udp {shown}", f"hep-tcp {shown}"]
        except OSError as exc:
            await self.close()
            raise OSError(
                f"cannot listen for HEP on {host}:{port}: {exc.strerror or exc}"
            ) from None

    def _read_udp(self, sock: socket.socket) -> None:
        recv = sock.recv
        record = self.decoder.record
        deliver = self.deliver
        stats = self.stats
        n = got = 0
        for _ in range(UDP_BURST):
            try:
                data = recv(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP errors reported on the socket
                log.debug("HEP UDP socket error: %s", exc)
                break
            n += 1
            rec = record(data)
            if rec is not None:
                got += 1
                deliver(rec)
        stats.udp_packets += n
        stats.delivered += got

    def _grow_buffer(self, sock: socket.socket) -> None:
        for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):  # FORCE needs root (CAP_NET_ADMIN)
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, self.rcvbuf)
                return
            except OSError:
                continue

    @property
    def ports(self) -> list[int]:
        """The UDP/TCP port of each listen address (useful when 0 was asked for)."""
        return [s.getsockname()[1] for s in self._udp]

    async def close(self) -> None:
        if self._udp:
            loop = asyncio.get_running_loop()
            for sock in self._udp:
                loop.remove_reader(sock.fileno())
                sock.close()
        self._udp = []
        for server in self._tcp:
            server.close()
        for conn in list(self._conns):
            conn.abort()
        for server in self._tcp:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._tcp = []

    def counters(self) -> dict[str, int]:
        """Flat counters for the heartbeat and /metrics (hep_*)."""
        out = {f"hep_{k}": v for k, v in self.decoder.stats.as_dict().items()}
        out.update({f"hep_{k}": v for k, v in self.stats.as_dict().items() if v})
        return out
