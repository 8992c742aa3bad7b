"""The uplink batch wire format: what a sensor encodes comes back; everything else is refused
with one clear message before it reaches the store."""

from __future__ import annotations

import base64
import gzip
import tracemalloc
import zlib

import msgpack
import orjson
import pytest
from storedata import DAY2, trace

from sipwatch.central import batchcodec
from sipwatch.central.batchcodec import BatchError, decode, decompress, encode
from sipwatch.store.rows import message_row
from sipwatch.store.schema import EVENT_COLUMNS, MESSAGE_COLUMNS

ROWS = [message_row(r) for r in trace()]
EVENT = (
    7, "es.extension-scan", "threshold", "high", "ES", "8.8.8.8", '["192.0.2.1"]', "oslo",
    "s1", DAY2, DAY2 + 5, 3, "scan", "[1, 2]", '{"users": 3}', "",
)  # fmt: skip
MSGPACK = "application/msgpack"
COL = {c: i for i, c in enumerate(MESSAGE_COLUMNS)}


def doc(**changes: object) -> dict:
    d = {
        "v": 1, "seq": 5, "columns": list(MESSAGE_COLUMNS), "records": [list(r) for r in ROWS],
        "event_columns": list(EVENT_COLUMNS), "events": [list(EVENT)], "dropped": 2,
    }  # fmt: skip
    d.update(changes)
    return d


def packed(d: dict) -> bytes:
    return gzip.compress(msgpack.packb(d, use_bin_type=True))


def refused(body: bytes, content_type: str = MSGPACK, encoding: str = "gzip") -> str:
    with pytest.raises(BatchError) as err:
        decode(body, content_type, encoding)
    return str(err.value)


def with_value(column: str, value: object) -> bytes:
    records = [list(r) for r in ROWS]
    records[3][COL[column]] = value
    return packed(doc(records=records))


def test_round_trip() -> None:
    batch = decode(encode(9, ROWS, [EVENT], dropped=4), MSGPACK, "gzip")
    assert (batch.seq, batch.dropped) == (9, 4)
    assert batch.records == ROWS
    assert batch.events == [EVENT]


def test_columns_in_another_order_are_put_in_the_store_order() -> None:
    order = list(reversed(MESSAGE_COLUMNS))
    records = [[r[COL[c]] for c in order] for r in ROWS]
    batch = decode(packed(doc(columns=order, records=records)), MSGPACK, "gzip")
    assert batch.records == ROWS


def test_json_with_base64_raw_and_no_compression() -> None:
    records = [list(r) for r in ROWS]
    for r in records:
        r[COL["raw"]] = base64.b64encode(r[COL["raw"]]).decode()
    body = orjson.dumps(doc(records=records))
    batch = decode(body, "application/json; charset=utf-8", "")
    assert batch.records == ROWS
    assert [r[COL["raw"]] for r in batch.records][-1] == b"\x00\x01 not sip \x1b[31m"
    records[0][COL["raw"]] = "not base64!"
    assert refused(orjson.dumps(doc(records=records)), "application/json", "") == (
        "records[0].raw is not base64"
    )


def test_no_rows_is_a_valid_batch_without_columns() -> None:
    batch = decode(packed({"v": 1, "seq": 1}), MSGPACK, "gzip")
    assert (batch.records, batch.events, batch.dropped) == ([], [], 0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"v": 2}, "batch version 2 is not supported (expected 1)"),
        ({"v": True}, "batch version True is not supported (expected 1)"),
        ({"v": 1.0}, "batch version 1.0 is not supported (expected 1)"),
        ({"seq": 0}, "seq must be a positive integer"),
        ({"seq": -3}, "seq must be a positive integer"),
        ({"seq": "7"}, "seq must be a positive integer"),
        ({"seq": 2**63}, "seq must be a positive integer"),
        ({"dropped": -1}, "dropped must be a non-negative integer"),
        ({"dropped": 1.5}, "dropped must be a non-negative integer"),
        ({"records": {"a": 1}}, "records must be a list"),
        ({"columns": "id,ts"}, "columns must be a list of column names"),
        ({"columns": [*MESSAGE_COLUMNS, "colour"]}, "unknown records column 'colour': upgrade the central service"),
        ({"columns": list(MESSAGE_COLUMNS[1:])}, "columns: column 'id' is missing (1 missing)"),
        ({"columns": [*MESSAGE_COLUMNS[:-1], "id"]}, "columns: column 'password' is missing (1 missing)"),
        ({"columns": [*MESSAGE_COLUMNS, "ts"]}, "columns: column 'ts' is named more than once"),
        ({"columns": list(MESSAGE_COLUMNS) * 3}, "columns: 135 names for 45 columns"),
        ({"records": [[1, 2, 3]]}, "records[0] must be a list of 45 values"),
        ({"records": ["row"]}, "records[0] must be a list of 45 values"),
        ({"event_columns": ["id"]}, "event_columns: column 'rule' is missing (15 missing)"),
        ({"events": [[*EVENT[:3], "severe", *EVENT[4:]]]},
         "events[0].severity 'severe' is not one of info, low, medium, high, critical"),
        ({"events": [[*EVENT[:9], "yesterday", *EVENT[10:]]]}, "events[0].first must be float, not str"),
        ({"events": [[*EVENT[:11], 2**64 - 1, *EVENT[12:]]]}, "events: count out of the 64-bit range"),
        ({"events": [[*EVENT[:10], -1.0, *EVENT[11:]]]}, "events: last must be a time in seconds since 1970"),
    ],
)  # fmt: skip
def test_each_problem_has_its_message(changes: dict, message: str) -> None:
    assert refused(packed(doc(**changes))) == message


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("sport", "5060", "records[3].sport must be int, not str"),
        ("is_request", True, "records[3].is_request must be int, not bool"),
        ("method", 5, "records[3].method must be str, not int"),
        ("raw", "text", "records[3].raw must be bytes, not str"),
        ("cseq_num", 1.5, "records[3].cseq_num must be int, not float"),
        ("ts", None, "records[3].ts must be float, not NoneType"),
        ("id", 2**63, "records: id out of the 64-bit range"),
        ("status", 2**64 - 1, "records: status out of its range 0..999"),
        ("status", 1000, "records: status out of its range 0..999"),
        ("sport", 65536, "records: sport out of its range 0..65535"),
        ("dport", -1, "records: dport out of its range 0..65535"),
        ("is_request", 2, "records: is_request out of its range 0..1"),
        ("fuzz", -1, "records: fuzz out of its range 0..1"),
        ("body_len", 2**31, "records: body_len out of its range 0..2147483647"),
        ("request_id", 2**63, "records: request_id out of the 64-bit range"),
        ("ts", float("nan"), "records: ts must be a time in seconds since 1970"),
        ("ts", float("inf"), "records: ts must be a time in seconds since 1970"),
        ("ts", -1.0, "records: ts must be a time in seconds since 1970"),
        ("ts", 2.0**41, "records: ts must be a time in seconds since 1970"),
    ],
)
def test_wrong_types_and_ranges(column: str, value: object, message: str) -> None:
    assert refused(with_value(column, value)) == message


