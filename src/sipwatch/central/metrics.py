"""Prometheus metrics of the central service (served at /metrics).

Each Central has its own registry, so tests can run several in one process. Message counts are
labelled by method, stage and node as they arrive; sensor-side figures (spool depth, drops)
come from the last heartbeat of each sensor and are collected when /metrics is read.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sipwatch.store.schema import EVENT_COLUMNS, MESSAGE_COLUMNS

_METHOD = MESSAGE_COLUMNS.index("method")
_STAGE = MESSAGE_COLUMNS.index("stage")
_NODE = MESSAGE_COLUMNS.index("node")
_TS = MESSAGE_COLUMNS.index("ts")
_IS_REQUEST = MESSAGE_COLUMNS.index("is_request")
_RULE = EVENT_COLUMNS.index("rule")
_LABELS = itemgetter(_METHOD, _STAGE, _NODE)
_METHODS = {"INVITE", "REGISTER", "OPTIONS", "ACK", "BYE", "CANCEL", "SUBSCRIBE", "NOTIFY",
            "MESSAGE", "INFO", "REFER", "UPDATE", "PRACK", "PUBLISH"}  # fmt: skip


class _SensorCollector(Collector):
    """Per-sensor gauges read from the registry's last heartbeats at scrape time."""

    def __init__(self, sensors: Callable[[], Iterable]) -> None:
        self.sensors = sensors

    def collect(self):
        spool = GaugeMetricFamily(
            "sipwatch_sensor_spool_batches",
            "batches waiting in the sensor's spool",
            labels=["sensor"],
        )
        dropped = GaugeMetricFamily(
            "sipwatch_sensor_dropped", "records the sensor dropped (full spool or queue)",
            labels=["sensor"],
        )  # fmt: skip
        age = GaugeMetricFamily(
            "sipwatch_sensor_heartbeat_age_seconds",
            "time since the last heartbeat",
            labels=["sensor"],
        )
        now = time.time()
        for s in self.sensors():
            status = s.status or {}
            spool.add_metric([s.name], float(status.get("spool_batches", 0) or 0))
            dropped.add_metric([s.name], float(status.get("dropped", 0) or 0))
            if s.last_seen:
                age.add_metric([s.name], now - s.last_seen)
        yield from (spool, dropped, age)


class CentralMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.messages = Counter(
            "sipwatch_messages", "SIP messages stored", ["method", "stage", "node"], registry=r
        )
        self.events = Counter("sipwatch_events", "event rows received", ["rule"], registry=r)
        self.batches = Counter(
            "sipwatch_ingest_batches", "uplink batches by result", ["result"], registry=r
        )
        self.duplicates = Counter(
            "sipwatch_ingest_duplicate_messages", "messages already stored (skipped)", registry=r
        )
        self.sensor_drops = Counter(
            "sipwatch_sensor_reported_drops", "records sensors report as dropped", ["sensor"],
            registry=r,
        )  # fmt: skip
        self.lag = Gauge(
            "sipwatch_ingest_lag_seconds", "age of the newest message of the last batch on arrival",
            ["sensor"], registry=r,
        )  # fmt: skip
        self.too_large = Counter(
            "sipwatch_http_body_too_large", "requests refused for a body over max_body_mb",
            registry=r,
        )  # fmt: skip
        self.auth_failures = Counter(
            "sipwatch_auth_failures", "rejected credentials", ["kind"], registry=r
        )

    def watch_sensors(self, sensors: Callable[[], Iterable]) -> None:
        self.registry.register(_SensorCollector(sensors))

    def count_batch(self, sensor: str, rows: Sequence[tuple], events: Sequence[tuple]) -> None:
        # counted as raw (method, stage, node) first, in C; then the few distinct keys named
        tally: Tally = Tally()
        for (method, stage, node), n in Tally(
            map(_LABELS, filter(itemgetter(_IS_REQUEST), rows))
        ).items():
            tally[method if method in _METHODS else "other", stage or "none", node] += n
        for labels, n in tally.items():
            self.messages.labels(*labels).inc(n)
        for rule, n in Tally(map(itemgetter(_RULE), events)).items():
            self.events.labels(rule).inc(n)
        if rows:
            self.lag.labels(sensor).set(max(0.0, time.time() - max(map(itemgetter(_TS), rows))))

    def render(self) -> bytes:
        return generate_latest(self.registry)
