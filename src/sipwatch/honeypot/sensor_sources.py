"""The sensor's passive sources and HEP export: live capture, the HEP collector, [actions.hep].

Built from ``[capture]``, ``[hep]`` and ``[actions.hep]`` (config_passive.py, hep_export.py);
the Sensor calls the hooks below, so sensor.py only wires them:

- ``record_actions(sinks)`` (open): the HEP exporters, as pipeline actions (they take Records);
- ``open()`` (start, before privileges are dropped): bind the HEP listeners, open the capture;
- ``start(offer)`` (start, once the pipeline is pumped by the loop): start the capture thread;
- ``drain()`` (every pump): hand what the capture thread decoded to the pipeline (one thread
  analyses: the capture thread only appends to a bounded, thread-safe deque);
- ``stop()``; ``counters()`` (heartbeat and /metrics): capture_*, hep_*.

HEP Records arrive on the event loop itself (asyncio protocols) and go straight to
``pipeline.offer``.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from sipwatch.record import Record

if TYPE_CHECKING:
    from sipwatch.capture.hep_collector import HepCollector
    from sipwatch.capture.live import LiveCapture
    from sipwatch.honeypot.sensor import Sensor

log = logging.getLogger("sipwatch.sensor")

MAX_PENDING_BATCHES = 4096  # capture batches (<= 256 packets each) waiting for the loop
MAX_AGENT_COUNTERS = 50  # per-agent counters shown in the heartbeat and /metrics


class PassiveError(Exception):
    """A passive source cannot start (bad interface, port in use ...): one line."""


class PassiveSources:
    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor
        self.config = sensor.config
        self.collector: HepCollector | None = None
        self.capture: LiveCapture | None = None
        self.exporters: list = []
        self._offer: Callable[[Record], object] | None = None
        self._pending: deque[list] = deque()
        self.capture_queue_dropped = 0

    @property
    def configured(self) -> bool:
        cfg = self.config
        return bool(cfg.capture.interface or cfg.hep.listen or "hep" in cfg.actions)

    # --- open: HEP exporters -------------------------------------------------------------
    def record_actions(self, sinks: list) -> list:
        """The HEP exporters among the built sinks, or built here when detection is off."""
        from sipwatch.actions import ActionConfigError, build_sinks
        from sipwatch.actions.hep_export import HepExporter

        found = [s for s in sinks if isinstance(s, HepExporter)]
        if not found and "hep" in self.config.actions:
            try:
                found = build_sinks({"hep": self.config.actions["hep"]})
            except ActionConfigError as exc:
                raise PassiveError("; ".join(exc.errors)) from None
        self.exporters = found
        return list(found)

    # --- start ---------------------------------------------------------------------------
    async def open(self) -> None:
        cfg = self.config
        if cfg.hep.listen:
            from sipwatch.capture.hep import HepDecoder
            from sipwatch.capture.hep_collector import HepCollector

            h = cfg.hep
            decoder = HepDecoder(self.sensor.name, h.nodes, h.auth_key or None)
            self.collector = HepCollector(list(h.listen), decoder, self._deliver,
                                          max_connections=h.max_connections)  # fmt: skip
            try:
                await self.collector.start()
            except OSError as exc:
                self.collector = None
                raise PassiveError(str(exc)) from None
            for bound in self.collector.bound:
                log.info("listening on %s", bound)
        if cfg.capture.interface:
            from sipwatch.capture.errors import CaptureError
            from sipwatch.capture.live import LiveCapture

            c = cfg.capture
            name = self.sensor.name

            def make(raw, ts, transport, src, sport, dst, dport, **seen):
                return Record.from_bytes(raw, ts, transport, src, sport, dst, dport,
                                         sensor=name, **seen)  # fmt: skip

            writer = None
            if c.pcap_dir:
                writer = {"folder": c.pcap_dir, "prefix": f"{name or 'sipwatch'}-capture",
                          "rotate_bytes": c.pcap_rotate_mb * 1024 * 1024, "keep": c.pcap_keep}  # fmt: skip
            capture = LiveCapture(
                c.interface, c.filter, promiscuous=c.promiscuous, snaplen=c.snaplen,
                buffer_bytes=c.buffer_mb * 1024 * 1024, make_record=make, writer_args=writer,
            )  # fmt: skip
            try:
                self.capture = capture.open()
            except (CaptureError, OSError) as exc:
                raise PassiveError(str(exc)) from None
            log.info("listening on capture %s%s", c.interface, f" ({c.filter})" if c.filter else "")

    def start(self, offer: Callable[[Record], object]) -> None:
        self._offer = offer
        if self.capture is not None:
            self.capture.start(self._from_capture)

    def _deliver(self, rec: Record) -> None:  # event loop (HEP)
        offer = self._offer
        if offer is not None:
            offer(rec)

    def _from_capture(self, records: list) -> None:  # capture thread
        if len(self._pending) >= MAX_PENDING_BATCHES:
            self.capture_queue_dropped += len(records)
            return
        self._pending.append(records)

    def drain(self) -> None:
        """Event loop: offer what the capture thread decoded since the last call."""
        pending, offer = self._pending, self._offer
        if offer is None:
            return
        while pending:
            for rec in pending.popleft():
                offer(rec)

    async def stop(self) -> None:
        if self.collector is not None:
            await self.collector.close()
        if self.capture is not None:
            import asyncio

            await asyncio.to_thread(self.capture.stop)
            self.drain()

    # --- operations ----------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.capture is not None:
            out.update(self.capture.counters())
            if self.capture_queue_dropped:
                out["capture_queue_dropped"] = self.capture_queue_dropped
        if self.collector is not None:
            out.update(self.collector.counters())
            per = self.collector.decoder.per_agent
            for node, n in sorted(per.items(), key=lambda kv: -kv[1])[:MAX_AGENT_COUNTERS]:
                out[f"hep_agent_{_metric_name(node)}"] = n
        for exporter in self.exporters:
            st = exporter.stats
            out["hep_export_sent"] = out.get("hep_export_sent", 0) + st.delivered
            out["hep_export_dropped"] = out.get("hep_export_dropped", 0) + st.dropped
            out["hep_export_failed"] = out.get("hep_export_failed", 0) + st.failed
        return out

    def writable(self) -> list[str]:
        return [self.config.capture.pcap_dir] if self.config.capture.pcap_dir else []


def _metric_name(node: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", node)[:64] or "none"
