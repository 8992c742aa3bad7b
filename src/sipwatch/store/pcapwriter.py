"""PcapWriter: a pipeline Action that writes every Record as a packet to rotating pcap files.

Analysts open the files in Wireshark; sipwatch reads them back (`sipwatch analyze DIR`).
Records carry SIP messages, not packets, so the packets are synthesised:

- classic pcap (microsecond or nanosecond timestamps), link type raw IP (101) or Ethernet
  (with fixed, locally administered MAC addresses); timestamp = record.ts;
- "udp": IPv4/IPv6 + UDP with correct checksums. A payload larger than one UDP datagram can
  carry (65507 bytes over IPv4, 65527 over IPv6) cannot exist on the wire: skipped, counted;
- "tcp" and "tls": PSH|ACK segments with correct checksums and sequence numbers that continue
  per direction (a bounded LRU table of flows); a message too large for one IP packet is split
  over several segments. TLS is written *decrypted*, as plain TCP to the TLS port (5061):
  in Wireshark use Decode As... SIP on that port; sipwatch's reader decodes it as SIP/TCP.

Files are named PREFIX-YYYYmmddTHHMMSS-N.pcap (UTC time of their first packet, N a counter).
When the current file has reached rotate_bytes the next packet starts a new file, and only the
newest `keep` files whose names have that form are kept: other files in the folder are never
touched. Writes are buffered; flush() (also at rotation and close) makes them visible.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from sipwatch.record import Record

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
SNAPLEN = 262144
MIB = 1024 * 1024

_MAX_IP = 65535  # IPv4 total length / IPv6 payload length (no jumbograms)
MAX_UDP4 = _MAX_IP - 20 - 8  # 65507
MAX_UDP6 = _MAX_IP - 8  # 65527
MAX_SEGMENT = _MAX_IP - 20 - 20  # TCP payload per segment, same for IPv4 and IPv6

_PSH_ACK = 0x18
_ETH_SRC = bytes.fromhex("020000000001")
_ETH_DST = bytes.fromhex("020000000002")
_ETH_TYPE = {4: b"\x08\x00", 6: b"\x86\xdd"}

_FILE_HDR = struct.Struct("<IHHiIII")
_PKT_HDR = struct.Struct("<IIII")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_TCP = struct.Struct("!HHIIBBHHH")


class PcapWriterError(Exception):
    """The pcap folder cannot be used (one line)."""


@dataclass(slots=True)
class PcapWriterStats:
    packets: int = 0  # packets written
    bytes: int = 0  # bytes written to files (headers included)
    files: int = 0  # files opened
    rotations: int = 0  # files closed because they reached rotate_bytes
    deleted: int = 0  # old files removed to keep `keep`
    skipped: int = 0  # records not written (sum of the three below)
    skipped_oversize: int = 0  # UDP payload larger than a datagram can be
    skipped_transport: int = 0  # not udp / tcp / tls
    skipped_address: int = 0  # address not an IP literal, or IPv4 with IPv6
    errors: int = 0  # write errors (the file is closed; the next packet opens a new one)


def _pseudo(version: int, src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """The pseudo-header the UDP/TCP checksum covers (RFC 768 / RFC 8200 section 8.1)."""
    if version == 4:
        return src + dst + struct.pack("!xBH", proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def _fold(total: int) -> int:
    """Ones' complement checksum from the big-endian integer of an even-length byte string:
    2**16 = 1 (mod 0xFFFF), so the folded 16-bit sum is the integer mod 0xFFFF."""
    r = total % 0xFFFF
    if r == 0 and total:
        r = 0xFFFF
    return ~r & 0xFFFF


def checksum(data: bytes) -> int:
    """Internet checksum (RFC 1071) of `data`."""
    if len(data) & 1:
        data += b"\0"
    return _fold(int.from_bytes(data, "big"))


@lru_cache(maxsize=4096)
def _addr(text: str) -> tuple[int, bytes] | None:
    """(4 or 6, packed address) of an IP literal; None when it is not one."""
    text = text.split("%", 1)[0]  # fe80::1%eth0: the zone is not on the wire
    try:
        return 4, socket.inet_pton(socket.AF_INET, text)
    except OSError:
        pass
    try:
        return 6, socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        return None


def _pair(src: str, dst: str) -> tuple[int, bytes, bytes] | None:
    a, b = _addr(src), _addr(dst)
    if a is None or b is None:
        return None
    if a[0] != b[0]:  # IPv4 with an IPv4-mapped IPv6 address: write both as IPv4
        a, b = _unmap(a), _unmap(b)
        if a[0] != b[0]:
            return None
    return a[0], a[1], b[1]


def _unmap(a: tuple[int, bytes]) -> tuple[int, bytes]:
    if a[0] == 6 and a[1][:12] == b"\0" * 10 + b"\xff\xff":
        return 4, a[1][12:]
    return a


class PcapWriter:
    """Write Records to rotating pcap files in `directory` (see the module text)."""

    fatal = False  # a full disk must not stop the sensor: the pipeline counts the error

    def __init__(
        self,
        directory: str | Path,
        prefix: str = "sipwatch",
        rotate_bytes: int = 100 * MIB,
        keep: int = 10,
        linktype: int = LINKTYPE_RAW,
        nanosecond: bool = False,
        max_flows: int = 65536,
        buffer_bytes: int = 256 * 1024,
    ) -> None:
        if linktype not in (LINKTYPE_RAW, LINKTYPE_ETHERNET):
            raise ValueError(f"link type {linktype} not supported (use 101 raw IP or 1 Ethernet)")
        if rotate_bytes < 1 or keep < 1 or max_flows < 2:
            raise ValueError("rotate_bytes and keep must be at least 1, max_flows at least 2")
        self.directory = Path(directory)
        # the prefix is often the sensor name: keep file names plain whatever it holds
        self.prefix = re.sub(r"[^A-Za-z0-9._-]", "_", prefix).lstrip(".") or "sipwatch"
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self.linktype = linktype
        self.nanosecond = nanosecond
        self.max_flows = max_flows
        self.buffer_bytes = buffer_bytes
        self.stats = PcapWriterStats()
        self.path: Path | None = None  # the file being written
        self._file: BinaryIO | None = None
        self._size = 0
        self._seq = 0  # N in the file names
        self._ip_id = 0
        self._flows: OrderedDict[tuple[str, int, str, int], int] = OrderedDict()
        self._isn_key = os.urandom(16)
        self._lock = threading.Lock()  # handle() runs in the pipeline thread, flush() anywhere
        self._ours = re.compile(re.escape(self.prefix) + r"-(\d{8}T\d{6})-(\d+)\.pcap")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PcapWriterError(
                f"pcap folder {self.directory}: cannot create: {exc.strerror or exc}"
            ) from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise PcapWriterError(f"pcap folder {self.directory}: not writable")

    # ------------------------------------------------------------------ Action
    def handle(self, batch: list[Record]) -> None:
        with self._lock:
            for rec in batch:
                self._write_record(rec)

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.flush()
                except OSError:
                    self._fail()
                    raise

    def close(self) -> None:
        with self._lock:
            self._close_file()

    @property
    def counters(self) -> dict[str, int]:
        return asdict(self.stats)

    # ------------------------------------------------------------------ packets
    def _write_record(self, rec: Record) -> None:
        stats = self.stats
        transport = rec.transport
        if transport not in ("udp", "tcp", "tls"):
            stats.skipped += 1
            stats.skipped_transport += 1
            return
        pair = _pair(rec.src, rec.dst)
        if pair is None:
            stats.skipped += 1
            stats.skipped_address += 1
            return
        version, src, dst = pair
        raw = rec.raw
        if transport == "udp":
            if len(raw) > (MAX_UDP4 if version == 4 else MAX_UDP6):
                stats.skipped += 1
                stats.skipped_oversize += 1
                return
            self._packet(rec.ts, self._udp(version, src, dst, rec.sport, rec.dport, raw))
            return
        for packet in self._tcp(version, src, dst, rec, raw):
            self._packet(rec.ts, packet)

    def _udp(
        self, version: int, src: bytes, dst: bytes, sport: int, dport: int, data: bytes
    ) -> bytes:
        length = 8 + len(data)
        pseudo = _pseudo(version, src, dst, 17, length)
        csum = checksum(pseudo + _UDP.pack(sport, dport, length, 0) + data) or 0xFFFF
        return self._ip(version, src, dst, 17, _UDP.pack(sport, dport, length, csum) + data)

    def _tcp(self, version: int, src: bytes, dst: bytes, rec: Record, data: bytes) -> list[bytes]:
        key = (rec.src, rec.sport, rec.dst, rec.dport)
        rkey = (rec.dst, rec.dport, rec.src, rec.sport)
        seq = self._flow(key, rec.ts)
        ack = self._flow(rkey, rec.ts)  # what the peer has sent so far
        out = []
        chunks = [data[i : i + MAX_SEGMENT] for i in range(0, len(data), MAX_SEGMENT)] or [b""]
        for chunk in chunks:
            header = _TCP.pack(rec.sport, rec.dport, seq, ack, 5 << 4, _PSH_ACK, 65535, 0, 0)
            csum = checksum(_pseudo(version, src, dst, 6, 20 + len(chunk)) + header + chunk)
            header = header[:16] + struct.pack("!H", csum) + header[18:]
            out.append(self._ip(version, src, dst, 6, header + chunk))
            seq = (seq + len(chunk)) & 0xFFFFFFFF
        self._flows[key] = seq
        return out

    def _flow(self, key: tuple[str, int, str, int], ts: float) -> int:
        """Next sequence number of one direction; new flows start at a clock-driven ISN
        (RFC 6528 style) so a flow forgotten by the LRU and seen again jumps forward."""
        flows = self._flows
        seq = flows.get(key)
        if seq is None:
            h = hashlib.blake2b(repr(key).encode(), digest_size=4, key=self._isn_key).digest()
            seq = (int.from_bytes(h, "big") + int(ts * 250_000)) & 0xFFFFFFFF
            flows[key] = seq
            while len(flows) > self.max_flows:
                flows.popitem(last=False)
        else:
            flows.move_to_end(key)
        return seq

    def _ip(self, version: int, src: bytes, dst: bytes, proto: int, l4: bytes) -> bytes:
        if version == 4:
            self._ip_id = (self._ip_id + 1) & 0xFFFF
            frag = 0x4000 if proto == 6 else 0  # DF on TCP, as stacks do
            hdr = _IP4.pack(0x45, 0, 20 + len(l4), self._ip_id, frag, 64, proto, 0, src, dst)
            hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
        else:
            hdr = _IP6.pack(0x60000000, len(l4), proto, 64, src, dst)
        if self.linktype == LINKTYPE_ETHERNET:
            return _ETH_DST + _ETH_SRC + _ETH_TYPE[version] + hdr + l4
        return hdr + l4

    # ------------------------------------------------------------------ files
    def _packet(self, ts: float, packet: bytes) -> None:
        if self._file is not None and self._size >= self.rotate_bytes:
            self._close_file()
            self.stats.rotations += 1
        if self._file is None:
            self._open_file(ts)
        scale = 1_000_000_000 if self.nanosecond else 1_000_000
        sec = int(ts)
        frac = round((ts - sec) * scale)
        if frac >= scale:
            sec, frac = sec + 1, frac - scale
        n = len(packet)
        blob = _PKT_HDR.pack(sec & 0xFFFFFFFF, frac, n, n) + packet
        try:
            self._file.write(blob)  # type: ignore[union-attr]
        except OSError:
            self._fail()
            raise
        self._size += len(blob)
        self.stats.packets += 1
        self.stats.bytes += len(blob)

    def _open_file(self, ts: float) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(max(ts, 0)))
        magic = 0xA1B23C4D if self.nanosecond else 0xA1B2C3D4
        header = _FILE_HDR.pack(magic, 2, 4, 0, 0, SNAPLEN, self.linktype)
        while True:
            self._seq += 1
            path = self.directory / f"{self.prefix}-{stamp}-{self._seq}.pcap"
            try:
                f = open(path, "xb", buffering=self.buffer_bytes)  # noqa: SIM115 (kept open)
            except FileExistsError:
                continue  # a file of an earlier run with the same second and number
            except OSError as exc:
                self.stats.errors += 1
                raise PcapWriterError(f"{path}: cannot create: {exc.strerror or exc}") from None
            break
        try:
            f.write(header)
        except OSError:
            f.close()
            self.stats.errors += 1
            raise
        self._file, self.path, self._size = f, path, len(header)
        self.stats.files += 1
        self.stats.bytes += len(header)
        self._prune()

    def _prune(self) -> None:
        """Delete our oldest files beyond `keep` (the open one counts)."""
        found = []
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            m = self._ours.fullmatch(name)
            if m:
                found.append((m.group(1), int(m.group(2)), name))
        found.sort()
        current = self.path.name if self.path is not None else ""
        excess = len(found) - self.keep
        for _, _, name in found:
            if excess <= 0:
                break
            if name == current:
                continue
            try:
                os.unlink(self.directory / name)
                self.stats.deleted += 1
            except FileNotFoundError:
                pass
            except OSError:
                continue
            excess -= 1

    def _close_file(self) -> None:
        f, self._file = self._file, None
        if f is None:
            return
        try:
            f.close()  # flushes
        except OSError:
            self.stats.errors += 1
            raise

    def _fail(self) -> None:
        """A write failed (disk full ...): count it and start a new file with the next packet."""
        self.stats.errors += 1
        f, self._file = self._file, None
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()
