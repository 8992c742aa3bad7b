"""Syslog: the fixed line, escaping of attacker data, unix/UDP/TCP transports."""

from __future__ import annotations

import os
import re
import socket
import threading

import pytest

from actionevents import make_event
from sipwatch.actions.syslog import SyslogSink, format_message

PID = os.getpid()


def test_fixed_message_format():
    ev = make_event(rule="rhj.bruteforce", severity="critical", stage="RHJ", src="198.51.100.7",
                    count=42, targets=("100", "101"),
                    summary="198.51.100.7 tried 42 passwords on 2 extensions")  # fmt: skip
    assert format_message(ev) == (
        "event=rhj.bruteforce severity=critical stage=RHJ src=198.51.100.7 count=42 "
        'targets=100,101 summary="198.51.100.7 tried 42 passwords on 2 extensions"'
    )


def test_attacker_data_stays_in_its_field():
    ev = make_event(
        src="2001:db8::7", stage="", targets=("1 00", 'x" src=192.0.2.1', "a,b", "\u00e9"),
        summary='ua "evil"\nsipwatch[1]: event=x src=192.0.2.1 \\ \x00',
    )  # fmt: skip
    msg = format_message(ev)
    assert "\n" not in msg and "\x00" not in msg
    assert msg.startswith("event=es.extension-scan severity=high stage=- src=2001:db8::7 count=25 ")
    assert " targets=1%2000,x%22%20src%3D192.0.2.1,a%2Cb,%C3%A9 " in msg
    assert msg.endswith(r'summary="ua \"evil\"\x0asipwatch[1]: event=x src=192.0.2.1 \\ \x00"')
    head = msg.partition(' summary="')[0]
    assert head.count("src=") == 1  # attacker text cannot add a field before the summary


def test_no_source_and_many_targets():
    ev = make_event(src="", targets=tuple(str(i) for i in range(25)), summary="x" * 500)
    msg = format_message(ev)
    assert " src=- " in msg
    assert " targets=0,1,2,3,4,5,6,7,8,9,...+15 " in msg
    assert msg.endswith('x..."') and len(msg) < 500


def _unix_dgram(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    return s


def test_rfc3164_to_a_local_dgram_socket(tmp_path):
    path = str(tmp_path / "log")
    rx = _unix_dgram(path)
    sink = SyslogSink(socket_path=path)
    sink.emit([make_event(severity="high"), make_event(severity="info", src="192.0.2.9")])
    got = [rx.recv(65536).decode(), rx.recv(65536).decode()]
    sink.close()
    rx.close()
    stamp = r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
    # auth (4) * 8 + err (3) = 35; info -> 6 = 38; no hostname: the local daemon adds it
    assert re.fullmatch(rf"<35>{stamp} sipwatch\[{PID}\]: event=es\.extension-scan "
                        r"severity=high stage=ES src=203\.0\.113\.7 count=25 .*", got[0])  # fmt: skip
    assert got[1].startswith("<38>") and " src=192.0.2.9 " in got[1]
    assert sink.stats.delivered == 2


def test_rfc5424_over_udp():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(10)
    port = rx.getsockname()[1]
    sink = SyslogSink(host="127.0.0.1", port=port, format="rfc5424", facility="local3",
                      hostname="sensor-1")  # fmt: skip
    sink.emit([make_event(severity="medium", stage="RHJ")])
    line = rx.recv(65536).decode()
    sink.close()
    rx.close()
    # local3 (19) * 8 + warning (4) = 156; MSGID = stage; no structured data
    assert re.fullmatch(
        rf"<156>1 \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{6}}Z sensor-1 sipwatch {PID} RHJ - "
        r"event=es\.extension-scan severity=medium stage=RHJ src=203\.0\.113\.7 .*", line
    )  # fmt: skip


def test_rfc5424_over_tcp_uses_octet_counting():
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    received = bytearray()
    done = threading.Event()

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(10)
            while data := conn.recv(65536):
                received.extend(data)
        done.set()

    threading.Thread(target=serve, daemon=True).start()
    sink = SyslogSink(host="127.0.0.1", port=port, transport="tcp", format="rfc5424")
    sink.emit([make_event(), make_event(src="198.51.100.1")])
    sink.close()
    assert done.wait(10)
    srv.close()
    frames = []
    rest = bytes(received)
    while rest:
        size, _, rest = rest.partition(b" ")
        frames.append(rest[: int(size)])
        rest = rest[int(size) :]
    assert len(frames) == 2 and all(f.startswith(b"<35>1 ") for f in frames)
    assert b" src=198.51.100.1 " in frames[1]


def test_unix_stream_socket_and_reconnect_after_daemon_restart(tmp_path):
    path = str(tmp_path / "log")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen()
    srv.settimeout(10)
    sink = SyslogSink(socket_path=path)
    sink.emit([make_event()])
    conn, _ = srv.accept()
    conn.settimeout(10)
    assert conn.recv(65536).endswith(b'"\n')  # newline-framed on a stream socket
    conn.close()
    srv.close()
    os.unlink(path)
    rx = _unix_dgram(path)  # the daemon came back (as a datagram socket this time)
    sink.emit([make_event(src="192.0.2.44")])
    assert b" src=192.0.2.44 " in rx.recv(65536)
    sink.close()
    rx.close()
    assert sink.stats.failed == 0


def test_missing_socket_is_counted_not_raised(tmp_path):
    sink = SyslogSink(socket_path=str(tmp_path / "nothing"))
    sink.emit([make_event()])
    assert sink.flush(10)
    st = sink.stats
    assert st.failed == 1 and st.errors == 1 and "FileNotFoundError" in st.last_error
    sink.close()


@pytest.mark.parametrize("fmt", ["rfc3164", "rfc5424"])
def test_line_is_one_line_of_utf8(fmt):
    sink = SyslogSink(host="127.0.0.1", port=9, format=fmt)
    data = sink.line(make_event(summary="caf\u00e9 \ud800 \n"))
    sink.close()
    text = data.decode("utf-8")
    assert "\n" not in text and "caf\u00e9" in text


def test_rfc5424_is_refused_on_a_local_socket():
    with pytest.raises(ValueError, match="local sockets take rfc3164"):
        SyslogSink(socket_path="/dev/log", format="rfc5424")
