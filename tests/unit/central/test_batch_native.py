"""The central's C passes over a batch (native/batchrows.c, native/pgcopy.c) against the Python
they replace: the same batches accepted, the same message for the ones refused, the same rows
stamped, the same bytes sent to PostgreSQL."""

from __future__ import annotations

import math

import pytest
from fastapi import HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st
from storedata import trace
from test_batchcodec import EVENT, MSGPACK, doc, packed

from sipwatch.central import api_sensors, batchcodec
from sipwatch.central.batchcodec import Batch, BatchError, decode
from sipwatch.central.registry import SensorInfo
from sipwatch.native import part
from sipwatch.store.pgcopy import COPY_KINDS, COPY_TYPES
from sipwatch.store.rows import message_row
from sipwatch.store.schema import EVENT_COLUMNS, MESSAGE_COLUMNS

if part("check_batch_rows") is None or part("pg_copy_binary") is None:
    pytest.skip("the C bulk path (sipwatch._native) is not built", allow_module_level=True)

ROWS = [message_row(r) for r in trace()]
NODE = MESSAGE_COLUMNS.index("node")
SENSOR = MESSAGE_COLUMNS.index("sensor")

# values of every kind the columns take, and the ones they must refuse (msgpack carries
# integers from -2**63 to 2**64 - 1)
VALUES = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, -(2**63), 2**64 - 1, 2**40, 2**40 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 2.0**40, 2.0**40 - 1, math.nan, math.inf, -math.inf]),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=2),
)


def outcome(body: bytes) -> object:
    try:
        batch = decode(body, MSGPACK, "gzip")
    except BatchError as exc:
        return str(exc)
    return batch


def both(body: bytes) -> tuple[object, object]:
    native = outcome(body)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(batchcodec, "_check_rows", None)
        python = outcome(body)
    return native, python


@settings(max_examples=400, deadline=None)
@given(
    table=st.sampled_from(["records", "events"]),
    changes=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, len(MESSAGE_COLUMNS) - 1), VALUES),
        max_size=3,
    ),
)
def test_same_verdict_as_python(table: str, changes: list[tuple[int, int, object]]) -> None:
    records = [list(r) for r in ROWS[:4]]
    events = [list(EVENT)] * 4
    rows = records if table == "records" else events
    for row, col, value in changes:
        rows[row][col % len(rows[row])] = value
    native, python = both(packed(doc(records=records, events=events)))
    if isinstance(native, Batch):
        assert isinstance(python, Batch)
        assert native.records == python.records and native.events == python.events
        assert all(type(r) is tuple for r in native.records + native.events)
    else:
        assert native == python


SAMPLES = [
    0, 7, -1, 2**40 - 1, 2**40, 2**63 - 1, 2**63, -(2**63), 2**64 - 1, True, None, 1.5, 0.0,
    -1.0, 2.0**40, math.nan, math.inf, "", "x", b"", b"x", [1],
]  # fmt: skip


@pytest.mark.parametrize("table", ["records", "events"])
def test_every_column_and_kind_of_value_same_as_python(table: str) -> None:
    width = len(MESSAGE_COLUMNS if table == "records" else EVENT_COLUMNS)
    for col in range(width):
        for value in SAMPLES:
            records = [list(r) for r in ROWS[:2]]
            events = [list(EVENT)] * 2
            rows = records if table == "records" else events
            rows[1] = list(rows[1])
            rows[1][col] = value
            native, python = both(packed(doc(records=records, events=events)))
            assert type(native) is type(python), (table, col, value, native, python)
            if isinstance(native, Batch):
                assert (native.records, native.events) == (python.records, python.events)
            else:
                assert native == python


def test_a_row_of_another_width_or_a_list_is_left_to_python() -> None:
    assert part("check_batch_rows")([tuple(ROWS[0])[:-1]], b"i" * 44) is False
    assert part("check_batch_rows")([list(ROWS[0])], b"i" * 45) is False
    short = [list(r) for r in ROWS]
    short[2] = short[2][:-1]
    native, python = both(packed(doc(records=short)))
    assert native == python == "records[2] must be a list of 45 values"


def sensor(*nodes: str) -> SensorInfo:
    return SensorInfo("s1", nodes, "", 0.0, None, None, {})


def attributed(info: SensorInfo, batch: Batch) -> object:
    try:
        return api_sensors._attribute(info, batch)
    except HTTPException as exc:
        return exc.status_code, exc.detail


