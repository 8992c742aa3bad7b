"""HEP encoder: HepMessage or Record -> HEP v3 packet (and v1/v2 for tests and old agents).

The decoder and the chunk table are in hep.py; ``encode(m)`` writes every field of ``m``
that is set, payload last (chunk 15, or 16 gzip-compressed).
"""

from __future__ import annotations

import gzip
import struct
from socket import AF_INET6, inet_pton

from sipwatch.capture.hep import (
    FAMILY_IPV4,
    FAMILY_IPV6,
    HEADER,
    IP_PROTO,
    MAGIC,
    MAX_PACKET,
    HepMessage,
)
from sipwatch.record import Record


def _chunk(ctype: int, value: bytes, vendor: int = 0) -> bytes:
    return struct.pack("!HHH", vendor, ctype, len(value) + 6) + value


def encode(m: HepMessage) -> bytes:
    """One HEP v3 packet with every field of ``m`` that is set (payload last)."""
    v6 = ":" in m.src or ":" in m.dst
    family = FAMILY_IPV6 if v6 else FAMILY_IPV4
    parts = [
        _chunk(1, bytes([family])),
        _chunk(2, bytes([m.ip_proto & 0xFF])),
    ]
    if v6:
        parts += [_chunk(5, inet_pton(AF_INET6, m.src)), _chunk(6, inet_pton(AF_INET6, m.dst))]
    else:
        parts += [_chunk(3, _aton4(m.src)), _chunk(4, _aton4(m.dst))]
    parts += [
        _chunk(7, struct.pack("!H", m.sport)),
        _chunk(8, struct.pack("!H", m.dport)),
        _chunk(9, struct.pack("!I", m.ts_sec)),
        _chunk(10, struct.pack("!I", m.ts_usec)),
        _chunk(11, bytes([m.proto_type & 0xFF])),
    ]
    if m.agent_id is not None:
        parts.append(_chunk(12, struct.pack("!I", m.agent_id)))
    if m.keepalive is not None:
        parts.append(_chunk(13, struct.pack("!H", m.keepalive)))
    if m.auth_key is not None:
        parts.append(_chunk(14, m.auth_key))
    if m.correlation_id is not None:
        parts.append(_chunk(17, m.correlation_id))
    if m.vlan is not None:
        parts.append(_chunk(18, struct.pack("!H", m.vlan)))
    if m.node_name is not None:
        parts.append(_chunk(19, m.node_name.encode()))
    for vendor, ctype, value in m.extra:
        parts.append(_chunk(ctype, value, vendor))
    if m.compressed:
        parts.append(_chunk(16, gzip.compress(m.payload, mtime=0)))
    elif m.payload:
        parts.append(_chunk(15, m.payload))
    body = b"".join(parts)
    total = HEADER + len(body)
    if total > MAX_PACKET:
        raise ValueError(f"HEP packet of {total} bytes is over the 65535-byte limit")
    return MAGIC + struct.pack("!H", total) + body


def _aton4(text: str) -> bytes:
    try:
        return bytes(int(x) for x in text.split("."))[:4].ljust(4, b"\0") if text else bytes(4)
    except ValueError:
        return bytes(4)


def encode_record(
    rec: Record,
    agent_id: int | None = None,
    auth_key: bytes | None = None,
    node_name: str | None = None,
    compress: bool = False,
) -> bytes:
    """A Record as one HEP v3 SIP packet (its time, addresses, ports and transport)."""
    sec = int(rec.ts)
    usec = min(999_999, int(round((rec.ts - sec) * 1e6)))
    return encode(
        HepMessage(
            ip_proto=IP_PROTO.get(rec.transport, 17), src=rec.src, dst=rec.dst,
            sport=rec.sport, dport=rec.dport, ts_sec=sec & 0xFFFFFFFF, ts_usec=usec,
            agent_id=agent_id, auth_key=auth_key, payload=rec.raw, compressed=compress,
            node_name=node_name, vlan=int(rec.vlan.split(".")[0]) if rec.vlan.isdigit() else None,
        )
    )  # fmt: skip


def encode_v2(m: HepMessage) -> bytes:
    """A HEP v1/v2 packet (m.version 1 or 2), as older capture agents send it."""
    v6 = ":" in m.src or ":" in m.dst
    addrs = (
        inet_pton(AF_INET6, m.src) + inet_pton(AF_INET6, m.dst)
        if v6
        else _aton4(m.src) + _aton4(m.dst)
    )
    hlen = 8 + len(addrs)
    head = struct.pack("!BBBBHH", m.version, hlen, FAMILY_IPV6 if v6 else FAMILY_IPV4,
                       m.ip_proto, m.sport, m.dport) + addrs  # fmt: skip
    if m.version == 2:
        head += struct.pack("<IIH2x", m.ts_sec, m.ts_usec, (m.agent_id or 0) & 0xFFFF)
    return head + m.payload
