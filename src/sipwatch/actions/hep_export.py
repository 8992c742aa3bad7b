"""HEP export: every recorded message (received and sent) as HEP v3 to a HOMER collector.

``[actions.hep]``::

    address = "homer.example:9060"   # required; a host name is resolved at (re)connect
    transport = "udp"                # or "tcp"
    agent_id = 2001                  # capture agent id (chunk 12); 0 = not sent
    auth_key = ""                    # capture password (chunk 14); "" = not sent
    node_name = ""                   # node name (chunk 19); "" = the record's node, if any
    compress = false                 # send the payload gzip-compressed (chunk 16)
    max_queue = 100000               # packets waiting; more are dropped and counted

Unlike the event sinks it takes Records, not events: the sensor adds it to the pipeline's
actions. ``handle(batch)`` (the pipeline, event loop) encodes each Record and appends it to
the bounded queue of QueuedSink; the sink's worker thread sends. Over TCP a broken
connection is re-established with a growing pause (bounded); packets that cannot be sent
after that are counted as failed, a full queue as dropped (``stats``).
"""

from __future__ import annotations

import contextlib
import socket
import threading

from sipwatch.actions.base import QueuedSink
from sipwatch.actions.config import Section
from sipwatch.capture.hep_encode import encode_record
from sipwatch.detect.events import Event
from sipwatch.record import Record


def _split(address: str) -> tuple[str, int] | None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def parse_config(sec: Section) -> dict[str, object]:
    """Keyword arguments for HepExporter from ``[actions.hep]``."""
    address = sec.str("address", "", required=True) or ""
    if sec.has("address") and isinstance(sec.table.get("address"), str) and not _split(address):
        sec.fail("address", f"must be HOST:PORT, e.g. 192.0.2.10:9060, not {address!r}")
    return {
        "address": address,
        "transport": sec.str("transport", "udp", choices=("udp", "tcp")) or "udp",
        "agent_id": sec.int("agent_id", 0, minimum=0, maximum=2**32 - 1),
        "auth_key": sec.str("auth_key", "") or "",
        "node_name": sec.str("node_name", "") or "",
        "compress": sec.bool("compress", False),
        "max_queue": sec.int("max_queue", 100_000, minimum=1, maximum=10_000_000),
        "close_timeout": sec.float("close_timeout", 5.0, minimum=0),
        "retries": sec.int("retries", 3, minimum=0, maximum=100),
    }


class HepExporter(QueuedSink):
    """A pipeline action sending Records as HEP v3 (and an event sink that takes none)."""

    kind = "hep"
    fatal = False

    def __init__(
        self,
        *,
        address: str,
        transport: str = "udp",
        agent_id: int = 0,
        auth_key: str = "",
        node_name: str = "",
        compress: bool = False,
        retries: int = 3,
        max_queue: int = 100_000,
        close_timeout: float = 5.0,
        name: str | None = None,
    ) -> None:
        target = _split(address)
        if target is None:
            raise ValueError(f"address must be HOST:PORT, not {address!r}")
        super().__init__(max_queue=max_queue, batch_max=1000, close_timeout=close_timeout,
                         name=name)  # fmt: skip
        self.target = target
        self.transport = transport
        self.agent_id = agent_id or None
        self.auth_key = auth_key.encode() if auth_key else None
        self.node_name = node_name or None
        self.compress = compress
        self.retries = retries
        self.encode_errors = 0
        self.connects = 0  # TCP connections made (the first and every reconnect)
        self._sock: socket.socket | None = None
        self._sock_lock = threading.Lock()
        self._start()

    # --- pipeline side (event loop) ------------------------------------------------------
    def emit(self, events: list[Event]) -> None:
        """Events are not exported (HEP carries messages)."""

    def handle(self, batch: list[Record]) -> None:
        """Encode each Record and queue it; a full queue drops (counted), never blocks."""
        agent, key, name, compress = self.agent_id, self.auth_key, self.node_name, self.compress
        packets = []
        for rec in batch:
            try:
                packets.append(encode_record(rec, agent, key, name or rec.node or None, compress))
            except (ValueError, OSError, OverflowError):  # an oversized or odd record: counted
                self.encode_errors += 1
        st = self._stats
        with self._cond:
            st.received += len(batch)
            room = self.max_queue - len(self._queue)
            if self._closing:
                room = 0
            take = packets[: max(0, room)]
            st.dropped += len(packets) - len(take)
            self._queue.extend(take)  # type: ignore[arg-type]
            self._cond.notify()

    # --- worker thread ----------------------------------------------------------------------
    def _process(self, batch: list) -> None:  # type: ignore[override]
        if self.transport == "udp":
            self._send_udp(batch)
        else:
            self._send_tcp(b"".join(batch))

    def _send_udp(self, packets: list[bytes]) -> None:
        sock = self._socket()
        failed = 0
        error: OSError | None = None
        for pkt in packets:
            try:
                sock.sendto(pkt, self.target)
            except OSError as exc:  # e.g. ICMP port unreachable reported on a later send
                failed += 1
                error = exc
        if failed:
            self._stats.failed += failed
            self._stats.delivered -= failed  # _deliver counts the whole batch as delivered
            self._record_error(error or OSError("send failed"))

    def _send_tcp(self, data: bytes) -> None:
        pause = 0.2
        for attempt in range(self.retries + 1):
            try:
                sock = self._socket()
                sock.sendall(data)
                return
            except OSError:
                self._close_socket()
                if attempt == self.retries or self._sleep(pause):
                    raise
                pause = min(pause * 2, 5.0)

    def _socket(self) -> socket.socket:
        with self._sock_lock:
            if self._sock is not None:
                return self._sock
            host, port = self.target
            kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
            info = socket.getaddrinfo(host, port, 0, kind)[0]
            sock = socket.socket(info[0], kind)
            try:
                if kind == socket.SOCK_STREAM:
                    sock.settimeout(5.0)
                    sock.connect(info[4])
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.connects += 1
                else:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
                    self.target = (info[4][0], info[4][1])  # resolved once per socket
            except OSError:
                sock.close()
                raise
            self._sock = sock
            return sock

    def _close_socket(self) -> None:
        with self._sock_lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.close()
                self._sock = None

    def _finish(self) -> None:
        self._close_socket()
