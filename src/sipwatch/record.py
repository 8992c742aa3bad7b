"""Record: the one type every source produces and everything downstream consumes.

A Record is one SIP message (or one payload that was taken for SIP and failed to
parse) plus where and when it was seen. The raw bytes are always kept. Sources
(capture files, honeypot sockets, HEP) fill the "seen" fields; the analyzer
fills the label fields (stage, tool, number, request_id, password).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from sipwatch.native import part
from sipwatch.sip.message import SipMessage, parse

# direction of a message relative to the observed node / sensor
IN = "in"  # towards the node (an attacker's request, a reply we did not send)
OUT = "out"  # sent by the node (our honeypot's responses)

_ID_PACK = struct.Struct("<d")
_record_id = part("record_id")


@dataclass(slots=True, eq=False)
class Record:
    # --- where and when it was seen -------------------------------------------------
    ts: float  # seconds since the epoch, from the capture or the socket, never the clock
    transport: str  # "udp" | "tcp" | "tls" | "ws" | "sctp"
    src: str  # source IP address, text form
    sport: int
    dst: str  # destination IP address, text form
    dport: int
    raw: bytes  # exactly this message's bytes
    msg: SipMessage  # parsed; msg.error is set when it could not be parsed
    direction: str = ""  # IN, OUT or "" (unknown, e.g. a mirror port)
    sensor: str = ""
    node: str = ""
    tunnel: str = ""  # "vxlan:VNI OUTER_SRC>OUTER_DST", "gre:KEY ...", "" when none
    vlan: str = ""  # "100" or "100.200" (QinQ), "" when untagged
    # --- labels, filled by the analyzer ----------------------------------------------
    stage: str = ""  # "SS" | "ES" | "RHJ" | "TF" | ""
    tool: str = ""  # attack tool fingerprint, e.g. "sipvicious"
    tool_data: str = ""  # what the tool encoded (sipvicious From-tag: extension or user:password)
    fuzz: bool = False  # parse error or anomalies
    number: str = ""  # dialled number (INVITE), normalised E.164 when it parses
    number_type: str = ""  # "international" | "premium" | "mobile" | "fixed" | ...
    number_country: str = ""  # ISO 3166 alpha-2
    request_id: int = 0  # for a response: id of the request it answers, when seen
    password: str = ""  # password this digest attempt tried (a response: its request's), if known
    _id: int = field(default=0, repr=False)

    @classmethod
    def from_bytes(
        cls,
        raw: bytes,
        ts: float,
        transport: str,
        src: str,
        sport: int,
        dst: str,
        dport: int,
        **seen: str,
    ) -> Record:
        return cls(ts, transport, src, sport, dst, dport, raw, parse(raw), **seen)

    @property
    def id(self) -> int:
        """Stable 63-bit id: the same message seen at the same time and place gets the same id.

        This makes ingest idempotent (analysing a file twice stores it once) and gives
        events something durable to cite as evidence.
        """
        if not self._id:
            # the same hash in one C call when built (a live sensor pays it twice per request)
            if _record_id is not None:
                self._id = _record_id(
                    self.ts, self.transport, self.src, self.sport, self.dst, self.dport,
                    self.sensor, self.raw,
                )  # fmt: skip
            else:
                self._id = self.python_id()
        return self._id

    def python_id(self) -> int:
        """Record.id computed in Python: the definition the C one is tested against."""
        h = hashlib.blake2b(digest_size=8)
        h.update(_ID_PACK.pack(self.ts))
        h.update(
            f"{self.transport}|{self.src}|{self.sport}|{self.dst}|{self.dport}|{self.sensor}|".encode()
        )
        h.update(self.raw)
        return (int.from_bytes(h.digest(), "little") & 0x7FFF_FFFF_FFFF_FFFF) or 1

    @property
    def is_request(self) -> bool:
        return self.msg.is_request
