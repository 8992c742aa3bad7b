"""The one exception a user can cause while reading captures."""

from __future__ import annotations


class CaptureError(Exception):
    """A capture cannot be read: the message is meant for the user as it is (no traceback).

    Raised for a missing file, a file that is not a capture, an unsupported link type or a
    BPF filter that does not compile. Damage inside a capture is a warning, not an error.
    """
