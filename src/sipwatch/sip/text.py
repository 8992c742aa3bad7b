"""Text of header values: the latin-1 wire form and the form people read.

The parser decodes header bytes as latin-1 (lossless). Values shown to people are
re-decoded as UTF-8 when they are valid UTF-8; builders do the reverse.
"""

from __future__ import annotations


def text(value: str) -> str:
    """A latin-1-decoded wire string as people should see it: UTF-8 when it is valid UTF-8."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def wire(value: str) -> str:
    """Inverse of text(): text as people write it -> the latin-1 form stored in messages
    (non-ASCII characters become their UTF-8 bytes, as SIP requires)."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogatepass").decode("latin-1")
