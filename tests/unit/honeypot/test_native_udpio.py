"""The honeypot's batched UDP I/O in C (native/udpio.c) against the Python loop it replaces.

udp_recv_batch must give what recvmsg gives (data, addresses, PKTINFO, MSG_TRUNC), and a
listener on the C calls must hand the handler the same Inbound fields, keep the same stats and
send the same replies from the same addresses as the listener's Python loop (server.py), which
stays the definition. Real sockets on 127.0.0.0/8 and ::1 only.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import asdict

import pytest

from loopback import has_ipv6_loopback
from sipwatch.honeypot import server as srv
from sipwatch.honeypot.listen import Listen
from sipwatch.honeypot.server import Inbound, ServerLimits, SipServer
from sipwatch.native import part

pytestmark = pytest.mark.timeout(60)

BUILT = importlib.util.find_spec("sipwatch._native") is not None
WANTED = BUILT and not os.environ.get("SIPWATCH_NO_NATIVE")
recv_batch = part("udp_recv_batch")
send_batch = part("udp_send_batch")
needs_native = pytest.mark.skipif(recv_batch is None, reason="sipwatch._native not built")

PKTINFO_KINDS = {(socket.IPPROTO_IP, srv.IP_PKTINFO), (socket.IPPROTO_IPV6, srv.IPV6_PKTINFO)}
SIZES = [0, 1, 100, 1400, 9000, 65507]  # 65507: the largest IPv4 UDP payload


needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1)")


def listening(address: str) -> socket.socket:
    """A UDP socket as the server opens it (PKTINFO on, non-blocking, large buffer)."""
    return srv._open_socket(Listen("udp", address, 0), ServerLimits())


def dual_stack() -> socket.socket:
    """An IPv6 wildcard socket that also takes IPv4 (IPv4-mapped addresses)."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.IPPROTO_IPV6, srv.IPV6_RECVPKTINFO, 1)
    s.bind(("::", 0))
    s.setblocking(False)
    return s


@contextlib.contextmanager
def client(family: int, address: str) -> Iterator[socket.socket]:
    with socket.socket(family, socket.SOCK_DGRAM) as c:
        c.settimeout(5)
        c.bind((address, 0))
        yield c


def settle(sock: socket.socket) -> None:
    """Let what was sent on loopback reach the socket's queue."""
    select.select([sock], [], [], 5)
    time.sleep(0.05)


def sockaddr_tuple(raw: bytes) -> tuple:
    """A raw sockaddr from udp_recv_batch as the socket module's address tuple."""
    family = struct.unpack_from("=H", raw)[0]
    port = struct.unpack_from("!H", raw, 2)[0]
    if family == socket.AF_INET:
        return (socket.inet_ntop(socket.AF_INET, raw[4:8]), port)
    flowinfo = struct.unpack_from("!I", raw, 4)[0]
    scope_id = struct.unpack_from("=I", raw, 24)[0]
    return (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, flowinfo, scope_id)


def python_recv(sock: socket.socket, bufsize: int) -> list[tuple]:
    out = []
    while True:
        try:
            data, anc, flags, addr = sock.recvmsg(bufsize, srv._ANC_SIZE)
        except BlockingIOError:
            return out
        raw = next((r for lvl, kind, r in anc if (lvl, kind) in PKTINFO_KINDS), None)
        out.append((data, addr[0], addr[1], raw, bool(flags & socket.MSG_TRUNC), addr))


def native_recv(sock: socket.socket, bufsize: int, max_: int = 64) -> list[tuple]:
    out = []
    while batch := recv_batch(sock.fileno(), max_, bufsize):
        assert len(batch) <= max_
        out += [(*d[:5], sockaddr_tuple(d[5])) for d in batch]
    return out


# --- the C calls on their own -----------------------------------------------------------


