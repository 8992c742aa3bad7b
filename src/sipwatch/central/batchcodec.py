"""The uplink batch on the wire: sensor encodes, central decodes and validates.

A batch is a msgpack (or JSON) map, gzip-compressed by the sender:
    {"v": 1, "seq": 17, "columns": [...], "records": [[...], ...],
     "event_columns": [...], "events": [[...], ...], "dropped": 0}
Rows travel as lists in the order their column list names, so a central can take rows from a
sensor whose schema lists the columns in another order. JSON carries `raw` as base64.
Everything is checked before it reaches the store: sizes, column names, and each value's type;
one clear message per problem (the API answers it as a 4xx).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from collections import Counter
from dataclasses import dataclass

import msgpack
import orjson

from sipwatch.detect.events import SEVERITIES
from sipwatch.native import part
from sipwatch.store.schema import EVENT_COLUMNS, MESSAGE_COLUMNS

VERSION = 1
MAX_ROWS = 100_000  # records per batch; a sender batches far fewer
MAX_EVENTS = 20_000
MAX_DECODED = 256 * 1024 * 1024  # bytes after decompression: a zip bomb stops here

_INT = {"id", "sport", "dport", "is_request", "status", "body_len", "fuzz", "request_id"}
_NULLABLE_INT = {"cseq_num"}
_EVENT_INT = {"id", "count"}
_EVENT_FLOAT = {"first", "last"}
_SEVERITY = EVENT_COLUMNS.index("severity")
_TIMES = ("ts", "first", "last")
# integer columns narrower than 64 bits: what the sensor can produce (and PostgreSQL's
# int4/int2 columns hold); a value outside is refused here with its name, not by the store
_RANGES = {
    "sport": (0, 65535, "p"), "dport": (0, 65535, "p"), "is_request": (0, 1, "f"),
    "fuzz": (0, 1, "f"), "status": (0, 999, "c"), "body_len": (0, 2**31 - 1, "l"),
}  # fmt: skip
_check_rows = part("check_batch_rows")  # the C pass over a batch in column order, or None


class BatchError(ValueError):
    """The batch cannot be stored; the message says why (sent back as the 4xx detail)."""


@dataclass(slots=True)
class Batch:
    seq: int
    records: list[tuple]  # in schema.MESSAGE_COLUMNS order
    events: list[tuple]  # in schema.EVENT_COLUMNS order
    dropped: int


# --------------------------------------------------------------------------- encoding
def encode(seq: int, records: list[tuple], events: list[tuple], dropped: int = 0) -> bytes:
    """A gzip-compressed msgpack batch from rows in the store's column order."""
    body = {
        "v": VERSION, "seq": seq, "columns": list(MESSAGE_COLUMNS), "records": records,
        "event_columns": list(EVENT_COLUMNS), "events": events, "dropped": dropped,
    }  # fmt: skip
    return gzip.compress(msgpack.packb(body, use_bin_type=True), compresslevel=1)


