"""Which files to read: expand folders, recognise captures by magic number, not by name."""

from __future__ import annotations

import gzip
import os
import zlib

from sipwatch.capture.errors import CaptureError

STDIN = "-"
PCAP_MAGICS = frozenset(
    {
        b"\xd4\xc3\xb2\xa1",  # microseconds, little-endian
        b"\xa1\xb2\xc3\xd4",
        b"\x4d\x3c\xb2\xa1",  # nanoseconds
        b"\xa1\xb2\x3c\x4d",
        b"\x34\xcd\xb2\xa1",  # modified pcap
        b"\xa1\xb2\xcd\x34",
    }
)
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"


def is_capture_magic(head: bytes) -> bool:
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


def sniff(path: str) -> str | None:
    """'pcap', 'gzip' (a gzip-compressed capture) or None (not a capture)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if is_capture_magic(head):
        return "pcap"
    if head[:2] == GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as g:
                inner = g.read(4)
        except (OSError, EOFError, zlib.error):
            return None
        return "gzip" if is_capture_magic(inner) else None
    return None


def expand(sources: list[str]) -> list[tuple[str, str]]:
    """[(path, kind)] for the named files and every capture under the named folders.

    kind is 'pcap', 'gzip' or 'stdin'. A named file that is not a capture is an error; files
    in folders that are not captures are skipped (folders hold READMEs, logs, ...).
    """
    out: list[tuple[str, str]] = []
    for src in sources:
        if src == STDIN:
            out.append((src, "stdin"))
            continue
        if os.path.isdir(src):
            found = _walk(src)
            if not found:
                raise CaptureError(f"{src}: no capture files (pcap or pcapng) in this folder")
            out.extend(found)
            continue
        if not os.path.exists(src):
            raise CaptureError(f"{src}: no such file or folder")
        try:
            kind = sniff(src)
        except OSError as exc:
            raise CaptureError(f"{src}: cannot read: {exc.strerror or exc}") from None
        if kind is None:
            raise CaptureError(
                f"{src}: not a capture file (expected pcap or pcapng, maybe gzipped)"
            )
        out.append((src, kind))
    return out


def _walk(folder: str) -> list[tuple[str, str]]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                kind = sniff(path)
            except OSError:
                continue
            if kind is not None:
                found.append((path, kind))
    return found
