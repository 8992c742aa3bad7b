"""Build small captures for tests: pcap (micro/nano), pcapng, link layers, IP, UDP/TCP, tunnels.

Everything returns bytes so tests compose layers freely, e.g.
``pcap([(1.0, ether(ipv4("10.0.0.1", "10.0.0.2", UDP, udp(5060, 5060, b"...")))])``.
Checksums are filled in where tools care (IPv4 header, UDP/TCP over IPv4 and IPv6).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Sequence

UDP = 17
TCP = 6
GRE = 47
ICMP = 1

# link types (LINKTYPE_* values written into files)
LT_NULL = 0
LT_ETHERNET = 1
LT_RAW = 101
LT_LOOP = 108
LT_SLL = 113
LT_SLL2 = 276
LT_IEEE802_11 = 105

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806

Packet = tuple[float, bytes]

# --------------------------------------------------------------------------- files


def _split_ts(ts: float, scale: int) -> tuple[int, int]:
    sec = int(ts)
    frac = round((ts - sec) * scale)
    if frac >= scale:
        sec, frac = sec + 1, frac - scale
    return sec, frac


def pcap(
    packets: Iterable[Packet],
    linktype: int = LT_ETHERNET,
    nano: bool = False,
    snaplen: int = 262144,
    big_endian: bool = False,
) -> bytes:
    """A classic pcap file; `nano` writes the nanosecond-resolution magic."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    scale = 1_000_000_000 if nano else 1_000_000
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for ts, frame in packets:
        sec, frac = _split_ts(ts, scale)
        caplen = min(len(frame), snaplen)
        out.append(struct.pack(e + "IIII", sec, frac, caplen, len(frame)))
        out.append(frame[:caplen])
    return b"".join(out)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def pcapng(
    packets: Iterable[Packet],
    linktype: int = LT_ETHERNET,
    nano: bool = False,
    snaplen: int = 262144,
) -> bytes:
    """A pcapng file: section header, one interface, enhanced packet blocks."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = b""
    scale = 1_000_000
    if nano:
        opts = _option(9, b"\x09") + _option(0, b"")  # if_tsresol = 10^-9
        scale = 1_000_000_000
    idb = _block(1, struct.pack("<HHI", linktype, 0, snaplen) + opts)
    out = [shb, idb]
    for ts, frame in packets:
        t = round(ts * scale)
        caplen = min(len(frame), snaplen)
        body = struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, caplen, len(frame))
        out.append(_block(6, body + frame[:caplen]))
    return b"".join(out)


# --------------------------------------------------------------------------- link layers

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ether(
    payload: bytes,
    ethertype: int = ETH_IPV4,
    vlans: Sequence[int] = (),
    qinq: bool = False,
    src: bytes = MAC_A,
    dst: bytes = MAC_B,
) -> bytes:
    """Ethernet II; `vlans` outermost first; `qinq` marks the outer tag 802.1ad (0x88a8)."""
    tags = b""
    for i, vid in enumerate(vlans):
        tpid = 0x88A8 if (qinq and i == 0 and len(vlans) > 1) else 0x8100
        tags += struct.pack("!HH", tpid, vid & 0x0FFF)
    return dst + src + tags + struct.pack("!H", ethertype) + payload


def ether_of(ip_packet: bytes, **kw: object) -> bytes:
    """Ethernet frame around an IPv4 or IPv6 packet (type from the version nibble)."""
    et = ETH_IPV6 if ip_packet[0] >> 4 == 6 else ETH_IPV4
    return ether(ip_packet, et, **kw)  # type: ignore[arg-type]


def sll(payload: bytes, proto: int = ETH_IPV4, pkttype: int = 0) -> bytes:
    """Linux cooked capture v1 (16 bytes)."""
    return struct.pack("!HHH8sH", pkttype, 1, 6, MAC_A + b"\0\0", proto) + payload


def sll2(payload: bytes, proto: int = ETH_IPV4, ifindex: int = 2, pkttype: int = 0) -> bytes:
    """Linux cooked capture v2 (20 bytes)."""
    return struct.pack("!HHIHBB8s", proto, 0, ifindex, 1, pkttype, 6, MAC_A + b"\0\0") + payload


def null(payload: bytes, af: int = 2, big_endian: bool = False) -> bytes:
    """BSD loopback DLT_NULL: address family in the capturing host's byte order."""
    return struct.pack(">I" if big_endian else "<I", af) + payload


def loop(payload: bytes, af: int = 2) -> bytes:
    """OpenBSD DLT_LOOP: address family in network byte order."""
    return struct.pack("!I", af) + payload


# --------------------------------------------------------------------------- IP


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _is6(addr: str) -> bool:
    return ":" in addr


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    ident: int = 1,
    frag_offset: int = 0,
    more_fragments: bool = False,
    dont_fragment: bool = False,
    ttl: int = 64,
    options: bytes = b"",
) -> bytes:
    """IPv4 header + payload; `frag_offset` in bytes (multiple of 8)."""
    options += b"\0" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    flags = (0x2000 if more_fragments else 0) | (0x4000 if dont_fragment else 0)
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        ihl * 4 + len(payload),
        ident,
        flags | (frag_offset >> 3),
        ttl,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    hdr += options
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(
    src: str,
    dst: str,
    next_header: int,
    payload: bytes,
    hop_limit: int = 64,
) -> bytes:
    """IPv6 header + payload (payload may start with extension headers)."""
    return (
        struct.pack("!IHBB", 0x60000000, len(payload), next_header, hop_limit)
        + socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, dst)
        + payload
    )


