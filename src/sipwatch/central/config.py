"""The central service's configuration (TOML), validated in one pass with one line per problem.

[central]
listen = "127.0.0.1"        # address of the API and dashboard
port = 8080
db = "central.sqlite"       # or postgresql://user@host/db
tls_cert = ""               # PEM files; both set = HTTPS
tls_key = ""
retention_days = 0          # 0 = keep everything; else messages/events older are purged
stale_after = 120           # seconds without a heartbeat before a sensor is marked stale
max_body_mb = 32            # largest accepted request body (compressed)
secret_file = ""            # key that signs dashboard sessions; "" = next to a SQLite db
metrics_public = false      # true: /metrics without login (for a Prometheus on localhost)
ingest_connections = 2      # PostgreSQL: connections that store uplink batches in parallel

[deployments]               # groups of nodes compared in the correlation reports
distributed = ["oslo", "essen"]
central = ["tunnel-a", "tunnel-b"]

[nodes.oslo]                # optional: where a node is (the dashboard's map)
latitude = 59.91
longitude = 10.75
label = "Oslo"

[blocklist]
min_severity = "medium"     # the feed lists sources of events at least this severe
allow = ["192.0.2.0/24"]    # never listed
"""

from __future__ import annotations

import functools
import ipaddress
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sipwatch.central.registry import NAME_RE
from sipwatch.honeypot.config import ConfigError

SEVERITIES = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class NodeSite:
    latitude: float
    longitude: float
    label: str = ""


