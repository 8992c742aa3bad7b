"""IPv4 and IPv6 headers: addresses as text, the L4 protocol and where its bytes are."""

from __future__ import annotations

import struct
from socket import AF_INET6, inet_ntoa, inet_ntop

_V4 = struct.Struct("!BxHHHxB2x4s4s")  # vihl, total length, id, flags+offset, proto, src, dst
_V6 = struct.Struct("!4xHBx16s16s")  # payload length, next header, src, dst
_FRAG6 = struct.Struct("!BxHI")  # next header, offset+M, identification

# IPv6 extension headers we walk over (hop-by-hop, routing, destination options, mobility,
# HIP, shim6); AH has its own length unit; 44 (fragment) is handled by the caller.
_EXT6 = frozenset({0, 43, 60, 135, 139, 140})
_AH = 51
FRAGMENT6 = 44
_MAX_EXT = 16  # a chain longer than this is garbage or an attack


class ShortPacket(ValueError):
    """A header is cut short or inconsistent (counted as a decode error)."""


class AddressText:
    """Text form of addresses, cached: the same few thousand addresses recur in every capture."""

    __slots__ = ("_cache", "_max")

    def __init__(self, max_entries: int = 65536) -> None:
        self._cache: dict[bytes, str] = {}
        self._max = max_entries

    def __call__(self, raw: bytes) -> str:
        s = self._cache.get(raw)
        if s is None:
            s = inet_ntoa(raw) if len(raw) == 4 else inet_ntop(AF_INET6, raw)
            if len(self._cache) >= self._max:
                self._cache.clear()  # cheap bound; refilled by the hot addresses at once
            self._cache[raw] = s
        return s


def ipv4(buf: bytes, p: int, end: int) -> tuple[bytes, bytes, int, int, int, int, int, bool]:
    """Parse an IPv4 header at p.

    Returns (src, dst, proto, l4_start, l4_end, ident, fragment_offset_bytes, more_fragments).
    """
    if end - p < 20:
        raise ShortPacket("short IPv4 header")
    vihl, total, ident, frag, proto, src, dst = _V4.unpack_from(buf, p)
    hl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or hl < 20 or total < hl:
        raise ShortPacket("bad IPv4 header")
    l4_end = p + total
    if l4_end > end:  # snapped capture: keep what we have
        l4_end = end
    if p + hl > l4_end:
        raise ShortPacket("short IPv4 options")
    return src, dst, proto, p + hl, l4_end, ident, (frag & 0x1FFF) << 3, bool(frag & 0x2000)


def ipv6(buf: bytes, p: int, end: int) -> tuple[bytes, bytes, int, int, int]:
    """Parse the fixed IPv6 header: (src, dst, next_header, payload_start, payload_end)."""
    if end - p < 40:
        raise ShortPacket("short IPv6 header")
    plen, nh, src, dst = _V6.unpack_from(buf, p)
    if buf[p] >> 4 != 6:
        raise ShortPacket("bad IPv6 version")
    l4_end = p + 40 + plen
    if plen == 0 or l4_end > end:  # jumbogram or snapped capture: take what is there
        l4_end = end
    return src, dst, nh, p + 40, l4_end


def skip_ipv6_ext(buf: bytes, nh: int, p: int, end: int) -> tuple[int, int]:
    """Walk IPv6 extension headers up to the upper layer or a fragment header (44)."""
    for _ in range(_MAX_EXT):
        if nh in _EXT6:
            if p + 2 > end:
                raise ShortPacket("short IPv6 extension header")
            nh, p = buf[p], p + (buf[p + 1] + 1) * 8
        elif nh == _AH:
            if p + 2 > end:
                raise ShortPacket("short AH header")
            nh, p = buf[p], p + (buf[p + 1] + 2) * 4
        else:
            if p > end:
                raise ShortPacket("IPv6 extension headers overrun the packet")
            return nh, p
    raise ShortPacket("too many IPv6 extension headers")


def ipv6_fragment(buf: bytes, p: int, end: int) -> tuple[int, int, bool, int]:
    """Parse a fragment header: (next_header, offset_bytes, more_fragments, ident)."""
    if p + 8 > end:
        raise ShortPacket("short IPv6 fragment header")
    nh, off, ident = _FRAG6.unpack_from(buf, p)
    return nh, off & 0xFFF8, bool(off & 1), ident
