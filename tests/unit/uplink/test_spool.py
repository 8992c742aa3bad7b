"""The sensor's spool: numbered batches that survive restarts, bounded, drops counted."""

from __future__ import annotations

import gzip
from pathlib import Path

import msgpack
from storedata import trace

from sipwatch.spool import Spool
from sipwatch.store.rows import message_row

ROWS = [message_row(r) for r in trace()]


def _decode(body: bytes) -> dict:
    return msgpack.unpackb(gzip.decompress(body), raw=False)


def test_batches_come_out_in_order_and_survive_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**9)
    assert spool.seal(ROWS[:3], []) == 1
    assert spool.seal(ROWS[3:6], []) == 2
    assert spool.seal([], []) is None  # nothing to send is not a batch
    spool.close()
    again = Spool(tmp_path, 10**9)  # a restart: same batches, numbering goes on
    assert again.count == 2
    seq, body = again.oldest()
    assert seq == 1 and len(_decode(body)["records"]) == 3
    again.done(1)
    assert again.oldest()[0] == 2
    assert again.seal(ROWS[6:], []) == 3
    again.done(2)
    again.done(3)
    assert again.oldest() is None and again.count == 0 and again.bytes == 0
    assert Spool(tmp_path, 10**9).next_seq == 4  # numbers are never reused


def test_a_full_spool_drops_new_batches_and_reports_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1)  # nothing fits
    assert spool.seal(ROWS[:4], []) is None
    assert spool.dropped_total == 4 and spool.count == 0
    spool.max_bytes = 10**9  # room again (the central caught up)
    assert spool.seal(ROWS[4:6], []) == 1
    assert _decode(spool.oldest()[1])["dropped"] == 4  # the next batch tells the central
    assert spool.seal(ROWS[6:8], []) == 2
    body = _decode((tmp_path / f"{2:016d}.batch").read_bytes())
    assert body["dropped"] == 0  # reported once
    assert Spool(tmp_path, 10**9).dropped_total == 4  # the total survives restarts


def test_unreported_drops_survive_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1)
    spool.seal(ROWS[:5], [])
    spool.close()
    again = Spool(tmp_path, 10**9)
    again.seal(ROWS[5:6], [])
    assert _decode(again.oldest()[1])["dropped"] == 5


def test_rejected_batches_are_set_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**9)
    spool.seal(ROWS[:2], [])
    spool.seal(ROWS[2:4], [])
    spool.reject(1)
    assert spool.oldest()[0] == 2
    assert (tmp_path / "rejected" / f"{1:016d}.batch").is_file()
    assert Spool(tmp_path, 10**9).rejected_total == 1


def test_a_half_written_batch_is_discarded(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**9)
    spool.seal(ROWS[:2], [])
    (tmp_path / f"{2:016d}.batch.tmp").write_bytes(b"partial")  # a crash mid-write
    again = Spool(tmp_path, 10**9)
    assert again.count == 1 and not list(tmp_path.glob("*.tmp"))