# --------------------------------------------------------------------------- decoding
def decompress(body: bytes, encoding: str) -> bytes:
    """The body without its Content-Encoding, refused once it passes MAX_DECODED bytes.

    Output is produced at most MAX_DECODED + 1 bytes at a time, so a gzip bomb costs no more
    memory than the limit. Several gzip members one after another (as `cat a.gz b.gz` makes
    them) are one stream, like gzip -d reads them.
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > MAX_DECODED:
            raise BatchError(f"batch larger than {MAX_DECODED} bytes")
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise BatchError(f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
    if not body:
        raise BatchError("bad gzip data: empty body")
    parts: list[bytes] = []
    size = 0
    rest = body
    while rest:
        d = zlib.decompressobj(wbits=31)
        try:
            out = d.decompress(rest, MAX_DECODED + 1 - size)
        except zlib.error as exc:
            raise BatchError(f"bad gzip data: {exc}") from None
        size += len(out)
        if size > MAX_DECODED or d.unconsumed_tail:
            raise BatchError(f"batch larger than {MAX_DECODED} bytes once decompressed")
        if not d.eof:
            raise BatchError("bad gzip data: truncated")
        parts.append(out)
        rest = d.unused_data
    return b"".join(parts)


def decode(body: bytes, content_type: str, content_encoding: str = "") -> Batch:
    data = decompress(body, content_encoding)
    kind = content_type.split(";")[0].strip().lower()
    try:
        if kind in ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack"):
            doc = msgpack.unpackb(  # arrays as tuples: rows arrive ready to store
                data, raw=False, strict_map_key=True, max_bin_len=MAX_DECODED, use_list=False
            )
            is_json = False
        elif kind == "application/json":
            doc = orjson.loads(data)
            is_json = True
        else:
            raise BatchError(
                f"unsupported Content-Type {kind or '(none)'!r} "
                "(use application/msgpack or application/json)"
            )
    except BatchError:
        raise
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        if isinstance(exc, msgpack.exceptions.StackError):
            why = "nested too deeply"
        else:
            why = str(exc) or type(exc).__name__
        raise BatchError(
            f"body is not valid {'JSON' if kind.endswith('json') else 'msgpack'}: {why}"
        ) from None
    return _validate(doc, is_json)


def _validate(doc: object, is_json: bool) -> Batch:
    if not isinstance(doc, dict):
        raise BatchError("batch must be a map")
    version = doc.get("v")
    if type(version) is not int or version != VERSION:
        raise BatchError(f"batch version {version!r} is not supported (expected {VERSION})")
    seq = doc.get("seq")
    if type(seq) is not int or not 0 < seq < 2**63:
        raise BatchError("seq must be a positive integer")
    dropped = doc.get("dropped", 0)
    if type(dropped) is not int or not 0 <= dropped < 2**63:
        raise BatchError("dropped must be a non-negative integer")
    records = _rows(doc, "columns", "records", MESSAGE_COLUMNS, MAX_ROWS, _message_types(), is_json)
    events = _rows(doc, "event_columns", "events", EVENT_COLUMNS, MAX_EVENTS, _event_types(), False)
    for i, event in enumerate(events):  # the blocklist ranks sources by it
        if event[_SEVERITY] not in SEVERITIES:
            raise BatchError(
                f"events[{i}].severity {event[_SEVERITY]!r} is not one of {', '.join(SEVERITIES)}"
            )
    return Batch(seq, records, events, dropped)


def _message_types() -> list[tuple[type, ...]]:
    out = []
    for c in MESSAGE_COLUMNS:
        if c in _INT:
            out.append((int,))
        elif c in _NULLABLE_INT:
            out.append((int, type(None)))
        elif c == "ts":
            out.append((float, int))
        elif c == "raw":
            out.append((bytes,))
        else:
            out.append((str,))
    return out


def _event_types() -> list[tuple[type, ...]]:
    return [
        (int,) if c in _EVENT_INT else (float, int) if c in _EVENT_FLOAT else (str,)
        for c in EVENT_COLUMNS
    ]


def _kinds(known: tuple[str, ...], types: list[tuple[type, ...]]) -> bytes:
    """check_batch_rows' letter per column: the same types and ranges as the Python checks."""
    out = []
    for col, allowed in zip(known, types, strict=True):
        if col in _TIMES:
            out.append("t")
        elif col in _RANGES and known is MESSAGE_COLUMNS:
            out.append(_RANGES[col][2])
        elif allowed == (int, type(None)):
            out.append("n")
        else:
            out.append({int: "i", bytes: "b", str: "s"}[allowed[0]])
    return "".join(out).encode()


