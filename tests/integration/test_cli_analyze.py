"""`sipwatch analyze` and `sipwatch report` as a user runs them: the installed command, real files."""

from __future__ import annotations

import csv
import gzip
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pcapgen as pg  # noqa: E402

PCAPS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pcaps"
WIRESHARK = PCAPS / "zeek" / "wireshark.pcap"  # 81 SIP messages


def sipwatch(*args: str, stdin: bytes | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "sipwatch.cli", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=120,
    )


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def one_error_line(proc) -> str:
    """An error the user can fix: exit 2, one line on stderr, no traceback."""
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def attack_capture() -> bytes:
    """A scan, an extension scan and a password try, with the replies, over Ethernet/UDP."""
    att, pot = "203.0.113.9", "192.0.2.1"
    packets = []
    t = 1_700_000_000.0
    opt = pg.sip_request(
        "OPTIONS", "sip:100@192.0.2.1", call_id="o1", extra="User-Agent: friendly-scanner\r\n"
    )
    packets.append((t, pg.ether_of(pg.udp_packet(att, pot, 5061, 5060, opt))))
    reg = pg.sip_request("REGISTER", "sip:192.0.2.1", call_id="r1")
    packets.append((t + 1, pg.ether_of(pg.udp_packet(att, pot, 5061, 5060, reg))))
    auth = (
        'Authorization: Digest username="101", realm="pbx", nonce="n1", '
        'uri="sip:192.0.2.1", response="00112233445566778899aabbccddeeff"\r\n'
    )
    reg2 = pg.sip_request("REGISTER", "sip:192.0.2.1", call_id="r2", cseq=2, extra=auth)
    packets.append((t + 2, pg.ether_of(pg.udp_packet(att, pot, 5061, 5060, reg2))))
    inv = pg.sip_request("INVITE", "sip:0097225556666@192.0.2.1", call_id="i1", extra=auth)
    packets.append((t + 3, pg.ether_of(pg.udp_packet(att, pot, 5061, 5060, inv))))
    return pg.pcap(packets)


def test_analyze_stores_every_message_and_reports(tmp_path: Path) -> None:
    db = tmp_path / "trace.sqlite"
    html = tmp_path / "report.html"
    proc = sipwatch("analyze", str(WIRESHARK), "--db", str(db), "--report", str(html))
    assert proc.returncode == 0, proc.stderr.decode()
    text = proc.stdout.decode()
    assert "SIP messages" in text and "81" in text
    assert rows(db, "SELECT COUNT(*) FROM messages") == [(81,)]
    page = html.read_text(encoding="utf-8")
    assert "<html" in page.lower() and "Plotly" in page
    assert 'src="http' not in page  # opens offline


def test_same_capture_twice_is_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "trace.sqlite"
    assert sipwatch("analyze", str(WIRESHARK), "--db", str(db)).returncode == 0
    proc = sipwatch("analyze", str(WIRESHARK), "--db", str(db))
    assert proc.returncode == 0
    assert rows(db, "SELECT COUNT(*) FROM messages") == [(81,)]
    out = proc.stdout.decode()
    line = next(x for x in out.splitlines() if "already stored" in x)
    assert "81" in line


def test_stage_labels_reach_the_store(tmp_path: Path) -> None:
    cap = tmp_path / "attack.pcap"
    cap.write_bytes(attack_capture())
    db = tmp_path / "t.sqlite"
    proc = sipwatch("analyze", str(cap), "--db", str(db))
    assert proc.returncode == 0, proc.stderr.decode()
    got = dict(rows(db, "SELECT call_id, stage FROM messages"))
    assert got == {"o1": "SS", "r1": "ES", "r2": "RHJ", "i1": "TF"}
    tool = rows(db, "SELECT tool FROM messages WHERE call_id = 'o1'")
    assert tool == [("sipvicious",)]
    number = rows(db, "SELECT number, number_type, number_country FROM messages WHERE call_id='i1'")
    assert number == [("+97225556666", "international", "IL")]


