"""The C row packers and SQLite writer thread (sipwatch._native) against the Python definitions.

message_row in C must give store/rows.py's row for every real record; the writer thread must
store exactly what the Python paths store, count like them, report SQLite's failures as one
clear error, and never hang or outlive its object.
"""

from __future__ import annotations

import math
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storedata import trace

from sipwatch import native
from sipwatch.capture.api import read_captures
from sipwatch.detect.passwords import analyze_recovery
from sipwatch.detect.stages import StageLabeler
from sipwatch.record import Record
from sipwatch.store import rows as pyrows
from sipwatch.store import schema
from sipwatch.store.base import StoreError
from sipwatch.store.sqlite import SqliteStore, native_writer
from sipwatch.store.writer import clean_text, insert_rows

_native = pytest.importorskip("sipwatch._native") if native.AVAILABLE else None
if _native is None or native.part("SqliteWriter") is None:
    pytest.skip(
        "sipwatch._native is not built or disabled (python setup.py build_ext --inplace)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT / ".." / "shared" / "data" / "pcaps"
INSERT = schema.insert_sql("sqlite")
NCOLS = len(schema.MESSAGE_COLUMNS)


def public_captures() -> list[Path]:
    files = sorted(PCAPS.rglob("*.pcap*")) if PCAPS.is_dir() else []
    if not files:
        pytest.skip(f"public captures not found at {PCAPS}")
    return files


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 packets of the benchmark's attack traffic (malformed messages included)."""
    out = tmp_path_factory.mktemp("gen") / "attack.pcap"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gen_capture.py"), "--packets", "20000",
         "--seed", "7", "--out", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return out


def labelled(path: Path) -> list[Record]:
    """The records of a capture with every label column filled as `sipwatch analyze` fills it."""
    labeler, recovery = StageLabeler(), analyze_recovery()
    out = []
    for rec in read_captures([str(path)]):
        labeler.label(rec)
        recovery.label(rec)
        out.append(rec)
    return out


def same_row(a: tuple, b: tuple) -> bool:
    """Equal values of equal types (1 == 1.0 == True would hide a wrong binding)."""
    return len(a) == len(b) and all(
        type(x) is type(y) and x == y for x, y in zip(a, b, strict=True)
    )


def diff(got: tuple, want: tuple) -> list[tuple]:
    pairs = enumerate(zip(got, want, strict=True))
    return [(schema.MESSAGE_COLUMNS[i], x, y) for i, (x, y) in pairs if not same_row((x,), (y,))]


def new_store(path: Path) -> Path:
    SqliteStore(path).close()
    return path


def dump(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM messages ORDER BY ts, id").fetchall()


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


# --- rows ------------------------------------------------------------------------------------


def test_message_row_is_the_python_row_for_every_public_capture() -> None:
    checked = labels = 0
    for path in public_captures():
        for rec in labelled(path):
            want = pyrows.message_row(rec)
            got = _native.message_row(rec)
            assert same_row(got, want), (path.name, rec.ts, diff(got, want))
            checked += 1
            labels += bool(rec.stage or rec.tool or rec.number)
    assert checked > 150 and labels > 20


def test_message_row_is_the_python_row_for_attack_traffic(generated: Path) -> None:
    records = labelled(generated)
    assert len(records) == 20000
    for rec in records:
        got, want = _native.message_row(rec), pyrows.message_row(rec)
        assert same_row(got, want), (rec.raw[:200], diff(got, want))
    assert any(r.msg.anomalies for r in records)  # malformed ones too
    assert any(r.password for r in records) and any(r.number for r in records)


SPECIAL_TS = [
    0.0, -0.0, 5e-324, -5e-324, 86399.99999999999, 86400.0, -1.0, -86400.0, 1e12, -1e12, 6.7e16,
    -6.7e16, 1e17, 9.3e18, 1e300, -1e300, math.inf, -math.inf, math.nan, 253402300800.0,
    -62135596801.0, 106751991167300 * 86400.0, 106751991167301 * 86400.0,
]  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.floats(), st.sampled_from(SPECIAL_TS), st.floats(-1e13, 1e13)))
def test_day_is_day_of_for_any_timestamp(ts: float) -> None:
    """`day` follows rows.day_of everywhere, '1970-01-01' where Python cannot say."""
    rec = trace()[0]
    rec.ts = ts
    assert _native.message_row(rec)[2] == pyrows.day_of(ts)


