"""The optional C bulk path (sipwatch._native), or None.

Built by ``pip install`` where a C compiler and SQLite's headers are present; without it (or
with SIPWATCH_NO_NATIVE set in the environment) every caller keeps the pure-Python pipeline,
which stays the definition of the results: the differential tests hold the C parts to it.
Parts are looked up by name, so code asks for the one it needs:

    from sipwatch.native import part
    writer_type = part("SqliteWriter")  # None when unavailable
"""

from __future__ import annotations

import os
from typing import Any

_mod: Any = None
if not os.environ.get("SIPWATCH_NO_NATIVE"):
    try:
        from sipwatch import _native as _mod
    except ImportError:  # not built: pure Python
        _mod = None

AVAILABLE = _mod is not None


def part(name: str) -> Any:
    """The named type or function of the C bulk path, or None when it is not available."""
    return getattr(_mod, name, None) if _mod is not None else None


__all__ = ["AVAILABLE", "part"]
