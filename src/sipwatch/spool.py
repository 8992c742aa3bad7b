"""The sensor's disk spool of sealed uplink batches: numbered, durable, bounded.

Each batch is one file `<seq>.batch` (seq zero-padded, so names sort in order), written to a
temporary name, fsynced and renamed: a crash leaves whole batches or none. `state.json` keeps
the next sequence number and the records dropped but not yet reported, so both survive
restarts. When the spool holds max_bytes, new batches are dropped (what is kept stays in
order, with no gaps a retry could fill) and their records are counted and reported in the next
batch that fits, and in the heartbeat.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

from sipwatch.central.batchcodec import encode

KEEP_REJECTED = 100


class SpoolError(Exception):
    """The spool folder cannot be used (permissions, not a folder): one clear message."""


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class Spool:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.rejected = folder / "rejected"
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self.rejected.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob("*.tmp"):  # a crash mid-write: that batch was never sealed
                stale.unlink()
        except OSError as exc:
            raise SpoolError(
                f"cannot use the spool folder {folder}: {exc.strerror or exc}"
            ) from None
        state = self._read_state()
        files = self._files()
        newest = int(files[-1].stem) if files else 0
        self.next_seq = max(int(state.get("next_seq", 1)), newest + 1)
        self.unreported_drops = int(state.get("unreported_drops", 0))
        self.dropped_total = int(state.get("dropped_total", 0))
        self.rejected_total = int(state.get("rejected_total", 0))
        self.bytes = sum(f.stat().st_size for f in files)
        self.count = len(files)

    # --- state ------------------------------------------------------------------------------
    def _read_state(self) -> dict:
        try:
            data = json.loads((self.folder / "state.json").read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save_state(self) -> None:
        state = {
            "next_seq": self.next_seq, "unreported_drops": self.unreported_drops,
            "dropped_total": self.dropped_total, "rejected_total": self.rejected_total,
        }  # fmt: skip
        _write_atomic(self.folder / "state.json", json.dumps(state).encode())

    def _files(self) -> list[Path]:
        return sorted(p for p in self.folder.glob("*.batch") if p.stem.isdigit())

    # --- producer ---------------------------------------------------------------------------
    def seal(self, records: list[tuple], events: list[tuple]) -> int | None:
        """Write one batch; its seq, or None when the spool is full (the rows are counted)."""
        if not records and not events:
            return None
        with self._lock:
            seq = self.next_seq
            data = encode(seq, records, events, self.unreported_drops)
            if self.bytes + len(data) > self.max_bytes:
                lost = len(records) + len(events)
                self.unreported_drops += lost
                self.dropped_total += lost
                self._save_state()
                return None
            _write_atomic(self.folder / f"{seq:016d}.batch", data)
            self.next_seq = seq + 1
            self.unreported_drops = 0
            self.bytes += len(data)
            self.count += 1
            self._save_state()
            return seq

    # --- consumer ---------------------------------------------------------------------------
    def oldest(self) -> tuple[int, bytes] | None:
        files = self._files()
        if not files:
            return None
        return int(files[0].stem), files[0].read_bytes()

    def _take(self, seq: int) -> Path | None:
        path = self.folder / f"{seq:016d}.batch"
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        self.bytes -= size
        self.count -= 1
        return path

    def done(self, seq: int) -> None:
        """The central acknowledged the batch: forget it."""
        with self._lock:
            path = self._take(seq)
            if path is not None:
                path.unlink()

    def reject(self, seq: int) -> None:
        """The central refused the batch for good (4xx): keep it aside for a human, count it.

        Only the newest KEEP_REJECTED are kept, so a misconfigured sensor cannot fill the disk.
        """
        with self._lock:
            path = self._take(seq)
            if path is not None:
                os.replace(path, self.rejected / path.name)
                self.rejected_total += 1
                self._save_state()
                kept = sorted(self.rejected.glob("*.batch"))
                for old in kept[: max(0, len(kept) - KEEP_REJECTED)]:
                    old.unlink()

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._save_state()
