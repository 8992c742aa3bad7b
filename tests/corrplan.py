"""A known multi-node attack plan for the correlation reports (unit and browser tests).

Four nodes (oslo, essen, tromso and messages without a node); sources that hit one to four of
them with known stages and times; the nodes' responses and unparsable payloads, which must not
count; and information-sharing events around one watched attacker. Tests compute what each
report must show from plan() directly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sipwatch.detect.events import Event
from sipwatch.record import Record
from unit.storedata import DAY1, request, response

NODES = {"oslo": "192.0.2.11", "essen": "192.0.2.12", "tromso": "192.0.2.13", "": "192.0.2.14"}
KINDS = [
    ("OPTIONS", "SS"), ("REGISTER", "ES"), ("REGISTER", "RHJ"), ("INVITE", "TF"),
    ("INVITE", "ES"), ("INVITE", ""), ("OPTIONS", ""),
]  # fmt: skip
GAPS = [0.3, 4.0, 30.0, 300.0, 3000.0, 50000.0, 200000.0]  # one in every speed bucket
WATCHED = "198.51.100.200"  # the attacker of the per-attacker view
BEHAVIOURS = ("SS", "ES", "RHJ", "INVITE", "TF")
GROUPS = {"distributed": ["oslo", "essen"], "central": ["tromso", ""]}


@dataclass
class Msg:
    node: str
    src: str
    ts: float
    method: str
    stage: str
    user: str = "100"
    auth: str = ""
    password: str = ""
    number: str = ""
    reply: int = 0  # status of the node's answer (0: none)
    tool: str = ""
    ua: str = ""

    def has(self, behaviour: str) -> bool:
        return self.method == "INVITE" if behaviour == "INVITE" else self.stage == behaviour


def plan() -> list[Msg]:
    """The planned requests (every one an attack message: parsed, is_request = 1)."""
    rng = random.Random(5)
    msgs: list[Msg] = []
    sources = [f"198.51.100.{i}" for i in range(1, 41)] + ["8.8.8.8", "1.1.1.1", "9.9.9.9"]
    for src in sources:
        k = rng.choices([1, 2, 3, 4], weights=[4, 3, 2, 2])[0]
        t = DAY1 + rng.uniform(0, 86400)
        for node in rng.sample(list(NODES), k):
            for j in range(rng.randint(1, 4)):
                method, stage = rng.choice(KINDS)
                reply = rng.choice([0, 200, 401, 404])
                msgs.append(Msg(node, src, t + j * 0.01, method, stage, reply=reply))
            t += rng.choice(GAPS) + rng.random()
    t0 = DAY1 + 5000.0
    sv = {"tool": "sipvicious", "ua": "friendly-scanner"}
    msgs += [
        Msg("oslo", WATCHED, t0, "OPTIONS", "SS", reply=200, **sv),
        Msg("oslo", WATCHED, t0 + 1, "REGISTER", "ES", user="101", reply=404, **sv),
        Msg("oslo", WATCHED, t0 + 2, "REGISTER", "ES", user="102", reply=401, **sv),
        Msg("essen", WATCHED, t0 + 50, "REGISTER", "RHJ", "102", "102", "secret1", reply=403),
        Msg("essen", WATCHED, t0 + 51, "REGISTER", "RHJ", "102", "102", "letmein", reply=200),
        Msg("essen", WATCHED, t0 + 60, "INVITE", "TF", "0046701234567", number="+46701234567"),
    ]
    return msgs


def records(msgs: Sequence[Msg]) -> list[Record]:
    out = []
    for n, m in enumerate(msgs, start=1):
        addr = NODES[m.node]
        ruri = f"sip:{m.user}@{addr}" if m.method in ("INVITE", "OPTIONS") else f"sip:{addr}"
        raw = request(m.method, ruri, m.user, n, m.src, m.ua, m.auth)
        req = Record.from_bytes(raw, m.ts, "udp", m.src, 5060, addr, 5060, node=m.node)
        req.stage, req.tool, req.password, req.number = m.stage, m.tool, m.password, m.number
        if m.number:
            req.number_type, req.number_country = "mobile", "SE"
        out.append(req)
        if m.reply:  # the node's answer: a response, never an attack message
            raw = response(m.reply, "X", m.method, m.user, n, m.src)
            rsp = Record.from_bytes(raw, m.ts + 0.001, "udp", addr, 5060, m.src, 5060, node=m.node)
            rsp.stage, rsp.request_id, rsp.password = m.stage, req.id, m.password
            out.append(rsp)
    # payloads that do not parse make nobody an attacker, and no node a node
    for i, node in enumerate(["oslo", "bergen"]):
        junk = Record.from_bytes(
            b"\x00 not sip", DAY1 + i, "udp", "203.0.113.99", 5060, "192.0.2.20", 5060, node=node
        )
        out.append(junk)
    return out


def events() -> list[Event]:
    def sharing(n: int, src: str, rule: str, first: float, by: list[str], **data: Any) -> Event:
        return Event(
            id=n, rule=rule, kind="sharing", severity="high",
            stage="ES", src=src, targets=("102",), node="essen", sensor="s1", first=first,
            last=first + 1, count=1, summary=f"{src} used what {by[0]} found",
            data={"discovered_by": by, "items": ["102", "103"], **data},
        )  # fmt: skip

    return [
        sharing(1, WATCHED, "sharing.extensions", DAY1 + 6000, ["198.51.100.51", "203.0.113.52"],
                by_discoverer={"198.51.100.51": ["102"], "203.0.113.52": ["103"]}),
        sharing(2, "203.0.113.60", "sharing.credentials", DAY1 + 7000, [WATCHED]),
        sharing(3, "203.0.113.61", "sharing.credentials", DAY1 + 7100, ["198.51.100.20"]),
        Event(id=77, rule="es.extension-scan", kind="threshold", severity="medium", stage="ES",
              src=WATCHED, targets=(), node="oslo", sensor="s1", first=DAY1 + 5001,
              last=DAY1 + 5002, count=2, summary="probed 2 extensions"),
    ]  # fmt: skip
