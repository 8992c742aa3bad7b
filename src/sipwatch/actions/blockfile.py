"""The blocklist as files for other tools: plain text and JSON, rewritten atomically.

Text: one address per line, sorted, nothing else (for ``while read``, ipset restore
scripts, web servers' deny lists). JSON: every entry with its expiry, so a consumer can
apply its own timeouts; sipwatch also reads it back at start-up to carry blocks over a
restart. Both are written to a temporary file in the same directory and renamed over the
old one, so a reader sees either the old or the new list, never half of one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from sipwatch.actions.jsonl import iso_time


@dataclass(slots=True)
class BlockEntry:
    address: str
    added: float  # unix time of the first block
    expires: float  # unix time the block ends
    rule: str  # rule of the latest event that (re)blocked it
    severity: str
    stage: str
    event_id: int

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["added_at"] = iso_time(self.added)
        d["expires_at"] = iso_time(self.expires)
        return d


def _sort_key(entry: BlockEntry) -> tuple[int, int]:
    ip = ipaddress.ip_address(entry.address)
    return ip.version, int(ip)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers never see a partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the list is for other tools to read
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_files(
    entries: Iterable[BlockEntry], now: float, text: Path | None, json: Path | None
) -> None:
    ordered = sorted(entries, key=_sort_key)
    if text is not None:
        write_atomic(text, "".join(f"{e.address}\n" for e in ordered).encode())
    if json is not None:
        doc = {
            "generator": "sipwatch",
            "updated": iso_time(now),
            "count": len(ordered),
            "entries": [e.to_dict() for e in ordered],
        }
        write_atomic(json, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")


def read_json(path: Path) -> list[BlockEntry]:
    """Entries of a JSON blocklist written by write_files (ValueError when malformed)."""
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    out = []
    try:
        for d in doc["entries"]:
            out.append(
                BlockEntry(
                    address=str(d["address"]),
                    added=float(d["added"]),
                    expires=float(d["expires"]),
                    rule=str(d.get("rule", "")),
                    severity=str(d.get("severity", "")),
                    stage=str(d.get("stage", "")),
                    event_id=int(d.get("event_id", 0)),
                )  # fmt: skip
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a sipwatch blocklist: {exc!r}") from None
    return out
