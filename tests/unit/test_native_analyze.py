"""`sipwatch analyze` through the C bulk path stores exactly what the Python pipeline stores.

The C BulkAnalyzer (native/core.c) handles the common shapes itself and hands every other
message to the Python pipeline in order; the Python pipeline alone (with the Python
PasswordRecovery) is the reference. Each test analyses the same capture both ways and compares
every stored row, the capture counters, the stage counts and the insert/duplicate counts; on
the C path, only messages the C scanner refuses may take the Python path (digest requests
included: their passwords are recovered in C).
"""

from __future__ import annotations

import functools
import gzip
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pcapgen as g  # noqa: E402
from sipwatch import analyze, analyze_native  # noqa: E402
from sipwatch.analyze import run_analyze  # noqa: E402
from sipwatch.capture.api import iter_packets  # noqa: E402
from sipwatch.detect.stages import labeller_class  # noqa: E402
from sipwatch.native import part  # noqa: E402
from sipwatch.report.tables import all_tables  # noqa: E402
from sipwatch.sip.digest import build_credentials  # noqa: E402
from sipwatch.sip.message import parse  # noqa: E402
from sipwatch.store.base import open_store  # noqa: E402
from sipwatch.store.schema import MESSAGE_COLUMNS  # noqa: E402
from sipwatch.store.writer import clean_text  # noqa: E402
from sipwatch.summary import tally_tables  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT / ".." / "shared" / "data" / "pcaps"

if part("BulkAnalyzer") is None:
    pytest.skip("the C bulk path (sipwatch._native) is not built", allow_module_level=True)


class Bulk:
    """What a BulkAnalyzer of the run did: its counts, and the messages it gave to Python."""

    def __init__(self) -> None:
        self.counts: dict = {}
        self.fallbacks: list[bytes] = []
        self.bulk = None

    def part(self, name: str):  # noqa: ANN201
        """analyze_native.part, with a BulkAnalyzer that notes its fallbacks."""
        found = part(name)
        if name != "BulkAnalyzer" or found is None:
            return found

        def make(labeller, writer, fallback, **kw):  # noqa: ANN001, ANN003, ANN202
            def noted(raw, *args) -> None:  # noqa: ANN001, ANN002
                self.fallbacks.append(bytes(raw))
                fallback(raw, *args)

            self.bulk = found(labeller, writer, noted, **kw)
            return self.bulk

        return make


def _analyze(capture: Path, db: Path, native: bool, monkeypatch: pytest.MonkeyPatch, **kw):
    bulk = Bulk()
    with monkeypatch.context() as m:
        taken: list[bool] = []
        real = analyze_native.usable

        def usable(*a, **k) -> bool:
            ok = native and real(*a, **k)
            taken.append(ok)
            return ok

        m.setattr(analyze_native, "usable", usable)
        m.setattr(analyze_native, "part", bulk.part)
        if not native:  # the reference: the Python pipeline with the Python recovery
            recovery = functools.partial(analyze.analyze_recovery, native=False)
            m.setattr(analyze, "analyze_recovery", recovery)
            m.setattr(analyze, "labeller_class", functools.partial(labeller_class, False))
        result = run_analyze([str(capture)], str(db), detect=False, workers=1, **kw)
    assert taken == [native], "the run did not take the intended path"
    if native:
        assert bulk.bulk is not None
        bulk.counts = bulk.bulk.counts()
        # only what the C scanner refuses takes the Python path
        scan = part("scan")
        assert all(scan(raw) is None for raw in bulk.fallbacks)
        assert bulk.counts["fallbacks"] == len(bulk.fallbacks)
    store = result.store
    assert store is not None
    rows = store.query("SELECT * FROM messages ORDER BY ts, id")
    store.close()
    return result, rows, bulk


SUMMARY_TABLES = ["stages", "top_sources", "tools"]


