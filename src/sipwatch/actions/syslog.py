"""Syslog: one fixed-format line per event, for fail2ban and log collectors.

The message (after ``sipwatch[PID]: ``) is always::

    event=<rule> severity=<sev> stage=<stage> src=<ip> count=<n> targets=<t1,t2,...> summary="..."

Attack traffic feeds several of these fields (extensions, numbers, the summary), so every
value is escaped to stay on one line and keep its place: tokens are percent-encoded outside a
small safe set ("-" when empty), the summary is quoted with \\ and \\" escaped and control
characters as \\xNN. A crafted extension can therefore never forge a second ``src=`` that the
fail2ban filter would match. Sent as RFC 3164 (default; what /dev/log daemons expect) or
RFC 5424, to a local unix socket or to a UDP/TCP collector.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import time
from datetime import UTC, datetime
from urllib.parse import quote

from sipwatch.actions.base import QueuedSink, parse_common
from sipwatch.actions.config import Section
from sipwatch.detect.events import Event

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
# sipwatch severity -> syslog severity (RFC 5424 table 2)
LEVELS = {"info": 6, "low": 5, "medium": 4, "high": 3, "critical": 2}
FORMATS = ("rfc3164", "rfc5424")
TRANSPORTS = ("udp", "tcp")

_TAG = re.compile(r"[A-Za-z0-9._-]{1,32}")
_SAFE = "._:@+/-"  # kept as is in tokens; everything else percent-encoded
# rsyslog's imuxsock and journald parse /dev/log lines as RFC 3164 and mangle RFC 5424 ones
_LOCAL_5424 = "rfc5424 is for network collectors (host); local sockets take rfc3164"
MAX_TARGETS = 10
MAX_SUMMARY = 300
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _token(value: object, extra_safe: str = "") -> str:
    text = str(value)
    return quote(text, safe=_SAFE + extra_safe) if text else "-"


def _quoted(text: str) -> str:
    if len(text) > MAX_SUMMARY:
        text = text[: MAX_SUMMARY - 3] + "..."
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'


def format_message(event: Event) -> str:
    """The fixed key=value message of one event (no syslog header)."""
    targets = ",".join(_token(t) for t in event.targets[:MAX_TARGETS]) or "-"
    if len(event.targets) > MAX_TARGETS:
        targets += f",...+{len(event.targets) - MAX_TARGETS}"
    return (
        f"event={_token(event.rule)} severity={_token(event.severity)} "
        f"stage={_token(event.stage)} src={_token(event.src)} count={int(event.count)} "
        f"targets={targets} summary={_quoted(event.summary)}"
    )


def priority(event: Event, facility: int) -> int:
    return facility * 8 + LEVELS.get(event.severity, 5)


def format_rfc3164(event: Event, *, facility: int, tag: str, pid: int, hostname: str | None,
                   now: float) -> bytes:  # fmt: skip
    """``<PRI>Mmm dd hh:mm:ss [HOST ]TAG[PID]: MSG`` (local time, like syslog(3))."""
    t = time.localtime(now)
    stamp = f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    host = f"{hostname} " if hostname else ""
    line = f"<{priority(event, facility)}>{stamp} {host}{tag}[{pid}]: {format_message(event)}"
    return line.encode("utf-8", "replace")


def format_rfc5424(event: Event, *, facility: int, tag: str, pid: int, hostname: str | None,
                   now: float) -> bytes:  # fmt: skip
    """``<PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG`` with MSGID the event's stage."""
    stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds")
    stamp = stamp.replace("+00:00", "Z")
    msgid = _token(event.stage) if event.stage else "-"
    line = (
        f"<{priority(event, facility)}>1 {stamp} {hostname or '-'} {tag} {pid} {msgid} - "
        f"{format_message(event)}"
    )
    return line.encode("utf-8", "replace")


