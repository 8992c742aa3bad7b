"""TCP material for the tests of the C reassembler (test_native_tcp*.py): stream pieces,
segment sequences as hypothesis makes them, the encapsulations a segment can travel in, the
hand-built connections of every case tests/unit/test_capture_tcp.py knows, frames at the edges
of what the C batch loop decodes, and generated traffic made rough (split, coalesced,
reordered, retransmitted, lost)."""

from __future__ import annotations

import ipaddress
import random
import struct

from hypothesis import strategies as st

import pcapgen as g

W = 1 << 32
C4, S4, C6, S6 = "198.51.100.7", "192.0.2.1", "2001:db8::7", "2001:db8::1"


_TOKENS = [
    b"\r",
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b"SIP/2.0",
    b" 200",
    b" 200 OK",
    b"INVITE",
    b" sip:a@b",
    b"Content-Length: 5",
    b"content-length:12",
    b"l:2",
    b"L :0",
    b"x",
    b"0",
    b"\r\n\r\n",
    b"\n\n",
    b"HTTP/1.1",
    b"GET",
    b":",
    b"\x16\x03\x01",
]
_junk = st.lists(st.sampled_from(_TOKENS), max_size=12).map(b"".join) | st.binary(max_size=40)


@st.composite
def pieces(draw: st.DrawFn) -> bytes:
    """One part of a SIP-over-TCP stream: mostly messages, some of them damaged."""
    k = draw(st.integers(0, 13))
    i = draw(st.integers(0, 99))
    body = draw(st.sampled_from([b"", b"v=0\r\n", b"v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\n"]))
    method = draw(st.sampled_from(["INVITE", "REGISTER", "OPTIONS"]))
    req = g.sip_request(method, call_id=f"h{i}", body=body)
    if k <= 4:
        return req
    if k == 5:
        return g.sip_response(draw(st.sampled_from([200, 401, 404])), "X", call_id=f"h{i}")
    if k == 6:
        return req.replace(b"\r\n", b"\n")  # LF line ends
    if k == 7:  # Content-Length that does not fit the body, or none
        n = draw(st.sampled_from([0, 1, 3, 40, 200]))
        name = draw(st.sampled_from([b"Content-Length: ", b"l: ", b"L:", b"CONTENT-LENGTH :\t"]))
        cl = b"" if n == 200 else name + b"%d\r\n" % n
        return req.split(b"Content-Length")[0] + cl + b"\r\n" + draw(_junk)
    if k == 8:  # huge lengths: swallow the rest of the stream
        cl = draw(
            st.sampled_from(
                [
                    b"99999999999999",
                    b"9999999999999999999",
                    b"99999999999999999999",
                    b"70000",
                    b"65537",
                ]
            )
        )
        return req.replace(b"Content-Length: %d" % len(body), b"Content-Length: " + cl)
    if k == 9:
        return draw(st.sampled_from([b"\r\n", b"\r\n\r\n", b"\n"]))  # keep-alives
    if k == 10:
        return draw(_junk)
    if k == 11:
        return b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    if k == 12:  # a long header
        pad = b"a" * draw(st.sampled_from([50, 300, 2000]))
        return req.replace(b"Max-Forwards", b"X-Pad: " + pad + b"\r\nMax-Forwards")
    return req.replace(b"SIP/2.0\r\n", b"SIP/2.0 \r\n")  # odd start line


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(c for c in cuts if 0 < c < len(data))})
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


# encapsulations of one TCP segment; all but the tunnels keep the flow (its key has no VLAN)
ENCAPS = [
    "plain",
    "plain",
    "plain",
    "vlan",
    "qinq",
    "vxlan",
    "gre",
    "frag",
    "ext",
    "opts",
    "snap",
    "rawlink",
]


