"""SIP listeners on asyncio: UDP, TCP and TLS sockets that feed a synchronous handler.

The handler gets each UDP datagram and each framed TCP/TLS message together with the local
address it arrived on, and returns the replies. Replies go back only to the sender (never to
an address taken from the message, so the sensor cannot be used as a reflector), and a UDP
reply leaves from the local address that was hit (IP_PKTINFO / IPV6_PKTINFO): with many local
addresses (the central sensor serving many nodes) each node answers as itself.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from sipwatch.honeypot.listen import TRANSPORTS, Listen
from sipwatch.native import part
from sipwatch.sip.framing import StreamFramer
from sipwatch.sip.message import MAX_BODY

log = logging.getLogger(__name__)

_LINUX = sys.platform.startswith("linux")
# Linux values; Python 3.11's socket module lacks IP_PKTINFO and SO_RCVBUFFORCE
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8 if _LINUX else None)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49 if _LINUX else None)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50 if _LINUX else None)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33 if _LINUX else None)

_IN_PKTINFO = struct.Struct("=i4s4s")  # ifindex, spec_dst (local address to use), header dst
_IN6_PKTINFO = struct.Struct("=16sI")  # address, ifindex
_ANC_SIZE = socket.CMSG_SPACE(_IN6_PKTINFO.size)
_UDP_BUF = 65535  # the largest UDP payload; MSG_TRUNC beyond it
_MSG_TRUNC = int(socket.MSG_TRUNC)  # a plain int: `int & IntFlag` runs enum code per datagram
_PKTINFO_CACHE_MAX = 4096
# The C batch calls (native/udpio.c, Linux): one recvmmsg per batch and one sendmmsg per burst
# instead of a recvmsg and a sendmsg per datagram. None without the C bulk path (or with
# SIPWATCH_NO_NATIVE): the listener keeps its Python loop, which stays the definition.
_recv_batch = part("udp_recv_batch")
_send_batch = part("udp_send_batch")
_BATCH_MAX = part("UDP_BATCH_MAX") or 1


class ServerError(Exception):
    """A listener could not be set up; the message is one line meant for the user."""


@dataclass(slots=True)
class Inbound:
    """One received datagram or framed stream message, and where and when it arrived."""

    data: bytes
    transport: str  # "udp" | "tcp" | "tls"
    src: str
    sport: int
    dst: str  # the LOCAL address the message arrived on
    dport: int  # the local port
    ts: float  # time.time() at receipt


Handler = Callable[[Inbound], list[bytes]]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    udp_rcvbuf: int = 4 * 1024 * 1024  # asked for; SO_RCVBUFFORCE as root, else capped by rmem_max
    udp_burst: int = 256  # datagrams read per wakeup before yielding to the loop
    idle_timeout: float = 60.0  # seconds without a complete message before a connection closes
    max_connections: int = 4096  # TCP + TLS connections open at once
    max_connections_per_source: int = 32  # per source IP address
    max_buffered: int = 65536  # unframed bytes held per connection
    max_body: int = MAX_BODY  # a longer body is cut by the framer (and flagged by the parser)
    write_high_water: int = 262144  # unsent reply bytes per connection before disconnecting
    tls_handshake_timeout: float = 10.0
    backlog: int = 1024
    log_every: int = 1000  # handler errors: log the first one and then every Nth

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"server limit {f.name} must be positive")


@dataclass(slots=True)
class TransportStats:
    received: int = 0  # datagrams / framed messages handed to the handler
    bytes: int = 0  # bytes received (stream: plaintext bytes read)
    replies: int = 0
    reply_bytes: int = 0
    send_errors: int = 0  # replies not sent (EAGAIN, no route, ...): counted drops
    recv_errors: int = 0
    truncated: int = 0  # UDP datagrams longer than the receive buffer
    connections: int = 0  # accepted and admitted
    refused: int = 0  # closed at once: connection limits
    idle_closed: int = 0
    oversize_closed: int = 0  # unframed data beyond max_buffered
    slow_closed: int = 0  # peer not reading its replies (write_high_water)
    tls_failures: int = 0  # handshake failed or timed out
    junk_bytes: int = 0  # stream bytes the framer skipped (not SIP, oversized bodies)
    handler_errors: int = 0


@dataclass(slots=True)
class ServerStats:
    udp: TransportStats = field(default_factory=TransportStats)
    tcp: TransportStats = field(default_factory=TransportStats)
    tls: TransportStats = field(default_factory=TransportStats)
    open_connections: int = 0

    def __getitem__(self, transport: str) -> TransportStats:
        return getattr(self, transport)

    @property
    def handler_errors(self) -> int:
        return self.udp.handler_errors + self.tcp.handler_errors + self.tls.handler_errors

    @property
    def received(self) -> int:
        return self.udp.received + self.tcp.received + self.tls.received

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {t: asdict(self[t]) for t in TRANSPORTS}
        out["open_connections"] = self.open_connections
        return out


def _bind_error(listen: Listen, exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        reason = "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        reason = "Cannot assign requested address (not an address of this host)"
    else:
        reason = exc.strerror or str(exc)
    return f"cannot listen on {listen}: {reason}"


def _open_socket(listen: Listen, limits: ServerLimits) -> socket.socket:
    """A bound, non-blocking socket for one listen entry (listening, for streams)."""
    try:
        ip = ipaddress.ip_address(listen.address.split("%", 1)[0])
    except ValueError:
        raise ServerError(f"cannot listen on {listen}: not an IP address") from None
    if not 0 <= listen.port <= 65535:
        raise ServerError(f"cannot listen on {listen}: port out of range")
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    udp = listen.transport == "udp"
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    sock = None
    try:
        sock = socket.socket(family, kind)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if udp:
            # no SO_REUSEADDR on UDP: on Linux it lets a second sensor share the port silently
            _set_rcvbuf(sock, limits.udp_rcvbuf)
            if family == socket.AF_INET and IP_PKTINFO is not None:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            elif family == socket.AF_INET6 and IPV6_RECVPKTINFO is not None:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart over TIME_WAIT
        flags = socket.AI_NUMERICHOST | socket.AI_PASSIVE
        addr = socket.getaddrinfo(listen.address, listen.port, family, kind, 0, flags)[0][4]
        sock.bind(addr)
        if not udp:
            sock.listen(limits.backlog)
        sock.setblocking(False)
    except OSError as exc:
        if sock is not None:
            sock.close()
        if isinstance(exc, socket.gaierror):
            raise ServerError(f"cannot listen on {listen}: {exc.strerror}") from None
        raise ServerError(_bind_error(listen, exc)) from None
    return sock


def _set_rcvbuf(sock: socket.socket, size: int) -> None:
    try:
        if SO_RCVBUFFORCE is None:
            raise PermissionError
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)  # root may exceed rmem_max
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if got < size:  # Linux reports twice what was granted
        log.warning(
            "UDP receive buffer is %d bytes (asked for %d): raise net.core.rmem_max "
            "or run as root to avoid drops under load",
            got,
            size,
        )


class SipServer:
    """The honeypot's listeners. start() binds everything or raises ServerError."""

    def __init__(
        self,
        listens: list[Listen],
        handler: Handler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        self.listens = list(listens)
        self.handler = handler
        self.ssl_context = ssl_context
        self.limits = limits or ServerLimits()
        self.stats = ServerStats()
        self.bound: list[Listen] = []
        self._udp: list[_UdpListener] = []
        self._servers: list[asyncio.Server] = []
        self._conns: set[_StreamConn] = set()
        self._per_source: dict[str, int] = {}
        self._no_conns = asyncio.Event()
        self._no_conns.set()
        self._closing = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        socks: list[tuple[Listen, socket.socket]] = []
        try:
            for listen in self.listens:
                if listen.transport not in TRANSPORTS:
                    raise ServerError(f"cannot listen on {listen}: unknown transport")
                if listen.transport == "tls" and self.ssl_context is None:
                    raise ServerError(f"cannot listen on {listen}: TLS needs a certificate")
                socks.append((listen, _open_socket(listen, self.limits)))
        except ServerError:
            for _, sock in socks:
                sock.close()
            raise
        for listen, sock in socks:
            port = sock.getsockname()[1]
            bound = Listen(listen.transport, listen.address, port)
            self.bound.append(bound)
            if listen.transport == "udp":
                udp = _UdpListener(self, sock, bound)
                loop.add_reader(sock.fileno(), udp.on_readable)
                self._udp.append(udp)
            else:
                srv = await loop.create_server(
                    lambda b=bound: _StreamConn(self, b),
                    sock=sock,
                    backlog=self.limits.backlog,
                )
                self._servers.append(srv)
        log.info("listening on %s", ", ".join(str(b) for b in self.bound))

    async def close(self, timeout: float = 2.0) -> None:
        """Stop accepting, close every connection (flushing replies), wait for them."""
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        for srv in self._servers:
            srv.close()
        for udp in self._udp:
            loop.remove_reader(udp.sock.fileno())
            udp.sock.close()
        for conn in list(self._conns):
            conn.shutdown()
        try:
            await asyncio.wait_for(self._no_conns.wait(), timeout)
        except TimeoutError:
            for conn in list(self._conns):
                conn.abort()
        for srv in self._servers:
            await srv.wait_closed()

    # --- shared by the listeners -------------------------------------------------------

    def call_handler(self, inbound: Inbound, stats: TransportStats) -> list[bytes]:
        try:
            return self.handler(inbound) or []
        except Exception:
            stats.handler_errors += 1
            n = stats.handler_errors
            if n == 1 or n % self.limits.log_every == 0:
                log.error(
                    "handler failed on a %s message from %s:%d (%d such errors on %s so far)",
                    inbound.transport,
                    inbound.src,
                    inbound.sport,
                    n,
                    inbound.transport,
                    exc_info=True,
                )
            return []

    def admit(self, conn: _StreamConn) -> bool:
        limits = self.limits
        count = self._per_source.get(conn.src, 0)
        if (
            self._closing
            or len(self._conns) >= limits.max_connections
            or count >= limits.max_connections_per_source
        ):
            return False
        self._per_source[conn.src] = count + 1
        self._conns.add(conn)
        self._no_conns.clear()
        self.stats.open_connections = len(self._conns)
        return True

    def release(self, conn: _StreamConn) -> None:
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        left = self._per_source.get(conn.src, 1) - 1
        if left > 0:
            self._per_source[conn.src] = left
        else:
            self._per_source.pop(conn.src, None)
        self.stats.open_connections = len(self._conns)
        if not self._conns:
            self._no_conns.set()


class _UdpListener:
    """One UDP socket: drains datagrams on readiness, replies from the address that was hit."""

    def __init__(self, server: SipServer, sock: socket.socket, bound: Listen) -> None:
        self.server = server
        self.sock = sock
        self.bound = bound
        self.v6 = sock.family == socket.AF_INET6
        self.stats = server.stats.udp
        # raw PKTINFO data -> (local address text, cmsg list for the reply)
        self._pktinfo: dict[bytes, tuple[str, list[tuple[int, int, bytes]]]] = {}
        self.batched = _recv_batch is not None and _send_batch is not None
        # the same for the C calls: raw PKTINFO data -> (local address, the cmsg's data)
        self._pktinfo_c: dict[bytes, tuple[str, bytes | None]] = {}

    def on_readable(self) -> None:
        if self.batched:
            self._drain_batched()
            return
        sock = self.sock
        stats = self.stats
        server = self.server
        port = self.bound.port
        # The replies go out after the burst is read: a client waiting in poll() is woken once
        # per burst instead of once per reply (on loopback the sender pays for that wake-up:
        # at 13,000 requests/s it was 12 us of the sensor's ~80 us per request).
        outgoing: list[tuple[list[bytes], list[tuple[int, int, bytes]], tuple]] = []
        try:
            for _ in range(server.limits.udp_burst):
                try:
                    data, anc, flags, addr = sock.recvmsg(_UDP_BUF, _ANC_SIZE)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    stats.recv_errors += 1
                    return
                ts = time.time()
                stats.received += 1
                stats.bytes += len(data)
                if flags & _MSG_TRUNC:
                    stats.truncated += 1
                dst, cmsg = self._local(anc)
                replies = server.call_handler(
                    Inbound(data, "udp", addr[0], addr[1], dst, port, ts), stats
                )
                if replies:
                    outgoing.append((replies, cmsg, addr))
        finally:
            for replies, cmsg, addr in outgoing:
                self._send(replies, cmsg, addr)

    def _drain_batched(self) -> None:
        """on_readable through the C batch calls: the same datagrams, Inbound fields, stats,
        burst limit and replies (sent after the burst, from the address that was hit)."""
        stats = self.stats
        server = self.server
        call_handler = server.call_handler
        sock = self.sock
        port = self.bound.port
        local = self._pktinfo_c
        outgoing: list[tuple[list[bytes], bytes | None, bytes]] = []
        left = server.limits.udp_burst
        try:
            while left > 0:
                try:
                    # fileno() each time, as the socket object: -1 (EBADF) once closed,
                    # never a number since reused by another file
                    batch = _recv_batch(sock.fileno(), min(left, _BATCH_MAX), _UDP_BUF)
                except OSError:
                    stats.recv_errors += 1
                    return
                if not batch:
                    return
                left -= len(batch)
                for data, src, sport, raw, truncated, peer in batch:
                    # a time per datagram, as the Python loop: two identical datagrams of one
                    # batch (a flood) stay two records, not one id stored once
                    ts = time.time()
                    stats.received += 1
                    stats.bytes += len(data)
                    if truncated:
                        stats.truncated += 1
                    if raw is None:  # no PKTINFO: the bound address, as _local says
                        dst, info = self.bound.address, None
                    else:
                        dst, info = local.get(raw) or self._local_c(raw)
                    replies = call_handler(Inbound(data, "udp", src, sport, dst, port, ts), stats)
                    if replies:
                        outgoing.append((replies, info, peer))
        finally:
            if outgoing:
                sent, sent_bytes, errors, bad = _send_batch(sock.fileno(), outgoing)
                stats.replies += sent
                stats.reply_bytes += sent_bytes
                stats.send_errors += errors
                stats.handler_errors += bad  # not bytes: sendmsg's TypeError on the other path

    def _local_c(self, raw: bytes) -> tuple[str, bytes | None]:
        # _decode keeps the rules; the C send takes the cmsg's data (its length says which)
        dst, cmsg = self._decode(raw)
        hit = (dst, cmsg[0][2] if cmsg else None)
        if len(self._pktinfo_c) >= _PKTINFO_CACHE_MAX:
            self._pktinfo_c.clear()
        self._pktinfo_c[raw] = hit
        return hit

    def _send(self, replies: list[bytes], cmsg: list[tuple[int, int, bytes]], addr: tuple) -> None:
        sock = self.sock
        stats = self.stats
        for reply in replies:
            try:
                sock.sendmsg([reply], cmsg, 0, addr)
            except OSError:
                stats.send_errors += 1
            except (TypeError, ValueError):  # the handler returned something other than bytes
                stats.handler_errors += 1
            else:
                stats.replies += 1
                stats.reply_bytes += len(reply)

    def _local(self, anc: list[tuple[int, int, bytes]]) -> tuple[str, list[tuple[int, int, bytes]]]:
        for level, kind, raw in anc:
            if (level, kind) in (
                (socket.IPPROTO_IP, IP_PKTINFO),
                (socket.IPPROTO_IPV6, IPV6_PKTINFO),
            ):
                hit = self._pktinfo.get(raw)
                if hit is None:
                    hit = self._decode(raw)
                    if len(self._pktinfo) >= _PKTINFO_CACHE_MAX:
                        self._pktinfo.clear()
                    self._pktinfo[raw] = hit
                return hit
        return self.bound.address, []  # no PKTINFO (not Linux): the bound address

    def _decode(self, raw: bytes) -> tuple[str, list[tuple[int, int, bytes]]]:
        if not self.v6:
            _, spec_dst, addr = _IN_PKTINFO.unpack(raw[: _IN_PKTINFO.size])
            dst = socket.inet_ntop(socket.AF_INET, addr)
            if spec_dst == b"\0\0\0\0":
                return dst, []
            # source = the local address the kernel reports for this packet (the one hit,
            # or the interface address for a broadcast); no interface forced: routing decides
            info = _IN_PKTINFO.pack(0, spec_dst, b"\0\0\0\0")
            return dst, [(socket.IPPROTO_IP, IP_PKTINFO, info)]
        addr6, ifindex = _IN6_PKTINFO.unpack(raw[: _IN6_PKTINFO.size])
        dst = socket.inet_ntop(socket.AF_INET6, addr6)
        if addr6[0] == 0xFF:  # multicast: let the kernel pick a unicast source
            return dst, []
        link_local = addr6[0] == 0xFE and addr6[1] & 0xC0 == 0x80
        info = _IN6_PKTINFO.pack(addr6, ifindex if link_local else 0)
        return dst, [(socket.IPPROTO_IPV6, IPV6_PKTINFO, info)]


class _StreamConn(asyncio.Protocol):
    """One TCP or TLS connection: framing, limits, replies on the same connection."""

    def __init__(self, server: SipServer, bound: Listen) -> None:
        self.server = server
        self.name = bound.transport
        self.stats = server.stats[bound.transport]
        self.limits = server.limits
        self.framer = StreamFramer(server.limits.max_body)
        self.transport: asyncio.Transport | None = None
        self.src = ""
        self.sport = 0
        self.dst = bound.address
        self.dport = bound.port
        self.closed = False
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._handshake: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        if not peer:  # reset before we looked
            self.closed = True
            transport.abort()
            return
        self.src, self.sport = peer[0], peer[1]
        if local:
            self.dst, self.dport = local[0], local[1]
        if not self.server.admit(self):
            self.stats.refused += 1
            self.closed = True
            transport.abort()
            return
        self.stats.connections += 1
        if self.name == "tls":
            self._handshake = asyncio.get_running_loop().create_task(self._start_tls())
        else:
            self._ready()

    async def _start_tls(self) -> None:
        loop = asyncio.get_running_loop()
        raw = self.transport
        assert raw is not None and self.server.ssl_context is not None
        try:
            tls = await loop.start_tls(
                raw,
                self,
                self.server.ssl_context,
                server_side=True,
                ssl_handshake_timeout=self.limits.tls_handshake_timeout,
            )
        except asyncio.CancelledError:
            self._gone()
            raise
        except Exception as exc:  # handshake failure or timeout: counted, never fatal
            self.stats.tls_failures += 1
            log.debug("TLS handshake with %s:%d failed: %s", self.src, self.sport, exc)
            raw.abort()
            self._gone()
            return
        finally:
            self._handshake = None
        if tls is None or self.closed:
            raw.abort()
            self._gone()
            return
        self.transport = tls
        self._ready()

    def _ready(self) -> None:
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        self._timer = loop.call_later(self.limits.idle_timeout, self._check_idle)

    def _check_idle(self) -> None:
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        left = self._last + self.limits.idle_timeout - loop.time()
        if left > 0:
            self._timer = loop.call_later(left, self._check_idle)
            return
        self.stats.idle_closed += 1
        if self.transport is not None and self.transport.get_write_buffer_size():
            self.abort()  # replies still unread: a graceful close could wait forever
        else:
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        stats = self.stats
        stats.bytes += len(data)
        messages = self.framer.feed(data)
        if messages:
            self._last = asyncio.get_running_loop().time()
            self._handle(messages)
        if not self.closed and self.framer.buffered > self.limits.max_buffered:
            stats.oversize_closed += 1
            self.abort()

    def eof_received(self) -> bool:
        # an unfinished message at EOF still reaches the handler (parse flags it)
        if not self.closed:
            self._handle(self.framer.close())
        return False  # close our side after flushing replies

    def _handle(self, messages: list[bytes]) -> None:
        stats = self.stats
        server = self.server
        transport = self.transport
        assert transport is not None
        for message in messages:
            stats.received += 1
            inbound = Inbound(
                message, self.name, self.src, self.sport, self.dst, self.dport, time.time()
            )
            for reply in server.call_handler(inbound, stats):
                if not isinstance(reply, bytes | bytearray | memoryview):
                    stats.handler_errors += 1
                    continue
                transport.write(reply)
                stats.replies += 1
                stats.reply_bytes += len(reply)
            if transport.get_write_buffer_size() > self.limits.write_high_water:
                stats.slow_closed += 1  # the peer does not read what it asks for
                self.abort()
                return

    def shutdown(self) -> None:
        """Graceful close: pending replies are flushed first (TLS: close_notify too)."""
        if self._handshake is not None:
            self._handshake.cancel()
            return
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self._handshake is not None:
            self._handshake.cancel()
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()

    def _gone(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.framer.dropped_bytes:
            self.stats.junk_bytes += self.framer.dropped_bytes
            self.framer.dropped_bytes = 0
        self.server.release(self)
