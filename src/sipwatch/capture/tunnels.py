"""Tunnel headers: VXLAN (RFC 7348) and GRE (RFC 2784/2890, ERSPAN), parsed, never trusted.

The central-sensor deployment carries each site's port-5060 traffic to one sensor through a
tunnel; a capture on the underlay shows the tunnel. Decapsulating gives the inner SIP with the
addresses the attacker used, and the tunnel tells the sites apart.
"""

from __future__ import annotations

import struct

from sipwatch.capture.linklayer import ETH_TEB

VXLAN_PORT = 4789
_VXLAN = struct.Struct("!B3xI")
_GRE = struct.Struct("!HH")
_U32 = struct.Struct("!I")

_GRE_C, _GRE_R, _GRE_K, _GRE_S = 0x8000, 0x4000, 0x2000, 0x1000
_ERSPAN_II = 0x88BE
_ERSPAN_III = 0x22EB


def vxlan(buf: bytes, p: int, end: int) -> tuple[int, int] | None:
    """(VNI, start of the inner Ethernet frame), or None when this is not VXLAN."""
    if end - p < 8 + 14:
        return None
    flags, vni = _VXLAN.unpack_from(buf, p)
    if not flags & 0x08:  # the I flag: a valid VNI is present
        return None
    return vni >> 8, p + 8


def gre(buf: bytes, p: int, end: int) -> tuple[int, int | None, int] | None:
    """(payload ethertype, key or None, payload start), or None for what we cannot open.

    Ethertype ETH_TEB means an Ethernet frame follows (bridging, ERSPAN).
    """
    if end - p < 4:
        return None
    flags, proto = _GRE.unpack_from(buf, p)
    if flags & 0x0007 or flags & _GRE_R:  # version 1 (PPTP) or source routing: not ours
        return None
    q = p + 4
    if flags & _GRE_C:
        q += 4
    key = None
    if flags & _GRE_K:
        if q + 4 > end:
            return None
        (key,) = _U32.unpack_from(buf, q)
        q += 4
    if flags & _GRE_S:
        q += 4
    if proto == _ERSPAN_II:
        if flags & _GRE_S:  # type II has an 8-byte header; type I (no sequence) has none
            q += 8
        proto = ETH_TEB
    elif proto == _ERSPAN_III:
        if q + 12 > end:
            return None
        q += 20 if buf[q + 11] & 1 else 12  # optional platform-specific sub-header
        proto = ETH_TEB
    if q > end:
        return None
    return proto, key, q
