"""What the test machine's loopback offers (shared by the socket tests)."""

from __future__ import annotations

import socket


def has_ipv6_loopback() -> bool:
    """::1 can be bound (IPv6 enabled on lo)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False
