"""[detection] max_sources bounds every per-source table of the sensor's analyzer."""

from __future__ import annotations

from pathlib import Path

from sipwatch.detect.chains import ChainConfig
from sipwatch.detect.engine import EngineConfig
from sipwatch.detect.stages import LabelerConfig
from sipwatch.honeypot.config import parse_config
from sipwatch.honeypot.sensor import Sensor


def _opened(tmp_path: Path, detection: str) -> Sensor:
    cfg = parse_config(
        f'[sensor]\nstore = "{tmp_path / "s.sqlite"}"\n[[listen]]\ntransport = "udp"\n'
        f'address = "127.0.0.1"\nport = 5060\n[detection]\n{detection}',
        "f",
    )
    sensor = Sensor(cfg)
    sensor.open()
    return sensor


def _bounds(sensor: Sensor) -> tuple[int, int, int]:
    engine, chains = sensor.detector.sources
    return engine.config.max_keys, chains.config.max_sources, sensor.labeler.config.max_sources


def test_a_small_bound_reaches_every_table(tmp_path: Path) -> None:
    sensor = _opened(tmp_path, "max_sources = 4096\n")
    try:
        assert _bounds(sensor) == (4096, 4096, 4096)
    finally:
        sensor.store.close()


def test_the_default_keeps_each_table_s_own_default(tmp_path: Path) -> None:
    sensor = _opened(tmp_path, "")
    try:
        assert _bounds(sensor) == (
            EngineConfig().max_keys,
            ChainConfig().max_sources,
            LabelerConfig().max_sources,
        )
    finally:
        sensor.store.close()