def _summary_tables_counted_right(result: analyze.AnalyzeResult, db: Path) -> None:
    """The run's own count of the summary tables (RunTally) is the store's, row for row, when
    the summary uses it; it uses it whenever every message of the run was stored."""
    assert result.tally is not None  # a fresh store
    store = open_store(str(db), readonly=True)
    result.store = store  # the run's own was closed by _analyze
    try:
        counted = tally_tables(result, SUMMARY_TABLES, 10)
        assert (counted is not None) == (result.inserted == result.tally.messages)
        if counted is not None:
            assert counted == all_tables(store, SUMMARY_TABLES, top=10)
            # the whole ranking too, not only its head
            assert tally_tables(result, ["top_sources"], 10**6) == all_tables(
                store, ["top_sources"], top=10**6
            )
    finally:
        store.close()


def digest_requests(raws: list[bytes]) -> int:
    """How many of these messages are digest requests (a password try)."""
    n = 0
    for raw in raws:
        msg = parse(raw)
        n += msg.is_request and msg.has_credentials and msg.credentials is not None
    return n


def _same(
    capture: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    seen: dict | None = None,
    **kw,
) -> int:
    """Analyse twice each way; everything equal. Returns the number of stored messages; seen
    gets the C path's Bulk and rows."""
    ref_db, nat_db = tmp_path / "ref.sqlite", tmp_path / "native.sqlite"
    for db in (ref_db, nat_db):
        db.unlink(missing_ok=True)
    ref, ref_rows, _ = _analyze(capture, ref_db, False, monkeypatch, **kw)
    nat, nat_rows, bulk = _analyze(capture, nat_db, True, monkeypatch, **kw)
    assert len(nat_rows) == len(ref_rows)
    for a, b in zip(nat_rows, ref_rows, strict=True):
        assert a == b
    assert nat.capture.as_dict() == ref.capture.as_dict()
    assert nat.capture.warnings == ref.capture.warnings
    assert dict(nat.stages) == {k: v for k, v in ref.stages.items() if v}
    assert nat.pipeline.records == ref.pipeline.records
    assert (nat.inserted, nat.duplicates) == (ref.inserted, ref.duplicates)
    _summary_tables_counted_right(nat, nat_db)
    # a second run stores nothing new, on both paths
    ref2, _, _ = _analyze(capture, ref_db, False, monkeypatch, **kw)
    nat2, _, _ = _analyze(capture, nat_db, True, monkeypatch, **kw)
    # a store that was not empty: the summary reads it
    assert (nat2.tally is None) == (nat.inserted > 0)
    assert (nat2.inserted, nat2.duplicates) == (ref2.inserted, ref2.duplicates)
    assert (ref2.inserted, ref2.duplicates) == (0, ref.pipeline.records)
    if seen is not None:
        seen.update(bulk=bulk, rows=nat_rows)
    return len(ref_rows)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A realistic attack capture: scans, password guessing with svcrack digests, toll fraud,
    malformed messages, UDP over IPv4 and IPv6 and TCP (bench/gen_capture.py)."""
    out = tmp_path_factory.mktemp("gen") / "attack.pcap"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gen_capture.py"), "--packets", "40000",
         "--seed", "7", "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def test_generated_attack_capture(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict = {}
    assert _same(generated, tmp_path, monkeypatch, seen) == 40000
    bulk = seen["bulk"]
    raw = MESSAGE_COLUMNS.index("raw")
    tries = digest_requests([row[raw] for row in seen["rows"]])
    # the password tries stay on the C path, their passwords are there (and equal, above)
    assert tries > 1000
    assert digest_requests(bulk.fallbacks) < tries // 10
    assert bulk.counts["password_responses"] > 1000


def test_generated_attack_capture_with_sensor_node_and_wordlist(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    words = tmp_path / "words.txt"
    words.write_text("1234\nsecret\n100\n")
    _same(generated, tmp_path, monkeypatch, sensor="s1", node="oslo", wordlist=str(words),
          region="DE")  # fmt: skip


@pytest.mark.parametrize(
    "capture",
    sorted(PCAPS.glob("*/*.pcap")) if PCAPS.is_dir() else [],
    ids=lambda p: p.name,
)
def test_public_captures(capture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _same(capture, tmp_path, monkeypatch)


def _mixed_frames() -> list[tuple[float, bytes]]:
    """Every shape the decoder knows, interleaved so that state crosses them: requests over one
    shape answered over another, TCP split and coalesced, fragments, tunnels, VLANs, junk."""
    rnd = random.Random(5)
    a, b, a6, b6 = "198.51.100.7", "192.0.2.1", "2001:db8::7", "2001:db8::1"
    frames: list[tuple[float, bytes]] = []
    t = 1700000000.0

    def add(frame: bytes) -> None:
        nonlocal t
        t += rnd.choice((0.0, 0.000001, 0.25, 1.0))
        frames.append((t, frame))

    tag = "3130300131323334"  # SIPVicious-style From tag: "100" \x01 "1234"
    for i in range(40):
        user = str(100 + i % 7)
        call = f"c{i}@x"
        req = g.sip_request("REGISTER", f"sip:{user}@{b}", call_id=call, cseq=1,
                            extra="User-Agent: friendly-scanner\r\n")  # fmt: skip
        req = req.replace(b"tag=1", f"tag={tag}".encode())
        resp = g.sip_response(401 if i % 3 else 404, "Unauthorized", call_id=call)
        shape = i % 8
        if shape == 0:
            add(g.ether_of(g.udp_packet(a, b, 5060, 5060, req)))
            add(g.ether_of(g.udp_packet(b, a, 5060, 5060, resp)))
        elif shape == 1:
            add(g.ether_of(g.udp_packet(a6, b6, 5060, 5060, req)))
            add(g.ether_of(g.udp_packet(b6, a6, 5060, 5060, resp)))
        elif shape == 2:  # TCP: one message in two segments, then two in one
            half = len(req) // 2
            add(g.ether_of(g.tcp_packet(a, b, 40000 + i, 5060, 1000, req[:half])))
            add(g.ether_of(g.tcp_packet(a, b, 40000 + i, 5060, 1000 + half, req[half:])))
            add(g.ether_of(g.tcp_packet(b, a, 5060, 40000 + i, 5000, resp + resp)))
        elif shape == 3:  # VLAN-tagged
            add(g.ether(g.udp_packet(a, b, 5060, 5060, req), vlans=[100]))
            add(g.ether(g.udp_packet(b, a, 5060, 5060, resp), vlans=[100, 200], qinq=True))
        elif shape == 4:  # IPv4 fragments of a large INVITE with SDP
            body = b"v=0\r\n" + b"a=x:" + b"y" * 2500 + b"\r\n"
            inv = g.sip_request("INVITE", f"sip:00972{i}5551234@{b}", call_id=call, body=body)
            for frag in g.ipv4_fragments(a, b, 17, g.udp(5060, 5060, inv, a, b), ident=i):
                add(g.ether_of(frag))
            add(g.ether_of(g.udp_packet(b, a, 5060, 5060, resp)))
        elif shape == 5:  # VXLAN underlay
            inner = g.ether_of(g.udp_packet(a, b, 5060, 5060, req))
            add(g.ether_of(g.udp_packet("10.0.0.1", "10.0.0.2", 4789, 4789, g.vxlan(42, inner))))
            add(g.ether_of(g.udp_packet(b, a, 5060, 5060, resp)))
        elif shape == 6:  # two messages in one datagram, then a keep-alive and junk on 5060
            add(g.ether_of(g.udp_packet(a, b, 5060, 5060, req + req)))
            add(g.ether_of(g.udp_packet(a, b, 5060, 5060, b"\r\n\r\n")))
            add(g.ether_of(g.udp_packet(a, b, 5060, 5060, b"\x16\x03\x01junk")))
            add(g.ether_of(g.udp_packet(b, a, 5060, 5060, resp)))
        else:  # malformed and non-ASCII heads, RTP-like noise off the SIP ports
            bad = req.replace(b"CSeq: 1 REGISTER", b"CSeq: -1 REGISTER")
            add(g.ether_of(g.udp_packet(a, b, 5060, 5060, bad)))
            add(g.ether_of(g.udp_packet(a, b, 5060, 5060, req.replace(b"friendly", b"fr\xc3\xa9"))))
            add(g.ether_of(g.udp_packet(a, b, 5060, 5060, req.replace(b"\r\n", b"\n"))))
            add(g.ether_of(g.udp_packet(a, b, 30000, 30002, bytes(rnd.randbytes(160)))))
            add(g.ether_of(g.udp_packet(b, a, 5060, 5060, resp)))
    return frames


def _split(capture: Path, folder: Path, interleave: bool) -> Path:
    """The capture as three files: consecutive thirds, or every third packet in each (so the
    files overlap in time and the merge interleaves them); one of them gzipped."""
    frames = [(ts, frame) for ts, _, frame in iter_packets(str(capture))]
    folder.mkdir()
    for k in range(3):
        part_ = (
            frames[k::3]
            if interleave
            else frames[k * len(frames) // 3 : (k + 1) * len(frames) // 3]
        )
        data = g.pcap(part_)
        if k == 1:
            (folder / f"part{k}.pcap.gz").write_bytes(gzip.compress(data))
        else:
            (folder / f"part{k}.pcap").write_bytes(data)
    return folder


@pytest.mark.parametrize("interleave", [False, True], ids=["rotated", "interleaved"])
def test_several_inputs_merged(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interleave: bool
) -> None:
    folder = _split(generated, tmp_path / "parts", interleave)
    assert _same(folder, tmp_path, monkeypatch) == 40000


def test_several_inputs_of_every_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = tmp_path / "mixed.pcap"
    cap.write_bytes(g.pcap(_mixed_frames()))
    folder = _split(cap, tmp_path / "parts", interleave=True)
    # each input has its own decoder, so fragments and TCP segments dealt over different files
    # do not join: fewer messages than in the one file, the same on both paths
    assert 0 < _same(folder, tmp_path, monkeypatch) < 90


def test_every_decoder_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = tmp_path / "mixed.pcap"
    cap.write_bytes(g.pcap(_mixed_frames()))
    assert _same(cap, tmp_path, monkeypatch) == 90


@pytest.mark.parametrize("link", ["sll", "sll2", "raw"])
def test_other_link_types(link: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = []
    for i, (ts, frame) in enumerate(_mixed_frames()):
        ip = frame[14:] if frame[12:14] in (b"\x08\x00", b"\x86\xdd") else None
        if ip is None:
            continue  # VLAN frames exist only on Ethernet
        proto = g.ETH_IPV6 if frame[12:14] == b"\x86\xdd" else g.ETH_IPV4
        if link == "sll":
            ip = g.sll(ip, proto)
        elif link == "sll2":
            ip = g.sll2(ip, proto)
        frames.append((ts + i * 1e-6, ip))
    dlt = {"sll": 113, "sll2": 276, "raw": 101}[link]
    cap = tmp_path / f"{link}.pcap"
    cap.write_bytes(g.pcap(frames, linktype=dlt))
    _same(cap, tmp_path, monkeypatch)


def _password_frames() -> list[tuple[float, bytes]]:
    """Digest requests of every kind and their answers, on the C path and on the Python path
    (TCP, a non-ASCII head) in turns, so that the two share the recovery's state: a request
    on one path is answered on the other, HA1s computed on one are reused on the other."""
    a, b = "203.0.113.9", "192.0.2.1"
    realm = "asterisk"
    frames: list[tuple[float, bytes]] = []
    t = 1700000000.0
    # (password, digest options, header, method, From-tag claim, body); "caf\udce9" is the
    # word list's Latin-1 word (hashed as its bytes, stored with U+FFFD)
    tries = [
        ("1234", {}, "Authorization", "REGISTER", None, b""),
        ("caf\udce9", {"qop": "auth", "cnonce": "c1"}, "Authorization", "REGISTER", None, b""),
        ("secret", {"algorithm": "SHA-256"}, "Authorization", "REGISTER", None, b""),
        ("admin", {"algorithm": "MD5-sess", "qop": "auth", "cnonce": "c2"}, "Authorization",
         "REGISTER", None, b""),
        ("Tr0ub4dor&3", {}, "Authorization", "REGISTER", "Tr0ub4dor&3", b""),
        ("101", {"qop": "auth-int", "cnonce": "c3"}, "Proxy-Authorization", "INVITE", None,
         b"v=0\r\n"),
        ("zebra-not-in-any-list", {"algorithm": "SHA-512-256-sess", "cnonce": "c4",
                                   "qop": "auth"}, "Authorization", "REGISTER", None, b""),
        ("1234", {"algorithm": "AKAv1-MD5"}, "Authorization", "REGISTER", "5555", b""),
    ]  # fmt: skip
    for i, (password, opts, header, method, claim, body) in enumerate(tries * 3):
        user = "101"
        ruri = f"sip:{b}" if method == "REGISTER" else f"sip:0044207946{i:04d}@{b}"
        auth = build_credentials(user, realm, password, method, ruri, f"nonce{i}", body=body,
                                 **opts)  # fmt: skip
        call = f"pw{i}@x"
        req = g.sip_request(method, ruri, call_id=call, cseq=2, body=body,
                            extra=f"{header}: {auth}\r\nUser-Agent: friendly-scanner\r\n")  # fmt: skip
        if claim is not None:
            tag = (f"{user}:{claim}".encode() + b"\x01" + b"3141592653").hex()
            req = req.replace(b";tag=1", f";tag={tag}".encode())
        req = req.replace(b"sip:attacker@", f"sip:{user}@".encode())
        resp = g.sip_response(200 if i % 4 == 0 else 403, "X", call_id=call)
        resp = resp.replace(b"CSeq: 1 OPTIONS", f"CSeq: 2 {method}".encode())
        resp = resp.replace(b"sip:attacker@", f"sip:{user}@".encode())
        shape = i % 3
        t += 0.5
        if shape == 0:  # both on UDP: the C path
            frames.append((t, g.ether_of(g.udp_packet(a, b, 5060, 5060, req))))
        elif shape == 1:  # the request over TCP (the Python path), the answer over UDP
            frames.append((t, g.ether_of(g.tcp_packet(a, b, 41000 + i, 5060, 1000, req))))
        else:  # the request with a non-ASCII head (Python path)
            odd = req.replace(b"friendly-scanner", b"friendly-scann\xc3\xa9r")
            frames.append((t, g.ether_of(g.udp_packet(a, b, 5060, 5060, odd))))
        t += 0.01
        frames.append((t, g.ether_of(g.udp_packet(b, a, 5060, 5060, resp))))
    return frames


def test_passwords_of_every_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = tmp_path / "passwords.pcap"
    frames = _password_frames()
    cap.write_bytes(g.pcap(frames))
    words = tmp_path / "words.txt"
    words.write_bytes(b"# a Latin-1 word\ncaf\xe9\nadmin\n")
    seen: dict = {}
    assert _same(cap, tmp_path, monkeypatch, seen, wordlist=str(words)) == len(frames)
    bulk = seen["bulk"]
    pw = MESSAGE_COLUMNS.index("password")
    stored = {row[pw] for row in seen["rows"]}
    latin1 = clean_text(("caf\udce9",))[0]  # as the store writes lone surrogates
    assert {"1234", latin1, "secret", "admin", "Tr0ub4dor&3", "101", "5555"} <= stored
    assert 0 < digest_requests(bulk.fallbacks) < digest_requests([f for _, f in frames])
    assert bulk.counts["password_responses"] > 0


def test_summary_reads_the_store_when_another_writer_added_rows(
    generated: Path, tmp_path: Path
) -> None:
    db = tmp_path / "shared.sqlite"
    result = run_analyze([str(generated)], str(db), detect=False, workers=1)
    try:
        result.store.flush()
        assert tally_tables(result, SUMMARY_TABLES, 10) is not None
        # a sensor writing into the same file while the run went on
        cols = ", ".join(MESSAGE_COLUMNS)
        rest = ", ".join(MESSAGE_COLUMNS[1:])
        other = sqlite3.connect(db)
        other.execute(f"INSERT INTO messages ({cols}) SELECT id + 1, {rest} FROM messages LIMIT 1")
        other.commit()
        other.close()
        assert tally_tables(result, SUMMARY_TABLES, 10) is None
    finally:
        result.store.close()