def test_allowed_alternatives() -> None:
    """ts may be an integer, cseq_num may be missing (None)."""
    records = [list(r) for r in ROWS]
    records[0][COL["ts"]] = 1709251210
    records[0][COL["cseq_num"]] = None
    batch = decode(packed(doc(records=records)), MSGPACK, "gzip")
    assert batch.records[0][COL["ts"]] == 1709251210
    assert batch.records[0][COL["cseq_num"]] is None


def test_too_many_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batchcodec, "MAX_ROWS", 10)
    monkeypatch.setattr(batchcodec, "MAX_EVENTS", 1)
    assert refused(packed(doc())) == "too many records in one batch (14 > 10)"
    assert refused(packed(doc(records=[], events=[list(EVENT)] * 2))) == (
        "too many events in one batch (2 > 1)"
    )


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"\x92\x01\x02", MSGPACK, "batch must be a map"),
        (b"[1, 2]", "application/json", "batch must be a map"),
        (b"\xc1", MSGPACK, "body is not valid msgpack: "),
        (b"\x81\xa1v\x01\x00", MSGPACK, "body is not valid msgpack: unpack(b) received extra data."),
        (b"\x91" * 5000 + b"\xc0", MSGPACK, "body is not valid msgpack: nested too deeply"),
        (b"{\"v\": 1,", "application/json", "body is not valid JSON: "),
        (b"[" * 5000, "application/json", "body is not valid JSON: "),
        (b"{}", "text/plain", "unsupported Content-Type 'text/plain' (use application/msgpack or application/json)"),
        (b"{}", "", "unsupported Content-Type '(none)' (use application/msgpack or application/json)"),
    ],
)  # fmt: skip
def test_not_msgpack_or_json(body: bytes, content_type: str, message: str) -> None:
    assert refused(body, content_type, "").startswith(message)


def test_unsupported_encoding_and_bad_gzip() -> None:
    body = packed(doc())
    assert refused(body, encoding="br") == "unsupported Content-Encoding 'br' (use gzip or none)"
    assert refused(body[: len(body) // 2]) == "bad gzip data: truncated"
    assert refused(b"PK\x03\x04 zip, not gzip").startswith("bad gzip data: ")
    assert refused(b"") == "bad gzip data: empty body"
    assert refused(body + b"trailing junk").startswith("bad gzip data: ")
    # without Content-Encoding the gzip bytes are taken as msgpack, and are not that
    assert refused(body, encoding="").startswith("body is not valid msgpack")


def test_gzip_members_one_after_another_are_one_stream() -> None:
    raw = msgpack.packb(doc(), use_bin_type=True)
    body = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    assert decode(body, MSGPACK, "gzip").records == ROWS


def test_a_gzip_bomb_stops_at_the_limit_without_inflating_it_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = 4 * 1024 * 1024
    monkeypatch.setattr(batchcodec, "MAX_DECODED", limit)
    c = zlib.compressobj(9, wbits=31)
    bomb = c.compress(b"\0" * (64 * 1024 * 1024)) + c.flush()  # 64 MiB in ~64 KiB
    assert len(bomb) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(BatchError, match="larger than 4194304 bytes once decompressed"):
            decompress(bomb, "gzip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * limit  # the 64 MiB were never held
    # exactly at the limit is fine
    assert len(decompress(gzip.compress(b"x" * limit), "gzip")) == limit
    assert refused(b"x" * (limit + 1), encoding="identity") == "batch larger than 4194304 bytes"
