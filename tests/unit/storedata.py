"""A small, fully known trace (real SIP bytes, hand-set labels) for the store and report tests.

Day 1 (2024-03-01 UTC): 8.8.8.8 scans with SIPVicious (OPTIONS -> 200, two REGISTERs without
credentials -> 404 and 401). Day 2: 198.51.100.7 tries two passwords on 102 (403, 200) and
calls a Swedish mobile number (401); 203.0.113.9 sends an unknown method and garbage.
"""

from __future__ import annotations

from sipwatch.record import Record

DAY1 = 1709251200.0  # 2024-03-01 00:00:00 UTC
DAY2 = DAY1 + 86400
HONEYPOT = "192.0.2.1"
EVIL_UA = "<script>alert(1)</script>"


def request(
    method: str, ruri: str, to_user: str, n: int, src: str, ua: str = "", auth: str = ""
) -> bytes:
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {src}:5060;branch=z9hG4bK-{n};rport",
        f'From: "{to_user}"<sip:{to_user}@{HONEYPOT}>;tag=from{n}',
        f"To: <sip:{to_user}@{HONEYPOT}>",
        f"Call-ID: call{n}@{src}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:{to_user}@{src}:5060>",
    ]
    if ua:
        lines.append(f"User-Agent: {ua}")
    if auth:
        lines.append(
            f'Authorization: Digest username="{auth}", realm="asterisk", nonce="n{n}", '
            f'uri="{ruri}", response="0123456789abcdef0123456789abcdef"'
        )
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def response(code: int, reason: str, method: str, to_user: str, n: int, src: str) -> bytes:
    return (
        f"SIP/2.0 {code} {reason}\r\n"
        f"Via: SIP/2.0/UDP {src}:5060;branch=z9hG4bK-{n};rport\r\n"
        f'From: "{to_user}"<sip:{to_user}@{HONEYPOT}>;tag=from{n}\r\n'
        f"To: <sip:{to_user}@{HONEYPOT}>;tag=to{n}\r\n"
        f"Call-ID: call{n}@{src}\r\n"
        f"CSeq: 1 {method}\r\n"
        "Server: pbx <b>1</b>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _pair(ts, src, method, ruri, user, n, code, reason, stage, ua="", auth="", **labels):
    req = Record.from_bytes(
        request(method, ruri, user, n, src, ua, auth), ts, "udp", src, 5060, HONEYPOT, 5060
    )
    req.stage = stage
    for k, v in labels.items():
        setattr(req, k, v)
    out = [req]
    if code:
        rsp = Record.from_bytes(
            response(code, reason, method, user, n, src),
            ts + 0.01,
            "udp",
            HONEYPOT,
            5060,
            src,
            5060,
        )
        rsp.stage = stage
        rsp.request_id = req.id
        out.append(rsp)
    return out


def trace() -> list[Record]:
    """14 messages: 7 requests, 6 responses, 1 that is not SIP."""
    scanner, cracker, odd = "8.8.8.8", "198.51.100.7", "203.0.113.9"
    sv = {"ua": "friendly-scanner", "tool": "sipvicious"}
    out: list[Record] = []
    out += _pair(
        DAY1 + 10, scanner, "OPTIONS", f"sip:100@{HONEYPOT}", "100", 1, 200, "OK", "SS", **sv
    )
    out += _pair(
        DAY1 + 20, scanner, "REGISTER", f"sip:{HONEYPOT}", "101", 2, 404, "Not Found", "ES", **sv
    )
    out += _pair(
        DAY1 + 30, scanner, "REGISTER", f"sip:{HONEYPOT}", "102", 3, 401, "Unauthorized", "ES", **sv
    )
    out += _pair(
        DAY2 + 10,
        cracker,
        "REGISTER",
        f"sip:{HONEYPOT}",
        "102",
        4,
        403,
        "Forbidden",
        "RHJ",
        ua=EVIL_UA,
        auth="102",
    )
    out += _pair(
        DAY2 + 20,
        cracker,
        "REGISTER",
        f"sip:{HONEYPOT}",
        "102",
        5,
        200,
        "OK",
        "RHJ",
        ua=EVIL_UA,
        auth="102",
    )
    out += _pair(
        DAY2 + 30, cracker, "INVITE", f"sip:0046701234567@{HONEYPOT}", "102", 6, 401, "Unauthorized", "TF",
        ua=EVIL_UA, number="+46701234567", number_type="mobile", number_country="SE",
    )  # fmt: skip
    out += _pair(DAY2 + 40, odd, "FOO", f"sip:x@{HONEYPOT}", "x", 7, 0, "", "")
    junk = Record.from_bytes(
        b"\x00\x01 not sip \x1b[31m", DAY2 + 50, "udp", odd, 5060, HONEYPOT, 5060
    )
    junk.fuzz = True
    out.append(junk)
    return out
