"""Generate a realistic SIP attack capture (classic pcap) for benchmarks.

What a honeypot on a few public addresses sees over several days: SIPVicious-style OPTIONS scans
(tens of thousands of sources, most sending a handful of packets), extension scans (REGISTER to many
user parts: 401 for existing, 404 for the rest), password guessing (digest REGISTERs: 403, now and
then 200), INVITEs to international and premium numbers with SDP bodies, calls to extensions, and
a few malformed messages. Ethernet/IPv4/UDP mostly, with a share of TCP and IPv6.

Every packet written is a SIP message with a valid start line, so `tshark -Y sip` must count
exactly --packets of them (the benchmark checks this). The file is written as it is generated
(memory stays flat) and is the same for the same --seed. A JSON manifest next to it
(OUT.json) counts what was written: methods, status codes, transports, sources.

    python bench/gen_capture.py --packets 1000000 --out bench/out/attack-1m.pcap
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import ipaddress
import json
import random
import struct
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

GENERATOR_VERSION = 1

# --- wire helpers ----------------------------------------------------------------------------

_LITTLE = sys.byteorder == "little"
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # LINKTYPE_ETHERNET
_REC = struct.Struct("<IIII")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_TCP = struct.Struct("!HHIIBBHHH")

MAC_HONEYPOT = bytes.fromhex("020000005060")
MAC_ROUTER = bytes.fromhex("02000000fe01")
ETH_IN4 = MAC_HONEYPOT + MAC_ROUTER + b"\x08\x00"
ETH_OUT4 = MAC_ROUTER + MAC_HONEYPOT + b"\x08\x00"
ETH_IN6 = MAC_HONEYPOT + MAC_ROUTER + b"\x86\xdd"
ETH_OUT6 = MAC_ROUTER + MAC_HONEYPOT + b"\x86\xdd"


def _fold(s: int) -> int:
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _sum16(data: bytes) -> int:
    """Ones'-complement sum of big-endian 16-bit words (summing native words then swapping
    bytes gives the same result, and is much faster than unpacking big-endian)."""
    if len(data) & 1:
        data += b"\x00"
    s = _fold(sum(memoryview(data).cast("H")))
    if _LITTLE:
        s = ((s & 0xFF) << 8) | (s >> 8)
    return s


def _addr_sum(packed: bytes) -> int:
    return sum(int.from_bytes(packed[i : i + 2], "big") for i in range(0, len(packed), 2))


@dataclass(slots=True)
class Host:
    text: str  # address in text form
    packed: bytes
    v6: bool
    psum: int  # its 16-bit word sum for pseudo-header checksums
    uri_host: str  # "[2001:db8::1]" for IPv6

    @classmethod
    def make(cls, text: str) -> Host:
        ip = ipaddress.ip_address(text)
        packed = ip.packed
        v6 = ip.version == 6
        return cls(str(ip), packed, v6, _addr_sum(packed), f"[{ip}]" if v6 else str(ip))


# --- the honeypot ----------------------------------------------------------------------------

HONEYPOTS_V4 = ["192.0.2.10", "198.51.100.20", "203.0.113.30", "203.0.113.31"]
HONEYPOTS_V6 = ["2001:db8:5060::10"]
# extensions that exist on the honeypot (401 to an unauthenticated REGISTER); others get 404
EXISTING = {str(n) for n in [*range(100, 121), *range(200, 206), *range(1000, 1011), 2000, 6001]}
EXISTING |= {"admin", "test", "office", "reception"}
EXISTING_SORTED = sorted(EXISTING)
NUMERIC_EXISTING = sorted(e for e in EXISTING if e.isdigit())
SERVER_UA = "Asterisk PBX 18.12.1"
REALM = "asterisk"
ALLOW = "INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE"

# --- attacker vocabulary ---------------------------------------------------------------------

SCANNER_UAS = [
    ("friendly-scanner", 60),
    ("sipcli/v1.8", 8),
    ("sundayddr", 5),
    ("VaxSIPUserAgent/3.1", 5),
    ("pplsip", 4),
    ("Cisco-SIPGateway/IOS-12.x", 3),
    ("sipsak 0.9.7", 3),
    ("Linksys/SPA942-6.1.5", 2),
    ("", 5),  # no User-Agent at all
    ("Z 5.5.13 v2.10.18.5", 2),
    ("PortSIP VoIP SDK 11.2", 3),
]
FRAUD_UAS = [
    ("friendly-scanner", 10),
    ("sipcli/v1.8", 15),
    ("VaxSIPUserAgent/3.1", 15),
    ("Asterisk PBX 1.6.2.11", 10),
    ("PortSIP VoIP SDK 11.2", 10),
    ("Zoiper rv2.8.36", 8),
    ("eyeBeam release 1011d stamp 40820", 7),
    ("MicroSIP/3.20.7", 8),
    ("X-Lite release 5.8.3", 7),
    ("", 10),
]
DICT_USERS = [
    "admin", "test", "guest", "user", "sip", "voip", "office", "support", "sales", "reception",
    "operator", "info", "root", "asterisk", "fax", "1", "12", "123", "1234", "12345", "0", "00",
    "demo", "phone", "pbx", "trunk", "server", "default",
]  # fmt: skip
PASSWORDS = [
    "1234", "12345", "123456", "password", "admin", "pass", "secret", "0000", "1111", "123",
    "abc123", "qwerty", "voip", "sip", "asterisk", "test", "changeme", "letmein", "pa55w0rd",
    "111111", "000000", "666666", "987654321", "1q2w3e", "P@ssw0rd",
]  # fmt: skip
# (dial prefix attackers probe, number generator) pairs; numbers are realistic formats
DIAL_PREFIXES = ["", "", "", "0", "9", "00", "000", "90", "900", "1", "8", "+", "011", "9011"]
TARGET_NUMBERS = [
    ("00972", 9),  # Palestine / Israel, the classic toll-fraud destination
    ("00970", 9),
    ("011972", 9),
    ("+88213", 8),  # Iridium satellite
    ("+88216", 8),
    ("00881", 9),
    ("0900", 7),  # premium rate
    ("+44", 10),
    ("0044", 10),
    ("00216", 8),  # Tunisia
    ("00371", 8),  # Latvia
    ("00370", 8),
    ("00252", 8),  # Somalia
    ("+1876", 7),  # Jamaica
    ("01148", 9),
    ("00", 11),
]
INVITE_FINALS = [(403, 55), (404, 15), (503, 15), (486, 5), (200, 10)]
REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    407: "Proxy Authentication Required",
    486: "Busy Here",
    503: "Service Unavailable",
}


def _weighted(pairs: list[tuple]) -> tuple[list, list[int]]:
    return [p[0] for p in pairs], [p[1] for p in pairs]


SCANNER_UA_VALUES, SCANNER_UA_WEIGHTS = _weighted(SCANNER_UAS)
FRAUD_UA_VALUES, FRAUD_UA_WEIGHTS = _weighted(FRAUD_UAS)
FINAL_VALUES, FINAL_WEIGHTS = _weighted(INVITE_FINALS)

# --- sources and campaigns -------------------------------------------------------------------


@dataclass(slots=True)
class Source:
    host: Host
    tcp: bool
    sport: int
    ttl: int
    ipid: int


def _public_v4(rng: random.Random) -> str:
    while True:
        a = rng.getrandbits(32)
        ip = ipaddress.IPv4Address(a)
        if ip.is_global and not ip.is_multicast:
            return str(ip)


def _public_v6(rng: random.Random) -> str:
    # 2000::/3 global unicast; a /48 per attacker looks like a hosting provider's range
    return str(ipaddress.IPv6Address((1 << 125) | rng.getrandbits(125)))


@dataclass(slots=True)
class Flow:
    """One attacker talking to one honeypot address: addressing and TCP sequence state."""

    src: Source
    dst: Host
    sport: int
    dport: int
    tcp: bool
    seq_in: int = 0  # next TCP sequence number attacker -> honeypot
    seq_out: int = 0
    hp_ipid: int = 0

    @property
    def transport(self) -> str:
        return "TCP" if self.tcp else "UDP"


@dataclass(slots=True)
class Stats:
    packets: int = 0
    kinds: Counter = field(default_factory=Counter)  # "OPTIONS", "401", ...
    head: Counter = field(default_factory=Counter)  # same for the first `head_size` packets
    head_size: int = 100_000
    transports: Counter = field(default_factory=Counter)
    campaigns: Counter = field(default_factory=Counter)
    malformed: int = 0
    sources: set = field(default_factory=set)
    first_ts: float = 0.0
    last_ts: float = 0.0


# A campaign is a generator of steps: (gap to its next step, [(delay, inbound, label, payload)])
Step = tuple[float, list[tuple[float, bool, str, bytes]]]


class Gen:
    """SIP message builders and the attack campaigns, all driven by one seeded RNG."""

    def __init__(self, rng: random.Random, sources: int) -> None:
        self.rng = rng
        self.hp4 = [Host.make(a) for a in HONEYPOTS_V4]
        self.hp6 = [Host.make(a) for a in HONEYPOTS_V6]
        self.n_sources = sources
        self.pool: list[Source | None] = [None] * sources  # sources are made on first use
        self.next_fresh = 0
        self.used: list[int] = []

    # --- identifiers ---
    def branch(self) -> str:
        return f"z9hG4bK{self.rng.getrandbits(64):016x}"

    def hextag(self) -> str:
        return f"{self.rng.getrandbits(32):08x}"

    def sv_tag(self, data: str) -> str:
        # SIPVicious hides what it probes in the From tag: hex of "<data>\x01<random>"
        return (data.encode() + b"\x01" + str(self.rng.getrandbits(32)).encode()).hex()

    def callid(self, src: Source, sipvicious: bool) -> str:
        if sipvicious:
            return str(self.rng.getrandbits(40))
        return f"{self.rng.getrandbits(96):024x}@{src.host.uri_host}"

    # --- sources ---
    def pick_source(self) -> tuple[int, Source]:
        rng = self.rng
        if self.next_fresh < self.n_sources and (not self.used or rng.random() < 0.85):
            idx = self.next_fresh
            self.next_fresh += 1
            self.used.append(idx)
        else:
            idx = rng.choice(self.used)
        src = self.pool[idx]
        if src is None:
            v6 = rng.random() < 0.05
            host = Host.make(_public_v6(rng) if v6 else _public_v4(rng))
            r = rng.random()
            sport = 5060 if r < 0.35 else 5061 if r < 0.40 else rng.randrange(10000, 65536)
            src = Source(
                host,
                rng.random() < 0.08,
                sport,
                rng.choice([64, 128, 255]) - rng.randrange(8, 30),
                rng.getrandbits(16),
            )
            self.pool[idx] = src
        return idx, src

    def flow(self, src: Source) -> Flow:
        rng = self.rng
        dst = rng.choice(self.hp6) if src.host.v6 else rng.choice(self.hp4)
        sport = src.sport if not src.tcp else rng.randrange(32768, 61000)
        return Flow(
            src,
            dst,
            sport,
            5060,
            src.tcp,
            rng.getrandbits(32),
            rng.getrandbits(32),
            rng.getrandbits(16),
        )

    # --- messages ---
    def request(
        self,
        fl: Flow,
        method: str,
        ruri: str,
        from_user: str,
        from_tag: str,
        to_user: str,
        cid: str,
        cseq: int,
        ua: str,
        *,
        branch: str | None = None,
        to_tag: str = "",
        extra: str = "",
        body: str = "",
        display: bool = True,
    ) -> tuple[bytes, tuple[str, str, str, str]]:
        """Build a request; also return the header lines a response echoes."""
        s = fl.src.host.uri_host
        d = fl.dst.uri_host
        via = f"Via: SIP/2.0/{fl.transport} {s}:{fl.sport};branch={branch or self.branch()};rport"
        dn = f'"{from_user}" ' if display else ""
        frm = f"From: {dn}<sip:{from_user}@{d}>;tag={from_tag}"
        to = f"To: {dn if from_user == to_user else ''}<sip:{to_user}@{d}>"
        if to_tag:
            to += f";tag={to_tag}"
        cs = f"CSeq: {cseq} {method}"
        lines = [
            f"{method} {ruri} SIP/2.0",
            via,
            "Max-Forwards: 70",
            frm,
            to,
            f"Call-ID: {cid}",
            cs,
            f"Contact: <sip:{from_user}@{s}:{fl.sport}>",
        ]
        if ua:
            lines.append(f"User-Agent: {ua}")
        if extra:
            lines.append(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        text = "\r\n".join(lines) + "\r\n\r\n" + body
        return text.encode(), (via, frm, to, cs, cid)

    def response(
        self, fl: Flow, echo: tuple[str, ...], code: int, to_tag: str, extra: str = ""
    ) -> bytes:
        via, frm, to, cs, cid = echo
        via = via.replace(";rport", f";rport={fl.sport};received={fl.src.host.text}")
        if ";tag=" not in to:
            to = f"{to};tag={to_tag}"
        lines = [
            f"SIP/2.0 {code} {REASONS[code]}",
            via,
            frm,
            to,
            f"Call-ID: {cid}",
            cs,
            f"Server: {SERVER_UA}",
        ]
        if extra:
            lines.append(extra)
        lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def challenge(self, proxy: bool) -> tuple[str, str]:
        nonce = f"{self.rng.getrandbits(128):032x}"
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        return nonce, f'{name}: Digest algorithm=MD5, realm="{REALM}", nonce="{nonce}", qop="auth"'

    def credentials(
        self, user: str, password: str, method: str, uri: str, nonce: str, proxy: bool
    ) -> str:
        cnonce = f"{self.rng.getrandbits(32):08x}"
        ha1 = hashlib.md5(f"{user}:{REALM}:{password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
        resp = hashlib.md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}".encode()).hexdigest()
        name = "Proxy-Authorization" if proxy else "Authorization"
        return (
            f'{name}: Digest username="{user}", realm="{REALM}", nonce="{nonce}", '
            f'uri="{uri}", response="{resp}", algorithm=MD5, cnonce="{cnonce}", qop=auth, '
            "nc=00000001"
        )

    def sdp(self, fl: Flow) -> str:
        h = fl.src.host
        ipv = "IP6" if h.v6 else "IP4"
        sid = self.rng.getrandbits(31)
        port = self.rng.randrange(10000, 60000, 2)
        return (
            f"v=0\r\no=- {sid} {sid} IN {ipv} {h.text}\r\ns=-\r\nc=IN {ipv} {h.text}\r\n"
            f"t=0 0\r\nm=audio {port} RTP/AVP 0 8 18 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:18 G729/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
            "a=sendrecv\r\n"
        )

    def rtt(self) -> float:
        return 0.0002 + self.rng.random() * 0.002  # the honeypot answers within a few ms

    # --- campaigns ---
    def options_scan(self, src: Source) -> Iterator[Step]:
        rng = self.rng
        ua = rng.choices(SCANNER_UA_VALUES, SCANNER_UA_WEIGHTS)[0]
        sv = ua == "friendly-scanner"
        hosts = self.hp6 if src.host.v6 else self.hp4
        targets = rng.sample(hosts, rng.randint(1, len(hosts)))
        rounds = 1 if rng.random() < 0.85 else rng.randint(2, 6)
        for r in range(rounds):
            for i, dst in enumerate(targets):
                fl = self.flow(src)
                fl.dst = dst
                user = "100" if sv else rng.choice(["100", "1000", "sip", "test", "s"])
                tag = self.sv_tag(dst.text) if sv else self.hextag()
                ruri = f"sip:{user}@{dst.uri_host}"
                req, echo = self.request(
                    fl,
                    "OPTIONS",
                    ruri,
                    user,
                    tag,
                    user,
                    self.callid(src, sv),
                    1,
                    ua,
                    extra="Accept: application/sdp",
                )
                resp = self.response(
                    fl, echo, 200, self.hextag(), f"Allow: {ALLOW}\r\nAccept: application/sdp"
                )
                last = i == len(targets) - 1
                gap = rng.uniform(600, 7200) if last and r < rounds - 1 else rng.uniform(0.001, 0.5)
                yield gap, [(0.0, True, "OPTIONS", req, fl), (self.rtt(), False, "200", resp, fl)]

    def _extensions(self, count: int) -> list[str]:
        rng = self.rng
        style = rng.random()
        if style < 0.5:
            start = rng.choice([100, 200, 1000, 2000, 6000])
            return [str(start + i) for i in range(count)]
        if style < 0.8:
            width = rng.choice([3, 4])
            return [str(rng.randrange(10 ** (width - 1), 10**width)) for _ in range(count)]
        return [rng.choice(DICT_USERS) for _ in range(count)]

    def ext_scan(self, src: Source, count: int | None = None) -> Iterator[Step]:
        """svwar: probe user parts without credentials; 401 (or 200) = exists, 404 = not."""
        rng = self.rng
        fl = self.flow(src)
        ua = "friendly-scanner" if rng.random() < 0.85 else rng.choice(SCANNER_UA_VALUES[1:8])
        sv = ua == "friendly-scanner"
        method = rng.choices(["REGISTER", "INVITE", "OPTIONS"], [80, 10, 10])[0]
        if count is None:
            count = min(int(rng.paretovariate(1.3) * 15), 3000)
        exts = [str(rng.getrandbits(32))] + self._extensions(count)  # svwar's not-found probe
        d = fl.dst.uri_host
        for ext in exts:
            ruri = f"sip:{d}" if method == "REGISTER" else f"sip:{ext}@{d}"
            tag = self.sv_tag(ext) if sv else self.hextag()
            body = self.sdp(fl) if method == "INVITE" else ""
            req, echo = self.request(
                fl, method, ruri, ext, tag, ext, self.callid(src, sv), 1, ua, body=body
            )
            out = [(0.0, True, method, req, fl)]
            if ext in EXISTING:
                if method == "OPTIONS":
                    out.append(
                        (self.rtt(), False, "200", self.response(fl, echo, 200, self.hextag()))
                    )
                else:
                    proxy = method == "INVITE"
                    _, chal = self.challenge(proxy)
                    code = 407 if proxy else 401
                    out.append(
                        (
                            self.rtt(),
                            False,
                            str(code),
                            self.response(fl, echo, code, self.hextag(), chal),
                        )
                    )
            else:
                out.append((self.rtt(), False, "404", self.response(fl, echo, 404, self.hextag())))
            out = [(t, inb, lab, p, fl) for t, inb, lab, p, *_ in out]
            yield rng.uniform(0.005, 0.06), out

    def crack(
        self, src: Source, ext: str | None = None, count: int | None = None, find: bool = False
    ) -> Iterator[Step]:
        """svcrack: REGISTER, 401 with a nonce, REGISTER with digest, 403 (or 200)."""
        rng = self.rng
        fl = self.flow(src)
        ua = "friendly-scanner" if rng.random() < 0.8 else rng.choice(FRAUD_UA_VALUES)
        sv = ua == "friendly-scanner"
        ext = ext or rng.choice(EXISTING_SORTED if rng.random() < 0.8 else DICT_USERS)
        if count is None:
            count = min(int(rng.paretovariate(1.2) * 10), 5000)
        found_at = count - 1 if find or rng.random() < 0.1 else -1
        d = fl.dst.uri_host
        ruri = f"sip:{d}"
        for i in range(count):
            pw = PASSWORDS[i] if i < len(PASSWORDS) else str(rng.randrange(10**6))
            cid = self.callid(src, sv)
            tag = self.sv_tag(f"{ext}:{pw}") if sv else self.hextag()
            req1, echo1 = self.request(fl, "REGISTER", ruri, ext, tag, ext, cid, 1, ua)
            nonce, chal = self.challenge(False)
            rtt = self.rtt()
            out = [
                (0.0, True, "REGISTER", req1, fl),
                (rtt, False, "401", self.response(fl, echo1, 401, self.hextag(), chal), fl),
            ]
            cred = self.credentials(ext, pw, "REGISTER", ruri, nonce, False)
            req2, echo2 = self.request(fl, "REGISTER", ruri, ext, tag, ext, cid, 2, ua, extra=cred)
            t2 = rtt + 0.001 + rng.random() * 0.01
            code = 200 if i == found_at else 403
            extra = (
                f"Contact: <sip:{ext}@{fl.src.host.uri_host}:{fl.sport}>;expires=3600"
                if code == 200
                else ""
            )
            out.append((t2, True, "REGISTER", req2, fl))
            out.append(
                (
                    t2 + self.rtt(),
                    False,
                    str(code),
                    self.response(fl, echo2, code, self.hextag(), extra),
                    fl,
                )
            )
            yield rng.uniform(0.02, 0.2), out
            if code == 200:
                return

    def _number(self) -> str:
        rng = self.rng
        prefix, digits = rng.choice(TARGET_NUMBERS)
        return prefix + "".join(str(rng.randrange(10)) for _ in range(digits))

    def invite(
        self,
        fl: Flow,
        ua: str,
        from_user: str,
        callee: str,
        sv: bool,
        creds: tuple[str, str] | None,
        final: int | None = None,
    ) -> Iterator[Step]:
        """One call attempt: INVITE, 100, 407, ACK, INVITE with credentials, 100, final, ACK."""
        rng = self.rng
        d = fl.dst.uri_host
        ruri = f"sip:{callee}@{d}"
        cid = self.callid(fl.src, sv)
        tag = self.sv_tag(callee) if sv else self.hextag()
        br = self.branch()
        hp_tag = self.hextag()
        req, echo = self.request(
            fl,
            "INVITE",
            ruri,
            from_user,
            tag,
            callee,
            cid,
            1,
            ua,
            branch=br,
            body=self.sdp(fl),
            display=False,
        )
        t = self.rtt()
        out = [(0.0, True, "INVITE", req, fl), (t, False, "100", self.response(fl, echo, 100, ""))]
        cseq = 1
        if creds is not None:
            nonce, chal = self.challenge(True)
            t += 0.0005
            out.append((t, False, "407", self.response(fl, echo, 407, hp_tag, chal)))
            ack, _ = self.request(
                fl,
                "ACK",
                ruri,
                from_user,
                tag,
                callee,
                cid,
                1,
                ua,
                branch=br,
                to_tag=hp_tag,
                display=False,
            )
            t += self.rtt() + 0.02
            out.append((t, True, "ACK", ack))
            cseq = 2
            br = self.branch()
            cred = self.credentials(creds[0], creds[1], "INVITE", ruri, nonce, True)
            req, echo = self.request(
                fl,
                "INVITE",
                ruri,
                from_user,
                tag,
                callee,
                cid,
                2,
                ua,
                branch=br,
                extra=cred,
                body=self.sdp(fl),
                display=False,
            )
            t += 0.001
            out.append((t, True, "INVITE", req))
            t += self.rtt()
            out.append((t, False, "100", self.response(fl, echo, 100, "")))
        code = final or rng.choices(FINAL_VALUES, FINAL_WEIGHTS)[0]
        t += self.rtt() + rng.random() * 0.5
        out.append((t, False, str(code), self.response(fl, echo, code, hp_tag)))
        t += 0.02 + rng.random() * 0.1
        if code == 200:
            ack, _ = self.request(
                fl, "ACK", ruri, from_user, tag, callee, cid, cseq, ua, to_tag=hp_tag, display=False
            )
            out.append((t, True, "ACK", ack))
            # the call is up: hang up after a while
            yield rng.uniform(1, 120), [(o[0], o[1], o[2], o[3], fl) for o in out]
            bye, becho = self.request(
                fl,
                "BYE",
                ruri,
                from_user,
                tag,
                callee,
                cid,
                cseq + 1,
                ua,
                to_tag=hp_tag,
                display=False,
            )
            ok = self.response(fl, becho, 200, hp_tag)
            yield 0.0, [(0.0, True, "BYE", bye, fl), (self.rtt(), False, "200", ok, fl)]
            return
        ack, _ = self.request(
            fl,
            "ACK",
            ruri,
            from_user,
            tag,
            callee,
            cid,
            cseq,
            ua,
            branch=br,
            to_tag=hp_tag,
            display=False,
        )
        out.append((t, True, "ACK", ack))
        yield 0.0, [(o[0], o[1], o[2], o[3], fl) for o in out]

    def fraud(
        self, src: Source, creds: tuple[str, str] | None = None, count: int | None = None
    ) -> Iterator[Step]:
        """INVITEs to international / premium numbers, often through several dial prefixes."""
        rng = self.rng
        fl = self.flow(src)
        ua = rng.choices(FRAUD_UA_VALUES, FRAUD_UA_WEIGHTS)[0]
        sv = ua == "friendly-scanner"
        from_user = creds[0] if creds else rng.choice(["100", "1000", "anonymous", "sip", "101"])
        if creds is None and rng.random() < 0.6:
            creds = (from_user, rng.choice(PASSWORDS))
        if count is None:
            count = min(int(rng.paretovariate(1.5) * 4), 800)
        number = self._number()
        prefixes = rng.sample(DIAL_PREFIXES, rng.randint(1, 5))
        for i in range(count):
            if i % len(prefixes) == 0 and i:
                number = self._number()
            callee = (
                prefixes[i % len(prefixes)] + number.lstrip("+")
                if prefixes[i % len(prefixes)]
                else number
            )
            for gap, pkts in self.invite(fl, ua, from_user, callee, sv, creds):
                # invite() gaps are relative to its own steps; space the attempts out
                yield (gap if gap else rng.uniform(0.5, 30)), pkts

    def ext_calls(self, src: Source) -> Iterator[Step]:
        """Calls to extensions (SPIT-like): 404 for unknown, 486/200 for existing."""
        rng = self.rng
        fl = self.flow(src)
        ua = rng.choices(FRAUD_UA_VALUES, FRAUD_UA_WEIGHTS)[0]
        for _ in range(rng.randint(1, 12)):
            callee = (
                rng.choice(EXISTING_SORTED) if rng.random() < 0.6 else str(rng.randrange(100, 9999))
            )
            final = rng.choice([486, 200, 503]) if callee in EXISTING else 404
            for gap, pkts in self.invite(
                fl,
                ua,
                rng.choice(["anonymous", "100", "sip"]),
                callee,
                ua == "friendly-scanner",
                None,
                final,
            ):
                yield (gap if gap else rng.uniform(1, 60)), pkts

    def multistage(self, src: Source) -> Iterator[Step]:
        """The full toll-fraud chain from one source: scan, find extensions, crack, call out."""
        rng = self.rng
        yield from self.options_scan(src)
        yield from self.ext_scan(src, count=rng.randint(50, 400))
        ext = rng.choice(NUMERIC_EXISTING)
        pw = rng.choice(PASSWORDS)
        steps = list(self.crack(src, ext, count=rng.randint(5, 60), find=True))
        yield from steps
        yield from self.fraud(src, creds=(ext, pw), count=rng.randint(3, 40))

    def malformed(self, src: Source) -> Iterator[Step]:
        """Fuzz-like messages: a valid start line, broken headers (tshark still calls them SIP)."""
        rng = self.rng
        fl = self.flow(src)
        d = fl.dst.uri_host
        s = fl.src.host.uri_host
        cid = f"{rng.getrandbits(64):x}"
        head = f"INVITE sip:100@{d} SIP/2.0\r\nVia: SIP/2.0/{fl.transport} {s}:{fl.sport};branch={self.branch()}\r\n"
        kind = rng.randrange(8)
        if kind == 2 and fl.tcp:
            kind = 3  # over TCP a too-large Content-Length swallows the stream (tshark waits too)
        if kind == 0:  # no Call-ID, no CSeq
            msg = (
                head + f"From: <sip:a@{s}>;tag=1\r\nTo: <sip:100@{d}>\r\nContent-Length: 0\r\n\r\n"
            )
        elif kind == 1:  # numbers out of range
            msg = head + (
                f"From: <sip:a@{s}>;tag=1\r\nTo: <sip:100@{d}>\r\nCall-ID: {cid}\r\n"
                "CSeq: 99999999999999999999999 INVITE\r\nMax-Forwards: -1\r\n"
                "Content-Length: 0\r\n\r\n"
            )
        elif kind == 2:  # Content-Length larger than the body
            msg = head + (
                f"From: <sip:a@{s}>;tag=1\r\nTo: <sip:100@{d}>\r\nCall-ID: {cid}\r\n"
                "CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
                "Content-Length: 9000\r\n\r\nv=0\r\n"
            )
        elif kind == 3:  # a header line without a colon and a very long header
            msg = head + (
                f"From: <sip:a@{s}>;tag=1\r\nTo: <sip:100@{d}>\r\nCall-ID: {cid}\r\n"
                f"CSeq: 1 INVITE\r\nThis line has no colon\r\nX-Long: {'A' * 900}\r\n"
                "Content-Length: 0\r\n\r\n"
            )
        elif kind == 4:  # binary junk in the display name and the tag
            junk = bytes(rng.getrandbits(8) for _ in range(24)).decode("latin-1")
            msg = head + (
                f'From: "{junk}" <sip:a@{s}>;tag=\x00\x01\x02\r\nTo: <sip:100@{d}>\r\n'
                f"Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            )
        elif kind == 5:  # bare LF line ends
            msg = (
                f"OPTIONS sip:100@{d} SIP/2.0\nVia: SIP/2.0/{fl.transport} {s}:{fl.sport}\n"
                f"From: <sip:a@{s}>;tag=2\nTo: <sip:100@{d}>\nCall-ID: {cid}\nCSeq: 1 OPTIONS\n"
                "Content-Length: 0\n\n"
            )
        elif kind == 6:  # many Via headers and a broken Request-URI host
            vias = "".join(
                f"Via: SIP/2.0/UDP 10.{i}.0.1:5060;branch=z9hG4bK{i}\r\n" for i in range(40)
            )
            msg = (
                f"INVITE sip:100@[{d} SIP/2.0\r\n{vias}From: <sip:a@{s}>;tag=1\r\n"
                f"To: <sip:100@{d}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            )
        else:  # negative Content-Length, duplicated To, unknown method
            msg = (
                f"XYZZY sip:100@{d} SIP/2.0\r\nVia: SIP/2.0/{fl.transport} {s}:{fl.sport}\r\n"
                f"From: <sip:a@{s}>;tag=1\r\nTo: <sip:100@{d}>\r\nTo: <sip:101@{d}>\r\n"
                f"Call-ID: {cid}\r\nCSeq: 1 XYZZY\r\nContent-Length: -5\r\n\r\n"
            )
        label = msg.split(" ", 1)[0]
        yield 0.0, [(0.0, True, "!" + label, msg.encode("latin-1"), fl)]


# campaign kinds: (name, weight) — most sources only probe; a few do all the work
KINDS = [
    ("options_scan", 800),
    ("ext_scan", 90),
    ("crack", 45),
    ("fraud", 35),
    ("ext_calls", 20),
    ("multistage", 5),
    ("malformed", 5),
]
KIND_NAMES, KIND_WEIGHTS = _weighted(KINDS)
MEAN_PACKETS_PER_CAMPAIGN = 29.0  # measured with the weights above; sets the campaign rate


# --- the writer --------------------------------------------------------------------------------


def frame(fl: Flow, inbound: bool, payload: bytes) -> bytes:
    """Ethernet + IPv4/IPv6 + UDP/TCP around one SIP payload, with correct checksums."""
    src = fl.src
    a, b = (src.host, fl.dst) if inbound else (fl.dst, src.host)
    sp, dp = (fl.sport, fl.dport) if inbound else (fl.dport, fl.sport)
    plen = len(payload)
    if fl.tcp:
        if inbound:
            seq, ack = fl.seq_in, fl.seq_out
            fl.seq_in = (seq + plen) & 0xFFFFFFFF
        else:
            seq, ack = fl.seq_out, fl.seq_in
            fl.seq_out = (seq + plen) & 0xFFFFFFFF
        l4len = 20 + plen
        proto = 6
        s = a.psum + b.psum + proto + l4len + sp + dp + (seq >> 16) + (seq & 0xFFFF)
        s += (ack >> 16) + (ack & 0xFFFF) + 0x5018 + 64240 + _sum16(payload)
        l4 = _TCP.pack(sp, dp, seq, ack, 0x50, 0x18, 64240, ~_fold(_fold(s)) & 0xFFFF, 0)
    else:
        l4len = 8 + plen
        proto = 17
        s = a.psum + b.psum + proto + l4len + sp + dp + l4len + _sum16(payload)
        c = ~_fold(_fold(s)) & 0xFFFF
        l4 = _UDP.pack(sp, dp, l4len, c or 0xFFFF)
    if a.v6:
        eth = ETH_IN6 if inbound else ETH_OUT6
        ip = _IP6.pack(0x60000000, l4len, proto, src.ttl if inbound else 64, a.packed, b.packed)
    else:
        eth = ETH_IN4 if inbound else ETH_OUT4
        if inbound:
            ident = src.ipid = (src.ipid + 1) & 0xFFFF
            ttl = src.ttl
        else:
            ident = fl.hp_ipid = (fl.hp_ipid + 1) & 0xFFFF
            ttl = 64
        total = 20 + l4len
        c = ~_fold(_fold(0x4500 + total + ident + 0x4000 + (ttl << 8 | proto) + a.psum + b.psum))
        ip = _IP4.pack(0x45, 0, total, ident, 0x4000, ttl, proto, c & 0xFFFF, a.packed, b.packed)
    return eth + ip + l4 + payload


def generate(
    out: Path,
    packets: int,
    sources: int,
    seed: int,
    start: float,
    days: float,
    head_size: int = 100_000,
) -> Stats:
    rng = random.Random(seed)
    gen = Gen(rng, sources)
    stats = Stats(head_size=head_size)
    duration = days * 86400.0
    rate = packets / MEAN_PACKETS_PER_CAMPAIGN / duration  # campaigns per second
    heap: list = []
    counter = 0
    # events: (time, order, kind, data); kind 0 = write a packet, 1 = campaign step, 2 = new campaign
    heapq.heappush(heap, (start, 0, 2, None))
    written = 0
    with out.open("wb", buffering=1 << 20) as f:
        f.write(_PCAP_HEADER)
        while written < packets:
            t, _, kind, data = heapq.heappop(heap)
            if kind == 0:
                fl, inbound, label, payload = data
                pkt = frame(fl, inbound, payload)
                sec = int(t)
                n = len(pkt)
                f.write(_REC.pack(sec, int((t - sec) * 1e6), n, n) + pkt)
                written += 1
                stats.kinds[label] += 1
                if written <= head_size:
                    stats.head[label] += 1
                stats.transports[("tcp" if fl.tcp else "udp") + ("6" if fl.dst.v6 else "4")] += 1
                if label[0] == "!":
                    stats.malformed += 1
                if written == 1:
                    stats.first_ts = t
                stats.last_ts = t
                continue
            if kind == 2:
                counter += 1
                heapq.heappush(heap, (t + rng.expovariate(rate), counter, 2, None))
                idx, src = gen.pick_source()
                stats.sources.add(idx)
                name = rng.choices(KIND_NAMES, KIND_WEIGHTS)[0]
                stats.campaigns[name] += 1
                data = getattr(gen, name)(src)
            step = next(data, None)
            if step is None:
                continue
            gap, pkts = step
            for delay, inbound, label, payload, fl in pkts:
                counter += 1
                heapq.heappush(heap, (t + delay, counter, 0, (fl, inbound, label, payload)))
            counter += 1
            # the next step starts after this one's last packet
            last = max(p[0] for p in pkts)
            heapq.heappush(heap, (t + last + gap, counter, 1, data))
    stats.packets = written
    return stats


def manifest(stats: Stats, args: argparse.Namespace, seconds: float) -> dict:
    requests = {k: v for k, v in stats.kinds.items() if not k[0].isdigit()}
    return {
        "generator_version": GENERATOR_VERSION,
        "packets": stats.packets,
        "seed": args.seed,
        "sources_pool": args.sources,
        "sources_used": len(stats.sources),
        "first": datetime.fromtimestamp(stats.first_ts, UTC).isoformat(),
        "last": datetime.fromtimestamp(stats.last_ts, UTC).isoformat(),
        "requests": dict(sorted(requests.items())),
        "responses": dict(sorted((k, v) for k, v in stats.kinds.items() if k[0].isdigit())),
        "malformed": stats.malformed,
        "transports": dict(sorted(stats.transports.items())),
        "campaigns": dict(sorted(stats.campaigns.items())),
        "head_packets": min(stats.head_size, stats.packets),
        "head": dict(sorted(stats.head.items())),
        "seconds": round(seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000, help="SIP packets to write")
    ap.add_argument("--sources", type=int, default=30_000, help="attacker address pool size")
    ap.add_argument("--seed", type=int, default=5060)
    ap.add_argument("--days", type=float, default=5.0, help="time span the traffic is spread over")
    ap.add_argument("--start", default="2024-03-04T00:00:00+00:00", help="first timestamp (ISO)")
    ap.add_argument(
        "--head",
        type=int,
        default=100_000,
        help="also count the first HEAD packets (the first editcap chunk)",
    )
    ap.add_argument("--out", type=Path, default=Path("bench/out/attack.pcap"))
    args = ap.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    start = datetime.fromisoformat(args.start).timestamp()
    stats = generate(args.out, args.packets, args.sources, args.seed, start, args.days, args.head)
    seconds = time.perf_counter() - t0
    man = manifest(stats, args, seconds)
    Path(str(args.out) + ".json").write_text(json.dumps(man, indent=1) + "\n")
    print(
        f"{args.out}: {stats.packets:,} packets from {man['sources_used']:,} sources, "
        f"{man['first']} .. {man['last']}, {seconds:.1f} s "
        f"({stats.packets / seconds:,.0f} packets/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