def test_report_formats(tmp_path: Path) -> None:
    db = tmp_path / "trace.sqlite"
    assert sipwatch("analyze", str(WIRESHARK), "--db", str(db)).returncode == 0

    table = sipwatch("report", "--db", str(db))
    assert table.returncode == 0 and "Messages and sources per stage" in table.stdout.decode()

    js = sipwatch("report", "--db", str(db), "--format", "json")
    data = json.loads(js.stdout)
    totals = {r["metric"]: r["value"] for r in data["totals"]["rows"]}
    assert totals["messages"] == 81 and totals["requests"] == 47 and totals["responses"] == 34
    assert "stages" in data and "top_sources" in data and "per_day" in data

    folder = tmp_path / "csv"
    proc = sipwatch("report", "--db", str(db), "--format", "csv", "-o", str(folder))
    assert proc.returncode == 0, proc.stderr.decode()
    methods = list(csv.reader((folder / "methods.csv").open(encoding="utf-8")))
    assert methods[0][0] == "method"
    assert {r[0] for r in methods[1:]} >= {"INVITE", "REGISTER"}

    html = tmp_path / "r.html"
    assert sipwatch("report", "--db", str(db), "-f", "html", "-o", str(html)).returncode == 0
    assert html.read_text(encoding="utf-8").count("Plotly") >= 1

    only = sipwatch("report", "--db", str(db), "-f", "json", "-t", "methods")
    assert list(json.loads(only.stdout)) == ["methods"]


def test_standard_input_folder_and_gzip(tmp_path: Path) -> None:
    db1 = tmp_path / "a.sqlite"
    proc = sipwatch("analyze", "-", "--db", str(db1), stdin=WIRESHARK.read_bytes())
    assert proc.returncode == 0, proc.stderr.decode()
    assert rows(db1, "SELECT COUNT(*) FROM messages") == [(81,)]

    folder = tmp_path / "caps" / "deeper"
    folder.mkdir(parents=True)
    (folder / "one.bin").write_bytes(gzip.compress(WIRESHARK.read_bytes()))
    (folder / "two.pcap").write_bytes(attack_capture())
    db2 = tmp_path / "b.sqlite"
    proc = sipwatch("analyze", str(tmp_path / "caps"), "--db", str(db2))
    assert proc.returncode == 0, proc.stderr.decode()
    assert rows(db2, "SELECT COUNT(*) FROM messages") == [(85,)]


def test_bpf_filter(tmp_path: Path) -> None:
    cap = tmp_path / "attack.pcap"
    cap.write_bytes(attack_capture())
    db = tmp_path / "t.sqlite"
    proc = sipwatch("analyze", str(cap), "--db", str(db), "--filter", "host 198.51.100.99")
    assert proc.returncode == 0
    assert rows(db, "SELECT COUNT(*) FROM messages") == [(0,)]
    bad = sipwatch("analyze", str(cap), "--db", str(db), "--filter", "udp port port")
    assert "filter" in one_error_line(bad).lower()


def test_errors_a_user_can_cause(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    missing = one_error_line(sipwatch("analyze", str(tmp_path / "nope.pcap"), "--db", str(db)))
    assert "nope.pcap" in missing
    assert not db.exists()  # nothing created for a run that could not start

    text = tmp_path / "notes.txt"
    text.write_text("this is not a capture\n")
    assert "capture" in one_error_line(sipwatch("analyze", str(text), "--db", str(db))).lower()

    wifi = tmp_path / "wifi.pcap"
    wifi.write_bytes(pg.pcap([(1.0, b"\x00" * 40)], linktype=pg.LT_IEEE802_11))
    msg = one_error_line(sipwatch("analyze", str(wifi), "--db", str(db)))
    assert "105" in msg and "802.11" in msg

    assert "format" in one_error_line(sipwatch("report", "--db", str(db), "-f", "xml"))
    cap = tmp_path / "a.pcap"
    cap.write_bytes(attack_capture())
    bad_region = sipwatch("analyze", str(cap), "--db", str(db), "--region", "XX")
    assert "unknown region" in one_error_line(bad_region)
    assert "nowhere.sqlite" in one_error_line(
        sipwatch("report", "--db", str(tmp_path / "nowhere.sqlite"))
    )


def test_truncated_capture_is_read_up_to_the_damage(tmp_path: Path) -> None:
    whole = attack_capture()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) - 40])  # the last packet loses its tail
    db = tmp_path / "t.sqlite"
    proc = sipwatch("analyze", str(cut), "--db", str(db))
    assert proc.returncode == 0, proc.stderr.decode()
    err = proc.stderr.decode()
    assert "warning" in err and "cut.pcap" in err and "truncated" in err.lower()
    assert rows(db, "SELECT COUNT(*) FROM messages") == [(3,)]