def tcp_frames(
    encap: str,
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    flags: int,
    payload: bytes,
    rnd: random.Random,
) -> list[bytes]:
    """Ethernet frames carrying one TCP segment the given way."""
    v6 = ":" in src
    seg = g.tcp(sport, dport, seq % W, payload, flags, src=src, dst=dst)
    ip = g.ip(src, dst, g.TCP, seg)
    if encap == "vlan":
        return [g.ether_of(ip, vlans=[100])]
    if encap == "qinq":
        return [g.ether_of(ip, vlans=[100, 200], qinq=True)]
    if encap == "vxlan":
        inner = g.ether_of(ip)
        return [g.ether_of(g.udp_packet("10.0.0.1", "10.0.0.2", 4789, 4789, g.vxlan(42, inner)))]
    if encap == "gre":
        proto = g.ETH_IPV6 if v6 else g.ETH_IPV4
        return [g.ether_of(g.ipv4("10.1.1.1", "10.1.1.2", g.GRE, g.gre(ip, proto, key=7)))]
    if encap == "frag":
        size = rnd.choice([8, 64, 512])
        if v6:
            frags = g.ipv6_fragments(src, dst, g.TCP, seg, size=size, ident=rnd.randrange(1 << 16))
        else:
            frags = g.ipv4_fragments(src, dst, g.TCP, seg, size=size, ident=rnd.randrange(1 << 16))
        if len(frags) > 1 and rnd.random() < 0.5:
            frags[0], frags[-1] = frags[-1], frags[0]
        return [g.ether_of(f) for f in frags]
    if encap == "ext":
        if v6:
            return [g.ether_of(g.ipv6(src, dst, 0, g.ipv6_ext(g.TCP) + seg))]
        return [g.ether_of(ip)]
    if encap == "opts" and not v6:
        return [g.ether_of(g.ipv4(src, dst, g.TCP, seg, options=b"\x01\x01\x01\x01"))]
    if encap == "snap":  # captured short: the IP length says more than the frame holds
        frame = g.ether_of(ip)
        return [frame[: max(14, len(frame) - rnd.choice([1, 5, len(payload) + 3]))]]
    return [g.ether_of(ip)]


@st.composite
def scenarios(draw: st.DrawFn, max_flows: int = 4) -> list[tuple[float, str, tuple]]:
    """A capture's TCP segments: a few flows, each a stream of pieces cut into segments that
    are reordered, duplicated, overlapped, lost; SYN, FIN, RST, restarts, jumps; UDP messages
    among them; encapsulations varied per segment. Returns (ts, encap, segment) events; a
    segment is (src, dst, sport, dport, seq, flags, payload) or ("udp", payload)."""
    flows = []
    for f in range(draw(st.integers(1, max_flows))):
        v6 = draw(st.booleans())
        cli, srv = (f"2001:db8::{f + 7:x}", S6) if v6 else (f"198.51.100.{f + 7}", S4)
        sport = draw(st.sampled_from([40000 + f, 40000, 5060]))
        dport = draw(st.sampled_from([5060, 5060, 5061, 8888]))
        if draw(st.booleans()):
            cli, srv, sport, dport = srv, cli, dport, sport  # server to client
        pkts: list[tuple[int, int, bytes]] = []
        for _conn in range(draw(st.integers(1, 2))):
            stream = b"".join(draw(st.lists(pieces(), min_size=1, max_size=5)))
            isn = draw(st.integers(0, W - 1) | st.integers(W - 700, W - 1))
            if draw(st.integers(0, 3)) == 0:
                pkts.append((isn, g.SYN, b""))
            elif draw(st.integers(0, 5)) == 0:  # data on the SYN (TFO)
                k = draw(st.integers(0, len(stream)))
                pkts.append((isn, g.SYN, stream[:k]))
                stream, isn = stream[k:], isn + k
            cuts = draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=14))
            pos = 0
            for piece in cut(stream, cuts):
                seq = isn + 1 + pos
                pos += len(piece)
                op = draw(st.sampled_from(["ok"] * 8 + ["dup", "drop", "overlap", "jump"]))
                if op == "drop":
                    continue
                if op == "jump":  # far ahead: another connection without SYN
                    seq += draw(st.sampled_from([1 << 24, (1 << 24) + 1, 1 << 31]))
                pkts.append((seq, 0x18, piece))
                if op == "dup":
                    pkts.append((seq, 0x18, piece))
                elif op == "overlap" and pos > len(piece):
                    back = draw(st.integers(1, pos - len(piece)))
                    pkts.append((seq - back, 0x18, stream[pos - len(piece) - back : pos]))
            end = draw(st.sampled_from(["none", "fin", "rst", "finack", "on_data"]))
            if end == "on_data" and pkts and pkts[-1][2]:  # FIN on the last data segment
                pkts[-1] = (pkts[-1][0], pkts[-1][1] | g.FIN, pkts[-1][2])
            elif end == "on_data":
                pass
            elif end != "none":
                flags = {"fin": g.FIN, "rst": g.RST, "finack": g.FIN | g.ACK | g.PSH}[end]
                pkts.append((isn + 1 + pos, flags, b""))
        syns = [p for p in pkts if p[1] & g.SYN]
        if syns and draw(st.integers(0, 3)) == 0:  # a SYN sent again, later
            pkts.insert(draw(st.integers(0, len(pkts))), syns[-1])
        for _ in range(draw(st.integers(0, 4))):  # reorder
            if len(pkts) > 1:
                i = draw(st.integers(0, len(pkts) - 2))
                pkts[i], pkts[i + 1] = pkts[i + 1], pkts[i]
        flows.append([(cli, srv, sport, dport, seq, flags, data) for seq, flags, data in pkts])
    events = []
    t = 1700000000.0
    while any(flows):
        live = [f for f in flows if f]
        fl = live[draw(st.integers(0, len(live) - 1))]
        t += draw(st.sampled_from([0.0, 0.001, 0.25, 3.0, 1000.0]))
        if draw(st.integers(0, 9)) == 0:
            events.append((t, "plain", ("udp", g.sip_request("OPTIONS", call_id=f"u{t}"))))
        encap = draw(st.sampled_from(ENCAPS))
        events.append((t, encap, fl.pop(0)))
    return events


