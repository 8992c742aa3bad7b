"""HEP (Homer Encapsulation Protocol) codec, sans-I/O: bytes in, Records out, and back.

HEP carries a copy of one captured message (SIP, RTCP, logs ...) with where and when it was
captured. Capture agents and SIP servers send it over UDP or TCP (Kamailio ``siptrace``,
OpenSIPS ``proto_hep``, FreeSWITCH, Asterisk ``res_hep``, heplify, captagent).

HEP v3 (``HEP3`` magic), every integer in network byte order::

    "HEP3" | total length (u16, the whole packet incl. these 6 bytes) | chunk ...
    chunk = vendor id (u16) | chunk type (u16) | chunk length (u16, incl. these 6) | value

Generic chunks (vendor 0) this codec knows, with their fixed value sizes (``CHUNK_SIZES``):

==== ==================================== ======
type what                                 size
==== ==================================== ======
1    IP protocol family (2 IPv4, 10 IPv6)  1
2    IP protocol id (17 UDP, 6 TCP, 132)   1
3/4  IPv4 source / destination address     4
5/6  IPv6 source / destination address     16
7/8  source / destination port             2
9    timestamp, seconds                    4
10   timestamp, microseconds offset        4
11   protocol type (1 SIP, 5 RTCP, 100 log) 1
12   capture agent id                      4
13   keep-alive timer (seconds)            2
14   authentication key                    any
15   captured payload                      any
16   compressed payload (gzip or zlib)     any
17   correlation id                        any
18   VLAN id                               2
19   capture node name                     any
==== ==================================== ======

Chunks of other vendors or types are skipped (``HepMessage.extra`` keeps a bounded number).
HEP v1 and v2 (a fixed binary header, IPv4 or IPv6, v2 adds the capture time and a 16-bit
capture id) are decoded too.

A malformed packet is rejected with a reason counted in ``HepStats.rejected``
(``REASONS``); decoding never raises. ``HepDecoder.record(data)`` is the hot path used by the
collector: one packet -> one Record (or None, counted). The encoder is hep_encode.py.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from socket import AF_INET6, inet_ntop
from typing import Any

from sipwatch.record import Record
from sipwatch.sip.message import parse

MAGIC = b"HEP3"
HEADER = 6
MAX_PACKET = 65535  # the HEP3 length field is 16 bits
MAX_EXTRA = 32  # unknown chunks kept per packet (the rest are only skipped)
MAX_INFLATED = 256 * 1024  # a compressed payload may not grow beyond this

FAMILY_IPV4, FAMILY_IPV6 = 2, 10
PROTO_SIP, PROTO_RTCP, PROTO_LOG = 1, 5, 100
TRANSPORTS = {17: "udp", 6: "tcp", 132: "sctp"}
IP_PROTO = {"udp": 17, "tcp": 6, "tls": 6, "ws": 6, "wss": 6, "sctp": 132}

# vendor-0 chunk type -> fixed value size (0 = variable)
CHUNK_SIZES = (0, 1, 1, 4, 4, 16, 16, 2, 2, 4, 4, 1, 4, 2, 0, 0, 0, 0, 2, 0)
KNOWN_TYPES = len(CHUNK_SIZES)

REASONS = (
    "short",  # fewer bytes than a header
    "bad_magic",  # neither HEP3 nor a v1/v2 header
    "length_mismatch",  # the header's total length is not the packet's length
    "chunk_truncated",  # a chunk runs past the end of the packet
    "chunk_length",  # a chunk length below its own 6-byte header
    "chunk_size",  # a known fixed-size chunk with the wrong size
    "bad_family",  # address family not 2/10, or addresses of the other family
    "missing_chunk",  # no addresses, ports or time
    "bad_compressed",  # compressed payload does not inflate (or inflates too far)
    "auth",  # authentication key missing or wrong
)

_HDR = struct.Struct("!HHH").unpack_from
_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from
_V12 = struct.Struct("!BBBBHH").unpack_from  # v1/v2: version, length, family, proto, ports
_V2TIME = struct.Struct("<IIH").unpack_from  # v2: seconds, microseconds, capture id (host order)


class HepError(ValueError):
    """A malformed HEP packet; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(slots=True)
