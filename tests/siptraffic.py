"""Synthetic SIP conversations as labelled Records, for detection tests.

Messages are made with sip/build.py (so they parse exactly as received ones) and shaped like
the real thing: SIPVicious writes its bookkeeping into the From tag and says
"friendly-scanner"; phones register every 60 s and answer a 401 with the right digest.
`Traffic.run()` labels records as the pipeline does (StageLabeler, then PasswordRecovery)
and feeds them to an engine, collecting the events.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from sipwatch.detect.engine import Engine
from sipwatch.detect.events import Event
from sipwatch.detect.passwords import PasswordRecovery
from sipwatch.detect.stages import LabelerConfig, StageLabeler
from sipwatch.record import Record
from sipwatch.sip.build import build_request, build_response
from sipwatch.sip.digest import build_credentials

PBX = "198.51.100.1"
REALM = "pbx"
T0 = 1_700_000_000.0
SVCRACK_TAG = "3206210844"


def sv_tag(data: str, rnd: int = 1234567) -> str:
    """SIPVicious' From tag: hex of data, 0x01, a random decimal."""
    return (data.encode() + b"\x01" + str(rnd).encode()).hex()


class Traffic:
    """Builds records in time order; `t` is the clock (record time), advanced by callers."""

    def __init__(self, t0: float = T0) -> None:
        self.t = t0
        self.records: list[Record] = []
        self._n = itertools.count(1)

    def at(self, dt: float) -> Traffic:
        self.t += dt
        return self

    def request(
        self,
        method: str,
        src: str,
        user: str,
        *,
        dst: str = PBX,
        from_user: str | None = None,
        tag: str | None = None,
        ua: str = "",
        password: str | None = None,
        auth_user: str | None = None,
        to_tag: str = "",
        call_id: str | None = None,
        cseq: int = 1,
        headers: Iterable[tuple[str, str]] = (),
        sport: int = 5060,
        dt: float = 0.0,
    ) -> Record:
        """A request from src; `user` is the extension (REGISTER: the To user), `password` adds
        a digest Authorization for `auth_user` (default: user)."""
        self.t += dt
        n = next(self._n)
        ruri = f"sip:{dst}" if method == "REGISTER" else f"sip:{user}@{dst}"
        extra = list(headers)
        if ua:
            extra.append(("User-Agent", ua))
        if password is not None:
            cred = build_credentials(
                auth_user or user, REALM, password, method, ruri, nonce=f"n{n}"
            )
            extra.append(("Authorization", cred))
        msg = build_request(
            method,
            ruri,
            via=f"SIP/2.0/UDP {src}:{sport};branch=z9hG4bK{n}",
            from_=f"<sip:{from_user or user}@{dst}>;tag={tag or f't{n}'}",
            to=f"<sip:{user}@{dst}>" + (f";tag={to_tag}" if to_tag else ""),
            call_id=call_id or f"c{n}@{src}",
            cseq=cseq,
            headers=extra,
        )
        rec = Record(self.t, "udp", src, sport, dst, 5060, msg.raw, msg)
        self.records.append(rec)
        return rec

    def response(self, request: Record, status: int, *, dt: float = 0.001) -> Record:
        """The server's answer to `request`, sent back to where it came from."""
        self.t += dt
        msg = build_response(request.msg, status, to_tag="hp" if status > 100 else "")
        rec = Record(
            self.t, "udp", request.dst, request.dport, request.src, request.sport, msg.raw, msg
        )
        self.records.append(rec)
        return rec

    def raw(self, data: bytes, src: str, *, dst: str = PBX, dt: float = 0.0) -> Record:
        self.t += dt
        rec = Record.from_bytes(data, self.t, "udp", src, 1900, dst, 5060)
        self.records.append(rec)
        return rec

    # --- conversations ---------------------------------------------------------------------
    def phone_registers(self, src: str, user: str, password: str, *, dt: float = 0.0) -> None:
        """REGISTER, 401, REGISTER with the right digest, 200."""
        first = self.request("REGISTER", src, user, ua="Yealink SIP-T46S", dt=dt)
        self.response(first, 401)
        again = self.request(
            "REGISTER", src, user, ua="Yealink SIP-T46S", password=password, cseq=2, dt=0.01
        )
        self.response(again, 200)

    def run(self, engine: Engine | None = None, region: str | None = None) -> list[Event]:
        """Label every record as the pipeline does and feed it to `engine`; all events."""
        engine = engine or Engine.load()
        labeller = StageLabeler(LabelerConfig(default_region=region))
        recovery = PasswordRecovery(candidates=["s3cret-Pass"])
        events: list[Event] = []
        for rec in self.records:
            labeller.label(rec)
            recovery.label(rec)
            events.extend(engine.feed(rec))
        events.extend(engine.flush())
        return events


def fired(events: list[Event]) -> set[str]:
    """Ids of the rules that emitted anything."""
    return {e.rule for e in events}


def latest(events: list[Event]) -> dict[int, Event]:
    """The last emitted version of each event id (what the store keeps)."""
    out: dict[int, Event] = {}
    for e in events:
        out[e.id] = e
    return out
