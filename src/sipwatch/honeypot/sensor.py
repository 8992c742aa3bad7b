"""The honeypot sensor: listeners -> Record -> responder -> replies, everything into the pipeline.

One received datagram or framed TCP/TLS message is split into SIP messages; each becomes a
Record (direction IN, the local address it arrived on as dst). The responder answers requests
(rate-limited per source; over UDP bounded to 3x the request's bytes); every reply that is
actually sent becomes a Record too (direction OUT). Both go, in that order, into the same
pipeline as offline analysis (stage labeller, password recovery) and on to the trace store and
the optional rotating pcap. Labelling and storing run in the same event loop, every 20 ms on
what arrived meanwhile (a bounded queue, drops counted): one thread, so answering never waits
for the GIL held by a storing thread. Only the SQLite checkpoint, which needs no GIL, runs in a
thread of its own (WalCheckpointer).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sipwatch import gctune
from sipwatch.actions import ActionConfigError, build_sinks, sink_stats
from sipwatch.detect.chains import ChainConfig, ChainTracker
from sipwatch.detect.detector import Detector, EventAction
from sipwatch.detect.engine import Engine, EngineConfig
from sipwatch.detect.passwords import load_wordlist, recovery_class
from sipwatch.detect.rules import RuleError
from sipwatch.detect.stages import LabelerConfig, labeller_class
from sipwatch.honeypot.accounts import Accounts
from sipwatch.honeypot.config import SensorConfig
from sipwatch.honeypot.metrics import SensorMetrics
from sipwatch.honeypot.personality import load_personality
from sipwatch.honeypot.privileges import drop_privileges
from sipwatch.honeypot.safety import RateLimiter, SafetyStats, fit_replies
from sipwatch.honeypot.sensor_sources import PassiveError, PassiveSources
from sipwatch.honeypot.sensor_uplink import SensorUplink, UplinkSetupError
from sipwatch.honeypot.server import Inbound, ServerLimits, SipServer
from sipwatch.honeypot.uas import Responder, UasConfig
from sipwatch.pipeline import Pipeline
from sipwatch.record import IN, OUT, Record
from sipwatch.sip.framing import split_datagram
from sipwatch.sip.message import parse
from sipwatch.store.base import Store, open_store

log = logging.getLogger("sipwatch.sensor")


class SensorError(Exception):
    """A problem the user can fix (config, port, permissions); its text is the message."""


@dataclass(slots=True)
class SensorStats:
    received: int = 0  # SIP messages received (a datagram may hold several)
    requests: int = 0
    answered: int = 0  # requests that got at least one reply
    replies: int = 0  # replies sent
    parse_errors: int = 0  # messages the parser could not read (recorded as fuzzing)


class LiveStoreAction:
    """The trace store for a live source: every pipeline batch is committed at once.

    With the C extension the store's writer thread commits it (the event loop only packs the
    rows: ~2 µs a row instead of ~9 for building and inserting them here); a failure shows up
    at a later batch, counted like any other.
    """

    fatal = False  # a store hiccup is counted; the listeners keep answering

    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(self, batch: list[Record]) -> None:
        self.store.add(batch)
        self.store.submit()

    def close(self) -> None:
        self.store.flush()


class WalCheckpointer:
    """Checkpoints a SQLite store's write-ahead log from a thread of its own.

    SQLite's automatic checkpoint runs inside the commit that fills the log: it copies a few
    MB into the database and waits for an fsync, and the event loop, which commits, stops
    answering meanwhile. So the store's connection does not checkpoint (wal_autocheckpoint=0);
    the loop calls kick() after each commit and, at most every ``interval`` seconds, this
    thread checkpoints on its own connection (SQLite runs without the GIL). Right after a
    commit, the checkpoint usually ends before the next one begins: the log is then copied
    completely and the next commit starts it over, so it stays a few MB long.
    """

    def __init__(self, path: Path, interval: float = 0.1) -> None:
        self.interval = interval
        self.errors = 0
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # opens the log files now
        self._kicked = 0.0
        self._due = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="sipwatch-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        """The store just committed: checkpoint now, unless the last one was too recent."""
        now = time.monotonic()
        if now - self._kicked >= self.interval:
            self._kicked = now
            self._due.set()

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._closing:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # counted; the next kick tries again
                self.errors += 1
                if self.errors == 1:
                    log.warning("store checkpoint failed: %s", exc)

    def close(self) -> None:
        """Stop the thread (the store's own close checkpoints what is left)."""
        self._closing = True
        self._due.set()
        if self._thread.is_alive():
            self._thread.join()
        self._conn.close()


def _node_attribution(path: str) -> dict[str, str]:
    if not path:
        return {}
    from sipwatch.honeypot.nodes_attribution import InventoryError, NodeAttribution

    try:
        return NodeAttribution.from_inventory(path).by_address
    except InventoryError as exc:
        raise SensorError("; ".join(exc.problems)) from None


class Sensor:
    """Everything one ``sipwatch sensor`` runs, built from a SensorConfig."""

    def __init__(self, config: SensorConfig) -> None:
        self.config = config
        self.stats = SensorStats()
        self.safety = SafetyStats()
        cfg = config
        try:
            personality = load_personality(cfg.personality.name)
            accounts = Accounts.from_config(cfg.accounts.extensions, cfg.accounts.passwords)
        except ValueError as exc:
            raise SensorError(str(exc)) from None
        if cfg.personality.realm:
            personality = personality.with_realm(cfg.personality.realm)
        self.personality = personality
        self.accounts = accounts
        self.responder = Responder(
            personality,
            accounts,
            secret=os.urandom(32),
            config=UasConfig(
                nonce_ttl=cfg.auth.nonce_ttl,
                algorithms=tuple(cfg.auth.algorithms),
                max_registrations=cfg.safety.max_registrations,
            ),
        )
        self.limiter = RateLimiter(
            cfg.safety.reply_rate, cfg.safety.reply_burst, cfg.safety.max_sources, self.safety
        )
        self.amplification = cfg.safety.amplification_factor
        self.name = cfg.sensor.name
        self.store: Store | None = None
        self.pipeline: Pipeline | None = None
        self.server: SipServer | None = None
        self.checkpointer: WalCheckpointer | None = None
        self._ingest_id = 0
        self.pump_errors = 0  # batches lost to an analyzer exception
        self.detector: Detector | None = None
        self.event_action: EventAction | None = None
        self._last_tick = 0.0
        self.sinks: list = []
        self.uplink: SensorUplink | None = None
        self.metrics: SensorMetrics | None = None
        self.passive = PassiveSources(self)  # live capture, HEP collector and export
        self.node_of = _node_attribution(cfg.sensor.nodes)  # local address -> node

    # --- the per-message path (event loop) ----------------------------------------------
    def handle(self, inbound: Inbound) -> list[bytes]:
        """Answer one datagram or framed stream message; record it and the replies."""
        data = inbound.data
        transport = inbound.transport
        udp = transport == "udp"
        parts = split_datagram(data) if udp else [data]
        ts = inbound.ts
        src, sport, dst, dport = inbound.src, inbound.sport, inbound.dst, inbound.dport
        name = self.name
        node = self.node_of.get(dst, "")
        stats = self.stats
        offer = self.pipeline.offer if self.pipeline is not None else None
        out: list[bytes] = []
        for raw in parts:
            msg = parse(raw)
            rec = Record(ts, transport, src, sport, dst, dport, raw, msg, IN, name, node)
            stats.received += 1
            if msg.error:
                stats.parse_errors += 1
            replies: list[bytes] = []
            if msg.is_request:
                stats.requests += 1
                if self.limiter.allow(src, ts):
                    replies = self.responder.handle(rec)
                    if replies and udp:
                        replies = fit_replies(replies, len(raw), self.amplification, self.safety)
            if offer is not None:
                offer(rec)
            if replies:
                stats.answered += 1
                stats.replies += len(replies)
                if offer is not None:
                    for reply in replies:
                        msg = parse(reply)
                        offer(Record(ts, transport, dst, dport, src, sport, reply, msg, OUT,
                                     name, node))  # fmt: skip
                out += replies
        return out

    # --- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        """Open the store and build the pipeline (before binding, so errors come first)."""
        cfg = self.config
        try:
            self.store = open_store(cfg.sensor.store, threaded=True)
        except Exception as exc:  # StoreError and OS errors: one line for the user
            raise SensorError(f"cannot open the store {cfg.sensor.store}: {exc}") from None
        # the C twin of StageLabeler when it is built (same labels, state and stats)
        labels = LabelerConfig(default_region=cfg.sensor.region or None)
        labels.max_sources = min(labels.max_sources, cfg.detection.max_sources)
        labeler = labeller_class()(labels)
        wordlist = None  # the built-in list
        if cfg.passwords.wordlist:
            try:
                wordlist = load_wordlist(cfg.passwords.wordlist)
            except (OSError, ValueError) as exc:
                raise SensorError(f"cannot read the password wordlist: {exc}") from None
        # the C twin of PasswordRecovery when it is built (same passwords, state and stats)
        recovery = recovery_class()(
            candidates=[p for p in cfg.accounts.passwords.values() if p],
            wordlist=wordlist,
            max_candidates=cfg.passwords.max_candidates,
        )
        actions: list = [LiveStoreAction(self.store)]
        if cfg.sensor.pcap_dir:
            from sipwatch.store.pcapwriter import PcapWriter, PcapWriterError

            try:
                actions.append(
                    PcapWriter(
                        Path(cfg.sensor.pcap_dir),
                        prefix=self.name or "sipwatch",
                        rotate_bytes=cfg.pcap_rotate_bytes,
                        keep=cfg.sensor.pcap_keep,
                    )
                )
            except PcapWriterError as exc:
                raise SensorError(str(exc)) from None
        self.labeler = labeler
        self.recovery = recovery
        analyzers = [labeler.label, recovery.label]
        self.detector, self.sinks = self._detection(actions)
        try:
            actions += self.passive.record_actions(self.sinks)
        except PassiveError as exc:
            raise SensorError(str(exc)) from None
        if self.detector is not None:
            analyzers += self.detector.analyzers
        if cfg.sensor.metrics:
            self.metrics = SensorMetrics(self._metric_values)
            actions.append(self.metrics)
            if self.event_action is not None:
                self.event_action.sinks.append(self.metrics)
        if cfg.central.url:
            try:
                self.uplink = SensorUplink(cfg, self._heartbeat_status)
            except UplinkSetupError as exc:
                raise SensorError(str(exc)) from None
            actions.append(self.uplink.action)  # after the event action: see sensor_uplink.py
            if self.event_action is not None:
                self.event_action.sinks.append(self.uplink.action)
        self.pipeline = Pipeline(analyzers, actions, batch_size=500)
        self._ingest_id = self.store.start_ingest([f"sensor:{self.name}"])
        path = getattr(self.store, "path", None)
        if getattr(self.store, "engine", "") == "sqlite" and path is not None:
            self.store.query("PRAGMA wal_autocheckpoint=0")  # see WalCheckpointer
            self.checkpointer = WalCheckpointer(path)

    def _detection(self, actions: list) -> tuple[Detector | None, list]:
        """Rule engine, attack chains and event sinks from [detection] and [actions]."""
        cfg = self.config
        if not cfg.detection.enabled:
            return None, []
        det = cfg.detection
        try:
            engine = Engine.load(
                list(det.rules),
                overrides=det.overrides or None,
                config=EngineConfig(watchlists=det.watchlists, max_keys=det.max_sources),
            )
            sinks = build_sinks(cfg.actions)
        except (RuleError, ActionConfigError) as exc:
            raise SensorError("; ".join(exc.problems)) from None
        chains = ChainConfig()
        chains.max_sources = min(chains.max_sources, det.max_sources)
        detector = Detector([engine, ChainTracker(chains)])
        self.event_action = EventAction(detector, self.store, sinks)
        actions.append(self.event_action)
        return detector, sinks

    async def start(self) -> None:
        cfg = self.config
        ssl_context = None
        if any(listen.transport == "tls" for listen in cfg.listen):
            ssl_context = self._tls_context()
        self.server = SipServer(
            list(cfg.listen),
            self.handle,
            ssl_context=ssl_context,
            limits=ServerLimits(
                idle_timeout=cfg.tcp.idle_timeout,
                max_connections=cfg.tcp.max_connections,
                max_connections_per_source=cfg.tcp.max_per_source,
                max_buffered=cfg.tcp.max_buffer,
            ),
        )
        try:
            await self.server.start()
        except Exception as exc:
            raise SensorError(str(exc)) from None
        try:
            await self.passive.open()  # before privileges are dropped (capture needs root)
        except PassiveError as exc:
            await self.server.close()
            await self.passive.stop()
            raise SensorError(str(exc)) from None
        if cfg.sensor.user:
            try:
                drop_privileges(cfg.sensor.user, cfg.sensor.group, writable=self._writable())
            except Exception as exc:
                await self.server.close()
                raise SensorError(str(exc)) from None
        assert self.pipeline is not None
        self.pipeline.start(inline=True)  # pumped by this loop: see pump()
        self.passive.start(self.pipeline.offer)
        if self.checkpointer is not None:
            self.checkpointer.start()
        if self.uplink is not None:
            self.uplink.start(self.detector)
        if self.metrics is not None:
            try:
                self.metrics.serve(cfg.sensor.metrics)
            except OSError as exc:
                await self.server.close()
                raise SensorError(f"cannot serve metrics on {cfg.sensor.metrics}: {exc}") from None
        for listen in self.server.bound:
            log.info("listening on %s", listen)

    def _writable(self) -> list[Path]:
        """What the sensor still writes after dropping root: handed to the new user."""
        cfg = self.config
        paths: list[Path] = []
        store = getattr(self.store, "path", None)
        if store is not None:
            paths += [Path(store), Path(f"{store}-wal"), Path(f"{store}-shm")]
        if cfg.sensor.pcap_dir:
            paths.append(Path(cfg.sensor.pcap_dir))
        paths += [Path(p) for p in self.passive.writable()]
        return [p for p in paths if p.exists()]

    def _tls_context(self):
        from sipwatch.honeypot.tlscert import ensure_certificate, make_server_context

        cert, key, generated = self.config.tls_files()
        try:
            if generated:
                ensure_certificate(cert, key, common_name=self.name or "sipwatch")
            return make_server_context(cert, key)
        except Exception as exc:
            raise SensorError(f"TLS: {exc}") from None

    async def stop(self) -> None:
        """Stop listening, drain the pipeline into the store, close everything."""
        if self.server is not None:
            await self.server.close()
            self.server = None
        await self.passive.stop()
        if self.pipeline is not None:
            self.passive.drain()
            self.pipeline.close()
            pstats = self.pipeline.stats
            if self.store is not None:
                self.store.finish_ingest(
                    self._ingest_id, self.stats.received + self.stats.replies,
                    self.store.counters.get("inserted", 0), pstats.dropped,
                )  # fmt: skip
            self.pipeline = None
        if self.uplink is not None:  # in a thread: the central may be served by this loop
            await asyncio.to_thread(self.uplink.stop)
            self.uplink = None
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self.checkpointer is not None:
            self.checkpointer.close()
            self.checkpointer = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def pump(self) -> None:
        """Label and store what the listeners recorded since the last call (event loop)."""
        if self.pipeline is None:
            return
        try:
            self.passive.drain()
            if self.pipeline.pump() and self.checkpointer is not None:
                self.checkpointer.kick()
            if self.detector is not None and self.event_action is not None:
                now = time.time()  # the clock the records are stamped with at receipt
                if now - self._last_tick >= 1.0:  # close events that went quiet, once a second
                    self._last_tick = now
                    self.detector.tick(now)
                    self.event_action.handle([])
            if self.uplink is not None:
                self.uplink.swap_rules(self.detector)
                self.uplink.tick()
        except Exception:  # an analyzer bug must not stop the honeypot; it is logged, counted
            self.pump_errors += 1
            if self.pump_errors == 1 or self.pump_errors % 1000 == 0:
                log.exception("analysing a batch failed (%d so far)", self.pump_errors)

    # --- operations ------------------------------------------------------------------------
    def _heartbeat_status(self) -> dict:
        """Uplink thread: what the central shows about this sensor (read-only snapshots)."""
        queue = self.pipeline.depth if self.pipeline is not None else 0
        return {"queue": queue, "counters": dict(self.counters())}

    def _metric_values(self) -> dict[str, int]:
        """Scrape thread: the counters plus the queue and the uplink spool."""
        values = dict(self.counters())
        values["queue"] = self.pipeline.depth if self.pipeline is not None else 0
        uplink = self.uplink
        if uplink is not None:
            values["spool_batches"] = uplink.spool.count
            values["spool_bytes"] = uplink.spool.bytes
            values["spool_dropped"] = uplink.spool.dropped_total
            values["spool_rejected"] = uplink.spool.rejected_total
        return values

    def counters(self) -> dict[str, int]:
        """Everything worth a periodic log line or a heartbeat, flat."""
        s = self.stats
        out = {
            "received": s.received,
            "requests": s.requests,
            "answered": s.answered,
            "replies": s.replies,
            "parse_errors": s.parse_errors,
            "rate_limited": self.safety.rate_limited,
            "amplification_cut": self.safety.provisional_cut + self.safety.trimmed,
            "amplification_dropped": self.safety.oversize_dropped,
            "sources": len(self.limiter),
        }
        if self.pipeline is not None:
            out["queue_dropped"] = self.pipeline.stats.dropped
            out["recorded"] = self.pipeline.stats.records
            out["store_errors"] = sum(self.pipeline.stats.action_errors.values())
        if self.server is not None:
            for key, value in self.server.stats.as_dict().items():
                if isinstance(value, dict):  # per transport: only what happened
                    out.update({f"{key}_{k}": v for k, v in value.items() if v})
                elif isinstance(value, int):
                    out[key] = value
        errors = self.responder.stats.errors
        if errors:
            out["responder_errors"] = errors
        if self.pump_errors:
            out["analyzer_errors"] = self.pump_errors
        out.update(self.passive.counters())
        if self.detector is not None:
            out["events"] = self.detector.emitted
            for name, stats in sink_stats(self.sinks).items():
                for key in ("dropped", "failed"):
                    if stats.get(key):
                        out[f"{name}_{key}"] = stats[key]
        return out


async def _log_periodically(sensor: Sensor, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        c = sensor.counters()
        log.info("counters " + " ".join(f"{k}={v}" for k, v in c.items()))


# How often recorded messages are labelled and stored. Batching them keeps the per-message
# cost low; 20 ms of traffic is a few hundred rows at most, stored in a few milliseconds.
PUMP_INTERVAL = 0.02


async def _pump_periodically(sensor: Sensor) -> None:
    while True:
        await asyncio.sleep(PUMP_INTERVAL)
        sensor.pump()


async def serve(
    sensor: Sensor,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    *,
    tune_gc: bool = False,
) -> None:
    """Run until ``stop`` is set; then shut down cleanly (the store gets everything).

    tune_gc: set the process's garbage collector for serving once started (sipwatch.gctune);
    for a process that is only the sensor (the CLI), not for one sensor among other work.
    """
    sensor.open()
    gc_thresholds: tuple[int, int, int] | None = None
    try:
        await sensor.start()
        if tune_gc:
            gc_thresholds = gctune.for_serving()
        if ready is not None:
            ready.set()
        tasks = [
            asyncio.create_task(_log_periodically(sensor, sensor.config.sensor.log_interval)),
            asyncio.create_task(_pump_periodically(sensor)),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
    finally:
        started = time.monotonic()
        await sensor.stop()
        if gc_thresholds is not None:
            gctune.restore(gc_thresholds)
        log.info("stopped; store flushed in %.1f s", time.monotonic() - started)
        log.info("final counters " + " ".join(f"{k}={v}" for k, v in sensor.counters().items()))


def run_sensor(config: SensorConfig) -> None:
    """Blocking entry point for the CLI: serve until SIGINT/SIGTERM."""
    sensor = Sensor(config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(sensor, stop, tune_gc=True)

    asyncio.run(main())
