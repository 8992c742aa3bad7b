"""Read one capture through libpcap (pcapy-ng): files, gzip-compressed files, standard input.

libpcap reads pcap and pcapng and applies BPF filters. Compressed captures and standard input
are streamed to libpcap through a pipe from a small child process (``/dev/fd/N``): the child
decompresses (or copies) in its own process, so memory stays flat whatever the file size. A
thread would not do: pcapy holds the GIL while libpcap blocks reading the pipe.

When libpcap stops at a damaged packet, the packets of the last batch are re-read one by one
(files only) so nothing before the damage is lost, and a warning says where the damage is.
"""

from __future__ import annotations

import contextlib
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pcapy

from sipwatch.capture.damage import locate_damage
from sipwatch.capture.errors import CaptureError
from sipwatch.capture.linklayer import check_supported
from sipwatch.capture.stats import CaptureStats

BATCH = 1024
PROBE_BYTES = 256 * 1024  # larger than any packet libpcap accepts (snaplen 262144)
_META = struct.Struct("=IIII")

# Runs in the child: stream the capture (gunzipped when it starts with the gzip magic) to
# stdout. Exits quietly when the reader goes away (broken pipe).
_PUMP = r"""
import sys, zlib
src = sys.stdin.buffer if sys.argv[1] == "-" else open(sys.argv[1], "rb")
out = sys.stdout.buffer
try:
    block = src.read1(1 << 16)  # read1: pass on what arrived, do not wait for a full block
    while 0 < len(block) < 2:
        more = src.read1(1 << 16)
        if not more:
            break
        block += more
    if block[:2] != b"\x1f\x8b":
        while block:
            out.write(block)
            block = src.read1(1 << 20)
    else:  # decompress member after member, writing as we go (a cut file loses nothing)
        z = zlib.decompressobj(31)
        pending = b""
        while block:
            data, pending = pending + block, b""
            while data:
                if z.eof:  # another member follows, or trailing garbage (ignored like gzip -d)
                    if len(data) < 2:
                        pending = data
                        break
                    if data[:2] != b"\x1f\x8b":
                        break
                    z = zlib.decompressobj(31)
                out.write(z.decompress(data))
                data = z.unused_data if z.eof else b""
            block = src.read1(1 << 20)
        if not z.eof:
            raise EOFError("compressed file ended before the end-of-stream marker")
    out.flush()
except BrokenPipeError:
    pass
except Exception as exc:
    try:
        out.flush()
    except Exception:
        pass
    sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
    sys.exit(3)
"""

Warn = Callable[[str], None]


def _gunzip_head(path: str, size: int) -> bytes:
    """The first `size` decompressed bytes (fewer when the file is shorter or damaged)."""
    z = zlib.decompressobj(31)
    out = bytearray()
    try:
        with open(path, "rb") as f:
            while len(out) < size and not z.eof:
                block = f.read(1 << 16)
                if not block:
                    break
                out += z.decompress(block, size - len(out))
                if z.unconsumed_tail:  # enough output; the rest is not needed
                    break
    except (OSError, zlib.error):
        pass
    return bytes(out)


def _pcap_message(exc: Exception) -> str:
    msg = str(exc).strip()
    if "unknown file format" in msg or "bad dump file format" in msg:
        return "not a capture file (expected pcap or pcapng, maybe gzipped)"
    return msg


