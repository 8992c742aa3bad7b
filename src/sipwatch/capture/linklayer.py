"""Link layers: find the network-layer packet inside a captured frame.

Each decoder returns ``(ethertype, offset, vlan)``: what follows at `offset` (an Ethernet type,
0x0800 IPv4 / 0x86DD IPv6 / anything else = not IP) and the VLAN ids seen ("100", "100.200").
Values are DLT numbers as libpcap's ``datalink()`` reports them.
"""

from __future__ import annotations

import struct

from sipwatch.capture.errors import CaptureError

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_TEB = 0x6558  # transparent Ethernet bridging (GRE)
NOT_IP = -1

DLT_NULL = 0
DLT_EN10MB = 1
DLT_RAW = 12  # Linux/most BSDs
DLT_RAW_OPENBSD = 14
DLT_LINKTYPE_RAW = 101  # the file's LINKTYPE_RAW when libpcap does not map it
DLT_LOOP = 108
DLT_LINUX_SLL = 113
DLT_IPV4 = 228
DLT_IPV6 = 229
DLT_LINUX_SLL2 = 276

SUPPORTED = frozenset(
    {
        DLT_NULL,
        DLT_EN10MB,
        DLT_RAW,
        DLT_RAW_OPENBSD,
        DLT_LINKTYPE_RAW,
        DLT_LOOP,
        DLT_LINUX_SLL,
        DLT_IPV4,
        DLT_IPV6,
        DLT_LINUX_SLL2,
    }
)

# names for the error message when a link type is not supported
LINKTYPE_NAMES = {
    0: "BSD loopback",
    1: "Ethernet",
    6: "IEEE 802.5 Token Ring",
    7: "ARCNET",
    8: "SLIP",
    9: "PPP",
    10: "FDDI",
    12: "raw IP",
    14: "raw IP",
    50: "PPP in HDLC framing",
    51: "PPPoE",
    101: "raw IP",
    104: "Cisco HDLC",
    105: "IEEE 802.11",
    107: "Frame Relay",
    108: "OpenBSD loopback",
    113: "Linux cooked capture v1",
    117: "OpenBSD pflog",
    119: "Prism 802.11 header",
    127: "IEEE 802.11 radiotap",
    129: "ARCNET (Linux)",
    138: "Apple IP over IEEE 1394",
    139: "MTP2 with pseudo-header",
    140: "MTP2",
    141: "MTP3",
    142: "SCCP",
    143: "DOCSIS",
    147: "user-defined (147)",
    163: "AVS 802.11 header",
    187: "Bluetooth HCI H4",
    189: "Linux USB",
    192: "PPI",
    195: "IEEE 802.15.4",
    201: "Bluetooth HCI H4 with pseudo-header",
    220: "Linux USB (memory-mapped)",
    228: "raw IPv4",
    229: "raw IPv6",
    239: "Linux netlink (NFLOG)",
    249: "Linux netlink",
    253: "Linux netlink",
    276: "Linux cooked capture v2",
}


def linktype_name(dlt: int) -> str:
    return LINKTYPE_NAMES.get(dlt, "unknown")


def check_supported(dlt: int, where: str) -> None:
    if dlt not in SUPPORTED:
        raise CaptureError(
            f"{where}: link type {dlt} ({linktype_name(dlt)}) is not supported "
            "(supported: Ethernet, Linux cooked v1/v2, raw IP, BSD/OpenBSD loopback)"
        )


_H = struct.Struct("!H")
_HH = struct.Struct("!HH")
_LE_I = struct.Struct("<I")
_BE_I = struct.Struct("!I")
_VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100, 0x9200, 0x9300})
_MAX_TAGS = 4  # more stacked tags than this is an attack or garbage