def to_frames(events: list, seed: int = 0) -> list[tuple[float, bytes]]:
    rnd = random.Random(seed)
    out = []
    for ts, encap, seg in events:
        if seg[0] == "udp":
            out.append((ts, g.ether_of(g.udp_packet(C4, S4, 5060, 5060, seg[1]))))
            continue
        for frame in tcp_frames(encap, *seg, rnd):
            out.append((ts, frame))
    return out


def odd_frames(dlt: int) -> list[bytes]:
    """Frames at the edges of what the C batch loop decodes itself; the Python decoder takes
    (and counts) whatever it declines."""
    msg = msgs(1)[0]
    seg = g.tcp(40000, 5060, 1, msg, src=C4, dst=S4)
    seg6 = g.tcp(40000, 5060, 1, msg, src=C6, dst=S6)
    ip4, ip6 = g.ipv4(C4, S4, g.TCP, seg), g.ipv6(C6, S6, g.TCP, seg6)
    bad = [
        ip4,
        ip4[:20] + seg[:12] + bytes([0x40]) + seg[13:],  # data offset 4
        ip4[:20] + seg[:12] + bytes([0xF0]) + seg[13:30],  # header longer than the packet
        ip4[:20] + seg[:15],  # TCP header cut short
        ip4[:2] + struct.pack("!H", 2000) + ip4[4:],  # IP length beyond the frame
        bytes([0x44]) + ip4[1:],  # header length 16
        ip4[:2] + struct.pack("!H", 18) + ip4[4:],  # total length below the header's
        bytes([0x46]) + ip4[1:20] + b"\x01\x01\x01\x01" + seg,  # options
        ip6[:4] + b"\0\0" + ip6[6:],  # payload length 0 (jumbogram)
        ip6[:4] + struct.pack("!H", 3000) + ip6[6:],
        ip6[:4] + struct.pack("!H", 30) + ip6[6:],
        ip6[:40] + seg6[:10],
        bytes([0x50]) + ip4[1:],  # version 5
        b"",
    ]
    frames = []
    for ip in bad:
        if dlt == 1:
            frames.append(g.ether(ip, g.ETH_IPV6 if ip[:1] == b"\x60" else g.ETH_IPV4))
            frames.append(g.ether(ip, g.ETH_IPV4 if ip[:1] == b"\x60" else g.ETH_IPV6))
        elif dlt == 113:
            frames.append(g.sll(ip, g.ETH_IPV6 if ip[:1] == b"\x60" else g.ETH_IPV4))
            hdr = g.sll(ip)  # a netlink frame (ARPHRD_NETLINK) is not IP
            frames.append(hdr[:2] + struct.pack("!H", 824) + hdr[4:])
        else:
            frames.append(ip)
    return frames


def msgs(n: int, body: bytes = b"v=0\r\n", tag: str = "m") -> list[bytes]:
    return [
        g.sip_request("INVITE", f"sip:0097255512{i % 10}@{S4}", call_id=f"{tag}{i}", body=body)
        for i in range(n)
    ]


def conn(
    stream: bytes,
    cuts: list[int] | None = None,
    order: list[int] | None = None,
    isn: int = 1000,
    syn: bool = True,
    end: int = g.FIN | g.ACK,
    src: str = C4,
    dst: str = S4,
    sport: int = 40000,
    dport: int = 5060,
    t: float = 100.0,
    step: float = 0.01,
    encaps: list[str] | None = None,
) -> list:
    """Events for one connection: SYN, the stream cut at `cuts` (sent in `order`), the end."""
    segs = []
    pos = 0
    for piece in cut(stream, cuts or []):
        segs.append((src, dst, sport, dport, isn + 1 + pos, 0x18, piece))
        pos += len(piece)
    if order is not None:
        segs = [segs[i] for i in order]
    if syn:
        segs.insert(0, (src, dst, sport, dport, isn, g.SYN, b""))
    if end:
        segs.append((src, dst, sport, dport, isn + 1 + pos, end, b""))
    return [
        (t + i * step, (encaps or ["plain"])[i % len(encaps or ["plain"])], s)
        for i, s in enumerate(segs)
    ]


