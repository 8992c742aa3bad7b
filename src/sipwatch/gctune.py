"""Garbage-collector settings for the long-running services (honeypot sensor, central).

Every message (or batch row) allocates small containers, nearly none of them in cycles: with
the default young-generation threshold (700) the collector runs every few requests and its
older generations walk the hundreds of thousands of long-lived objects of the bounded tables
and the loaded modules. Serving raises the threshold (cycles are still collected, only less
often, as Pipeline.run does for bulk analysis) and freezes what start-up loaded.
"""

from __future__ import annotations

import gc

GEN0 = 50_000


def for_serving() -> tuple[int, int, int]:
    """Set the collector for serving; returns the old thresholds for restore()."""
    old = gc.get_threshold()
    if 0 < old[0] < GEN0:
        gc.set_threshold(GEN0, *old[1:])
    gc.collect()
    gc.freeze()  # start-up's objects (modules, configuration, tables) are never garbage
    return old


def restore(thresholds: tuple[int, int, int]) -> None:
    gc.unfreeze()
    gc.set_threshold(*thresholds)
