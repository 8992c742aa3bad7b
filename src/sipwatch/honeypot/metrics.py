"""Prometheus metrics of a sensor: `[sensor] metrics = "127.0.0.1:9460"` serves /metrics.

Messages are counted per pipeline batch (requests by method, stage and node; replies), events
by rule as they are emitted; the sensor's own counters (received, rate-limited, queue drops,
parse errors ...) and the uplink spool are read when Prometheus scrapes. Bind it to loopback
or a management network: it has no login (the central's /metrics has one).
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sipwatch.detect.events import Event
from sipwatch.record import Record

log = logging.getLogger("sipwatch.sensor")
_METHODS = {"INVITE", "REGISTER", "OPTIONS", "ACK", "BYE", "CANCEL", "SUBSCRIBE", "NOTIFY",
            "MESSAGE", "INFO", "REFER", "UPDATE", "PRACK", "PUBLISH"}  # fmt: skip
# sensor counters that only grow (Prometheus counters); the rest are gauges
_GAUGES = {"sources", "open_connections", "spool_batches", "spool_bytes", "queue"}


class _CountersCollector(Collector):
    def __init__(self, read: Callable[[], dict[str, int]]) -> None:
        self.read = read

    def collect(self):
        try:
            values = self.read()
        except Exception:  # a scrape must never take the sensor down
            log.exception("reading the sensor counters for /metrics failed")
            return
        for key, value in sorted(values.items()):
            if not isinstance(value, int | float):
                continue
            name = f"sipwatch_sensor_{key}"
            if key in _GAUGES:
                yield GaugeMetricFamily(name, f"sensor {key.replace('_', ' ')}", value=value)
            else:
                yield CounterMetricFamily(name, f"sensor {key.replace('_', ' ')}", value=value)


class SensorMetrics:
    """A pipeline action (message counts) and an event sink (event counts)."""

    fatal = False

    def __init__(self, counters: Callable[[], dict[str, int]]) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "sipwatch_requests", "SIP requests recorded", ["method", "stage", "node"], registry=r
        )
        self.responses = Counter("sipwatch_responses", "SIP responses recorded", registry=r)
        self.events = Counter("sipwatch_events", "events emitted", ["rule"], registry=r)
        r.register(_CountersCollector(counters))
        self._server = None

    def handle(self, batch: list[Record]) -> None:
        tally: Tally = Tally()
        responses = 0
        for rec in batch:
            msg = rec.msg
            if msg.is_request:
                method = msg.method if msg.method in _METHODS else "other"
                tally[(method, rec.stage or "none", rec.node)] += 1
            elif not msg.error:
                responses += 1
        for labels, n in tally.items():
            self.requests.labels(*labels).inc(n)
        if responses:
            self.responses.inc(responses)

    def emit(self, events: list[Event]) -> None:
        for rule, n in Tally(e.rule for e in events).items():
            self.events.labels(rule).inc(n)

    def serve(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        self._server, _ = start_http_server(int(port), addr=host, registry=self.registry)
        log.info("metrics on http://%s/metrics", address)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