def cases() -> dict[str, list]:
    m = msgs(6)
    s = b"".join(m)
    big = msgs(1, body=b"v=0\r\n" * 300, tag="big")[0]
    c: dict[str, list] = {}
    c["several_per_segment"] = conn(s)
    c["one_over_many"] = conn(big, list(range(5, len(big), 97)))
    c["straddling"] = conn(s, list(range(37, len(s), 53)))
    c["out_of_order"] = conn(s, [50, 260, 400, 600], [0, 2, 1, 4, 3])
    c["retransmissions_overlaps"] = conn(s, [120, 300], [0, 2, 1]) + [
        (100.015, "plain", (C4, S4, 40000, 5060, 1001, 0x18, s[:120])),
        (100.025, "plain", (C4, S4, 40000, 5060, 1001 + 100, 0x18, s[100:350])),
        (100.035, "plain", (C4, S4, 40000, 5060, 1001 + 110, 0x18, s[110:200])),
    ]
    lost = conn(s, [len(m[0]) + 30, len(m[0]) + 90])
    del lost[2]
    c["lost_segment"] = lost
    hole = conn(s * 15, list(range(200, len(s) * 15, 60)), end=0)
    del hole[3]  # 64+ segments wait behind the hole: it is given up
    c["reorder_buffer_full"] = hole
    huge = msgs(3, body=b"x" * 60000, tag="huge")
    hs = b"".join(huge)
    c["ooo_bytes_full"] = conn(hs, [100, 40000, 80000, 120000, 160000], [0, 2, 3, 4, 5, 1])
    c["mid_stream_no_syn"] = conn(s, [40, 500], syn=False)[1:]
    c["rst_and_tfo"] = conn(s, [300], end=g.RST) + [
        (200.0, "plain", (C4, S4, 40001, 5060, 5000, g.SYN, m[0])),
        (200.1, "plain", (C4, S4, 40001, 5060, 5001 + len(m[0]), 0x18, m[1])),
    ]
    c["restart_same_ports"] = conn(s[:700], [300], end=0) + conn(s, [200], isn=77777, t=101.0)
    c["far_jump"] = conn(s[:500], end=0) + conn(s, isn=1000 + (1 << 24) + 50, syn=False, t=101.0)
    c["seq_wrap"] = conn(s, list(range(90, len(s), 90)), isn=W - 500)
    tls = b"\x16\x03\x01\x00\x50" + b"\x01" * 80
    http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    c["foreign_and_junk"] = (
        conn(tls + tls, [20], dport=5061)
        + conn(http, sport=40010, t=101.0)
        + conn(http + m[0], sport=40011, dport=80, t=102.0)
        + conn(s, [100], sport=40012, dport=8888, t=103.0)
        + conn(b"\x00\x01junk\r\nmore junk\r\n" + s, [9], sport=40013, t=104.0)
        + conn(b"junk without SIP", sport=40014, dport=8888, t=105.0)
    )
    c["foreign_with_fin"] = [
        (100.0, "plain", (C4, S4, 40050, 5060, 7, g.SYN, b"")),
        (100.1, "plain", (C4, S4, 40050, 5060, 8, g.FIN | g.PSH | g.ACK, tls)),
        (100.2, "plain", (C4, S4, 40050, 5060, 9, 0x18, m[0])),
        (100.3, "plain", (C4, S4, 40050, 5060, 900, g.SYN, b"")),
        (100.4, "plain", (C4, S4, 40050, 5060, 901, 0x18, m[1])),
        (100.5, "plain", (C4, S4, 40051, 5061, 1, g.FIN | g.PSH | g.ACK, http + m[0])),
        (100.6, "plain", (C4, S4, 40051, 5061, 1 + len(http + m[0]), g.RST, m[1])),
        (100.7, "plain", (C4, S4, 40051, 5061, 900, 0x18, m[2])),
    ]
    head = b"INVITE sip:1@x SIP/2.0\r\nX: " + b"y" * 70000 + b"\r\n\r\n"
    nolen = m[0].replace(b"Content-Length: 5\r\n", b"")
    c["content_length"] = (
        conn(nolen + m[1], [30], sport=40020)
        + conn(m[0].replace(b"Length: 5", b"Length: 999999999999999") + m[1], sport=40021, t=101.0)
        + conn(msgs(1, body=b"z" * 70000, tag="ob")[0] + m[2], [1000, 50000], sport=40022, t=102.0)
        + conn(head + m[3], [30000, 65000], sport=40023, t=103.0)
        + conn(
            m[0].replace(b"Length: 5", b"Length: 99999999999999999999") + m[1], sport=40024, t=104.0
        )
        + conn(m[0][:-20], sport=40025, t=105.0, end=0)  # unfinished at the end
    )
    c["idle_expiry"] = (
        conn(s, [100], end=0)
        + conn(s[:300], sport=40030, t=5000.0, end=0)
        + conn(s, sport=40031, t=5000.5)
    )
    mixed = ["plain", "vlan", "frag", "plain", "qinq", "opts", "frag", "snap"]
    c["paths_mixed_in_one_flow"] = conn(s, list(range(60, len(s), 120)), encaps=mixed)
    c["tunnels"] = conn(s, [100, 400], encaps=["vxlan", "gre", "vxlan"]) + conn(
        s, [100, 400], encaps=["plain", "vxlan", "gre"], t=101.0
    )
    c["ipv6"] = conn(
        s,
        list(range(70, len(s), 150)),
        src=C6,
        dst=S6,
        encaps=["plain", "ext", "frag", "vlan", "plain"],
    )
    resp = g.sip_response(200, "OK", call_id="m0")
    c["both_directions_and_udp"] = (
        conn(s, [333])
        + conn(resp * 3, [10], src=S4, dst=C4, sport=5060, dport=40000, t=100.005)
        + [(100.015, "plain", ("udp", m[0]))]
    )
    return c


