"""Packets to Records: link layer → IP (defragmented) → UDP/TCP (reassembled) → SIP messages.

One PacketDecoder per capture (it holds the link type, fragment and TCP state). The hot path,
Ethernet/cooked/raw + IPv4 (no options) + UDP, is handled inline in ``decode_batch`` with one
precompiled struct per link type; everything else (VLAN, IPv6, fragments, TCP, tunnels) goes
through the general path. A packet never raises: damage is counted in CaptureStats.

Which payloads become Records:
- any UDP payload or TCP stream whose start line is SIP (``looks_like_sip``), on any port;
- on the SIP ports (5060/5061) also payloads that are not SIP, as fuzzing evidence (the parser
  marks them ``not_sip``), except other protocols seen there: HTTP/SSDP, TLS/DTLS, STUN and
  CR/LF keep-alives (counted, not recorded).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from socket import inet_ntoa
from typing import Any

from sipwatch.capture import linklayer as ll
from sipwatch.capture.defrag import Defragmenter
from sipwatch.capture.ip import (
    FRAGMENT6,
    AddressText,
    ShortPacket,
    ipv4,
    ipv6,
    ipv6_fragment,
    skip_ipv6_ext,
)
from sipwatch.capture.stats import CaptureStats
from sipwatch.capture.tcp import Flow, TcpReassembler
from sipwatch.capture.tunnels import VXLAN_PORT, gre, vxlan
from sipwatch.record import Record
from sipwatch.sip.framing import StreamFramer, split_datagram
from sipwatch.sip.message import looks_like_sip, start_line_match

SIP_PORTS = frozenset({5060, 5061})
MAX_TUNNEL_DEPTH = 4  # nested tunnels beyond this are an attack or garbage

_META = struct.Struct("=IIII")  # next_batch: sec, usec, offset, caplen
_UDP = struct.Struct("!HHH")
_TCP = struct.Struct("!HHI4xBB")  # sport, dport, seq, data offset byte, flags
# IPv4 (ihl=5) + UDP header after the link header: vihl, total, frag, proto, src, dst,
# sport, dport, udp length
_IP_UDP = "BxHxxHxB2x4s4sHHH"

# Foreign protocols that share the SIP ports: HTTP/SSDP/RTSP request or status lines.
_HTTPISH = re.compile(rb"[\r\n]*(?:[A-Z][A-Z_-]* [^ \r\n]+ (?:HTTP|RTSP)/|(?:HTTP|RTSP)/[0-9])")
_STUN_COOKIE = b"\x21\x12\xa4\x42"
_BLANK = b"\r\n\t \x00"

RecordFactory = Callable[..., Any]


def is_foreign(payload: bytes) -> bool:
    """A payload of another protocol commonly found on the SIP ports (never a Record)."""
    b0 = payload[0]
    if 20 <= b0 <= 23 and len(payload) > 2 and payload[1] in (3, 0xFE):
        return True  # TLS / DTLS record
    if len(payload) >= 20 and b0 < 4 and payload[4:8] == _STUN_COOKIE:
        return True  # STUN (RFC 5389)
    return _HTTPISH.match(payload, 0, 256) is not None


# fixed link-header geometry for the fast path: dlt -> (ethertype offset or -1, IP offset)
_FAST_LINKS = {
    ll.DLT_EN10MB: (12, 14),
    ll.DLT_LINUX_SLL: (14, 16),
    ll.DLT_LINUX_SLL2: (0, 20),
    ll.DLT_RAW: (-1, 0),
    ll.DLT_RAW_OPENBSD: (-1, 0),
    ll.DLT_LINKTYPE_RAW: (-1, 0),
    ll.DLT_IPV4: (-1, 0),
}


def single_message(payload: bytes) -> bool:
    """True when split_datagram would return [payload] because nothing can follow the header:
    no body, and the first end-of-headers (CRLFCRLF, LFLF, LFCRLF) is at the very end.
    Checking this costs a tenth of a split (inlined in the fast path)."""
    return (
        payload.endswith(b"\r\n\r\n")
        and payload.find(b"\n\r\n") == len(payload) - 3
        and payload.find(b"\n\n") < 0
        and payload[0] != 13
        and payload[0] != 10
    )


def _join(outer: str, inner: str) -> str:
    return f"{outer}, {inner}" if outer else inner


class PacketDecoder:
    """Decode the frames of one capture into Records (in packet order).

    `make_record` defaults to ``Record.from_bytes``; it may return None to skip a message (a
    partitioned run keeps only its share), and may carry ``route_ipv4`` (see decode_batch) to
    skip such messages before their addresses are formatted. Benchmarks pass a cheaper factory with the
    same signature to time decoding alone.

    `tcp`: the C reassembler of the bulk path (``sipwatch._native.TcpReassembler``, see
    analyze_native.py) instead of a TcpReassembler of its own. It takes every TCP segment
    this decoder decodes, from the point where ``_tcp`` has read the header, and does the rest
    of ``_tcp`` (which segments open a flow) and ``_emit_tcp`` itself, handing the messages to
    its own sink, so that one table holds the flows of the C batch loop and of this decoder.
    It must have been made with this decoder's `sip_ports` (analyze_native.tcp_reassembler).
    """

    def __init__(
        self,
        dlt: int,
        stats: CaptureStats | None = None,
        make_record: RecordFactory = Record.from_bytes,
        sip_ports: frozenset[int] = SIP_PORTS,
        tcp: Any = None,
    ) -> None:
        self.dlt = dlt
        self.stats = stats if stats is not None else CaptureStats()
        self.make_record = make_record
        self.sip_ports = sip_ports
        self.addr = AddressText()
        self.defrag = Defragmenter(self.stats)
        self._tcp_packet: Callable[..., None] | None = None
        if tcp is None:
            self.tcp: Any = TcpReassembler(self.stats, StreamFramer, self._emit_tcp, is_foreign)
        else:
            self.tcp = tcp
            self._tcp_packet = tcp.packet
        self.out: list[Any] = []
        fast = _FAST_LINKS.get(dlt)
        self._fast: struct.Struct | None = None
        self._fast_et = False
        self._fast_ip = 0
        if fast is not None:
            et_off, ip_off = fast
            if et_off >= 0:
                pad = f"{et_off}x" if et_off else ""
                gap = ip_off - et_off - 2
                self._fast = struct.Struct(f"!{pad}H{gap}x{_IP_UDP}")
                self._fast_et = True
            else:
                self._fast = struct.Struct("!" + _IP_UDP)
            self._fast_ip = ip_off

    # ------------------------------------------------------------------ entry points
    def decode_batch(self, pkts: bytes, meta: bytes, nbytes: int = -1) -> list[Any]:
        """Decode one ``next_batch`` result (or some of its meta entries, whose captured bytes
        are ``nbytes``); returns the Records it completed."""
        out = self.out = []
        append = out.append
        stats = self.stats
        stats.packets += len(meta) >> 4
        stats.bytes += len(pkts) if nbytes < 0 else nbytes
        fast = self._fast
        fast_unpack = fast.unpack_from if fast is not None else None
        has_et = self._fast_et
        ipoff = self._fast_ip
        minlen = ipoff + 28
        ntoa = inet_ntoa  # cheaper than any cache for IPv4
        looks = start_line_match  # looks_like_sip without a Python call per packet
        make = self.make_record
        # optional factory shortcut (sipwatch.partition): route_ipv4(payload, packed src,
        # packed dst) -> the factory to call, or None when it would return None anyway
        route = getattr(make, "route_ipv4", None)
        sip_ports = self.sip_ports
        udp = self._udp_payload
        frame = self._frame
        n_sip = n_other = 0
        for sec, usec, off, caplen in _META.iter_unpack(meta):
            try:
                if fast_unpack is not None and caplen >= minlen:
                    if has_et:
                        et, vihl, tot, frag, proto, sb, db, sport, dport, ulen = fast_unpack(
                            pkts, off
                        )
                    else:
                        et = 0x0800
                        vihl, tot, frag, proto, sb, db, sport, dport, ulen = fast_unpack(pkts, off)
                    if (
                        et == 0x0800
                        and vihl == 0x45
                        and proto == 17
                        and not frag & 0x3FFF
                        and tot >= 28
                        and ulen >= 8
                        and dport != VXLAN_PORT
                    ):
                        p = off + ipoff + 28
                        end = off + ipoff + tot
                        if p - 8 + ulen < end:
                            end = p - 8 + ulen
                        if end > off + caplen:
                            end = off + caplen
                        payload = pkts[p:end]
                        if looks(payload, 0, 4096) is not None:
                            # one message without body (most requests and replies): no split
                            # (single_message() inlined)
                            if (
                                payload.endswith(b"\r\n\r\n")
                                and payload.find(b"\n\r\n") == len(payload) - 3
                                and payload.find(b"\n\n") < 0
                                and payload[0] != 13
                                and payload[0] != 10
                            ):
                                n_sip += 1
                                if route is not None:  # other share: skip before formatting
                                    mk = route(payload, sb, db)
                                    if mk is None:
                                        continue
                                else:
                                    mk = make
                                rec = mk(payload, sec + usec * 1e-6, "udp", ntoa(sb), sport,
                                         ntoa(db), dport)  # fmt: skip
                                if rec is not None:  # None: a partitioned run's other share
                                    append(rec)
                            else:
                                ts = sec + usec * 1e-6
                                udp(ts, ntoa(sb), sport, ntoa(db), dport, payload, "", "", True)
                        elif sport in sip_ports or dport in sip_ports:
                            ts = sec + usec * 1e-6
                            src = ntoa(sb)
                            dst = ntoa(db)
                            udp(ts, src, sport, dst, dport, payload, "", "", False)
                        else:
                            n_other += 1
                        continue
                frame(sec + usec * 1e-6, pkts, off, off + caplen)
            except (ShortPacket, IndexError, struct.error):
                stats.decode_errors += 1
            except Exception as exc:  # a decoder bug must not stop the capture
                stats.internal_errors += 1
                stats.warn(f"internal decoder error on a packet at {sec}.{usec:06d}: {exc!r}")
        stats.sip_messages += n_sip
        stats.non_sip += n_other
        return out

    def frame_at(self, ts: float, buf: bytes, start: int, end: int, sec: int, usec: int) -> None:
        """The general path for one frame of a batch, as decode_batch takes it (the C bulk
        path hands over the frames it does not decode itself); Records go to make_record."""
        try:
            self._frame(ts, buf, start, end)
        except (ShortPacket, IndexError, struct.error):
            self.stats.decode_errors += 1
        except Exception as exc:  # a decoder bug must not stop the capture
            self.stats.internal_errors += 1
            self.stats.warn(f"internal decoder error on a packet at {sec}.{usec:06d}: {exc!r}")

    def decode_frame(self, ts: float, frame: bytes) -> list[Any]:
        """Decode one frame (general path only); returns the Records it completed."""
        out = self.out = []
        self.stats.packets += 1
        self.stats.bytes += len(frame)
        try:
            self._frame(ts, frame, 0, len(frame))
        except (ShortPacket, IndexError, struct.error):
            self.stats.decode_errors += 1
        return out

    def flush(self) -> list[Any]:
        """End of capture: complete what TCP buffers still hold, drop unfinished fragments."""
        out = self.out = []
        self.tcp.flush()
        self.defrag.flush()
        return out

    # ------------------------------------------------------------------ layers
    def _frame(self, ts: float, buf: bytes, p: int, end: int) -> None:
        et, p, vlan = ll.decode_link(self.dlt, buf, p, end)
        self._l3(ts, buf, et, p, end, "", vlan, 0)

    def _l3(
        self, ts: float, buf: bytes, et: int, p: int, end: int, tunnel: str, vlan: str, depth: int
    ) -> None:
        if et == ll.ETH_IPV4:
            src, dst, proto, p, end, ident, foff, more = ipv4(buf, p, end)
            if foff or more:
                whole = self.defrag.add((src, dst, ident, proto), ts, foff, more, buf[p:end])
                if whole is None:
                    return
                buf, p, end = whole, 0, len(whole)
        elif et == ll.ETH_IPV6:
            src, dst, proto, p, end = ipv6(buf, p, end)
            proto, p = skip_ipv6_ext(buf, proto, p, end)
            if proto == FRAGMENT6:
                proto, foff, more, ident = ipv6_fragment(buf, p, end)
                p += 8
                if foff or more:
                    key = (src, dst, ident, proto)
                    whole = self.defrag.add(key, ts, foff, more, buf[p:end])
                    if whole is None:
                        return
                    buf, p, end = whole, 0, len(whole)
                proto, p = skip_ipv6_ext(buf, proto, p, end)
        else:
            self.stats.non_ip += 1
            return
        self._l4(ts, proto, buf, p, end, src, dst, tunnel, vlan, depth)

    def _l4(
        self,
        ts: float,
        proto: int,
        buf: bytes,
        p: int,
        end: int,
        src: bytes,
        dst: bytes,
        tunnel: str,
        vlan: str,
        depth: int,
    ) -> None:
        stats = self.stats
        if proto == 17:
            if end - p < 8:
                raise ShortPacket("short UDP header")
            sport, dport, ulen = _UDP.unpack_from(buf, p)
            if ulen >= 8 and p + ulen < end:
                end = p + ulen
            p += 8
            if dport == VXLAN_PORT and depth < MAX_TUNNEL_DEPTH:
                vx = vxlan(buf, p, end)
                if vx is not None:
                    stats.tunnels_vxlan += 1
                    vni, q = vx
                    t = f"vxlan:{vni} {self.addr(src)}>{self.addr(dst)}"
                    et, q, inner_vlan = ll.decode_link(ll.DLT_EN10MB, buf, q, end)
                    self._l3(ts, buf, et, q, end, _join(tunnel, t), inner_vlan or vlan, depth + 1)
                    return
            payload = buf[p:end]
            is_sip = looks_like_sip(payload)
            if is_sip or sport in self.sip_ports or dport in self.sip_ports:
                a = self.addr
                self._udp_payload(ts, a(src), sport, a(dst), dport, payload, tunnel, vlan, is_sip)
            else:
                stats.non_sip += 1
        elif proto == 6:
            self._tcp(ts, buf, p, end, src, dst, tunnel, vlan)
        elif proto == 47 and depth < MAX_TUNNEL_DEPTH:
            g = gre(buf, p, end)
            if g is None:
                stats.other_proto += 1
                return
            stats.tunnels_gre += 1
            et, key, q = g
            head = "gre" if key is None else f"gre:{key}"
            t = _join(tunnel, f"{head} {self.addr(src)}>{self.addr(dst)}")
            if et == ll.ETH_TEB:
                et, q, inner_vlan = ll.decode_link(ll.DLT_EN10MB, buf, q, end)
                vlan = inner_vlan or vlan
            self._l3(ts, buf, et, q, end, t, vlan, depth + 1)
        elif (proto == 4 or proto == 41) and depth < MAX_TUNNEL_DEPTH:
            stats.tunnels_other += 1
            t = _join(tunnel, f"ipip {self.addr(src)}>{self.addr(dst)}")
            self._l3(
                ts, buf, ll.ETH_IPV4 if proto == 4 else ll.ETH_IPV6, p, end, t, vlan, depth + 1
            )
        else:
            stats.other_proto += 1

    # ------------------------------------------------------------------ UDP
    def _udp_payload(
        self,
        ts: float,
        src: str,
        sport: int,
        dst: str,
        dport: int,
        payload: bytes,
        tunnel: str,
        vlan: str,
        is_sip: bool,
    ) -> None:
        stats = self.stats
        make = self.make_record
        if is_sip:
            msgs = [payload] if single_message(payload) else split_datagram(payload)
        elif not payload.strip(_BLANK):
            stats.keepalives += 1
            return
        elif is_foreign(payload):
            stats.non_sip += 1
            return
        else:
            stats.unparsable += 1
            msgs = [payload]
        stats.sip_messages += len(msgs)
        out = self.out
        for m in msgs:
            if tunnel or vlan:
                rec = make(m, ts, "udp", src, sport, dst, dport, tunnel=tunnel, vlan=vlan)
            else:
                rec = make(m, ts, "udp", src, sport, dst, dport)
            if rec is not None:  # None: a partitioned run's other share
                out.append(rec)

    # ------------------------------------------------------------------ TCP
    def _tcp(
        self,
        ts: float,
        buf: bytes,
        p: int,
        end: int,
        src: bytes,
        dst: bytes,
        tunnel: str,
        vlan: str,
    ) -> None:
        if end - p < 20:
            raise ShortPacket("short TCP header")
        sport, dport, seq, doff, flags = _TCP.unpack_from(buf, p)
        hl = (doff >> 4) * 4
        if hl < 20:
            raise ShortPacket("bad TCP header length")
        payload = buf[p + hl : end]
        if self._tcp_packet is not None:  # the C reassembler does the rest
            self._tcp_packet(ts, src, sport, dst, dport, tunnel, vlan, seq, flags, payload)
            return
        key = (src, sport, dst, dport, tunnel)
        reasm = self.tcp
        if key in reasm:
            reasm.segment(key, ts, seq, flags, payload)
            return
        sip_port = sport in self.sip_ports or dport in self.sip_ports
        if payload:
            if not (sip_port or looks_like_sip(payload)):
                self.stats.non_sip += 1
                return
        elif not (sip_port and flags & 0x02):  # only a SYN on a SIP port opens an empty flow
            return
        flow = Flow(self.addr(src), sport, self.addr(dst), dport, tunnel, vlan)
        reasm.open(key, ts, flow)
        reasm.segment(key, ts, seq, flags, payload)

    def _emit_tcp(self, flow: Flow, ts: float, msg: bytes) -> None:
        self.stats.sip_messages += 1
        if flow.tunnel or flow.vlan:
            rec = self.make_record(
                msg,
                ts,
                "tcp",
                flow.src,
                flow.sport,
                flow.dst,
                flow.dport,
                tunnel=flow.tunnel,
                vlan=flow.vlan,
            )
        else:
            rec = self.make_record(msg, ts, "tcp", flow.src, flow.sport, flow.dst, flow.dport)
        if rec is not None:  # None: a partitioned run's other share
            self.out.append(rec)