class HepMessage:
    """Every field of one HEP packet (None / "" / b"" = the chunk was absent)."""

    version: int = 3
    family: int = FAMILY_IPV4
    ip_proto: int = 17
    src: str = ""
    dst: str = ""
    sport: int = 0
    dport: int = 0
    ts_sec: int = 0
    ts_usec: int = 0
    proto_type: int = PROTO_SIP
    agent_id: int | None = None
    keepalive: int | None = None
    auth_key: bytes | None = None
    payload: bytes = b""
    compressed: bool = False  # decoding: it came in chunk 16; encoding: send it in chunk 16
    correlation_id: bytes | None = None
    vlan: int | None = None
    node_name: str | None = None
    extra: list[tuple[int, int, bytes]] = field(default_factory=list)  # vendor, type, value

    @property
    def ts(self) -> float:
        return self.ts_sec + self.ts_usec * 1e-6

    @property
    def transport(self) -> str:
        return TRANSPORTS.get(self.ip_proto, str(self.ip_proto))


@dataclass(slots=True)
class HepStats:
    packets: int = 0  # HEP packets given to the decoder
    bytes: int = 0
    records: int = 0  # SIP Records produced
    keepalives: int = 0  # well-formed packets without a payload
    not_sip: int = 0  # well-formed packets of another protocol type (RTCP, logs ...)
    v1: int = 0
    v2: int = 0
    v3: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, int]:
        out = {
            "packets": self.packets, "bytes": self.bytes, "records": self.records,
            "keepalives": self.keepalives, "not_sip": self.not_sip,
            "rejected": self.rejected_total,
        }  # fmt: skip
        out.update({f"rejected_{k}": v for k, v in self.rejected.items()})
        return out


# --------------------------------------------------------------------------- decoding
def _inflate(value: bytes) -> bytes:
    """gzip, zlib or raw deflate, bounded by MAX_INFLATED."""
    wbits = 31 if value[:2] == b"\x1f\x8b" else 15
    for bits in (wbits, -15):
        z = zlib.decompressobj(bits)
        try:
            out = z.decompress(value, MAX_INFLATED + 1)
        except zlib.error:
            continue
        if len(out) > MAX_INFLATED or z.unconsumed_tail:
            raise HepError("bad_compressed", "inflates beyond the limit")
        return out
    raise HepError("bad_compressed", "not gzip, zlib or deflate data")


def _scan3_py(data: bytes) -> list | int:
    """Walk the chunks of a HEP3 packet: a 20-slot list indexed by vendor-0 chunk type
    (fixed-size chunks as int, IPv4/IPv6 addresses as text, variable chunks as bytes, None
    when absent; slot 0 the list of other chunks or None), or an int index into REASONS."""
    n = len(data)
    if n < HEADER:
        return 0  # short
    if data[:4] != MAGIC:
        return 1
    if _U16(data, 4)[0] != n:
        return 2  # length_mismatch
    slots: list = [None] * KNOWN_TYPES
    sizes = CHUNK_SIZES
    pos = HEADER
    while pos < n:
        if n - pos < 6:
            return 3  # chunk_truncated
        vendor, ctype, clen = _HDR(data, pos)
        end = pos + clen
        if clen < 6:
            return 4  # chunk_length
        if end > n:
            return 3
        p = pos + 6
        if vendor == 0 and 0 < ctype < KNOWN_TYPES:
            size = sizes[ctype]
            if not size:
                slots[ctype] = data[p:end]
            elif clen - 6 != size:
                return 5  # chunk_size
            elif size == 1:
                slots[ctype] = data[p]
            elif size == 2:
                slots[ctype] = _U16(data, p)[0]
            elif ctype in (3, 4):
                slots[ctype] = _ntoa4(data, p)
            elif size == 16:
                slots[ctype] = inet_ntop(AF_INET6, data[p:end])
            else:
                slots[ctype] = _U32(data, p)[0]
        else:
            extra = slots[0]
            if extra is None:
                extra = slots[0] = []
            if len(extra) < MAX_EXTRA:
                extra.append((vendor, ctype, data[p:end]))
        pos = end
    return slots


try:
    if os.environ.get("SIPWATCH_NO_SPEEDUPS"):
        raise ImportError
    from sipwatch.capture._hep import scan3 as _c_scan3

    _scan3 = _c_scan3
    ACCELERATED = True
except ImportError:  # not built (no compiler at install time): pure Python
    _scan3 = _scan3_py
    ACCELERATED = False


def decode(data: bytes) -> HepMessage:
    """Every field of one HEP v1/v2/v3 packet; raises HepError (with .reason) when malformed."""
    data = bytes(data)
    if data[:4] != MAGIC:
        return _decode12(data)
    s = _scan3_py(data)  # the Python walk: it also keeps the unknown chunks
    if isinstance(s, int):
        raise HepError(REASONS[s])
    return _message3(s)