def ipv6_ext(next_header: int, data: bytes = b"") -> bytes:
    """A generic IPv6 extension header (hop-by-hop, routing, destination options)."""
    body = data + b"\0" * (-(len(data) + 2) % 8)
    return struct.pack("!BB", next_header, (len(body) + 2) // 8 - 1) + body


def ip(src: str, dst: str, proto: int, payload: bytes, **kw: int) -> bytes:
    """IPv4 or IPv6 by the address family of `src`."""
    if _is6(src):
        return ipv6(src, dst, proto, payload)
    return ipv4(src, dst, proto, payload, **kw)


def ipv4_fragments(
    src: str, dst: str, proto: int, payload: bytes, size: int = 1480, ident: int = 7
) -> list[bytes]:
    """Split an L4 segment into IPv4 fragments carrying at most `size` bytes each."""
    size -= size % 8
    out = []
    for off in range(0, len(payload), size):
        chunk = payload[off : off + size]
        more = off + size < len(payload)
        out.append(ipv4(src, dst, proto, chunk, ident=ident, frag_offset=off, more_fragments=more))
    return out


def ipv6_fragments(
    src: str, dst: str, proto: int, payload: bytes, size: int = 1448, ident: int = 0x1234
) -> list[bytes]:
    """Split an L4 segment into IPv6 fragments (fragment header, next header 44)."""
    size -= size % 8
    out = []
    for off in range(0, len(payload), size):
        chunk = payload[off : off + size]
        more = off + size < len(payload)
        fh = struct.pack("!BBHI", proto, 0, off | (1 if more else 0), ident)
        out.append(ipv6(src, dst, 44, fh + chunk))
    return out


# --------------------------------------------------------------------------- L4


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    if _is6(src):
        return (
            socket.inet_pton(socket.AF_INET6, src)
            + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack("!IxxxB", length, proto)
        )
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!xBH", proto, length)


def udp(sport: int, dport: int, payload: bytes, src: str = "", dst: str = "") -> bytes:
    """UDP header + payload; checksum computed when the addresses are given."""
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if src:
        c = checksum(_pseudo(src, dst, UDP, len(seg)) + seg) or 0xFFFF
        seg = seg[:6] + struct.pack("!H", c) + seg[8:]
    return seg


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def tcp(
    sport: int,
    dport: int,
    seq: int,
    payload: bytes = b"",
    flags: int = PSH | ACK,
    ack: int = 0,
    src: str = "",
    dst: str = "",
) -> bytes:
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack, 0x50, flags, 65535, 0, 0)
    seg += payload
    if src:
        c = checksum(_pseudo(src, dst, TCP, len(seg)) + seg)
        seg = seg[:16] + struct.pack("!H", c) + seg[18:]
    return seg


# --------------------------------------------------------------------------- composites


def udp_packet(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IP packet carrying one UDP datagram (IPv4 or IPv6 by address)."""
    return ip(src, dst, UDP, udp(sport, dport, payload, src, dst))


def tcp_packet(
    src: str, dst: str, sport: int, dport: int, seq: int, payload: bytes = b"", flags: int = 0x18
) -> bytes:
    return ip(src, dst, TCP, tcp(sport, dport, seq, payload, flags, src=src, dst=dst))


def vxlan(vni: int, inner_frame: bytes) -> bytes:
    """VXLAN header (I flag) + inner Ethernet frame; put it in UDP to port 4789."""
    return struct.pack("!BxxxI", 0x08, vni << 8) + inner_frame


def gre(
    payload: bytes,
    proto: int = ETH_IPV4,
    key: int | None = None,
    seq: int | None = None,
    csum: bool = False,
) -> bytes:
    """GRE (RFC 2784/2890) header with optional checksum, key and sequence number."""
    flags = (0x8000 if csum else 0) | (0x2000 if key is not None else 0)
    flags |= 0x1000 if seq is not None else 0
    hdr = struct.pack("!HH", flags, proto)
    if csum:
        hdr += b"\0\0\0\0"
    if key is not None:
        hdr += struct.pack("!I", key)
    if seq is not None:
        hdr += struct.pack("!I", seq)
    return hdr + payload


def sip_request(
    method: str = "OPTIONS",
    ruri: str = "sip:100@192.0.2.1",
    call_id: str = "abc@test",
    cseq: int = 1,
    body: bytes = b"",
    extra: str = "",
) -> bytes:
    """A small well-formed SIP request (CRLF, Content-Length set)."""
    head = (
        f"{method} {ruri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1\r\n"
        "From: <sip:attacker@198.51.100.7>;tag=1\r\n"
        f"To: <{ruri}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Max-Forwards: 70\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def sip_response(status: int = 200, reason: str = "OK", call_id: str = "abc@test") -> bytes:
    return (
        f"SIP/2.0 {status} {reason}\r\n"
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1\r\n"
        "From: <sip:attacker@198.51.100.7>;tag=1\r\n"
        "To: <sip:100@192.0.2.1>;tag=2\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
