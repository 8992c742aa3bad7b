"""Adding a run to bench/BENCHMARKS.md under its own section."""

from __future__ import annotations

import re
from pathlib import Path


def append_section(path: Path, heading: str, text: str, method: str = "") -> None:
    """Add the run at the end of the section `heading` (a "## ..." line; created with `method`
    at the end of the file the first time), before the next top-level heading."""
    doc = path.read_text() if path.exists() else ""
    if heading not in doc:
        doc = doc.rstrip("\n") + f"\n\n{heading}\n\n{method}"
    start = doc.index(heading) + len(heading)
    m = re.search(r"^## ", doc[start:], re.M)
    end = start + m.start() if m else len(doc)
    doc = (
        doc[:end].rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n" + ("\n" + doc[end:] if m else "")
    )
    path.write_text(doc)