@dataclass(frozen=True, slots=True)
class CentralConfig:
    listen: str = "127.0.0.1"
    port: int = 8080
    db: str = "central.sqlite"
    tls_cert: str = ""
    tls_key: str = ""
    retention_days: float = 0.0
    stale_after: float = 120.0
    max_body_mb: float = 32.0
    secret_file: str = ""
    metrics_public: bool = False
    ingest_connections: int = 2
    deployments: dict[str, tuple[str, ...]] = field(default_factory=dict)
    nodes: dict[str, NodeSite] = field(default_factory=dict)
    min_severity: str = "medium"
    allow: tuple[str, ...] = ()
    source: str = "<built-in default>"

    @property
    def max_body(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @property
    def secret_path(self) -> Path:
        if self.secret_file:
            return Path(self.secret_file)
        db = self.db
        if "://" in db and not db.lower().startswith("sqlite://"):
            return Path("central-secret.key")
        if db.lower().startswith("sqlite://"):
            db = db[len("sqlite://") :].removeprefix("/")
        return Path(db).parent / "central-secret.key"

    def allowed(self, address: str) -> bool:
        """True when an address is on the allowlist (never blocked)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in _networks(self.allow))


@functools.lru_cache(maxsize=8)
def _networks(allow: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in allow)


# key -> (type, low, high) for the [central] table
_CENTRAL: dict[str, tuple[type, float | None, float | None]] = {
    "listen": (str, None, None),
    "port": (int, 1, 65535),
    "db": (str, None, None),
    "tls_cert": (str, None, None),
    "tls_key": (str, None, None),
    "retention_days": (float, 0, 36500),
    "stale_after": (float, 1, 86400 * 30),
    "max_body_mb": (float, 0.001, 1024),
    "secret_file": (str, None, None),
    "metrics_public": (bool, None, None),
    "ingest_connections": (int, 1, 16),
}


def load_central_config(path: Path | str | None, **overrides: Any) -> CentralConfig:
    """The config in `path` (or the defaults), with command-line `overrides` (None = unset)."""
    data: dict[str, Any] = {}
    name = str(path) if path is not None else "<built-in default>"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{name}: no such file"]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{name}: cannot read: {exc}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{name}: TOML syntax error: {exc}"]) from None
    problems: list[str] = []

    def bad(where: str, what: str) -> None:
        problems.append(f"{name}: {where}: {what}")

    for key in data:
        if key not in ("central", "deployments", "nodes", "blocklist"):
            bad(f"[{key}]", "unknown section (sections: central, deployments, nodes, blocklist)")
    values: dict[str, Any] = {}
    central = _table(data, "central", bad)
    for key, value in central.items():
        spec = _CENTRAL.get(key)
        if spec is None:
            bad(f"[central] {key}", f"unknown key (keys: {', '.join(_CENTRAL)})")
            continue
        checked = _value(value, *spec)
        if isinstance(checked, _Bad):
            bad(f"[central] {key}", checked.why)
        else:
            values[key] = checked
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
    deployments: dict[str, tuple[str, ...]] = {}
    for group, nodes in _table(data, "deployments", bad).items():
        if not NAME_RE.fullmatch(group):
            bad(f"[deployments] {group}", "bad deployment name")
        elif (
            not isinstance(nodes, list)
            or not nodes
            or not all(isinstance(n, str) and NAME_RE.fullmatch(n) for n in nodes)
        ):
            bad(f"[deployments] {group}", "expected a list of node names")
        else:
            deployments[group] = tuple(nodes)
    sites: dict[str, NodeSite] = {}
    for node, site in _table(data, "nodes", bad).items():
        where = f"[nodes.{node}]"
        if not NAME_RE.fullmatch(node):
            bad(where, "bad node name (1-63 letters, digits, '.', '_' or '-')")
            continue
        if not isinstance(site, dict):
            bad(where, "expected a table with latitude and longitude")
            continue
        lat, lon = (
            _value(site.get("latitude"), float, -90, 90),
            _value(site.get("longitude"), float, -180, 180),
        )
        extra = set(site) - {"latitude", "longitude", "label"}
        if extra:
            bad(where, f"unknown key {sorted(extra)[0]!r} (keys: latitude, longitude, label)")
        if isinstance(lat, _Bad) or isinstance(lon, _Bad):
            bad(where, "latitude (-90..90) and longitude (-180..180) are needed as numbers")
            continue
        label = site.get("label", node)
        if not isinstance(label, str):
            bad(f"{where} label", f"expected a string (got {label!r})")
            continue
        sites[node] = NodeSite(lat, lon, label)
    block = _table(data, "blocklist", bad)
    min_sev = block.get("min_severity", "medium")
    if min_sev not in SEVERITIES:
        bad("[blocklist] min_severity", f"expected one of {', '.join(SEVERITIES)}")
        min_sev = "medium"
    allow = block.get("allow", [])
    allow_ok: list[str] = []
    if not isinstance(allow, list):
        bad("[blocklist] allow", "expected a list of addresses or networks")
    else:
        for net in allow:
            try:
                if not isinstance(net, str):
                    raise ValueError(net)
                allow_ok.append(str(ipaddress.ip_network(net, strict=False)))
            except ValueError:
                bad("[blocklist] allow", f"not an address or network: {net!r}")
    for key in set(block) - {"min_severity", "allow"}:
        bad(f"[blocklist] {key}", "unknown key (keys: min_severity, allow)")
    if "db" in values and not values["db"].strip():
        bad("[central] db", "must name a SQLite file or a postgresql:// URL")
    if bool(values.get("tls_cert")) != bool(values.get("tls_key")):
        bad("[central] tls_cert/tls_key", "give both or neither")
    for key in ("tls_cert", "tls_key"):
        if values.get(key) and not Path(values[key]).is_file():
            bad(f"[central] {key}", f"no such file: {values[key]}")
    if problems:
        raise ConfigError(problems)
    return CentralConfig(
        **values, deployments=deployments, nodes=sites, min_severity=min_sev,
        allow=tuple(allow_ok), source=name,
    )  # fmt: skip


def _table(data: dict, key: str, bad: Any) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        bad(f"[{key}]", "expected a table")
        return {}
    return value


@dataclass(frozen=True, slots=True)
class _Bad:
    why: str


def _value(value: Any, kind: type, low: float | None, high: float | None) -> Any:
    """The value converted to `kind`, or a _Bad saying what is wrong."""
    if kind is str:
        return value if isinstance(value, str) else _Bad(f"expected a string (got {value!r})")
    if kind is bool:
        if isinstance(value, bool):
            return value
        return _Bad(f"expected true or false (got {value!r})")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _Bad(f"expected a number (got {value!r})")
    if kind is int and not isinstance(value, int):
        return _Bad(f"expected an integer (got {value!r})")
    too_low = low is not None and value < low
    too_high = high is not None and value > high
    if not math.isfinite(value) or too_low or too_high:
        return _Bad(f"must be between {_num(low)} and {_num(high)} (got {value!r})")
    return kind(value)


def _num(x: float | None) -> str:
    """A bound as people write it: 2592000, not 2.592e+06."""
    if x is None:
        return "any"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