@pytest.mark.parametrize(
    ("nodes", "row_nodes", "row_sensors"),
    [
        (("oslo",), ["", "", ""], ["", "", ""]),  # the usual sensor: nothing stamped yet
        (("oslo",), ["oslo", "oslo", "oslo"], ["s1", "s1", "s1"]),  # already right: kept
        (("oslo", "essen"), ["essen", "", "oslo"], ["s1", "other", "s1"]),
        (("oslo",), ["oslo", "essen", ""], ["s1", "s1", "s1"]),  # row 1: not its node
        (("oslo", "essen"), ["", "", "bergen"], ["", "", ""]),
    ],
)
def test_attribution_same_as_python(
    nodes: tuple[str, ...], row_nodes: list[str], row_sensors: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    records = []
    for row, node, name in zip(ROWS, row_nodes, row_sensors, strict=False):
        fixed = list(row)
        fixed[NODE], fixed[SENSOR] = node, name
        records.append(tuple(fixed))
    events = [EVENT]
    batch = Batch(1, records, events, 0)
    native = attributed(sensor(*nodes), batch)
    with monkeypatch.context() as m:
        m.setattr(api_sensors, "_stamp_rows", None)
        python = attributed(sensor(*nodes), batch)
    assert native == python
    if isinstance(native, tuple) and not isinstance(native[0], int):
        for before, after in zip(records, native[0], strict=True):
            if before[NODE] and before[SENSOR] == "s1":
                assert after is before  # nothing to change: the same row object


def test_event_node_not_allowed_names_the_event() -> None:
    event = list(EVENT)
    event[EVENT_COLUMNS.index("node")] = "bergen"
    got = attributed(sensor("oslo"), Batch(1, [], [tuple(event)], 0))
    assert got == (403, "events[0]: sensor 's1' may not report for node 'bergen'")


# --- binary COPY -------------------------------------------------------------------------
def psycopg_stream(rows: list[tuple]) -> bytes:
    """What psycopg's own binary COPY formatter sends for the rows (no server needed)."""
    from psycopg import adapt, pq
    from psycopg._copy_base import BinaryFormatter

    tx = adapt.Transformer()
    oids = [tx.adapters.types[t].oid for t in COPY_TYPES]
    tx.set_dumper_types(oids, pq.Format.BINARY)
    formatter = BinaryFormatter(tx)
    out = bytearray()
    for row in rows:
        out += formatter.write_row(row)
    out += formatter.end()
    return bytes(out)


def test_copy_stream_is_psycopgs() -> None:
    rows = list(ROWS)
    edge = list(ROWS[0])
    edge[MESSAGE_COLUMNS.index("cseq_num")] = None
    edge[MESSAGE_COLUMNS.index("id")] = -(2**63)
    edge[MESSAGE_COLUMNS.index("status")] = -(2**31)
    edge[MESSAGE_COLUMNS.index("fuzz")] = 2**15 - 1
    edge[MESSAGE_COLUMNS.index("ts")] = 1709251210  # an int in a float8 column
    edge[MESSAGE_COLUMNS.index("user_agent")] = "Ünïcödé ☎ \U0001f4de"
    edge[MESSAGE_COLUMNS.index("raw")] = b"\x00\xff" * 3
    edge[MESSAGE_COLUMNS.index("method")] = ""
    rows.append(tuple(edge))
    assert part("pg_copy_binary")(rows, COPY_KINDS) == psycopg_stream(rows)
    assert part("pg_copy_binary")([], COPY_KINDS) == psycopg_stream([])


@pytest.mark.parametrize(
    ("column", "value", "error"),
    [
        ("user_agent", "x\udcffy", UnicodeEncodeError),  # pgcopy cleans the batch and resends
        ("id", 2**63, OverflowError),
        ("method", 5, TypeError),
        ("raw", "text", TypeError),
    ],
)
def test_copy_refuses_what_psycopg_refuses(column: str, value: object, error: type) -> None:
    row = list(ROWS[0])
    row[MESSAGE_COLUMNS.index(column)] = value
    with pytest.raises(error):
        psycopg_stream([tuple(row)])
    with pytest.raises(error):
        part("pg_copy_binary")([tuple(row)], COPY_KINDS)


@pytest.mark.parametrize(("column", "value"), [("status", 2**31), ("is_request", 2**15)])
def test_copy_refuses_an_int_too_wide_for_its_column(column: str, value: int) -> None:
    """psycopg sends it and the server refuses the COPY; here it fails before sending."""
    row = list(ROWS[0])
    row[MESSAGE_COLUMNS.index(column)] = value
    with pytest.raises(OverflowError, match=f"does not fit int{4 if column == 'status' else 2}"):
        part("pg_copy_binary")([tuple(row)], COPY_KINDS)
