"""Live capture: an interface (or "any") through libpcap, decoded exactly like capture files.

A reader thread takes packets from libpcap in batches (``next_batch``; pcapy releases the GIL
while libpcap waits) and decodes them with the same PacketDecoder as ``sipwatch analyze``
(link layer, VLANs, IP defragmentation, TCP reassembly, VXLAN/GRE decapsulation). The
Records go to ``deliver(list)`` on that thread; the sensor hands them to its event loop
through a bounded, thread-safe queue (sensor_sources.py). libpcap's kernel counters (packets
received, dropped by the kernel, dropped by the interface) are read once a second.

Optionally the raw frames are also written to rotating pcap files (``pcap_dir``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pcapy

from sipwatch.capture.decode import PacketDecoder, RecordFactory
from sipwatch.capture.errors import CaptureError
from sipwatch.capture.linklayer import check_supported
from sipwatch.capture.stats import CaptureStats
from sipwatch.record import Record

log = logging.getLogger("sipwatch.capture")

BATCH = 256
TIMEOUT_MS = 100  # how long libpcap waits for more packets: bounds the stop latency
_META = struct.Struct("=IIII")
_PCAP_HEADER = struct.Struct("=IHHiIII")
_PCAP_RECORD = struct.Struct("=IIII")


class FrameWriter:
    """Raw frames to rotating pcap files: NAME-YYYYmmdd-HHMMSS-N.pcap, newest ``keep`` kept."""

    def __init__(self, folder: str | Path, dlt: int, snaplen: int, prefix: str = "capture",
                 rotate_bytes: int = 100 * 1024 * 1024, keep: int = 10) -> None:  # fmt: skip
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dlt, self.snaplen, self.prefix = dlt, snaplen, prefix
        self.rotate_bytes, self.keep = rotate_bytes, keep
        self._f = None
        self._size = 0
        self._seq = 0
        self.files = 0
        self.errors = 0

    def _open(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        self._seq += 1
        path = self.folder / f"{self.prefix}-{stamp}-{self._seq}.pcap"
        self._f = open(path, "wb")  # noqa: SIM115 (closed in rotate/close)
        self._f.write(_PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, self.snaplen, self.dlt))
        self._size = _PCAP_HEADER.size
        self.files += 1
        old = sorted(self.folder.glob(f"{self.prefix}-*.pcap"), key=os.path.getmtime)
        for stale in old[: max(0, len(old) - self.keep)]:
            stale.unlink(missing_ok=True)

    def write(self, pkts: bytes, meta: bytes) -> None:
        try:
            if self._f is None:
                self._open()
            f = self._f
            assert f is not None
            parts = []
            for sec, usec, off, caplen in _META.iter_unpack(meta):
                parts.append(_PCAP_RECORD.pack(sec, usec, caplen, caplen))
                parts.append(pkts[off : off + caplen])
            data = b"".join(parts)
            f.write(data)
            self._size += len(data)
            if self._size >= self.rotate_bytes:
                self.close()
        except OSError as exc:  # a full disk must not stop the capture: counted
            self.errors += 1
            if self.errors == 1:
                log.warning("writing the capture to %s failed: %s", self.folder, exc)
            self.close()

    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                self.errors += 1
            self._f = None


class LiveCapture:
    """One interface captured on a thread; ``deliver(records)`` gets each batch's Records."""

    def __init__(
        self,
        interface: str,
        bpf: str = "",
        *,
        promiscuous: bool = False,
        snaplen: int = 262144,
        buffer_bytes: int = 32 * 1024 * 1024,
        stats: CaptureStats | None = None,
        make_record: RecordFactory = Record.from_bytes,
        writer_args: dict | None = None,
    ) -> None:
        self.interface = interface
        self.bpf = bpf
        self.promiscuous = promiscuous
        self.snaplen = snaplen
        self.buffer_bytes = buffer_bytes
        self.stats = stats if stats is not None else CaptureStats()
        self.make_record = make_record
        self.writer_args = writer_args
        self.writer: FrameWriter | None = None
        self.kernel_received = 0  # libpcap's counters (pcap_stats), read once a second
        self.kernel_dropped = 0
        self.interface_dropped = 0
        self.errors = 0
        self._handle = None
        self._decoder: PacketDecoder | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def open(self) -> LiveCapture:
        """Open and activate the interface, set the filter (CaptureError: one line)."""
        name = self.interface
        try:
            h = pcapy.create(name)
            h.set_snaplen(self.snaplen)
            h.set_promisc(1 if self.promiscuous else 0)
            h.set_timeout(TIMEOUT_MS)
            h.set_buffer_size(self.buffer_bytes)
            h.activate()
        except pcapy.PcapError as exc:
            raise CaptureError(f"cannot capture on {name}: {str(exc).strip()}") from None
        try:
            check_supported(h.datalink(), name)
            if self.bpf:
                try:
                    h.setfilter(self.bpf)
                except Exception as exc:  # PcapError or BPFError
                    raise CaptureError(f"filter {self.bpf!r} does not compile: {exc}") from None
        except CaptureError:
            h.close()
            raise
        self._handle = h
        self._decoder = PacketDecoder(h.datalink(), self.stats, self.make_record)
        if self.writer_args is not None:
            self.writer = FrameWriter(dlt=h.datalink(), snaplen=self.snaplen, **self.writer_args)
        self.stats.files += 1
        return self

    def start(self, deliver: Callable[[list], object]) -> None:
        assert self._handle is not None, "open() first"
        self._thread = threading.Thread(
            target=self._run, args=(deliver,), name=f"sipwatch-capture-{self.interface}",
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    def _run(self, deliver: Callable[[list], object]) -> None:
        h, decoder = self._handle, self._decoder
        assert h is not None and decoder is not None
        next_stats = 0.0
        while not self._stop.is_set():
            try:
                pkts, meta = h.next_batch(BATCH)
            except pcapy.PcapError as exc:  # the interface went away: stop, say why
                self.errors += 1
                log.error("capture on %s stopped: %s", self.interface, exc)
                break
            if meta:
                if self.writer is not None:
                    self.writer.write(pkts, meta)
                try:
                    records = decoder.decode_batch(pkts, meta)
                except Exception:  # a decoder bug must not end the capture: counted
                    self.stats.internal_errors += 1
                    records = []
                if records:
                    deliver(records)
            now = time.monotonic()
            if now >= next_stats:
                next_stats = now + 1.0
                self._read_kernel_stats()
        self._read_kernel_stats()
        try:
            rest = decoder.flush()
        except Exception:
            rest = []
        if rest:
            deliver(rest)

    def _read_kernel_stats(self) -> None:
        h = self._handle
        if h is None:
            return
        try:
            recv, drop, ifdrop = h.stats()
        except Exception:
            return
        self.kernel_received, self.kernel_dropped, self.interface_dropped = recv, drop, ifdrop

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (within about TIMEOUT_MS), deliver what is left, close."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.writer is not None:
            self.writer.close()
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.close()
            self._handle = None

    def counters(self) -> dict[str, int]:
        s = self.stats
        out = {
            "capture_packets": s.packets, "capture_bytes": s.bytes,
            "capture_sip_messages": s.sip_messages, "capture_decode_errors": s.decode_errors,
            "capture_kernel_received": self.kernel_received,
            "capture_kernel_dropped": self.kernel_dropped,
            "capture_interface_dropped": self.interface_dropped,
        }  # fmt: skip
        if s.internal_errors:
            out["capture_internal_errors"] = s.internal_errors
        if s.tcp_gaps:
            out["capture_tcp_gaps"] = s.tcp_gaps
        if s.fragments_dropped:
            out["capture_fragments_dropped"] = s.fragments_dropped
        if self.writer is not None:
            out["capture_pcap_files"] = self.writer.files
            if self.writer.errors:
                out["capture_pcap_errors"] = self.writer.errors
        return out