def _message3(s: list | tuple) -> HepMessage:
    m = HepMessage(version=3)
    src, dst, family = _addresses(s)
    m.src, m.dst = src, dst
    m.family = family
    if s[2] is not None:
        m.ip_proto = s[2]
    m.sport = s[7] or 0
    m.dport = s[8] or 0
    m.ts_sec = s[9] or 0
    m.ts_usec = s[10] or 0
    if s[11] is not None:
        m.proto_type = s[11]
    m.agent_id, m.keepalive, m.auth_key = s[12], s[13], s[14]
    if s[16] is not None:
        m.payload = _inflate(s[16])
        m.compressed = True
    elif s[15] is not None:
        m.payload = s[15]
    m.correlation_id, m.vlan = s[17], s[18]
    if s[19] is not None:
        m.node_name = s[19].decode("utf-8", "replace")
    if s[0] is not None:
        m.extra = s[0]
    return m


def _addresses(s: list | tuple) -> tuple[str, str, int]:
    """(src, dst, family) from the address chunks; HepError when they do not fit together."""
    f = s[1]
    if s[3] is not None and s[4] is not None and s[5] is None and s[6] is None:
        if f is not None and f != FAMILY_IPV4:
            raise HepError("bad_family", f"family {f} with IPv4 addresses")
        return s[3], s[4], FAMILY_IPV4
    if s[5] is not None and s[6] is not None and s[3] is None and s[4] is None:
        if f is not None and f != FAMILY_IPV6:
            raise HepError("bad_family", f"family {f} with IPv6 addresses")
        return s[5], s[6], FAMILY_IPV6
    if s[3] is s[4] is s[5] is s[6] is None:
        return "", "", f if f is not None else FAMILY_IPV4
    raise HepError("bad_family", "needs both addresses of one family")


def _ntoa4(data: bytes, p: int) -> str:
    return f"{data[p]}.{data[p + 1]}.{data[p + 2]}.{data[p + 3]}"


def _decode12(data: bytes) -> HepMessage:
    """HEP v1/v2: version, header length, family, protocol, ports, addresses[, time, id]."""
    n = len(data)
    if n < 8:
        raise HepError("short" if n < 4 else "bad_magic")
    version, hlen, family, proto, sport, dport = _V12(data, 0)
    if version not in (1, 2):
        raise HepError("bad_magic", f"version byte {version}")
    if family == FAMILY_IPV4:
        alen = 4
    elif family == FAMILY_IPV6:
        alen = 16
    else:
        raise HepError("bad_family", f"family {family}")
    fixed = 8 + 2 * alen
    if hlen != fixed:
        raise HepError("length_mismatch", f"header length {hlen}, expected {fixed}")
    start = fixed + (12 if version == 2 else 0)
    if n < start:
        raise HepError("short")
    m = HepMessage(version=version, family=family, ip_proto=proto, sport=sport, dport=dport)
    if alen == 4:
        m.src, m.dst = _ntoa4(data, 8), _ntoa4(data, 12)
    else:
        m.src = inet_ntop(AF_INET6, data[8:24])
        m.dst = inet_ntop(AF_INET6, data[24:40])
    if version == 2:
        m.ts_sec, m.ts_usec, agent = _V2TIME(data, fixed)
        m.agent_id = agent
    m.payload = data[start:]
    return m