def _rows(
    doc: dict, cols_key: str, rows_key: str, known: tuple[str, ...], limit: int,
    types: list[tuple[type, ...]], is_json: bool,
) -> list[tuple]:  # fmt: skip
    rows = doc.get(rows_key, [])
    if not isinstance(rows, list | tuple):
        raise BatchError(f"{rows_key} must be a list")
    if not rows:
        return []
    if len(rows) > limit:
        raise BatchError(f"too many {rows_key} in one batch ({len(rows)} > {limit})")
    cols = doc.get(cols_key)
    if not isinstance(cols, list | tuple) or not all(isinstance(c, str) for c in cols):
        raise BatchError(f"{cols_key} must be a list of column names")
    if len(cols) > 2 * len(known):
        raise BatchError(f"{cols_key}: {len(cols)} names for {len(known)} columns")
    unknown = [c for c in cols if c not in known]
    if unknown:
        raise BatchError(f"unknown {rows_key} column {unknown[0]!r}: upgrade the central service")
    missing = [c for c in known if c not in cols]
    if missing:
        raise BatchError(f"{cols_key}: column {missing[0]!r} is missing ({len(missing)} missing)")
    if len(cols) != len(known):  # every known name is there, no unknown one: some are repeated
        twice = next(c for c, n in Counter(cols).items() if n > 1)
        raise BatchError(f"{cols_key}: column {twice!r} is named more than once")
    order = [cols.index(c) for c in known]
    same_order = order == list(range(len(known)))
    width = len(known)
    if not is_json and same_order and _check_rows is not None:
        # one C pass; a batch it refuses goes row by row below, which names the problem
        if _check_rows(rows, _kinds(known, types)):
            return list(rows)
    elif not is_json:  # without the C pass, or columns in another order: column-wise checks
        fast = _fast_rows(rows, order, same_order, width, types)
        if fast is not None:
            _check_ranges(*fast, known, rows_key)
            return fast[0]
    # JSON (raw in base64), or a batch that failed the fast checks: row by row, which also
    # names the first problem
    raw_at = known.index("raw") if "raw" in known else -1
    out: list[tuple] = []
    for i, row in enumerate(rows):
        if type(row) not in (list, tuple) or len(row) != width:
            raise BatchError(f"{rows_key}[{i}] must be a list of {width} values")
        row = [row[j] for j in order] if not same_order else list(row)
        if is_json and raw_at >= 0 and type(row[raw_at]) is str:
            try:
                row[raw_at] = base64.b64decode(row[raw_at], validate=True)
            except (binascii.Error, ValueError):
                raise BatchError(f"{rows_key}[{i}].raw is not base64") from None
        for col, value, allowed in zip(known, row, types, strict=True):
            if type(value) not in allowed:
                raise BatchError(
                    f"{rows_key}[{i}].{col} must be {allowed[0].__name__}, "
                    f"not {type(value).__name__}"
                )
        out.append(tuple(row))
    _check_ranges(out, list(zip(*out, strict=True)), known, rows_key)
    return out


def _fast_rows(
    rows: list | tuple, order: list[int], same_order: bool, width: int,
    types: list[tuple[type, ...]],
) -> tuple[list[tuple], list[tuple]] | None:  # fmt: skip
    """(rows, columns) when every row is a tuple of the right width and every column holds
    only its allowed types; None otherwise (the row-by-row path then names the problem).
    Column-wise checks run in C (zip, map, set), ~10x faster than a loop over rows."""
    if set(map(type, rows)) != {tuple} or set(map(len, rows)) != {width}:
        return None
    cols = list(zip(*rows, strict=True))
    if not same_order:
        cols = [cols[j] for j in order]
        rows = list(zip(*cols, strict=True))
    for col, allowed in zip(cols, types, strict=True):
        if not set(map(type, col)).issubset(allowed):
            return None
    return (rows if isinstance(rows, list) else list(rows)), cols


_INT64 = 2**63
_MAX_TS = 2.0**40  # year 36812: anything later is a broken clock or a forged row


def _check_ranges(
    rows: list[tuple], cols: list[tuple], known: tuple[str, ...], rows_key: str
) -> None:
    """Integers fit their column and times are finite and positive (C-level, per column)."""
    messages = known is MESSAGE_COLUMNS
    for col, values in zip(known, cols, strict=True):
        if messages and col in _RANGES:
            lo, hi, _ = _RANGES[col]
            if values and (min(values) < lo or max(values) > hi):
                raise BatchError(f"{rows_key}: {col} out of its range {lo}..{hi}")
        elif col in _INT or col in _EVENT_INT or col in _NULLABLE_INT:
            present = [v for v in values if v is not None] if col in _NULLABLE_INT else values
            if present and (max(present) >= _INT64 or min(present) < -_INT64):
                raise BatchError(f"{rows_key}: {col} out of the 64-bit range")
        elif col in _TIMES:
            total = sum(values)  # NaN anywhere makes the sum NaN, inf makes it inf
            if not (min(values) >= 0 and max(values) < _MAX_TS and total == total) or (
                total == float("inf")
            ):
                raise BatchError(f"{rows_key}: {col} must be a time in seconds since 1970")