class CaptureFile:
    """One capture opened through libpcap; iterate ``batches()`` for ``next_batch`` results."""

    def __init__(
        self,
        path: str,
        kind: str,
        bpf: str | None = None,
        stats: CaptureStats | None = None,
        on_warning: Warn | None = None,
        batch: int = BATCH,
    ) -> None:
        self.path = path
        self.kind = kind  # 'pcap' | 'gzip' | 'stdin'
        self.name = "standard input" if kind == "stdin" else path
        self.bpf = bpf
        self.stats = stats if stats is not None else CaptureStats()
        self.on_warning = on_warning or self.stats.warn
        self.batch = batch
        self._proc: subprocess.Popen[bytes] | None = None
        self._pcap: Any | None = None
        self.dlt = -1
        self.delivered = 0  # packets handed out (after the filter)

    # ------------------------------------------------------------------ open / close
    def open(self) -> CaptureFile:
        self._pcap = self._open_handle()
        self.stats.files += 1
        return self

    def _open_handle(self) -> Any:
        target = self.path
        if self.kind in ("gzip", "stdin"):
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _PUMP, self.path],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert self._proc.stdout is not None
            target = f"/dev/fd/{self._proc.stdout.fileno()}"
        try:
            handle = pcapy.open_offline(target)
        except pcapy.PcapError as exc:
            self.close()
            msg = _pcap_message(exc)
            if self.kind == "stdin" and "truncated" in msg:
                msg = "empty or not a capture"
            raise CaptureError(f"{self.name}: {msg}") from None
        try:
            check_supported(handle.datalink(), self.name)
        except CaptureError:
            handle.close()
            self.close()
            raise
        self.dlt = handle.datalink()
        if self.bpf:
            try:
                handle.setfilter(self.bpf)
            except Exception as exc:  # pcapy raises PcapError or BPFError
                handle.close()
                self.close()
                raise CaptureError(f"filter {self.bpf!r} does not compile: {exc}") from None
        return handle

    def close(self) -> None:
        if self._pcap is not None:
            with contextlib.suppress(Exception):  # closing after an error: nothing to free
                self._pcap.close()
            self._pcap = None
        proc = self._proc
        if proc is not None:
            self._proc = None
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> CaptureFile:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    def probe(self) -> float | None:
        """Check the capture (format, link type, filter) and return the time of its first
        packet without keeping it open: orders files for the merge. None when it is empty,
        -inf when its first packet is already damaged (read first, to warn).

        A gzip file is probed from its first 256 KiB, decompressed in-process into a
        temporary file, so probing a folder of many compressed files spawns no process.
        """
        if self.kind != "gzip":
            return self._probe(self.path)
        head = _gunzip_head(self.path, PROBE_BYTES)
        with tempfile.NamedTemporaryFile(suffix=".pcap") as tmp:
            tmp.write(head)
            tmp.flush()
            return self._probe(tmp.name)

    def _probe(self, target: str) -> float | None:
        try:
            handle = pcapy.open_offline(target)
        except pcapy.PcapError as exc:
            raise CaptureError(f"{self.name}: {_pcap_message(exc)}") from None
        try:
            check_supported(handle.datalink(), self.name)
            if self.bpf:
                try:
                    handle.setfilter(self.bpf)
                except Exception as exc:  # pcapy raises PcapError or BPFError
                    raise CaptureError(f"filter {self.bpf!r} does not compile: {exc}") from None
            try:
                _, meta = handle.next_batch(1)
            except pcapy.PcapError:
                return float("-inf")
            if not meta:
                return None
            sec, usec, _, _ = _META.unpack_from(meta)
            return sec + usec * 1e-6
        finally:
            handle.close()

    def batches(self) -> Iterator[tuple[bytes, bytes]]:
        """(packet_bytes, meta) from ``next_batch``; ends at EOF or at damage (with a warning)."""
        handle = self._pcap
        assert handle is not None
        n = self.batch
        while True:
            try:
                pkts, meta = handle.next_batch(n)
            except pcapy.PcapError as exc:
                yield from self._damaged(str(exc))
                return
            if not meta:
                child = self._child_status()
                if child:  # the compressed file ended early at a packet boundary
                    self.stats.truncated_files += 1
                    self.on_warning(f"{self.name}: {child}; read {self.delivered} packets")
                return
            self.delivered += len(meta) >> 4
            yield pkts, meta

    def _damaged(self, message: str) -> Iterator[tuple[bytes, bytes]]:
        """libpcap failed inside a batch: recover that batch's good packets, then warn."""
        self.stats.truncated_files += 1
        child = self._child_status()
        lost_note = ""
        if self.kind == "stdin":
            lost_note = f"; up to {self.batch} packets just before it may be lost"
        else:
            yield from self._recover()
        where = f"after {self.delivered} packets"
        if self.kind != "stdin" and not self.bpf:
            spot = locate_damage(self.path, self.kind == "gzip")
            if spot is not None:
                num, offset = spot
                unit = (
                    "byte offset in the uncompressed stream"
                    if self.kind == "gzip"
                    else "byte offset"
                )
                where = f"at packet {num} ({unit} {offset})"
        detail = message + (f"; {child}" if child else "")
        self.on_warning(
            f"{self.name}: capture is damaged or truncated {where}; read the packets before it "
            f"({detail}){lost_note}"
        )

    def _recover(self) -> Iterator[tuple[bytes, bytes]]:
        """Re-open, skip what was delivered, read one packet at a time up to the damage."""
        old_proc = self._proc
        self._proc = None
        if old_proc is not None and old_proc.poll() is None:
            old_proc.kill()
        try:
            handle = self._open_handle()
        except CaptureError:
            return
        try:
            skip = self.delivered
            while skip:
                _, meta = handle.next_batch(min(skip, 4096))
                if not meta:
                    return
                skip -= len(meta) >> 4
            parts: list[bytes] = []
            metas: list[bytes] = []
            size = 0
            while True:
                try:
                    hdr, data = handle.next()
                except pcapy.PcapError:
                    break
                if hdr is None:
                    break
                sec, usec = hdr.getts()
                metas.append(_META.pack(sec, usec, size, len(data)))
                parts.append(data)
                size += len(data)
            if metas:
                self.delivered += len(metas)
                yield b"".join(parts), b"".join(metas)
        except pcapy.PcapError:
            return
        finally:
            handle.close()

    def _child_status(self) -> str:
        """The pump child's complaint (bad gzip data), if it had one."""
        proc = self._proc
        if proc is None or proc.stderr is None:
            return ""
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return ""
        if proc.returncode == 0:
            return ""
        text = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
        return f"decompression failed: {text[-1]}" if text else "decompression failed"