# --------------------------------------------------------------------------- Records
class HepDecoder:
    """HEP packets -> Records, with counters (the collector has one per listener set).

    auth_key: when set, every packet must carry it (chunk 14), else rejected ("auth").
    nodes: capture agent id (as text) or node name -> node name of the inventory; without
    a mapping the node is the packet's node name, else its agent id as text.
    """

    def __init__(
        self,
        sensor: str = "",
        nodes: dict[str, str] | None = None,
        auth_key: str | bytes | None = None,
        stats: HepStats | None = None,
        make_record: Callable[..., Any] | None = None,
    ) -> None:
        self.sensor = sensor
        # None: a parsed Record. Benchmarks time the HEP layer alone with a factory taking
        # (payload, ts, transport, src, sport, dst, dport, node, vlan).
        self.make_record = make_record
        self.nodes = dict(nodes or {})
        if isinstance(auth_key, str):
            auth_key = auth_key.encode()
        self.auth_key = auth_key or None
        self.stats = stats if stats is not None else HepStats()
        self.per_agent: dict[str, int] = {}  # node -> Records, bounded by MAX_AGENTS
        self._node_cache: dict[object, str] = {}  # node name or agent id -> node

    MAX_AGENTS = 10_000

    def record(self, data: bytes) -> Record | None:
        """One packet -> its SIP Record; None when rejected, a keep-alive or not SIP (counted)."""
        st = self.stats
        st.packets += 1
        st.bytes += len(data)
        if data[:4] == MAGIC:
            s = _scan3(data if type(data) is bytes else bytes(data))
            if type(s) is int:
                st.reject(REASONS[s])
                return None
            st.v3 += 1
            return self._record3(s)
        try:
            m = _decode12(bytes(data))
        except HepError as exc:
            st.reject(exc.reason)
            return None
        if m.version == 1:
            st.v1 += 1
        else:
            st.v2 += 1
        if self.auth_key is not None:  # v1/v2 cannot carry a key
            st.reject("auth")
            return None
        if not m.payload:
            st.keepalives += 1
            return None
        return self._finish(m.payload, m.ts, m.transport, m.src, m.sport, m.dst, m.dport,
                            m.agent_id, None, "")  # fmt: skip

    def _record3(self, s: list | tuple) -> Record | None:
        st = self.stats
        key = self.auth_key
        if key is not None and s[14] != key:
            st.reject("auth")
            return None
        payload = s[15]
        if s[16] is not None:
            try:
                payload = _inflate(s[16])
            except HepError as exc:
                st.reject(exc.reason)
                return None
        if not payload:
            st.keepalives += 1
            return None
        p = s[11]
        if p is not None and p != PROTO_SIP:
            st.not_sip += 1
            return None
        src = s[3]
        if (
            src is not None
            and s[4] is not None
            and s[5] is None
            and s[6] is None
            and (s[1] is None or s[1] == FAMILY_IPV4)
        ):
            dst = s[4]
        else:
            try:
                src, dst, _ = _addresses(s)
            except HepError as exc:
                st.reject(exc.reason)
                return None
            if not src:
                st.reject("missing_chunk")
                return None
        sport, dport, sec = s[7], s[8], s[9]
        if sport is None or dport is None or sec is None:
            st.reject("missing_chunk")
            return None
        usec = s[10]
        ts = sec + usec * 1e-6 if usec else float(sec)
        pr = s[2]
        transport = "udp" if pr is None or pr == 17 else TRANSPORTS.get(pr, "udp")
        vlan = "" if s[18] is None else str(s[18])
        name = s[19]
        node = self._node_cache.get(name or s[12])
        if node is None:
            node = self._node(s[12], name)
        return self._emit(payload, ts, transport, src, sport, dst, dport, node, vlan)

    def _finish(self, payload, ts, transport, src, sport, dst, dport, agent, name, vlan):
        node = self._node(agent, name)
        return self._emit(payload, ts, transport, src, sport, dst, dport, node, vlan)

    def _emit(self, payload, ts, transport, src, sport, dst, dport, node, vlan):
        """Count the record for its node (bounded) and build it."""
        self.stats.records += 1
        per = self.per_agent
        if node in per:
            per[node] += 1
        elif len(per) < self.MAX_AGENTS:
            per[node] = 1
        make = self.make_record
        if make is not None:
            return make(payload, ts, transport, src, sport, dst, dport, node, vlan)
        return Record(ts, transport, src, sport, dst, dport, payload, parse(payload), "",
                      self.sensor, node, "", vlan)  # fmt: skip

    def _node(self, agent: int | None, name: bytes | None) -> str:
        """The node of a capture agent (id and/or node name), cached by name or id."""
        text = name.decode("utf-8", "replace") if name else ""
        nodes = self.nodes
        node = nodes.get(text) if text else None
        if node is None and agent is not None:
            node = nodes.get(str(agent))
        if node is None:
            node = text or ("" if agent is None else str(agent))
        cache = self._node_cache
        if len(cache) >= self.MAX_AGENTS:
            cache.clear()
        cache[name or agent] = node
        return node


def frame_length(buf: bytes | bytearray | memoryview, pos: int = 0) -> int:
    """TCP framing: the length of the HEP packet starting at ``pos`` (0 = need more bytes),
    or -1 when the bytes there are not a HEP3 header (the stream is lost)."""
    if len(buf) - pos < HEADER:
        return 0
    if bytes(buf[pos : pos + 4]) != MAGIC:
        return -1
    total = (buf[pos + 4] << 8) | buf[pos + 5]
    return total if total >= HEADER else -1