def test_row_values_round_trip() -> None:
    rows = [
        (None, 0, -1, 2**63 - 1, -(2**63), True, 1.5, -0.0, math.inf, "", "é€😀", b"", b"\x00\xff",
         bytearray(b"ab"), memoryview(b"cd")),
    ]  # fmt: skip
    (got,) = _native.pack_rows(rows, len(rows[0]))
    want = (None, 0, -1, 2**63 - 1, -(2**63), 1, 1.5, -0.0, math.inf, "", "é€😀", b"", b"\x00\xff",
            b"ab", b"cd")  # fmt: skip
    assert same_row(got, want)
    assert math.copysign(1, got[7]) == -1


@pytest.mark.parametrize(
    ("row", "error"),
    [
        (("a\ud800b",), UnicodeEncodeError),
        ((2**63,), OverflowError),
        ((object(),), TypeError),
        ((1, 2), ValueError),
        ([1], TypeError),
    ],
)
def test_bad_rows_are_refused(row: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        _native.pack_rows([("ok",), row], 1)


# --- the writer thread -------------------------------------------------------------------------


def test_writer_stores_what_executemany_stores(tmp_path: Path, generated: Path) -> None:
    rows = [pyrows.stored_row(r)[0] for r in labelled(generated)]
    py = new_store(tmp_path / "py.sqlite")
    with sqlite3.connect(py, isolation_level=None) as conn:
        assert insert_rows(conn, INSERT, rows) == len(rows)
    c = new_store(tmp_path / "c.sqlite")
    w = _native.SqliteWriter(str(c), INSERT, NCOLS, batch_rows=1000)
    w.add_rows(rows[:7000])
    w.add_rows(rows[7000:])
    inserted, batches = w.sync()
    assert (inserted, w.synced_rows) == (len(rows), len(rows))
    assert len(rows) / 1000 <= batches <= len(rows)
    w.add_rows(rows[:5000])  # all stored already
    assert w.close()[0] == 0 and w.synced_rows == 5000
    assert w.rows == len(rows) + 5000
    assert dump(c) == dump(py)


def test_c_path_rows_equal_python_rows(tmp_path: Path, generated: Path) -> None:
    """Rows packed in C from Records (what the C bulk path submits) store like Python rows."""
    records = labelled(generated)
    py = tmp_path / "py.sqlite"
    with SqliteStore(py) as s:
        s.add(records)
    c = tmp_path / "c.sqlite"
    with SqliteStore(c) as s:
        w = s.bulk_writer()
        assert _native.submit_records(w, records[:12345]) == 12345
        assert _native.submit_records(w, records[12345:]) == len(records) - 12345
        s.add(records[:10])  # and through add(): counted together at the flush
        s.flush()
        assert s.counters["added"] == len(records) + 10
        assert s.counters["inserted"] == len(records)
        assert s.counters["duplicates"] == 10
        assert s.query("SELECT COUNT(*) FROM messages") == [(len(records),)]
    assert dump(c) == dump(py)


def odd_records() -> list[Record]:
    """Records the C reader refuses, each for another reason, among ordinary ones."""
    records = trace()
    records[0].msg = None  # type: ignore[assignment]  # unusable parsed message: fallback row
    records[1].tool = "sv\ud800"  # lone surrogate: the row is cleaned
    records[2].number = 5  # type: ignore[assignment]  # an int where a str is expected
    records[3].msg.cseq_num = "x"  # type: ignore[assignment]  # message_row fails: fallback
    return records


def test_records_packed_in_c_store_what_the_python_path_stores(tmp_path: Path) -> None:
    """add_records(): rows packed from Records in C, the Python stored_row for the records the
    C reader refuses; the store is the same as the inline Python one, fallbacks counted."""
    py, c = tmp_path / "py.sqlite", tmp_path / "c.sqlite"
    with SqliteStore(py) as s:
        s.add(odd_records())
        s.flush()
        want = dict(s.counters)
    with SqliteStore(c, background=True) as s:
        s.add(odd_records())
        s.flush()
        assert s.counters == want
        assert s.counters["fallback_rows"] == 2
    assert dump(c) == dump(py)
    w = _native.SqliteWriter(str(new_store(tmp_path / "w.sqlite")), INSERT, NCOLS, batch_rows=2)
    assert w.add_records(odd_records(), pyrows.stored_row) == 2
    assert w.close()[0] == len(odd_records())
    assert dump(tmp_path / "w.sqlite") == dump(py)


def test_lone_surrogates_are_stored_as_replacement_characters(tmp_path: Path) -> None:
    records = trace()
    records[0].tool_data = "user\udcff"  # e.g. undecodable bytes kept with surrogateescape
    rows = [pyrows.message_row(r) for r in records]
    c = new_store(tmp_path / "c.sqlite")
    w = _native.SqliteWriter(str(c), INSERT, NCOLS)
    w.add_rows(rows)
    assert w.close() == (len(rows), 1)
    py = new_store(tmp_path / "py.sqlite")
    with sqlite3.connect(py, isolation_level=None) as conn:
        insert_rows(conn, INSERT, rows)
    assert dump(c) == dump(py)
    column = schema.MESSAGE_COLUMNS.index("tool_data")
    stored = {r[0]: r for r in dump(c)}[records[0].id]
    assert stored[column] == clean_text(rows[0])[column] == "user\ufffd\ufffd\ufffd"


def test_close_is_idempotent_and_writes_what_is_queued(tmp_path: Path) -> None:
    rows = [pyrows.message_row(r) for r in trace()]
    c = new_store(tmp_path / "c.sqlite")
    before = threads()
    w = _native.SqliteWriter(str(c), INSERT, NCOLS)
    assert threads() == before + 1
    w.add_rows(rows)  # no sync
    assert w.close() == (len(rows), 1)
    assert w.close() == (0, 0)
    assert threads() == before and not w.running
    assert len(dump(c)) == len(rows)
    with pytest.raises(ValueError, match="closed"):
        w.add_rows(rows)
    with pytest.raises(ValueError, match="closed"):
        w.sync()


def test_a_dropped_writer_writes_and_ends_its_thread(tmp_path: Path) -> None:
    rows = [pyrows.message_row(r) for r in trace()]
    c = new_store(tmp_path / "c.sqlite")
    before = threads()
    w = _native.SqliteWriter(str(c), INSERT, NCOLS)
    w.add_rows(rows)
    del w
    assert threads() == before
    assert len(dump(c)) == len(rows)


def test_bad_arguments(tmp_path: Path) -> None:
    c = new_store(tmp_path / "c.sqlite")
    with pytest.raises(_native.WriterError, match="no such table"):
        _native.SqliteWriter(str(c), "INSERT INTO no_such_table VALUES (?)", 1)
    with pytest.raises(ValueError, match="takes 45 values"):
        _native.SqliteWriter(str(c), INSERT, 3)
    with pytest.raises(_native.WriterError, match="unable to open"):
        _native.SqliteWriter(str(tmp_path / "none" / "x.sqlite"), INSERT, NCOLS)
    w = _native.SqliteWriter(str(c), INSERT, NCOLS)
    with pytest.raises(ValueError, match="a row of 2 values"):
        w.add_rows([(1, 2)])
    w.add_rows([])
    assert w.close() == (0, 0)


FAIL_TRIGGER = """CREATE TRIGGER fail_src BEFORE INSERT ON messages WHEN NEW.src = '{src}'
BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"""


def test_a_failing_writer_raises_once_per_call_and_drains(tmp_path: Path) -> None:
    records = trace()
    rows = [pyrows.message_row(r) for r in records]
    c = new_store(tmp_path / "c.sqlite")
    with sqlite3.connect(c) as conn:
        conn.execute(FAIL_TRIGGER.format(src=records[-1].src))
    before = threads()
    w = _native.SqliteWriter(str(c), INSERT, NCOLS, batch_rows=2)
    w.add_rows(rows)
    with pytest.raises(_native.WriterError, match="writing the trace store failed: disk on fire"):
        w.sync()
    with pytest.raises(_native.WriterError, match="disk on fire"):  # refused, not lost silently
        w.add_rows(rows)
    inserted, _ = w.close()  # reported already: close stops the thread, counts what was written
    assert threads() == before
    assert 0 < inserted == len(dump(c)) < len(rows)


def test_reset_writes_again_after_a_failure(tmp_path: Path) -> None:
    records = trace()
    rows = [pyrows.message_row(r) for r in records]
    c = new_store(tmp_path / "c.sqlite")
    with sqlite3.connect(c) as conn:
        conn.execute(FAIL_TRIGGER.format(src=records[0].src))
    w = _native.SqliteWriter(str(c), INSERT, NCOLS)
    w.add_rows(rows)
    with pytest.raises(_native.WriterError, match="disk on fire"):
        w.sync()
    assert w.reset() == (0, 0) and w.synced_rows == 0
    with sqlite3.connect(c) as conn:
        conn.execute("DROP TRIGGER fail_src")
    w.add_rows(rows)
    assert w.sync() == (len(rows), 1)
    assert w.close() == (0, 0)
    assert len(dump(c)) == len(rows)


def test_failure_not_reported_yet_is_raised_by_close(tmp_path: Path) -> None:
    records = trace()
    c = new_store(tmp_path / "c.sqlite")
    with sqlite3.connect(c) as conn:
        conn.execute(FAIL_TRIGGER.format(src=records[0].src))
    w = _native.SqliteWriter(str(c), INSERT, NCOLS)
    w.add_rows([pyrows.message_row(r) for r in records])
    with pytest.raises(_native.WriterError, match="disk on fire"):
        w.close()
    assert w.close() == (0, 0)


@pytest.mark.timeout(60)
def test_a_writer_failing_while_the_producer_waits_on_a_full_queue(
    tmp_path: Path, generated: Path
) -> None:
    """Another connection holds the write lock past the busy timeout while the producer is
    blocked on the full queue: the producer gets the error, nothing deadlocks."""
    rows = [pyrows.stored_row(r)[0] for r in labelled(generated)]
    c = new_store(tmp_path / "c.sqlite")
    blocker = sqlite3.connect(c, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    w = _native.SqliteWriter(
        str(c), INSERT, NCOLS, batch_rows=100, max_queued_bytes=200_000, busy_timeout_ms=300
    )
    started = time.monotonic()
    with pytest.raises(_native.WriterError, match="database is locked"):
        w.add_rows(rows)  # ~20 MB of rows through a 200 kB queue
    assert time.monotonic() - started < 30
    assert w.queued_bytes < 20_000_000
    blocker.execute("ROLLBACK")
    blocker.close()
    w.close()
    assert not w.running and dump(c) == []


@pytest.mark.timeout(60)
def test_queue_is_bounded(tmp_path: Path, generated: Path) -> None:
    """A writer that cannot keep up makes the producer wait: memory stays bounded."""
    rows = [pyrows.stored_row(r)[0] for r in labelled(generated)]
    c = new_store(tmp_path / "c.sqlite")
    blocker = sqlite3.connect(c, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    w = _native.SqliteWriter(str(c), INSERT, NCOLS, batch_rows=100, max_queued_bytes=300_000)
    import threading

    done = threading.Event()
    t = threading.Thread(target=lambda: (w.add_rows(rows), done.set()))
    t.start()
    time.sleep(0.5)
    assert not done.is_set()  # blocked: the writer waits for the lock
    assert w.queued_bytes <= 300_000 + 2 * 200_000  # one buffer over, at most
    blocker.execute("ROLLBACK")
    blocker.close()
    t.join(30)
    assert done.is_set()
    assert w.sync()[0] == len(rows)
    w.close()


# --- the store and `sipwatch analyze` ----------------------------------------------------------


def analyze(capture: Path, db: Path, *, no_native: bool, limit: int = 0):
    env = dict(os.environ)
    env.pop("SIPWATCH_NO_NATIVE", None)
    if no_native:
        env["SIPWATCH_NO_NATIVE"] = "1"

    def small_files() -> None:  # a full disk: writes past `limit` bytes fail (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "sipwatch.cli", "analyze", "-q", "--no-detect", "--workers", "1",
         str(capture), "--db", str(db)],
        capture_output=True, text=True, timeout=120, env=env,
        preexec_fn=small_files if limit else None,
    )  # fmt: skip


def ingest_counts(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT messages, inserted FROM ingest ORDER BY id").fetchall()


@pytest.mark.timeout(300)  # four runs of `sipwatch analyze` (slow under AddressSanitizer)
@pytest.mark.parametrize("which", ["generated", "public"])
def test_analyze_stores_the_same_rows_with_and_without_the_extension(
    tmp_path: Path, generated: Path, which: str
) -> None:
    if which == "public":
        public_captures()  # skips when they are missing
        capture, messages = PCAPS, None  # the whole folder: every public capture
    else:
        capture, messages = generated, 20000
    stores = {}
    for no_native in (False, True):
        db = tmp_path / f"{'py' if no_native else 'c'}.sqlite"
        for _ in range(2):  # the second run finds every message stored
            proc = analyze(capture, db, no_native=no_native)
            assert proc.returncode == 0, proc.stderr
        (n1, new1), (n2, new2) = ingest_counts(db)
        # the public captures repeat some packets (same time, same bytes): stored once
        assert n1 == n2 >= new1 > 0 and new2 == 0
        assert messages is None or n1 == new1 == messages
        stores[no_native] = (db, ingest_counts(db))
    assert stores[False][1] == stores[True][1]
    assert dump(stores[False][0]) == dump(stores[True][0])


@pytest.mark.parametrize("no_native", [False, True], ids=["thread", "process"])
def test_a_full_disk_is_one_clear_error(tmp_path: Path, generated: Path, no_native: bool) -> None:
    db = tmp_path / "full.sqlite"
    proc = analyze(generated, db, no_native=no_native, limit=2_000_000)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "writing the trace store failed" in lines[0]
    # past RLIMIT_FSIZE write() fails with EFBIG: SQLite's "disk I/O error" (ENOSPC: "full")
    assert "disk I/O error" in lines[0] or "database or disk is full" in lines[0]


def test_store_uses_the_writer_thread_for_bulk_loads(tmp_path: Path) -> None:
    assert native_writer() is not None
    with SqliteStore(tmp_path / "s.sqlite", background=True, batch_rows=3) as s:
        s.add(trace())
        assert isinstance(s._writer, _native.SqliteWriter)
        assert s.query("SELECT COUNT(*) FROM messages") == [(len(trace()),)]
        s.end_bulk_load()
        assert s._writer is None


def test_store_error_from_the_writer(tmp_path: Path) -> None:
    records = trace()
    with SqliteStore(tmp_path / "s.sqlite", background=True) as s:
        s.execute(FAIL_TRIGGER.format(src=records[0].src))
        s.add(records)
        with pytest.raises(StoreError, match="disk on fire"):
            s.flush()


def test_threaded_store_submits_without_waiting_and_reads_see_everything(tmp_path: Path) -> None:
    """The live sensor's way: add() + submit() per batch; a read through the store sees every
    row submitted before it, and the counters are complete after flush()."""
    records = trace()
    with SqliteStore(tmp_path / "live.sqlite", threaded=True) as s:
        writer = s._writer
        assert isinstance(writer, _native.SqliteWriter)  # started with the store
        for rec in records:
            s.add([rec])
            assert s.submit() == 0
        assert s.query("SELECT COUNT(*) FROM messages") == [(len(records),)]
        s.add(records)
        s.submit()
        s.flush()
        assert s.counters["inserted"] == len(records)
        assert s.counters["duplicates"] == len(records)
        assert s.counters["added"] == 2 * len(records)
    assert not writer.running


def test_threaded_store_without_the_extension_writes_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sipwatch.store.sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "native_writer", lambda: None)
    with SqliteStore(tmp_path / "live.sqlite", threaded=True) as s:
        s.add(trace())
        assert s.submit() == len(trace())  # written now, on the store's connection
        assert s._writer is None and s.bulk_writer() is None


@pytest.mark.timeout(60)
def test_ctrl_c_reaches_a_producer_waiting_on_a_full_queue(tmp_path: Path, generated: Path) -> None:
    """A signal handler's exception interrupts the wait (the buffer in hand is queued all the
    same: nothing the caller handed over is lost)."""
    import signal

    rows = [pyrows.stored_row(r)[0] for r in labelled(generated)][:3000]
    c = new_store(tmp_path / "c.sqlite")
    blocker = sqlite3.connect(c, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    w = _native.SqliteWriter(str(c), INSERT, NCOLS, batch_rows=100, max_queued_bytes=100_000)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            w.add_rows(rows)
        assert time.monotonic() - started < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    queued = w.rows
    assert 0 < queued < len(rows)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert w.sync()[0] == queued  # everything handed over was written
    w.close()


@pytest.mark.timeout(60)
def test_close_while_a_producer_waits(tmp_path: Path, generated: Path) -> None:
    """close() from another thread while a producer waits on the full queue: both return,
    the producer with "closed" or having queued all it had; nothing hangs."""
    import threading

    rows = [pyrows.stored_row(r)[0] for r in labelled(generated)][:5000]
    c = new_store(tmp_path / "c.sqlite")
    blocker = sqlite3.connect(c, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    w = _native.SqliteWriter(str(c), INSERT, NCOLS, batch_rows=100, max_queued_bytes=100_000)
    outcome: list[object] = []

    def produce() -> None:
        try:
            w.add_rows(rows)
            outcome.append("queued")
        except ValueError as exc:
            outcome.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.3)
    threading.Timer(0.5, lambda: (blocker.execute("ROLLBACK"), blocker.close())).start()
    w.close()
    producer.join(30)
    assert not producer.is_alive() and not w.running
    assert outcome == ["queued"] or "closed" in str(outcome[0])
    assert len(dump(c)) == w.rows  # what was queued before the close was written
