"""Parser throughput: messages/s for typical attack messages, one core.

    python bench/bench_parse.py [--seconds 1.0]
    SIPWATCH_NO_SPEEDUPS=1 python bench/bench_parse.py     # pure Python, no C accelerator

For each kind prints parse() alone and parse() + building the trace-store row (the fields
`sipwatch analyze` reads from every message).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from sipwatch.record import Record
from sipwatch.sip import speedups
from sipwatch.sip.message import parse
from sipwatch.store.rows import message_row

# --- typical attack messages (what svcrack, svmap, sipcli and a PBX send) ----------------
REGISTER_DIGEST = (
    b"REGISTER sip:192.0.2.10 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-2471795231;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "1001"<sip:1001@192.0.2.10>;tag=3130303133393330393634\r\n'
    b'To: "1001"<sip:1001@192.0.2.10>\r\n'
    b"Call-ID: 1285342925437621845263911\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Contact: <sip:1001@198.51.100.7:5060>\r\n"
    b'Authorization: Digest username="1001", realm="asterisk", nonce="4f8b3a2c1d", '
    b'uri="sip:192.0.2.10", response="0a4f113b7c7d6b1d9e2a8f3c4b5d6e7f", algorithm=MD5\r\n'
    b"User-Agent: friendly-scanner\r\n"
    b"Expires: 3600\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

OPTIONS_SIPVICIOUS = (
    b"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1725983917;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "sipvicious"<sip:100@1.1.1.1>\r\n'
    b'From: "sipvicious"<sip:100@1.1.1.1>;tag=6638326430653331313363340132343834383232333836\r\n'
    b"User-Agent: friendly-scanner\r\n"
    b"Call-ID: 597349181036424716447315\r\n"
    b"Contact: sip:100@198.51.100.7:5060\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

RESPONSE_401 = (
    b"SIP/2.0 401 Unauthorized\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-2471795231;received=198.51.100.7;"
    b"rport=5060\r\n"
    b'From: "1001"<sip:1001@192.0.2.10>;tag=3130303133393330393634\r\n'
    b'To: "1001"<sip:1001@192.0.2.10>;tag=as5f2e6a1b\r\n'
    b"Call-ID: 1285342925437621845263911\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Server: Asterisk PBX 16.2.1\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO\r\n"
    b"Supported: replaces, timer\r\n"
    b'WWW-Authenticate: Digest algorithm=MD5, realm="asterisk", nonce="4f8b3a2c1d"\r\n'
    b"Content-Length: 0\r\n"
    b"\r\n"
)

INVITE_SDP_BODY = (
    b"v=0\r\no=- 123 456 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n"
    b"m=audio 8000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n"
)
INVITE_SDP = (
    b"INVITE sip:0046812345678@192.0.2.10 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.7:5071;branch=z9hG4bK8fa3c1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:1001@192.0.2.10>;tag=a83f\r\n"
    b"To: <sip:0046812345678@192.0.2.10>\r\n"
    b"Call-ID: 8c1a2f@198.51.100.7\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:1001@198.51.100.7:5071>\r\n"
    b"User-Agent: sipcli/v1.8\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(INVITE_SDP_BODY)).encode() + b"\r\n"
    b"\r\n" + INVITE_SDP_BODY
)

SAMPLES = {
    "register_digest": REGISTER_DIGEST,
    "options_sipvicious": OPTIONS_SIPVICIOUS,
    "response_401": RESPONSE_401,
    "invite_sdp": INVITE_SDP,
}


def store_row(data: bytes) -> tuple:
    """Parse, then build the trace-store row exactly as `sipwatch analyze` does."""
    rec = Record(1_700_000_000.0, "udp", "203.0.113.9", 5060, "192.0.2.1", 5060, data, parse(data))
    return message_row(rec)


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Best of 5 runs of messages per CPU-second (process time: other load on the machine
    slows wall time but not our CPU time much; best, because load only ever slows a run)."""
    batch = 2000
    best = 0.0
    for _ in range(5):
        done = 0
        t0 = time.process_time()
        while True:
            for _ in range(batch):
                fn()
            done += batch
            elapsed = time.process_time() - t0
            if elapsed >= seconds / 5:
                break
        best = max(best, done / elapsed)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = ap.parse_args()
    print(f"C accelerator: {'built' if speedups.AVAILABLE else 'not built (pure Python)'}")
    print(f"{'message':22s} {'parse/s':>10s} {'parse+row/s':>15s}")
    for name, data in SAMPLES.items():
        only = rate(lambda d=data: parse(d), args.seconds)
        full = rate(lambda d=data: store_row(d), args.seconds)
        print(f"{name:22s} {only:10,.0f} {full:15,.0f}")


if __name__ == "__main__":
    main()
