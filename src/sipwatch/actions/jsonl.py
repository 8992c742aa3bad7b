"""JSON lines: one event per line, to a file or stdout, ready for Elasticsearch or Loki.

Each line is ``Event.to_dict()`` (field names documented in docs/actions.md) with an
``@timestamp`` (ISO 8601 UTC of the event's ``last``) in front. Lines are written and
flushed per batch, so an event reaches the file as soon as the worker wakes, well within
a second. Log rotation is followed: before each batch the path is checked, and when the
file there is no longer the one we hold open (moved away by logrotate, deleted) it is
reopened; ``reopen()`` asks for that explicitly (e.g. from a SIGHUP handler).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import orjson

from sipwatch.actions.base import QueuedSink, parse_common
from sipwatch.actions.config import Section
from sipwatch.detect.events import Event

_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
STDOUT = "-"


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_line(event: Event, timestamp: bool = True) -> bytes:
    """One JSON line (newline included) for an event."""
    d = event.to_dict()
    if timestamp:
        d = {"@timestamp": iso_time(event.last), **d}
    return orjson.dumps(d, default=str, option=_OPTS)  # default: odd values in `data`


class JsonlSink(QueuedSink):
    kind = "jsonl"

    def __init__(
        self,
        path: str | os.PathLike[str] = STDOUT,
        *,
        timestamp: bool = True,
        fsync: bool = False,
        **common,
    ) -> None:
        super().__init__(**common)
        self.path = None if str(path) == STDOUT else Path(path)
        self.timestamp = timestamp
        self.fsync = fsync
        self.reopens = 0
        self._reopen_requested = False
        self._fh: BinaryIO | None = None
        self._ident: tuple[int, int] | None = None
        if self.path is not None:
            self._open()  # fail now (bad directory, permissions), not on the first alert
        self._start()

    def reopen(self) -> None:
        """Reopen the file before the next write (thread-safe; for SIGHUP handlers)."""
        self._reopen_requested = True

    def _open(self) -> None:
        assert self.path is not None
        fh = open(self.path, "ab")  # noqa: SIM115 - held open across batches
        st = os.fstat(fh.fileno())
        self._fh, self._ident = fh, (st.st_dev, st.st_ino)

    def _rotated(self) -> bool:
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._ident

    def _process(self, batch: list[Event]) -> None:
        data = b"".join(event_line(e, self.timestamp) for e in batch)
        if self.path is None:
            out = sys.stdout.buffer
            out.write(data)
            out.flush()
            return
        if self._reopen_requested or self._fh is None or self._rotated():
            self._reopen_requested = False
            self._close_file()
            self._open()
            self.reopens += 1
        fh = self._fh
        assert fh is not None
        fh.write(data)
        fh.flush()
        if self.fsync:
            os.fsync(fh.fileno())

    def _close_file(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()

    def _finish(self) -> None:
        self._close_file()


def parse_config(sec: Section) -> dict[str, object]:
    """Keyword arguments for JsonlSink from ``[actions.jsonl]``."""
    kwargs = parse_common(sec)
    kwargs["path"] = sec.str("path", STDOUT) or STDOUT
    kwargs["timestamp"] = sec.bool("timestamp", True)
    kwargs["fsync"] = sec.bool("fsync", False)
    return kwargs
