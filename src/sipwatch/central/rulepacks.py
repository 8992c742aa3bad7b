"""The rule pack the central hands to its sensors: versioned in the store, one active.

On first start the central activates the built-in default pack. An admin uploads a new pack
(validated exactly as a sensor would load it); sensors see its version in the heartbeat reply,
fetch it and swap their engine without a restart.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from sipwatch.detect.rules import DEFAULT_PACK, RuleError, RulePack, parse_pack
from sipwatch.store.base import Store

MAX_PACK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ActivePack:
    version: int
    name: str
    sha256: str
    text: str
    created: float


def active(store: Store) -> ActivePack | None:
    rows = store.query(
        "SELECT version, name, sha256, text, created FROM rule_packs WHERE active = 1 "
        "ORDER BY version DESC LIMIT 1"
    )
    return ActivePack(*rows[0]) if rows else None


def validate(text: str, source: str = "upload") -> RulePack:
    """The pack parsed and checked exactly as a sensor loads it; raises RuleError."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PACK_BYTES:
        raise RuleError([f"{source}: rule pack larger than {MAX_PACK_BYTES} bytes"])
    try:
        return parse_pack(text, source)
    except RecursionError:  # the YAML parser recurses once per nesting level
        raise RuleError([f"{source}: yaml: nested too deeply"]) from None


def publish(
    store: Store, text: str, source: str = "upload", pack: RulePack | None = None
) -> ActivePack:
    """Make a pack the active one (the same text again keeps its version); raises RuleError.

    `pack`: the result of validate(text) when the caller checked it already (outside the
    store lock: parsing a large pack takes a while).
    """
    if pack is None:
        pack = validate(text, source)
    sha = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    current = active(store)
    if current is not None and current.sha256 == sha:
        return current
    store.execute("UPDATE rule_packs SET active = 0 WHERE active = 1")
    store.execute(
        "INSERT INTO rule_packs (name, text, sha256, created, active) VALUES (?, ?, ?, ?, 1)",
        (pack.name, text, sha, time.time()),
    )
    found = active(store)
    assert found is not None
    return found


def ensure_default(store: Store) -> ActivePack:
    """The active pack; the built-in default one when none was published yet."""
    current = active(store)
    if current is not None:
        return current
    return publish(store, DEFAULT_PACK.read_text(encoding="utf-8"), "default.yaml")
