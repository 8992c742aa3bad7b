"""BLAKE2b in C (native/blake2b.c) and the Record ids computed with it, against hashlib and
record.py: the bulk path's ids are the store's dedupe key, so they must be Record.id exactly."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipwatch.native import part
from sipwatch.record import Record

if part("record_id") is None:
    pytest.skip("the C bulk path (sipwatch._native) is not built", allow_module_level=True)

blake2b = part("blake2b")
record_id = part("record_id")


@pytest.mark.parametrize("size", [0, 1, 63, 64, 127, 128, 129, 255, 256, 257, 1000, 4096])
@pytest.mark.parametrize("outlen", [1, 8, 32, 64])
def test_blake2b_block_edges(size: int, outlen: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    assert blake2b(data, outlen) == hashlib.blake2b(data, digest_size=outlen).digest()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_blake2b_any_bytes(data: bytes, outlen: int) -> None:
    assert blake2b(data, outlen) == hashlib.blake2b(data, digest_size=outlen).digest()


def test_blake2b_rejects_bad_lengths() -> None:
    for outlen in (0, 65):
        with pytest.raises(ValueError):
            blake2b(b"x", outlen)


addresses = st.sampled_from(["192.0.2.1", "2001:db8::7", "10.0.0.255", ""])
texts = st.text(max_size=12)  # sensor names may be any text: hashed as UTF-8


@settings(max_examples=500, deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["udp", "tcp", "tls"]),
    addresses,
    st.integers(0, 65535),
    addresses,
    st.integers(0, 65535),
    texts,
    st.binary(max_size=600),
)
def test_record_id_is_record_id(ts, transport, src, sport, dst, dport, sensor, raw) -> None:  # noqa: ANN001
    try:
        sensor.encode()
    except UnicodeEncodeError:
        return  # a lone surrogate cannot be a sensor name (Record.id would fail too)
    rec = Record.from_bytes(raw, ts, transport, src, sport, dst, dport, sensor=sensor)
    assert record_id(ts, transport, src, sport, dst, dport, sensor, raw) == rec.python_id()
    assert rec.id == rec.python_id()
