"""Sensor → central: batch records and events, spool them to disk, deliver each exactly once.

UplinkAction is a pipeline action (records) and an event sink (events). It collects rows and
seals a batch into the Spool every `batch_records` rows or `batch_seconds`. UplinkSender is a
thread that sends the oldest spooled batch until the central acknowledges it (then deletes
it), so batches arrive in order, survive central outages and sensor restarts, and the
central's (sensor, seq) key makes a resend harmless. It also sends heartbeats and fetches a
newer rule pack when the heartbeat reply names one.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from sipwatch import __version__
from sipwatch.detect.events import Event
from sipwatch.record import Record
from sipwatch.spool import Spool
from sipwatch.store.eventrows import event_row
from sipwatch.store.rows import stored_row

log = logging.getLogger("sipwatch.uplink")
MAX_BACKOFF = 30.0


@dataclass(frozen=True, slots=True)
class UplinkConfig:
    url: str  # https://central:8443
    token: str
    spool_dir: Path
    ca: str = ""  # PEM bundle to verify the central's certificate ("" = system store)
    spool_max_bytes: int = 1024 * 1024 * 1024
    batch_records: int = 5000
    batch_seconds: float = 1.0
    heartbeat_seconds: float = 10.0
    timeout: float = 30.0


class UplinkAction:
    """Pipeline action and event sink: rows in, sealed batches out (into the spool)."""

    fatal = False

    def __init__(self, spool: Spool, batch_records: int, batch_seconds: float) -> None:
        self.spool = spool
        self.batch_records = batch_records
        self.batch_seconds = batch_seconds
        self.records: list[tuple] = []
        self.events: list[tuple] = []
        self._since = time.monotonic()
        self.sealed = 0
        self.on_seal: Callable[[], None] | None = None  # wakes the sender

    def handle(self, batch: list[Record]) -> None:
        rows = self.records
        rows.extend(stored_row(r)[0] for r in batch)
        if len(rows) >= self.batch_records:
            self.seal()

    def emit(self, events: list[Event]) -> None:
        self.events.extend(event_row(e) for e in events)

    def tick(self) -> None:
        """Seal what is pending once it is batch_seconds old (called about once a second)."""
        if (self.records or self.events) and time.monotonic() - self._since >= self.batch_seconds:
            self.seal()

    def seal(self) -> None:
        records, events = self.records, self.events
        self.records, self.events = [], []
        self._since = time.monotonic()
        if self.spool.seal(records, events) is not None:
            self.sealed += 1
            if self.on_seal is not None:
                self.on_seal()

    def stats(self) -> dict[str, int]:
        return {"sealed": self.sealed, "dropped": self.spool.dropped_total}

    def close(self) -> None:
        self.seal()


class UplinkSender(threading.Thread):
    """Delivers spooled batches in order and sends heartbeats; runs until stop()."""

    def __init__(
        self,
        config: UplinkConfig,
        spool: Spool,
        status: Callable[[], dict],
        on_rules: Callable[[int, str, str], str] | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        """status() -> heartbeat fields; on_rules(version, sha256, text) -> '' or a problem."""
        super().__init__(name="sipwatch-uplink", daemon=True)
        self.config = config
        self.spool = spool
        self.status = status
        self.on_rules = on_rules
        self._client = client
        self._wake = threading.Event()
        self._halt = threading.Event()
        self.sent = 0
        self.replayed = 0
        self.failures = 0
        self.last_error = ""
        self.rules_version = 0
        self.rules_sha = ""
        self.started = time.time()
        self._next_beat = 0.0

    # --- control ----------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def stop(self, drain_seconds: float = 0.0) -> None:
        """Stop after trying to deliver what is spooled for up to drain_seconds."""
        deadline = time.monotonic() + drain_seconds
        while drain_seconds and self.spool.count and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
            if self.failures and self.last_error:
                break  # the central is away: the spool keeps the rest for the next start
        self._halt.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout=self.config.timeout + 5)

    # --- the thread -------------------------------------------------------------------------
    def run(self) -> None:
        cfg = self.config
        client = self._client or httpx.Client(
            base_url=cfg.url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {cfg.token}",
                "User-Agent": f"sipwatch/{__version__}",
            },
            verify=ssl.create_default_context(cafile=cfg.ca) if cfg.ca else True,
            timeout=cfg.timeout,
        )
        backoff = 0.0
        try:
            while not self._halt.is_set():
                if time.monotonic() >= self._next_beat:
                    self._heartbeat(client)
                item = self.spool.oldest()
                if item is None:  # nothing to send: sleep until a batch is sealed
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
                ok, retry = self._send(client, *item)
                if ok:
                    backoff = 0.0
                elif retry:  # the central is away or failing: try again, slower each time
                    backoff = min(MAX_BACKOFF, max(0.5, backoff * 2))
                    self._halt.wait(backoff)
        finally:
            if self._client is None:
                client.close()

    def _fail(self, message: str) -> None:
        self.failures += 1
        if message != self.last_error or self.failures % 100 == 1:
            log.warning("uplink: %s", message)
        self.last_error = message

    def _send(self, client: httpx.Client, seq: int, body: bytes) -> tuple[bool, bool]:
        """(delivered, worth retrying)."""
        try:
            r = client.post(
                "/api/v1/ingest", content=body,
                headers={"Content-Type": "application/msgpack", "Content-Encoding": "gzip"},
            )  # fmt: skip
        except httpx.HTTPError as exc:
            self._fail(f"central unreachable ({type(exc).__name__}: {exc}); batch {seq} kept")
            return False, True
        if r.status_code == 200:
            stored = bool(r.json().get("stored", True))
            self.spool.done(seq)
            self.sent += 1
            self.replayed += not stored
            if self.last_error:
                log.info("uplink: delivering again (batch %d)", seq)
            self.last_error = ""
            self.failures = 0
            return True, False
        detail = _detail(r)
        # 403: the sensor may not write what the batch holds (another node's rows, another
        # sensor's events); 413/422: the batch itself is bad. Resending cannot help either.
        if r.status_code in (403, 413, 422):
            self.spool.reject(seq)
            self._fail(f"central refused batch {seq} ({r.status_code}: {detail}); set aside")
            return False, False
        self._fail(f"central answered {r.status_code} ({detail}); batch {seq} kept")
        return False, True

    def _heartbeat(self, client: httpx.Client) -> None:
        self._next_beat = time.monotonic() + self.config.heartbeat_seconds
        body = {
            "version": __version__, "uptime": time.time() - self.started,
            "spool_batches": self.spool.count, "spool_bytes": self.spool.bytes,
            "dropped": self.spool.dropped_total, "sent_batches": self.sent,
            "rule_pack": f"central:{self.rules_version}" if self.rules_version else "local",
            "error": self.last_error[:2000],
        }  # fmt: skip
        body.update(self.status())
        try:
            r = client.post("/api/v1/heartbeat", json=body)
        except httpx.HTTPError as exc:
            self._fail(f"heartbeat failed ({type(exc).__name__}: {exc})")
            return
        if r.status_code != 200:
            self._fail(f"heartbeat refused ({r.status_code}: {_detail(r)})")
            return
        rules = (r.json() or {}).get("rules")
        if rules and self.on_rules is not None and rules.get("sha256") != self.rules_sha:
            self._fetch_rules(client)

    def _fetch_rules(self, client: httpx.Client) -> None:
        try:
            r = client.get("/api/v1/rules")
            r.raise_for_status()
            pack = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            self._fail(f"fetching the rule pack failed: {exc}")
            return
        assert self.on_rules is not None
        problem = self.on_rules(int(pack["version"]), str(pack["sha256"]), str(pack["text"]))
        self.rules_sha = pack["sha256"]  # not asked again until the central changes it
        if problem:
            self._fail(f"rule pack {pack['version']} from the central not applied: {problem}")
        else:
            self.rules_version = int(pack["version"])
            log.info("uplink: applied rule pack %s from the central", pack["version"])


def _detail(r: httpx.Response) -> str:
    try:
        detail = r.json().get("detail", "")
    except ValueError:
        detail = r.text
    return str(detail)[:300]
