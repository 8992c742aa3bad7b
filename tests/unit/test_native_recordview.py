"""How the C side reads a Record and its SipMessage (native/recordview.c).

It reads __slots__ fields by their offset in the exact classes it has seen, and by name for
anything else: a subclass that overrides a field, or a class changed at run time, must still
give what Python gives (store/rows.message_row is the reference).
"""

from __future__ import annotations

import pytest

from sipwatch import native
from sipwatch.record import Record
from sipwatch.sip.message import SipMessage, parse
from sipwatch.store import rows as pyrows
from sipwatch.store.schema import MESSAGE_COLUMNS

message_row = native.part("message_row")
if message_row is None:
    pytest.skip("the C bulk path (sipwatch._native) is not built", allow_module_level=True)

RAW = (
    b"REGISTER sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-1\r\n"
    b"From: <sip:201@192.0.2.10>;tag=ab\r\nTo: <sip:201@192.0.2.10>\r\nCall-ID: c1\r\n"
    b"CSeq: 1 REGISTER\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n"
)


def record(cls: type = Record) -> Record:
    return cls(1.5e9, "udp", "198.51.100.7", 5062, "192.0.2.10", 5060, RAW, parse(RAW), "IN")


class Masked(Record):
    """A subclass whose source address is computed, not a slot."""

    __slots__ = ()

    @property  # type: ignore[override]
    def src(self) -> str:
        return "203.0.113.99"

    @src.setter
    def src(self, value: str) -> None:
        pass


def test_the_c_row_is_the_python_row() -> None:
    rec = record()
    assert message_row(rec) == pyrows.message_row(rec)
    assert message_row(rec) == message_row(rec)  # the second read goes by offset


def test_a_subclass_that_overrides_a_field_is_read_by_name() -> None:
    plain, masked = record(), record(Masked)
    for rec in (plain, masked, plain, masked):  # alternating classes
        assert message_row(rec) == pyrows.message_row(rec)
    assert message_row(masked)[MESSAGE_COLUMNS.index("src")] == "203.0.113.99"


def test_a_class_changed_at_run_time_is_read_as_it_is_now() -> None:
    rec = record()
    message_row(rec)  # the offsets of Record and SipMessage are known now
    col = MESSAGE_COLUMNS.index("method")
    original = SipMessage.__dict__["method"]
    SipMessage.method = property(lambda self: "CHANGED")  # type: ignore[assignment,method-assign]
    try:
        assert message_row(rec)[col] == "CHANGED" == pyrows.message_row(rec)[col]
    finally:
        SipMessage.method = original  # type: ignore[misc]
    assert message_row(rec)[col] == "REGISTER"


def test_an_unset_field_raises_as_in_python() -> None:
    rec = record()
    del rec.tool
    with pytest.raises(AttributeError):
        pyrows.message_row(rec)
    with pytest.raises(AttributeError):
        message_row(rec)
