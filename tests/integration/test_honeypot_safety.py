"""The sensor under abuse: an OPTIONS flood (rate limit, amplification bound) and junk."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensorproc import SensorProcess, free_port, query, wait_rows
from sipwatch.sip.build import build_request
from sipwatch.sip.message import parse

SIPP_DIR = Path(__file__).resolve().parents[1] / "data" / "sipp"
RATE, BURST = 20, 40


@pytest.fixture(scope="module")
def sensor(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("safety")
    port = free_port()
    db = tmp / "safety.sqlite"
    config = f"""
[sensor]
name = "safety"
store = "{db}"
log_interval = 1

[[listen]]
transport = "udp"
address = "127.0.0.1"
port = {port}

[safety]
reply_rate = {RATE}
reply_burst = {BURST}
"""
    proc = SensorProcess(config, tmp, listeners=1).start()
    yield proc, port, db, tmp
    assert proc.stop() == 0, proc.log()


def _options(src_port: int, call_id: str, target: str = "127.0.0.1") -> bytes:
    return build_request(
        "OPTIONS", f"sip:100@{target}",
        via=f"SIP/2.0/UDP 127.0.0.1:{src_port};branch=z9hG4bK-{call_id}",
        from_="<sip:p@127.0.0.1>;tag=1", to=f"<sip:100@{target}>", call_id=call_id, cseq=1,
    ).to_bytes()  # fmt: skip


def _ask(port: int, source: str, call_id: str, timeout: float = 3.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.bind((source, 0))
        s.sendto(_options(s.getsockname()[1], call_id), ("127.0.0.1", port))
        try:
            return s.recvfrom(65535)[0]
        except TimeoutError:
            return None


def test_options_flood_is_rate_limited_and_never_amplified(sensor):
    proc, port, db, tmp = sensor
    if shutil.which("sipp") is None:
        print("SKIP: needs sipp (scripts/install-test-deps.sh)")
        pytest.skip("needs sipp")
    started = time.monotonic()
    res = subprocess.run(
        [
            "sipp", f"127.0.0.1:{port}", "-sf", str(SIPP_DIR / "options_flood.xml"),
            "-i", "127.0.0.4", "-p", str(free_port(host="127.0.0.4")), "-r", "1000",
            "-m", "3000", "-nostdin", "-timeout", "30s",
        ],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert res.returncode == 0, res.stderr[-2000:]
    got = wait_rows(db, "SELECT 1 FROM messages WHERE src='127.0.0.4'", 3000, timeout=20)
    assert len(got) == 3000  # every request of the flood is recorded
    replies = query(db, "SELECT COUNT(*) FROM messages WHERE dst='127.0.0.4' AND direction='out'")
    assert 0 < replies[0][0] <= BURST + RATE * (elapsed + 1)
    # the sensor is still there for others
    assert _ask(port, "127.0.0.5", "after-flood") is not None
    assert "rate_limited=" in proc.log()


def test_no_reply_is_bigger_than_three_times_its_request(sensor):
    _proc, port, db, _tmp = sensor
    # a tiny OPTIONS: the full 200 OK (Allow, Supported, Accept...) would be > 3x its size
    tiny = b"OPTIONS sip:a SIP/2.0\r\nv:SIP/2.0/UDP h;branch=z9hG4bK1\r\nf:<sip:b>;tag=1\r\nt:<sip:a>\r\ni:tiny\r\nCSeq:1 OPTIONS\r\n\r\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.bind(("127.0.0.6", 0))
        s.sendto(tiny, ("127.0.0.1", port))
        try:
            reply = s.recvfrom(65535)[0]
        except TimeoutError:
            reply = b""
    assert len(reply) <= 3 * len(tiny)
    if reply:
        assert parse(reply).status == 200
    wait_rows(db, "SELECT 1 FROM messages WHERE call_id='tiny'", 1)
    rows = query(
        db,
        "SELECT q.id, length(q.raw), SUM(length(r.raw)) FROM messages q"
        " JOIN messages r ON r.request_id = q.id AND r.direction = 'out'"
        " WHERE q.direction = 'in' AND q.transport = 'udp' GROUP BY q.id",
    )
    assert rows
    assert all(sent <= 3 * size for _id, size, sent in rows), [r for r in rows if r[2] > 3 * r[1]]


_valid = _options(5060, "seed")


@st.composite
def _mutated(draw) -> bytes:
    data = bytearray(_valid)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut]
    return bytes(data)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=st.one_of(st.binary(min_size=1, max_size=2000), _mutated()))
def test_junk_datagrams_do_not_stop_the_listener(sensor, payload: bytes):
    _proc, port, _db, _tmp = sensor
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.7", 0))
        s.sendto(payload, ("127.0.0.1", port))


def test_still_answering_after_the_junk(sensor):
    proc, port, db, _tmp = sensor
    assert proc.alive
    reply = _ask(port, "127.0.0.8", "after-junk")
    assert reply is not None and parse(reply).status == 200
    wait_rows(db, "SELECT 1 FROM messages WHERE src='127.0.0.7'", 100)
    fuzz = query(db, "SELECT COUNT(*) FROM messages WHERE src='127.0.0.7' AND fuzz=1")
    assert fuzz[0][0] > 0  # the junk is recorded as fuzzing
    assert "responder_errors" not in proc.log()