class SyslogSink(QueuedSink):
    kind = "syslog"

    def __init__(
        self,
        *,
        socket_path: str | None = "/dev/log",
        host: str | None = None,
        port: int = 514,
        transport: str = "udp",
        format: str = "rfc3164",
        facility: str = "auth",
        tag: str = "sipwatch",
        hostname: str | None = None,
        connect_timeout: float = 5.0,
        **common,
    ) -> None:
        super().__init__(**common)
        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}")
        self.socket_path = None if host else socket_path
        if format == "rfc5424" and self.socket_path:
            raise ValueError(_LOCAL_5424)
        self.host, self.port, self.transport = host, port, transport
        self.format = format
        self.facility = FACILITIES[facility]
        self.tag = tag
        # local daemons stamp the host themselves; a remote collector needs it in the line
        self.hostname = (
            hostname if hostname is not None else (socket.gethostname() if host else None)
        )
        self.connect_timeout = connect_timeout
        self._sock: socket.socket | None = None
        self._stream = False
        self._start()

    def line(self, event: Event, now: float | None = None) -> bytes:
        """The bytes sent for one event (without stream framing)."""
        fmt = format_rfc5424 if self.format == "rfc5424" else format_rfc3164
        return fmt(event, facility=self.facility, tag=self.tag, pid=os.getpid(),
                   hostname=self.hostname, now=time.time() if now is None else now)  # fmt: skip

    def _connect(self) -> socket.socket:
        if self.socket_path is not None:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.connect(self.socket_path)
                self._stream = False
                return sock
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EPROTOTYPE:  # a stream socket answers EPROTOTYPE
                    raise
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.connect_timeout)
            sock.connect(self.socket_path)
            self._stream = True
            return sock
        assert self.host is not None
        if self.transport == "tcp":
            sock = socket.create_connection((self.host, self.port), self.connect_timeout)
            self._stream = True
            return sock
        family, kind, proto, _, addr = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_DGRAM
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.connect(addr)
        self._stream = False
        return sock

    def _frame(self, line: bytes) -> bytes:
        if not self._stream:
            return line
        if self.format == "rfc5424":
            return b"%d %s" % (len(line), line)  # RFC 6587 octet counting
        return line + b"\n"

    def _process(self, batch: list[Event]) -> None:
        now = time.time()
        lines = [self.line(e, now) for e in batch]
        for attempt in (1, 2):  # a restarted syslog daemon: reconnect once, then fail
            try:
                if self._sock is None:
                    self._sock = self._connect()
                sock = self._sock
                if self._stream:
                    sock.sendall(b"".join(self._frame(x) for x in lines))
                else:
                    for x in lines:
                        sock.send(x)
                return
            except OSError:
                self._drop_socket()
                if attempt == 2:
                    raise

    def _drop_socket(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.close()

    def _finish(self) -> None:
        self._drop_socket()


def parse_config(sec: Section) -> dict[str, object]:
    """Keyword arguments for SyslogSink from ``[actions.syslog]``."""
    kwargs = parse_common(sec)
    host = sec.str("host")
    kwargs["host"] = host or None
    kwargs["socket_path"] = sec.str("socket", "/dev/log")
    if host and sec.has("socket"):
        sec.fail("socket", "give either socket (local) or host (remote), not both")
    kwargs["port"] = sec.int("port", 514, minimum=1, maximum=65535)
    kwargs["transport"] = sec.str("transport", "udp", choices=TRANSPORTS)
    kwargs["format"] = sec.str("format", "rfc3164", choices=FORMATS)
    if kwargs["format"] == "rfc5424" and not host:
        sec.fail("format", _LOCAL_5424)
    kwargs["facility"] = sec.str("facility", "auth", choices=tuple(FACILITIES))
    tag = sec.str("tag", "sipwatch") or "sipwatch"
    if not _TAG.fullmatch(tag):
        sec.fail("tag", "must be 1-32 letters, digits, '-', '_' or '.'")
    kwargs["tag"] = tag
    kwargs["hostname"] = sec.str("hostname")
    return kwargs