def ethertype_chain(buf: bytes, et: int, p: int, end: int) -> tuple[int, int, str]:
    """Follow VLAN tags, LLC/SNAP, MPLS and PPPoE to the network-layer type."""
    vlans: list[str] = []
    for _ in range(_MAX_TAGS + 2):
        if et in _VLAN_TPIDS:
            if len(vlans) >= _MAX_TAGS or p + 4 > end:
                return NOT_IP, p, ".".join(vlans)
            tci, et = _HH.unpack_from(buf, p)
            vlans.append(str(tci & 0x0FFF))
            p += 4
        elif et < 0x0600:  # 802.3 length field: only LLC/SNAP can carry IP
            if buf[p : p + 3] != b"\xaa\xaa\x03" or p + 8 > end:
                return NOT_IP, p, ".".join(vlans)
            (et,) = _H.unpack_from(buf, p + 6)
            p += 8
        elif et == 0x8847 or et == 0x8848:  # MPLS: pop labels, guess IP by version nibble
            for _ in range(8):
                if p + 4 > end:
                    return NOT_IP, p, ".".join(vlans)
                bottom = buf[p + 2] & 1
                p += 4
                if bottom:
                    break
            return _by_version(buf, p, end), p, ".".join(vlans)
        elif et == 0x8864:  # PPPoE session: 6 bytes header, 2 bytes PPP protocol
            if p + 8 > end:
                return NOT_IP, p, ".".join(vlans)
            (ppp,) = _H.unpack_from(buf, p + 6)
            p += 8
            et = ETH_IPV4 if ppp == 0x0021 else ETH_IPV6 if ppp == 0x0057 else NOT_IP
            return et, p, ".".join(vlans)
        else:
            return et, p, ".".join(vlans)
    return NOT_IP, p, ".".join(vlans)


def _by_version(buf: bytes, p: int, end: int) -> int:
    if p >= end:
        return NOT_IP
    v = buf[p] >> 4
    return ETH_IPV4 if v == 4 else ETH_IPV6 if v == 6 else NOT_IP


_AF_INET6 = frozenset({10, 24, 28, 30})  # Linux, NetBSD/OpenBSD, FreeBSD, Darwin


def _af_to_ethertype(af: int) -> int:
    if af == 2:
        return ETH_IPV4
    if af in _AF_INET6:
        return ETH_IPV6
    return NOT_IP


def decode_link(dlt: int, buf: bytes, p: int, end: int) -> tuple[int, int, str]:
    """Strip the link header of one frame; raises IndexError/struct.error when cut short."""
    if dlt == DLT_EN10MB:
        if end - p < 14:
            raise IndexError("short Ethernet header")
        (et,) = _H.unpack_from(buf, p + 12)
        return ethertype_chain(buf, et, p + 14, end)
    if dlt == DLT_LINUX_SLL:
        if end - p < 16:
            raise IndexError("short SLL header")
        (hatype,) = _H.unpack_from(buf, p + 2)
        (et,) = _H.unpack_from(buf, p + 14)
        if hatype == 824:  # netlink: protocol is a netlink family, not an Ethernet type
            return NOT_IP, p + 16, ""
        return ethertype_chain(buf, et, p + 16, end)
    if dlt == DLT_LINUX_SLL2:
        if end - p < 20:
            raise IndexError("short SLL2 header")
        (et,) = _H.unpack_from(buf, p)
        (hatype,) = _H.unpack_from(buf, p + 8)
        if hatype == 824:
            return NOT_IP, p + 20, ""
        return ethertype_chain(buf, et, p + 20, end)
    if dlt in (DLT_RAW, DLT_RAW_OPENBSD, DLT_LINKTYPE_RAW, DLT_IPV4, DLT_IPV6):
        return _by_version(buf, p, end), p, ""
    if dlt == DLT_NULL:
        if end - p < 4:
            raise IndexError("short loopback header")
        (af,) = _LE_I.unpack_from(buf, p)
        if af > 0xFFFF:  # written by a big-endian host
            (af,) = _BE_I.unpack_from(buf, p)
        return _af_to_ethertype(af), p + 4, ""
    if dlt == DLT_LOOP:
        if end - p < 4:
            raise IndexError("short loopback header")
        (af,) = _BE_I.unpack_from(buf, p)
        return _af_to_ethertype(af), p + 4, ""
    return NOT_IP, p, ""
