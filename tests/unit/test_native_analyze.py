"""`sipwatch analyze` through the C bulk path stores exactly what the Python pipeline stores.

The C BulkAnalyzer (native/core.c) handles the common shapes itself and hands every other
message to the Python pipeline in order; the Python pipeline alone is the reference. Each test
analyses the same capture both ways and compares every stored row, the capture counters, the
stage counts and the insert/duplicate counts.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pcapgen as g  # noqa: E402
from sipwatch import analyze_native  # noqa: E402
from sipwatch.analyze import run_analyze  # noqa: E402
from sipwatch.native import part  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT / ".." / "shared" / "data" / "pcaps"

if part("BulkAnalyzer") is None:
    pytest.skip("the C bulk path (sipwatch._native) is not built", allow_module_level=True)


def _analyze(capture: Path, db: Path, native: bool, monkeypatch: pytest.MonkeyPatch, **kw):
    with monkeypatch.context() as m:
        taken: list[bool] = []
        real = analyze_native.usable

        def usable(*a, **k) -> bool:
            ok = native and real(*a, **k)
            taken.append(ok)
            return ok

        m.setattr(analyze_native, "usable", usable)
        result = run_analyze([str(capture)], str(db), detect=False, workers=1, **kw)
    assert taken == [native], "the run did not take the intended path"
    store = result.store
    assert store is not None
    rows = store.query("SELECT * FROM messages ORDER BY ts, id")
    store.close()
    return result, rows


def _same(capture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw) -> int:
    """Analyse twice each way; everything equal. Returns the number of stored messages."""
    ref_db, nat_db = tmp_path / "ref.sqlite", tmp_path / "native.sqlite"
    for db in (ref_db, nat_db):
        db.unlink(missing_ok=True)
    ref, ref_rows = _analyze(capture, ref_db, False, monkeypatch, **kw)
    nat, nat_rows = _analyze(capture, nat_db, True, monkeypatch, **kw)
    assert len(nat_rows) == len(ref_rows)
    for a, b in zip(nat_rows, ref_rows, strict=True):
        assert a == b
    assert nat.capture.as_dict() == ref.capture.as_dict()
    assert nat.capture.warnings == ref.capture.warnings
    assert dict(nat.stages) == {k: v for k, v in ref.stages.items() if v}
    assert nat.pipeline.records == ref.pipeline.records
    assert (nat.inserted, nat.duplicates) == (ref.inserted, ref.duplicates)
    # a second run stores nothing new, on both paths
    ref2, _ = _analyze(capture, ref_db, False, monkeypatch, **kw)
    nat2, _ = _analyze(capture, nat_db, True, monkeypatch, **kw)
    assert (nat2.inserted, nat2.duplicates) == (ref2.inserted, ref2.duplicates)
    assert (ref2.inserted, ref2.duplicates) == (0, ref.pipeline.records)
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
    assert _same(generated, tmp_path, monkeypatch) == 40000


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
