"""Find where a damaged pcap/pcapng file stops being readable (for the user's warning).

libpcap says *that* a file is truncated, not *where*. Walking the record headers ourselves
gives the packet number and byte offset. Used only after an error, so speed does not matter.
"""

from __future__ import annotations

import gzip
import struct
from typing import BinaryIO

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<",
    b"\x4d\x3c\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",
    b"\xa1\xb2\x3c\x4d": ">",
    b"\x34\xcd\xb2\xa1": "<",  # Kuznetzov's modified pcap (24-byte record headers)
    b"\xa1\xb2\xcd\x34": ">",
}
_PCAPNG = b"\x0a\x0d\x0d\x0a"
_PACKET_BLOCKS = (2, 3, 6)  # obsolete packet, simple packet, enhanced packet


def locate_damage(path: str, compressed: bool) -> tuple[int, int] | None:
    """(1-based number of the first unreadable packet, its byte offset), or None."""
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as f:
            head = f.read(4)
            if head in _PCAP_MAGICS:
                modified = head in (b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34")
                return _walk_pcap(f, _PCAP_MAGICS[head], modified)
            if head == _PCAPNG:
                return _walk_pcapng(f)
    except (OSError, EOFError, struct.error):
        return None
    return None


def _skip(f: BinaryIO, n: int) -> bool:
    data = f.read(n)
    return len(data) == n


def _walk_pcap(f: BinaryIO, e: str, modified: bool) -> tuple[int, int] | None:
    if not _skip(f, 20):
        return (1, 0)
    hdr_len = 24 if modified else 16
    rec = struct.Struct(e + "IIII")
    pos, n = 24, 0
    while True:
        hdr = f.read(hdr_len)
        if not hdr:
            return None  # clean end
        n += 1
        if len(hdr) < hdr_len:
            return (n, pos)
        _, _, caplen, _ = rec.unpack_from(hdr)
        if caplen > 0x4000000 or not _skip(f, caplen):
            return (n, pos)
        pos += hdr_len + caplen


def _walk_pcapng(f: BinaryIO) -> tuple[int, int] | None:
    # the section header's byte-order magic decides the endianness of every block
    rest = f.read(8)
    if len(rest) < 8:
        return (1, 0)
    e = "<" if rest[4:8] == b"\x4d\x3c\x2b\x1a" else ">"
    (blen,) = struct.unpack(e + "I", rest[:4])
    if blen < 28 or not _skip(f, blen - 12):
        return (1, 0)
    pos, n = blen, 0
    while True:
        hdr = f.read(8)
        if not hdr:
            return None
        btype, blen = struct.unpack(e + "II", hdr) if len(hdr) == 8 else (0, 0)
        is_packet = btype in _PACKET_BLOCKS
        if len(hdr) < 8 or blen < 12 or blen % 4 or not _skip(f, blen - 8):
            return (n + 1, pos)
        if is_packet:
            n += 1
        pos += blen