CASES = cases()


def roughen(data: bytes, seed: int) -> list[tuple[float, bytes]]:
    """bench/gen_capture.py's TCP (one message per segment) made real: segments split and
    coalesced, reordered, retransmitted, lost; everything else as it is."""
    if data[:4] != b"\xd4\xc3\xb2\xa1":
        raise ValueError("a classic little-endian microsecond pcap (gen_capture.py) expected")
    rnd = random.Random(seed)
    out: list[tuple[float, bytes]] = []
    pending: dict[tuple, tuple[int, bytes]] = {}  # a segment held back to coalesce
    pos = 24
    while pos + 16 <= len(data):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
        ts = sec + usec * 1e-6
        et = struct.unpack_from("!H", frame, 12)[0]
        v6 = et == 0x86DD
        p = 14 + (40 if v6 else (frame[14] & 15) * 4)
        proto = frame[14 + 6] if v6 else frame[14 + 9]
        if proto != 6:
            out.append((ts, frame))
            continue
        raw_src, raw_dst = (frame[22:38], frame[38:54]) if v6 else (frame[26:30], frame[30:34])
        src, dst = str(ipaddress.ip_address(raw_src)), str(ipaddress.ip_address(raw_dst))
        sport, dport, seq = struct.unpack_from("!HHI", frame, p)
        payload = frame[p + (frame[p + 12] >> 4) * 4 :]
        key = (src, dst, sport, dport)
        if key in pending:
            pseq, pdata = pending.pop(key)
            if (pseq + len(pdata)) % W == seq:
                seq, payload = pseq, pdata + payload
            else:
                out.append((ts, g.ether_of(g.tcp_packet(src, dst, sport, dport, pseq, pdata))))
        r = rnd.random()
        if r < 0.15:
            pending[key] = (seq, payload)
            continue
        pieces_ = cut(payload, [rnd.randrange(1, len(payload)) for _ in range(rnd.randrange(3))])
        segs, off = [], 0
        for piece in pieces_:
            segs.append(((seq + off) % W, piece))
            off += len(piece)
        if len(segs) > 1 and rnd.random() < 0.3:
            segs[0], segs[1] = segs[1], segs[0]
        if rnd.random() < 0.1:
            segs.append(segs[0])
        if rnd.random() < 0.02:
            del segs[-1]
        for s, piece in segs:
            out.append((ts, g.ether_of(g.tcp_packet(src, dst, sport, dport, s, piece))))
    for (src, dst, sport, dport), (s, piece) in pending.items():
        out.append((out[-1][0], g.ether_of(g.tcp_packet(src, dst, sport, dport, s, piece))))
    return out