def test_native_path_is_used_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale build without udpio.c, or a broken lookup, must not pass as the C path."""
    if not WANTED:
        pytest.skip("sipwatch._native is not built (or SIPWATCH_NO_NATIVE is set)")
    assert recv_batch is not None and send_batch is not None
    assert srv._recv_batch is recv_batch and srv._send_batch is send_batch
    calls = []
    monkeypatch.setattr(srv, "_recv_batch", lambda *a: calls.append(a) or recv_batch(*a))
    with listening("127.0.0.1") as sock:
        server = SipServer([], lambda i: [b"ok"])
        listener = srv._UdpListener(server, sock, Listen("udp", "127.0.0.1", 0))
        assert listener.batched
        with client(socket.AF_INET, "127.0.0.1") as c:
            c.sendto(b"hello", sock.getsockname())
            settle(sock)
            listener.on_readable()
            assert c.recvfrom(10)[0] == b"ok"
    assert calls and listener._pktinfo_c and not listener._pktinfo  # not the Python loop
    assert server.stats.udp.received == 1 and server.stats.udp.replies == 1


@needs_native
@pytest.mark.parametrize(
    "family, address, target",
    [
        (socket.AF_INET, "0.0.0.0", ["127.0.0.1", "127.0.0.2", "127.0.0.3"]),
        pytest.param(socket.AF_INET6, "::1", ["::1"], marks=needs_ipv6),
        pytest.param(socket.AF_INET6, "::", ["::1"], marks=needs_ipv6),
        pytest.param(socket.AF_INET, "dual", ["127.0.0.1", "127.0.0.2"], marks=needs_ipv6),
    ],
)
@pytest.mark.parametrize("bufsize", [65535, 1000])  # 1000: the larger datagrams truncated
def test_recv_batch_gives_what_recvmsg_gives(family, address, target, bufsize) -> None:
    opened = [dual_stack() if address == "dual" else listening(address) for _ in range(2)]
    with opened[0] as a, opened[1] as b, client(family, target[0]) as c:
        for sock in (a, b):
            for local in target:
                for size in SIZES:
                    c.sendto(bytes([size % 251]) * size, (local, sock.getsockname()[1]))
            settle(sock)
        want = python_recv(a, bufsize)
        got = native_recv(b, bufsize, max_=4)
    assert len(want) == len(SIZES) * len(target)
    assert got == want
    assert any(d[4] for d in got) == (bufsize < max(SIZES))
    if address == "dual":
        assert got[0][1] == "::ffff:127.0.0.1"  # IPv4-mapped, as recvmsg shows it
    assert all(d[3] is not None for d in got)  # PKTINFO: the address hit is known


@needs_native
def test_recv_batch_bounds_and_errors() -> None:
    with listening("127.0.0.1") as sock, client(socket.AF_INET, "127.0.0.1") as c:
        assert recv_batch(sock.fileno(), 8, 65535) == []  # nothing waiting
        for i in range(10):
            c.sendto(b"%d" % i, sock.getsockname())
        settle(sock)
        sizes = []
        while batch := recv_batch(sock.fileno(), 3, 65535):
            sizes.append(len(batch))
        assert sizes == [3, 3, 3, 1]
        for bad in ((0, 65535), (srv._BATCH_MAX + 1, 65535), (1, 0), (1, 65537)):
            with pytest.raises(ValueError):
                recv_batch(sock.fileno(), *bad)
        fd = sock.fileno()
    with pytest.raises(OSError) as exc:
        recv_batch(fd, 4, 65535)  # closed
    assert exc.value.errno == errno.EBADF


@needs_native
def test_send_batch_counts_and_goes_on_after_a_failure() -> None:
    with listening("0.0.0.0") as sock, client(socket.AF_INET, "127.0.0.1") as c:
        port = sock.getsockname()[1]
        c.sendto(b"hi", ("127.0.0.2", port))
        settle(sock)
        (_, _, _, raw, _, peer) = recv_batch(sock.fileno(), 1, 65535)[0]
        spec_dst = struct.pack("=i4s4s", 0, raw[4:8], b"\0" * 4)  # reply from 127.0.0.2
        here = c.getsockname()
        items = [
            ([b"one", bytearray(b"two"), "not bytes", None], spec_dst, peer),
            ([b"lost"], None, ("127.0.0.1", 0)),  # port 0: EINVAL
            ([b"x" * 70000], None, here),  # EMSGSIZE
            (5, None, here),  # not iterable: one bad
            ([memoryview(b"three")], None, here),
            ([], None, here),
        ]
        assert send_batch(sock.fileno(), items) == (3, 11, 2, 3)
        got = [c.recvfrom(100) for _ in range(3)]
    assert got == [
        (b"one", ("127.0.0.2", port)),
        (b"two", ("127.0.0.2", port)),
        (b"three", ("127.0.0.1", port)),
    ]


@needs_native
def test_send_batch_refuses_malformed_items_before_sending() -> None:
    with listening("127.0.0.1") as sock, client(socket.AF_INET, "127.0.0.1") as c:
        here = c.getsockname()
        for item in (
            ([b"a"], b"short", here),  # neither in_pktinfo nor in6_pktinfo
            ([b"a"], None, b"\x02\x00"),  # not a sockaddr
            ([b"a"], None, ("localhost", 5060)),  # not numeric
            ([b"a"], None, ("127.0.0.1", 70000)),
            ([b"a"], None),
        ):
            with pytest.raises((ValueError, TypeError, OverflowError)):
                send_batch(sock.fileno(), [([b"first"], None, here), item])
        assert send_batch(sock.fileno(), []) == (0, 0, 0, 0)
        c.settimeout(0.1)
        with pytest.raises(TimeoutError):
            c.recvfrom(10)  # nothing went out


@needs_native
@needs_ipv6
def test_send_batch_ipv6_with_pktinfo() -> None:
    with listening("::") as sock, client(socket.AF_INET6, "::1") as c:
        port = sock.getsockname()[1]
        c.sendto(b"hi", ("::1", port))
        settle(sock)
        (_, src, _, raw, _, peer) = recv_batch(sock.fileno(), 1, 65535)[0]
        assert src == "::1" and len(raw) == 20
        assert send_batch(sock.fileno(), [([b"a", b"b"], raw, peer)]) == (2, 2, 0, 0)
        assert [c.recvfrom(10)[0] for _ in range(2)] == [b"a", b"b"]
        to = ("::1", c.getsockname()[1], 0, 0)
        assert send_batch(sock.fileno(), [([b"c"], None, to)]) == (1, 1, 0, 0)
        assert c.recvfrom(10) == (b"c", ("::1", port, 0, 0))


# --- the listener: C calls against the Python loop --------------------------------------


def reply_for(inbound: Inbound) -> list:
    data = inbound.data
    if data.startswith(b"boom"):
        raise RuntimeError("handler bug")
    if data.startswith(b"quiet"):
        return []
    if data.startswith(b"str"):
        return ["not bytes", b"after"]
    if data.startswith(b"many"):
        return [b"a", b"b", b"c"]
    if data.startswith(b"big"):
        return [b"x" * 70000, b"small"]  # the first: EMSGSIZE, counted
    return [b"OK " + data[:20]]


TRAFFIC = [b"OPTIONS %d" % i for i in range(6)] + [
    b"boom",
    b"quiet",
    b"str",
    b"many",
    b"big",
    b"",
    b"z" * 65507,
]


class Round:
    """One listener (C calls or Python loop) on a shared socket, with its own stats."""

    def __init__(self, sock: socket.socket, bound: Listen, batched: bool, burst: int) -> None:
        self.seen: list[Inbound] = []
        self.server = SipServer([], self.handle, limits=ServerLimits(udp_burst=burst))
        self.listener = srv._UdpListener(self.server, sock, bound)
        if not batched:
            self.listener.batched = False
        assert self.listener.batched == batched

    def handle(self, inbound: Inbound) -> list:
        self.seen.append(inbound)
        return reply_for(inbound)


def run_round(sock, bound, c, targets, batched: bool, burst: int) -> tuple:
    r = Round(sock, bound, batched, burst)
    before = time.time()
    for local in targets:
        for payload in TRAFFIC:
            c.sendto(payload, (local, bound.port))
    settle(sock)
    counts = []
    while True:
        n = r.server.stats.udp.received
        r.listener.on_readable()
        counts.append(r.server.stats.udp.received - n)
        if counts[-1] == 0:
            break
    c.settimeout(0.5)
    replies = []
    with contextlib.suppress(TimeoutError):
        while True:
            data, addr = c.recvfrom(100)
            replies.append((data, addr[:2]))
    assert all(before - 1 <= i.ts <= time.time() + 1 for i in r.seen)
    inbound = [(i.data, i.transport, i.src, i.sport, i.dst, i.dport) for i in r.seen]
    return inbound, asdict(r.server.stats.udp), replies, counts


@needs_native
@pytest.mark.parametrize(
    "family, address, targets",
    [
        (socket.AF_INET, "0.0.0.0", ["127.0.0.2", "127.0.0.3", "127.0.0.1"]),
        (socket.AF_INET, "127.0.0.2", ["127.0.0.2"]),
        pytest.param(socket.AF_INET6, "::1", ["::1"], marks=needs_ipv6),
        pytest.param(socket.AF_INET6, "::", ["::1"], marks=needs_ipv6),
        pytest.param(socket.AF_INET, "dual", ["127.0.0.2", "127.0.0.1"], marks=needs_ipv6),
    ],
)
@pytest.mark.parametrize("burst", [256, 5])
def test_listener_native_and_python_agree(family, address, targets, burst) -> None:
    sock = dual_stack() if address == "dual" else listening(address)
    with sock, client(family, "::1" if family == socket.AF_INET6 else "127.0.0.1") as c:
        bound = Listen("udp", address if address != "dual" else "::", sock.getsockname()[1])
        native = run_round(sock, bound, c, targets, True, burst)
        python = run_round(sock, bound, c, targets, False, burst)
    assert native == python
    inbound, stats, replies, counts = native
    assert max(counts) == min(burst, len(TRAFFIC) * len(targets))  # the burst bound holds
    n = len(TRAFFIC) * len(targets)
    assert stats["received"] == n and stats["handler_errors"] == 2 * len(targets)
    assert stats["send_errors"] == len(targets) and stats["truncated"] == 0
    assert {d[4] for d in inbound} == {f"::ffff:{t}" if address == "dual" else t for t in targets}
    # every reply left from the address its request hit
    assert {addr[0] for _, addr in replies} == {d[4].removeprefix("::ffff:") for d in inbound}


@needs_native
def test_listener_recv_error_is_counted_alike() -> None:
    stats = []
    for batched in (True, False):
        sock = listening("127.0.0.1")
        r = Round(sock, Listen("udp", "127.0.0.1", sock.getsockname()[1]), batched, 8)
        sock.close()
        r.listener.on_readable()
        stats.append(asdict(r.server.stats.udp))
    assert stats[0] == stats[1] and stats[0]["recv_errors"] == 1


@needs_native
def test_each_datagram_of_a_batch_has_its_own_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # identical datagrams of one flood must stay distinct records (their id includes the time)
    sock = listening("127.0.0.1")
    with sock, client(socket.AF_INET, "127.0.0.1") as c:
        bound = Listen("udp", "127.0.0.1", sock.getsockname()[1])
        r = Round(sock, bound, True, 256)
        for _ in range(20):
            c.sendto(b"OPTIONS same", ("127.0.0.1", bound.port))
        settle(sock)
        clock = iter(range(1, 1000))
        monkeypatch.setattr(time, "time", lambda: float(next(clock)))
        r.listener.on_readable()
        monkeypatch.undo()
    assert [i.ts for i in r.seen] == [float(n) for n in range(1, 21)]
