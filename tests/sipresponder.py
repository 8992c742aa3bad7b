"""A tiny SIP responder for tests: something for SIPVicious to scan on 127.0.0.1.

Not the honeypot: just enough SIP for svmap, svwar and svcrack to see a registrar.
- OPTIONS → 200 OK
- REGISTER without Authorization: extensions 100-105 → 401 with a digest challenge
  (qop="auth", which svcrack needs), any other → 404
- REGISTER with Authorization: 200 when the digest matches the account's password
  (only 101 / 1234), else 403
- other requests → 501, ACK → nothing
Replies echo Via, From (with its tag exactly: SIPVicious reads its data back from it), To,
Call-ID and CSeq. Self-contained on purpose (does not use sipwatch's parser).
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading

REALM = "sipwatch-test"
ACCOUNTS = {str(n): None for n in range(100, 106)} | {"101": "1234"}
_ECHO = ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


class SipResponder:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.received = 0
        self._nonce = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SipResponder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received += 1
            reply = self.handle(data)
            if reply:
                self.sock.sendto(reply, addr)

    def handle(self, data: bytes) -> bytes | None:
        text = data.decode("utf-8", "replace")
        head = text.split("\r\n\r\n", 1)[0]
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) < 3 or not parts[2].startswith("SIP/"):
            return None
        method = parts[0]
        # original names kept: SIPVicious looks for "From:" case-sensitively
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        if method == "ACK":
            return None
        if method == "OPTIONS":
            return self._reply(200, "OK", headers)
        if method != "REGISTER":
            return self._reply(501, "Not Implemented", headers)
        to = next((v for n, v in headers if n.lower() in ("to", "t")), "")
        m = re.search(r"sips?:([^@;>]+)@", to)
        user = m.group(1) if m else ""
        auth = next(
            (v for n, v in headers if n.lower() in ("authorization", "proxy-authorization")), ""
        )
        if user not in ACCOUNTS:
            return self._reply(404, "Not Found", headers)
        if not auth:
            self._nonce += 1
            challenge = (
                f'Digest realm="{REALM}", nonce="{self._nonce:08x}", qop="auth", algorithm=MD5'
            )
            return self._reply(401, "Unauthorized", headers, [("WWW-Authenticate", challenge)])
        if self._digest_ok(auth, method, ACCOUNTS[user]):
            return self._reply(200, "OK", headers)
        return self._reply(403, "Forbidden", headers)

    @staticmethod
    def _digest_ok(auth: str, method: str, password: str | None) -> bool:
        if password is None:
            return False
        p = {k.lower(): q if q else u for k, q, u in _PARAM.findall(auth)}
        ha1 = _md5(f"{p.get('username', '')}:{p.get('realm', '')}:{password}")
        ha2 = _md5(f"{method}:{p.get('uri', '')}")
        if p.get("qop") == "auth":
            want = _md5(f"{ha1}:{p.get('nonce')}:{p.get('nc')}:{p.get('cnonce')}:auth:{ha2}")
        else:
            want = _md5(f"{ha1}:{p.get('nonce')}:{ha2}")
        return p.get("response") == want

    @staticmethod
    def _reply(
        code: int,
        reason: str,
        headers: list[tuple[str, str]],
        extra: list[tuple[str, str]] | None = None,
    ) -> bytes:
        out = [f"SIP/2.0 {code} {reason}"]
        for name, value in headers:
            if name.lower() in _ECHO:
                out.append(f"{name}: {value}")
        out += [f"{n}: {v}" for n, v in extra or []]
        out += ["Server: sipwatch-test-responder", "Content-Length: 0", "", ""]
        return "\r\n".join(out).encode()
