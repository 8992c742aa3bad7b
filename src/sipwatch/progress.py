"""Progress display for long runs: a bar over the input bytes, packets and packets/s."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _gzipped(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def input_size(sources: list[str]) -> int | None:
    """Total bytes of the given files and folders; None when unknown (standard input, gzip:
    the bar counts uncompressed bytes)."""
    total = 0
    for src in sources:
        if src == "-":
            return None
        p = Path(src)
        if p.is_dir():
            for root, _dirs, files in os.walk(p):
                for name in files:
                    path = os.path.join(root, name)
                    if _gzipped(path):
                        return None
                    with suppress(OSError):
                        total += os.path.getsize(path)
        elif p.is_file():
            if _gzipped(src):
                return None
            total += p.stat().st_size
    return total or None


class _Reporter:
    """Called by the analysis loop; updates the bar at most ~10 times a second."""

    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress = progress
        self._task = task
        self._start = time.monotonic()
        self._last = 0.0

    def update(self, packets: int, messages: int, bytes_done: int) -> None:
        if self._progress is None or self._task is None:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        rate = packets / max(now - self._start, 1e-6)
        self._progress.update(
            self._task,
            completed=bytes_done + 16 * packets,  # + the per-packet record header
            status=f"{packets:,} packets  {messages:,} SIP  {rate:,.0f} packets/s",
        )


@contextmanager
def progress_for(console: Console, sources: list[str], enabled: bool) -> Iterator[_Reporter]:
    if not enabled:
        yield _Reporter(None, None)
        return
    total = input_size(sources)
    columns = [
        TextColumn("[bold]analysing"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("analyse", total=total, status="")
        yield _Reporter(progress, task)
