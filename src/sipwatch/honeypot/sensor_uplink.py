"""The sensor's link to a central service: spool, uplink action, sender, rule-pack updates.

Built from the [central] config section. The uplink action follows the event action in the
pipeline, so at shutdown the last events are handed over before the last batch is sealed.
A rule pack fetched from the central is validated and compiled on the uplink thread; the
event loop swaps it into the detector at its next pump (the detector is single-threaded).
The new engine starts with empty rule state; attack chains are kept.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable

from sipwatch.detect.detector import Detector
from sipwatch.detect.engine import Engine, EngineConfig
from sipwatch.detect.rules import RuleError, load_packs
from sipwatch.honeypot.config import SensorConfig
from sipwatch.spool import Spool, SpoolError
from sipwatch.uplink import UplinkAction, UplinkConfig, UplinkSender

log = logging.getLogger("sipwatch.sensor")


class UplinkSetupError(Exception):
    pass


class SensorUplink:
    def __init__(self, cfg: SensorConfig, status: Callable[[], dict]) -> None:
        c = cfg.central
        try:
            token = cfg.central_token()
        except OSError as exc:
            raise UplinkSetupError(f"cannot read [central] token_file: {exc}") from None
        if not token:
            raise UplinkSetupError("[central] token (or token_file) is empty")
        if c.ca:  # checked here: a bad bundle would otherwise only show in the uplink thread
            try:
                ssl.create_default_context(cafile=c.ca)
            except (ssl.SSLError, OSError) as exc:
                raise UplinkSetupError(
                    f"[central] ca {c.ca}: not a PEM CA bundle ({exc})"
                ) from None
        self.config = UplinkConfig(
            url=c.url, token=token, spool_dir=cfg.spool_dir, ca=c.ca,
            spool_max_bytes=c.spool_max_mb * 1024 * 1024, batch_records=c.batch_records,
            batch_seconds=c.batch_seconds, heartbeat_seconds=c.heartbeat_seconds,
        )  # fmt: skip
        try:
            self.spool = Spool(cfg.spool_dir, self.config.spool_max_bytes)
        except SpoolError as exc:
            raise UplinkSetupError(str(exc)) from None
        self.detection = cfg.detection
        self.action = UplinkAction(self.spool, c.batch_records, c.batch_seconds)
        self.sender: UplinkSender | None = None
        self._status = status
        self._lock = threading.Lock()
        self._pending: Engine | None = None
        self.rules_applied = 0

    def start(self, detector: Detector | None) -> None:
        self.sender = UplinkSender(
            self.config, self.spool, self._status,
            on_rules=self._compile_rules if detector is not None else None,
        )  # fmt: skip
        self.action.on_seal = self.sender.wake
        self.sender.start()
        log.info("reporting to %s (spool %s)", self.config.url, self.config.spool_dir)

    def _compile_rules(self, version: int, sha256: str, text: str) -> str:
        """Uplink thread: validate and compile a pack; '' when ready for the swap."""
        path = self.config.spool_dir / "central-rules.yaml"
        try:
            path.write_text(text, encoding="utf-8")
            det = self.detection
            packs = load_packs(
                [path, *det.rules], default=False, overrides=det.overrides or None,
                source=f"central rule pack {version}",
            )  # fmt: skip
            engine = Engine(packs, EngineConfig(watchlists=det.watchlists))
        except RuleError as exc:
            return "; ".join(exc.problems)[:1000]
        except OSError as exc:
            return f"cannot write {path}: {exc}"
        with self._lock:
            self._pending = engine
        return ""

    def swap_rules(self, detector: Detector | None) -> None:
        """Event loop: put a newly compiled engine in place of the current one."""
        if self._pending is None or detector is None:
            return
        with self._lock:
            engine, self._pending = self._pending, None
        for i, source in enumerate(detector.sources):
            if isinstance(source, Engine):
                detector.sources[i] = engine
                self.rules_applied += 1
                log.info("rule engine replaced by the central's pack")
                return

    def tick(self) -> None:
        self.action.tick()

    def stop(self, drain_seconds: float = 5.0) -> None:
        """After the pipeline closed (last batch sealed): deliver what we can, keep the rest."""
        if self.sender is not None:
            self.sender.stop(drain_seconds)
            self.sender = None
        self.spool.close()
        if self.spool.count:
            log.info("%d batches stay in the spool for the next start", self.spool.count)
