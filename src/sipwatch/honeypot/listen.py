"""Where the honeypot listens: one transport on one local address and port."""

from __future__ import annotations

from dataclasses import dataclass

TRANSPORTS = ("udp", "tcp", "tls")
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


@dataclass(frozen=True, slots=True)
class Listen:
    transport: str  # "udp" | "tcp" | "tls"
    address: str  # IPv4 or IPv6 literal ("0.0.0.0" / "::" for all)
    port: int  # 0 = any free port (tests)

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.transport} {host}:{self.port}"