def test_help_lists_commands() -> None:
    proc = sipwatch("--help")
    assert proc.returncode == 0
    out = proc.stdout.decode()
    assert "analyze" in out and "report" in out


def test_c_accelerator_and_pure_python_store_the_same(tmp_path: Path) -> None:
    """End to end on a generated attack mix: the optional C parser changes nothing stored."""
    cap = tmp_path / "mix.pcap"
    gen = Path(__file__).resolve().parents[2] / "bench" / "gen_capture.py"
    made = subprocess.run(
        [sys.executable, str(gen), "--packets", "20000", "--out", str(cap)],
        capture_output=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr.decode()
    dumps = []
    for env in ({}, {"SIPWATCH_NO_SPEEDUPS": "1"}):
        db = tmp_path / f"t{len(dumps)}.sqlite"
        proc = subprocess.run(
            [sys.executable, "-m", "sipwatch.cli", "analyze", str(cap), "--db", str(db), "-q"],
            capture_output=True,
            timeout=300,
            env={**os.environ, **env},
        )
        assert proc.returncode == 0, proc.stderr.decode()
        dumps.append(rows(db, "SELECT * FROM messages ORDER BY ts, id"))
    assert len(dumps[0]) == 20000
    assert dumps[0] == dumps[1]


def test_two_workers_store_what_one_stores(tmp_path: Path) -> None:
    """Workers split the clients between them; the store ends up the same, labels included."""
    cap = tmp_path / "mix.pcap"
    gen = Path(__file__).resolve().parents[2] / "bench" / "gen_capture.py"
    made = subprocess.run(
        [sys.executable, str(gen), "--packets", "20000", "--seed", "7", "--out", str(cap)],
        capture_output=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr.decode()
    dumps = []
    for workers in ("1", "2"):
        db = tmp_path / f"w{workers}.sqlite"
        proc = sipwatch(
            "analyze", str(cap), "--db", str(db), "--workers", workers, "--no-detect", "-q"
        )
        assert proc.returncode == 0, proc.stderr.decode()
        out = proc.stdout.decode()
        assert "20,000" in next(x for x in out.splitlines() if "SIP messages" in x)
        dumps.append(rows(db, "SELECT * FROM messages ORDER BY ts, id"))
    assert len(dumps[0]) == 20000
    assert dumps[0] == dumps[1]
    stages = {r[0] for r in rows(tmp_path / "w2.sqlite", "SELECT DISTINCT stage FROM messages")}
    assert stages >= {"SS", "ES", "RHJ", "TF"}


def test_worker_errors_are_one_line(tmp_path: Path) -> None:
    cap = tmp_path / "a.pcap"
    cap.write_bytes(attack_capture())
    db = tmp_path / "t.sqlite"
    bad = sipwatch(
        "analyze", str(cap), "--db", str(db), "--workers", "2", "--no-detect",
        "--filter", "udp port port",
    )  # fmt: skip
    assert "filter" in one_error_line(bad).lower()
    stdin = sipwatch("analyze", "-", "--db", str(db), "--workers", "2", "--no-detect", stdin=b"")
    assert "standard input" in one_error_line(stdin)
    detect = sipwatch("analyze", str(cap), "--db", str(db), "--workers", "2")
    assert "--no-detect" in one_error_line(detect)
