"""The sensor configuration: a TOML file, validated in one pass, as a tree of frozen dataclasses.

``load_config(None)`` is the safe embedded default (loopback listeners, a demo set of accounts,
a SQLite store in the working directory). ``load_config(path)`` reads a file and reports every
problem at once in a ConfigError, one line each: ``FILE: [section] key: what is wrong (got X)``.
Relative paths in the file are relative to the directory the sensor is started in.

Personality names are only checked for shape here (the sensor loads them); a personality given
as a path must exist.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
import socket
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sipwatch.honeypot.config_example import EXAMPLE_CONFIG
from sipwatch.honeypot.config_passive import CaptureSection, HepSection, read_capture, read_hep

__all__ = ["EXAMPLE_CONFIG", "ConfigError", "SensorConfig", "check_config", "load_config"]
from sipwatch.honeypot.listen import DEFAULT_PORTS, TRANSPORTS, Listen

ALGORITHMS = ("MD5", "SHA-256")
MAX_AMPLIFICATION = 3.0  # a UDP reply is never more than 3x the request (issue 3, safety)
TLS_STATE_DIR = "sipwatch-tls"  # generated self-signed certificate, next to the store
DEFAULT_SOURCE = "<built-in default>"


class ConfigError(Exception):
    """The configuration cannot be used; .problems holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _between(lo: float | None = None, hi: float | None = None, *, above: bool = False) -> dict:
    """Field metadata: the allowed range (above=True: strictly greater than lo)."""
    return {"lo": lo, "hi": hi, "above": above}


# --------------------------------------------------------------------------- the tree
@dataclass(frozen=True, slots=True)
class SensorSection:
    name: str = field(default_factory=socket.gethostname)  # stored with every message
    store: str = "sipwatch.sqlite"  # path or sqlite:/// URL
    region: str = ""  # default dialling region for national numbers (ISO 3166, e.g. "DE")
    log_interval: float = field(default=60.0, metadata=_between(1, 86400))
    user: str = ""  # drop root to this user after binding ("" = stay)
    group: str = ""  # and this group ("" = the user's primary group)
    pcap_dir: str = ""  # "" = no pcap
    pcap_rotate_mb: int = field(default=100, metadata=_between(1, 1_000_000))
    pcap_keep: int = field(default=10, metadata=_between(1, 1_000_000))
    metrics: str = ""  # "127.0.0.1:9460" = serve Prometheus /metrics there; "" = off
    nodes: str = ""  # node inventory (TOML): attribute traffic to nodes by local address


@dataclass(frozen=True, slots=True)
class TlsSection:
    cert: str = ""  # PEM files; both "" = a self-signed certificate is generated
    key: str = ""


@dataclass(frozen=True, slots=True)
class PersonalitySection:
    name: str = "asterisk"  # built-in name or path to a personality TOML file
    realm: str = ""  # digest realm; "" = the personality's


DEFAULT_EXTENSIONS = ("100-199",)


def _demo_passwords() -> dict[str, str]:
    # weak ones to be found, a strong one that must resist (and shows in reports as tried)
    return {"100": "100", "101": "1234", "102": "Qv7-nM2p-Xr9w-Lt4k"}


@dataclass(frozen=True, slots=True)
class AccountsSection:
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS  # single extensions and LOW-HIGH ranges
    passwords: dict[str, str] = field(default_factory=_demo_passwords)  # read-only


@dataclass(frozen=True, slots=True)
class AuthSection:
    algorithms: tuple[str, ...] = ("MD5",)
    nonce_ttl: int = field(default=300, metadata=_between(10, 86400))


@dataclass(frozen=True, slots=True)
class SafetySection:
    reply_rate: float = field(default=20.0, metadata=_between(0, 1_000_000, above=True))
    reply_burst: int = field(default=40, metadata=_between(1, 10_000_000))
    max_sources: int = field(default=100_000, metadata=_between(1, 100_000_000))
    amplification_factor: float = field(
        default=MAX_AMPLIFICATION, metadata=_between(0, MAX_AMPLIFICATION, above=True)
    )
    max_registrations: int = field(default=100_000, metadata=_between(1, 100_000_000))


@dataclass(frozen=True, slots=True)
class TcpSection:
    idle_timeout: float = field(default=60.0, metadata=_between(0, 86400, above=True))
    max_connections: int = field(default=1024, metadata=_between(1, 1_000_000))
    max_per_source: int = field(default=16, metadata=_between(1, 1_000_000))
    max_buffer: int = field(default=65536, metadata=_between(1024, 16 * 1024 * 1024))


@dataclass(frozen=True, slots=True)
class PasswordsSection:
    wordlist: str = ""  # "" = the built-in list of common SIP passwords
    max_candidates: int = field(default=1000, metadata=_between(0, 10_000_000))


MAX_SOURCES_DEFAULT = 262_144  # EngineConfig.max_keys
MAX_SOURCES_LIMIT = 100_000_000


@dataclass(frozen=True, slots=True)
class DetectionSection:
    enabled: bool = True
    rules: tuple[str, ...] = ()  # extra rule pack files, after the built-in default pack
    overrides: dict[str, Any] = field(default_factory=dict)  # rule id -> changed settings
    watchlists: dict[str, list[str]] = field(default_factory=dict)  # name -> numbers
    # source addresses the analyzer keeps state for (rule tables, attack chains, labels; LRU):
    # what bounds the sensor's memory under a flood from many (spoofed) addresses
    max_sources: int = MAX_SOURCES_DEFAULT


@dataclass(frozen=True, slots=True)
class CentralSection:
    """[central]: report to a central service (sipwatch central); url "" = stand-alone."""

    url: str = ""  # https://central.example:8443
    token: str = ""  # the sensor's token (sipwatch sensors add); or token_file
    token_file: str = ""  # a file holding the token (keeps it out of the config)
    ca: str = ""  # PEM bundle that signs the central's certificate ("" = system store)
    spool_dir: str = ""  # "" = sipwatch-spool next to the store
    spool_max_mb: int = field(default=1024, metadata=_between(1, 10_000_000))
    batch_records: int = field(default=5000, metadata=_between(1, 100_000))
    batch_seconds: float = field(default=1.0, metadata=_between(0.05, 3600))
    heartbeat_seconds: float = field(default=10.0, metadata=_between(0.1, 3600))


def _default_listeners() -> tuple[Listen, ...]:
    return (Listen("udp", "127.0.0.1", 5060), Listen("tcp", "127.0.0.1", 5060))


@dataclass(frozen=True, slots=True)
class SensorConfig:
    sensor: SensorSection = field(default_factory=SensorSection)
    listen: tuple[Listen, ...] = field(default_factory=_default_listeners)
    tls: TlsSection = field(default_factory=TlsSection)
    personality: PersonalitySection = field(default_factory=PersonalitySection)
    accounts: AccountsSection = field(default_factory=AccountsSection)
    auth: AuthSection = field(default_factory=AuthSection)
    safety: SafetySection = field(default_factory=SafetySection)
    tcp: TcpSection = field(default_factory=TcpSection)
    passwords: PasswordsSection = field(default_factory=PasswordsSection)
    detection: DetectionSection = field(default_factory=DetectionSection)
    central: CentralSection = field(default_factory=CentralSection)
    capture: CaptureSection = field(default_factory=CaptureSection)  # config_passive.py
    hep: HepSection = field(default_factory=HepSection)
    actions: dict[str, Any] = field(default_factory=dict)  # checked by actions.check_sinks
    source: str = field(default=DEFAULT_SOURCE, compare=False)  # the file it came from

    @property
    def pcap_rotate_bytes(self) -> int:
        return self.sensor.pcap_rotate_mb * 1024 * 1024

    @property
    def listens(self) -> tuple[Listen, ...]:
        """The [[listen]] tables (same as .listen; the name sensor.py uses)."""
        return self.listen

    @property
    def state_dir(self) -> Path:
        """Where generated files live: a folder next to the store (cwd for a server store)."""
        return _store_folder(self.sensor.store) / TLS_STATE_DIR

    @property
    def tls_state_dir(self) -> str:
        """state_dir as text (the name sensor.py uses)."""
        return str(self.state_dir)

    @property
    def spool_dir(self) -> Path:
        """Where uplink batches wait for the central."""
        if self.central.spool_dir:
            return Path(self.central.spool_dir)
        return _store_folder(self.sensor.store) / "sipwatch-spool"

    def central_token(self) -> str:
        c = self.central
        if c.token_file:
            return Path(c.token_file).read_text().strip()
        return c.token

    def tls_files(self) -> tuple[Path, Path, bool]:
        """(cert, key, generated): the configured PEM files, or where to generate them."""
        if self.tls.cert:
            return Path(self.tls.cert), Path(self.tls.key), False
        return self.state_dir / "cert.pem", self.state_dir / "key.pem", True


def _host_port(text: str) -> bool:
    """ADDRESS:PORT with an IP address (IPv6 in brackets) and a port 1-65535."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return False
    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
    except ValueError:
        return False
    return True


def _store_folder(store: str) -> Path:
    lower = store.lower()
    if lower.startswith("sqlite://"):
        path = store[len("sqlite://") :]
        path = path[1:] if path.startswith("/") else path  # same rules as open_store
    elif "://" in store:
        return Path(".")
    else:
        path = store
    return Path(path).parent


# sections read by the generic reader: name -> dataclass
_PLAIN = {
    "sensor": SensorSection,
    "tls": TlsSection,
    "personality": PersonalitySection,
    "auth": AuthSection,
    "safety": SafetySection,
    "tcp": TcpSection,
    "passwords": PasswordsSection,
    "central": CentralSection,
}
_SECTIONS = ("sensor", "listen", "tls", "personality", "accounts", "auth", "safety", "tcp",
             "passwords", "detection", "central", "capture", "hep", "actions")  # fmt: skip
_DETECTION_KEYS = ("enabled", "rules", "overrides", "watchlists", "max_sources")
_LISTEN_KEYS = ("transport", "address", "port")
_ACCOUNT_KEYS = ("extensions", "passwords")


# --------------------------------------------------------------------------- public API
def load_config(path: Path | str | None) -> SensorConfig:
    """The configuration in `path` (TOML), or the embedded default when `path` is None.

    Raises ConfigError listing every problem (unreadable file, syntax, unknown keys, types,
    ranges, addresses, accounts ...).
    """
    if path is None:
        return SensorConfig()
    name = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{name}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{name}: is a folder, not a config file"]) from None
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{name}: not UTF-8 text (byte {exc.start})"]) from None
    return parse_config(text, name)


def parse_config(text: str, name: str = "<config>") -> SensorConfig:
    """Parse TOML text; `name` starts each problem line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_problem(name, text, str(exc))]) from None
    return _Reader(name).config(data)


def with_central(
    cfg: SensorConfig, url: str | None, token: str | None, ca: Path | str | None = None
) -> SensorConfig:
    """The config with the command line's --central/--token/--ca; checked like the file."""
    if url is None and token is None and ca is None:
        return cfg
    c = cfg.central
    c = replace(
        c,
        url=c.url if url is None else url,
        token=c.token if token is None else token,
        token_file="" if token is not None else c.token_file,
        ca=c.ca if ca is None else str(ca),
    )
    reader = _Reader("command line")
    reader.central_checks(c)
    if reader.problems:
        raise ConfigError(reader.problems)
    return replace(cfg, central=c)


def check_config(path: Path | str) -> list[str]:
    """Every problem of the config file at `path`; [] when it is valid."""
    try:
        load_config(path)
    except ConfigError as exc:
        return exc.problems
    return []


def _syntax_problem(name: str, text: str, message: str) -> str:
    m = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.S)
    if m:
        what, line, col = m.group(1), m.group(2), m.group(3)
    else:
        m = re.fullmatch(r"(.*) \(at end of document\)", message, re.S)
        what = m.group(1) if m else message
        last = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        what = what[:1].lower() + what[1:]
        return f"{name}: end of file (line {last}): TOML syntax error: {what}"
    what = what[:1].lower() + what[1:]
    return f"{name}: line {line}, column {col}: TOML syntax error: {what}"


# --------------------------------------------------------------------------- reading
def _show(value: Any) -> str:
    """A value as the user wrote it in TOML, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict):
        text = "a table"
    elif isinstance(value, float) and not math.isfinite(value):
        text = str(value)  # inf, -inf, nan as TOML writes them
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_KIND = {"str": "a string", "int": "an integer", "float": "a number"}


class _Reader:
    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[str] = []
        self.passive = False  # [capture] or [hep] configured: [[listen]] may be empty

    def bad(self, where: str, what: str) -> None:
        self.problems.append(f"{self.name}: {where}: {what}")

    # ---------------------------------------------------------------- top level
    def config(self, data: dict[str, Any]) -> SensorConfig:
        for key, value in data.items():
            if key not in _SECTIONS:
                kind = "section" if isinstance(value, dict | list) else "key"
                self.bad(f"[{key}]", f"unknown {kind}{_did_you_mean(key, _SECTIONS)}")
        parts: dict[str, Any] = {}
        for section, cls in _PLAIN.items():
            raw = data.get(section, {})
            if not isinstance(raw, dict):
                self.bad(f"[{section}]", f"expected a table (got {_show(raw)})")
                raw = {}
            parts[section] = self.section(section, cls, raw)
        sensor = parts["sensor"]
        if sensor.region and not _known_region(sensor.region):
            self.bad(
                "[sensor] region",
                "not a dialling region (an ISO 3166 code such as DE or US) "
                f"(got {_show(sensor.region)})",
            )
        elif sensor.region != sensor.region.upper():
            parts["sensor"] = replace(sensor, region=sensor.region.upper())
        parts["capture"] = read_capture(data.get("capture"), self.bad)
        parts["hep"] = read_hep(data.get("hep"), self.bad)
        self.passive = bool(parts["capture"].interface or parts["hep"].listen)
        parts["listen"] = self.listeners(data.get("listen"))
        parts["accounts"] = self.accounts(data.get("accounts"))
        parts["detection"] = self.detection(data.get("detection", {}))
        actions = data.get("actions", {})
        if isinstance(actions, dict):
            parts["actions"] = actions
            self.problems.extend(f"{self.name}: {p}" for p in _action_problems(actions))
        else:
            self.bad("[actions]", f"expected a table (got {_show(actions)})")
        cfg = SensorConfig(**parts, source=self.name)
        self.cross_checks(cfg)
        if self.problems:
            raise ConfigError(self.problems)
        return cfg

    def section(self, section: str, cls: type, raw: dict[str, Any]) -> Any:
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            where = f"[{section}] {key}"
            f = known.get(key)
            if f is None:
                self.bad(where, f"unknown key{_did_you_mean(key, tuple(known))}")
                continue
            if section == "auth" and key == "algorithms":
                algs = self.algorithms(where, value)
                if algs is not None:
                    values[key] = algs
                continue
            checked = self.scalar(where, value, str(f.type), f.metadata)
            if checked is not None:
                values[key] = checked
        return cls(**values)

    def scalar(self, where: str, value: Any, kind: str, meta: Any) -> Any:
        """The value converted to `kind` and range-checked, or None (problem recorded)."""
        if kind == "str":
            ok = isinstance(value, str)
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            self.bad(where, f"expected {_KIND[kind]} (got {_show(value)})")
            return None
        given = value
        if kind == "float":
            value = float(value)
            if not math.isfinite(value):
                self.bad(where, f"expected a finite number (got {_show(given)})")
                return None
        if kind == "str":
            if any(ord(c) < 32 and c != "\t" for c in value):
                self.bad(
                    where, f"control characters (line breaks) are not allowed (got {_show(value)})"
                )
                return None
            return value
        lo, hi, above = meta.get("lo"), meta.get("hi"), meta.get("above", False)
        if lo is not None and (value <= lo if above else value < lo):
            word = "greater than" if above else "at least"
            self.bad(where, f"must be {word} {_num(lo)} (got {_show(given)})")
            return None
        if hi is not None and value > hi:
            why = ""
            if where.endswith("amplification_factor"):
                why = ": a UDP reply may never be more than 3x the request"
            self.bad(where, f"must be at most {_num(hi)}{why} (got {_show(given)})")
            return None
        return value

    def algorithms(self, where: str, value: Any) -> tuple[str, ...] | None:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.bad(where, f'expected a list of strings, e.g. ["MD5"] (got {_show(value)})')
            return None
        if not value:
            self.bad(where, 'needs at least one algorithm, e.g. ["MD5"]')
            return None
        out: list[str] = []
        fine = True
        for alg in value:
            norm = alg.upper()
            if norm not in ALGORITHMS:
                hint = _did_you_mean(norm, ALGORITHMS) or f" (allowed: {', '.join(ALGORITHMS)})"
                self.bad(where, f"unknown digest algorithm {alg!r}{hint}")
                fine = False
            elif norm not in out:
                out.append(norm)
        return tuple(out) if fine else None

    # ---------------------------------------------------------------- [[listen]]
    def listeners(self, raw: Any) -> tuple[Listen, ...]:
        if raw is None:
            return _default_listeners()
        if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
            self.bad("[[listen]]", f"expected [[listen]] tables (got {_show(raw)})")
            return ()
        if not raw and not self.passive:  # a capture / HEP-only sensor may have none
            self.bad("[[listen]]", "no listeners: give at least one [[listen]] table")
        out: list[Listen] = []
        seen: dict[tuple[str, str, int], int] = {}
        for i, entry in enumerate(raw, 1):
            lst = self.listener(f"[[listen]] #{i}", entry)
            if lst is None:
                continue
            # tcp and tls listen on the same kind of socket: they cannot share address and port
            kind = "udp" if lst.transport == "udp" else "tcp"
            key = (kind, lst.address, lst.port)
            if lst.port and key in seen:
                other = raw[seen[key] - 1].get("transport")
                self.bad(
                    f"[[listen]] #{i}",
                    f"{lst} clashes with [[listen]] #{seen[key]} ({other} on the same address "
                    "and port)",
                )
                continue
            seen[key] = i
            out.append(lst)
        return tuple(out)

    def listener(self, where: str, entry: dict[str, Any]) -> Listen | None:
        fine = True
        for key in entry:
            if key not in _LISTEN_KEYS:
                self.bad(f"{where} {key}", f"unknown key{_did_you_mean(key, _LISTEN_KEYS)}")
                fine = False
        transport = entry.get("transport")
        if transport is None:
            self.bad(f"{where} transport", f"missing (one of {', '.join(TRANSPORTS)})")
            fine = False
        elif not isinstance(transport, str) or transport.lower() not in TRANSPORTS:
            self.bad(
                f"{where} transport",
                f"must be one of {', '.join(TRANSPORTS)} (got {_show(transport)})",
            )
            fine = False
        else:
            transport = transport.lower()
        address = entry.get("address")
        if address is None:
            self.bad(f"{where} address", 'missing (an IP address, e.g. "0.0.0.0" or "::")')
            fine = False
        elif not isinstance(address, str):
            self.bad(f"{where} address", f"expected a string (got {_show(address)})")
            fine = False
        else:
            try:
                address = str(ipaddress.ip_address(address))
            except ValueError:
                hint = " (write IPv6 without brackets)" if address.startswith("[") else ""
                self.bad(f"{where} address", f"not an IP address{hint} (got {_show(address)})")
                fine = False
        port = entry.get("port")
        if port is None:
            port = DEFAULT_PORTS.get(transport, 5060) if isinstance(transport, str) else 5060
        elif isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            self.bad(f"{where} port", f"must be a port number 0-65535 (got {_show(port)})")
            fine = False
        return Listen(transport, address, port) if fine else None

    # ---------------------------------------------------------------- [accounts]
    def detection(self, raw: Any) -> DetectionSection:
        if not isinstance(raw, dict):
            self.bad("[detection]", f"expected a table (got {_show(raw)})")
            return DetectionSection()
        for key in raw:
            if key not in _DETECTION_KEYS:
                self.bad(f"[detection] {key}", f"unknown key{_did_you_mean(key, _DETECTION_KEYS)}")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            self.bad("[detection] enabled", f"expected true or false (got {_show(enabled)})")
            enabled = True
        rules = raw.get("rules", [])
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            self.bad("[detection] rules", f"expected a list of file names (got {_show(rules)})")
            rules = []
        max_sources = raw.get("max_sources", MAX_SOURCES_DEFAULT)
        if type(max_sources) is not int or not 1024 <= max_sources <= MAX_SOURCES_LIMIT:
            self.bad(
                "[detection] max_sources",
                f"expected a whole number from 1024 to {MAX_SOURCES_LIMIT:,} (got {_show(max_sources)})",
            )
            max_sources = MAX_SOURCES_DEFAULT
        overrides, watchlists = raw.get("overrides", {}), raw.get("watchlists", {})
        for key, value in (("overrides", overrides), ("watchlists", watchlists)):
            if not isinstance(value, dict):
                self.bad(f"[detection] {key}", f"expected a table (got {_show(value)})")
        section = DetectionSection(
            enabled=enabled,
            rules=tuple(rules),
            overrides=overrides if isinstance(overrides, dict) else {},
            watchlists=watchlists if isinstance(watchlists, dict) else {},
            max_sources=max_sources,
        )
        if enabled:
            self.problems.extend(f"{self.name}: {p}" for p in _detection_problems(section))
        return section

    def accounts(self, raw: Any) -> AccountsSection:
        if raw is None:
            return AccountsSection()
        if not isinstance(raw, dict):
            self.bad("[accounts]", f"expected a table (got {_show(raw)})")
            return AccountsSection()
        for key in raw:
            if key not in _ACCOUNT_KEYS:
                self.bad(f"[accounts] {key}", f"unknown key{_did_you_mean(key, _ACCOUNT_KEYS)}")
        exts = self.extensions(raw.get("extensions", list(DEFAULT_EXTENSIONS)))
        # a given [accounts] section replaces the demo accounts: only its passwords exist
        pw_raw = raw.get("passwords", {})
        passwords: dict[str, str] = {}
        if not isinstance(pw_raw, dict):
            self.bad("[accounts] passwords", f"expected a table (got {_show(pw_raw)})")
        else:
            for ext, pw in pw_raw.items():
                where = f"[accounts.passwords] {ext}"
                if isinstance(pw, int) and not isinstance(pw, bool):
                    pw = str(pw)  # 101 = 1234 means the password "1234"
                if not isinstance(pw, str):
                    self.bad(where, f"expected a string (got {_show(pw)})")
                elif not pw:
                    self.bad(where, "empty password")
                elif any(ord(c) < 32 for c in pw):
                    self.bad(where, "control characters are not allowed in a password")
                elif exts is not None and not _extension_exists(ext, exts):
                    self.bad(where, "password for an extension that does not exist (add it to "
                             "[accounts] extensions)")  # fmt: skip
                else:
                    passwords[ext] = pw
        return AccountsSection(tuple(exts or ()), passwords)

    def extensions(self, value: Any) -> list[str] | None:
        """The valid items (problems recorded for the others); None when not a list."""
        where = "[accounts] extensions"
        if not isinstance(value, list):
            self.bad(where, f'expected a list, e.g. ["100-199", 1000] (got {_show(value)})')
            return None
        out: list[str] = []
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool) and item >= 0:
                out.append(str(item))
                continue
            if not isinstance(item, str):
                self.bad(where, f"expected an extension or a range (got {_show(item)})")
                continue
            problem = _extension_problem(item)
            if problem:
                self.bad(where, f"{problem} (got {_show(item)})")
            else:
                out.append(item)
        return out

    # ---------------------------------------------------------------- whole-file checks
    def central_checks(self, c: CentralSection) -> None:
        if c.url and not c.url.lower().startswith(("http://", "https://")):
            self.bad("[central] url", f"expected an http:// or https:// URL (got {_show(c.url)})")
        if c.token and c.token_file:
            self.bad("[central] token_file", "set, and token too: give one of them")
        if c.url and not (c.token or c.token_file):
            self.bad("[central] token", "the sensor needs its token (sipwatch sensors add NAME)")
        if c.token_file and not os.path.isfile(c.token_file):
            self.bad("[central] token_file", f"no such file (got {_show(c.token_file)})")
        if c.ca and not os.path.isfile(c.ca):
            self.bad("[central] ca", f"no such file (got {_show(c.ca)})")

    def cross_checks(self, cfg: SensorConfig) -> None:
        s = cfg.sensor
        if not s.name.strip():
            self.bad("[sensor] name", "must not be empty")
        if not s.store.strip():
            self.bad("[sensor] store", "must not be empty")
        elif "://" in s.store and not s.store.lower().startswith(
            ("sqlite://", "postgresql://", "postgres://")
        ):
            self.bad("[sensor] store", f"unknown store URL scheme (got {_show(s.store)})")
        if s.user:
            if _unknown_id(s.user, "pwd"):
                self.bad("[sensor] user", f"no such user on this system (got {_show(s.user)})")
            if s.group and _unknown_id(s.group, "grp"):
                self.bad("[sensor] group", f"no such group on this system (got {_show(s.group)})")
        elif s.group:
            self.bad("[sensor] group", "set, but [sensor] user is not (the group goes with it)")
        if s.metrics and not _host_port(s.metrics):
            self.bad(
                "[sensor] metrics",
                f"expected ADDRESS:PORT, e.g. 127.0.0.1:9460 (got {_show(s.metrics)})",
            )
        if s.pcap_dir and os.path.exists(s.pcap_dir) and not os.path.isdir(s.pcap_dir):
            self.bad("[sensor] pcap_dir", f"exists and is not a folder (got {_show(s.pcap_dir)})")
        if s.nodes:
            from sipwatch.deploy.nodes import InventoryError, load_inventory

            try:
                load_inventory(s.nodes)
            except InventoryError as exc:
                for problem in exc.problems:
                    self.bad("[sensor] nodes", problem)
        self.central_checks(cfg.central)
        t = cfg.tls
        if bool(t.cert) != bool(t.key):
            have, missing = ("cert", "key") if t.cert else ("key", "cert")
            self.bad(
                f"[tls] {missing}",
                f"{have} is set but {missing} is not (set both, or neither for a generated "
                "self-signed certificate)",
            )
        for key in ("cert", "key"):
            path = getattr(t, key)
            if path and not os.path.isfile(path):
                self.bad(f"[tls] {key}", f"no such file (got {_show(path)})")
        p = cfg.personality
        if not p.name.strip():
            self.bad("[personality] name", "must not be empty")
        elif ("/" in p.name or p.name.endswith(".toml")) and not os.path.isfile(p.name):
            self.bad("[personality] name", f"no such personality file (got {_show(p.name)})")
        if any(c in p.realm for c in '"\\'):
            self.bad("[personality] realm", f'must not contain " or \\ (got {_show(p.realm)})')
        w = cfg.passwords.wordlist
        if w and not os.path.isfile(w):
            self.bad("[passwords] wordlist", f"no such file (got {_show(w)})")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


_RANGE = re.compile(r"(\d+)-(\d+)")
_USER = re.compile(r"[A-Za-z0-9._+*#-]+")  # what phones and PBXs use as a SIP user part


def _extension_problem(item: str) -> str:
    if item[:1].isdigit() and "-" in item:
        m = _RANGE.fullmatch(item)
        if not m:
            return 'malformed range (use LOW-HIGH, e.g. "100-199")'
        if int(m.group(1)) > int(m.group(2)):
            return "range runs backwards (LOW must not be above HIGH)"
        return ""
    if not _USER.fullmatch(item):
        return "not an extension (digits, letters and . _ + - * # only)"
    return ""


def _extension_exists(ext: str, specs: list[str]) -> bool:
    for spec in specs:
        if ext == spec:
            return True
        m = _RANGE.fullmatch(spec)
        if m and ext.isdigit():
            lo, hi = m.group(1), m.group(2)
            # "0100-0199" names 4-digit extensions; "100-199" does not contain "0150"
            width_ok = len(ext) == len(lo) if lo[0] == "0" and len(lo) > 1 else ext[0] != "0"
            if width_ok and int(lo) <= int(ext) <= int(hi):
                return True
    return False


def _known_region(region: str) -> bool:
    import phonenumbers

    return region.upper() in phonenumbers.SUPPORTED_REGIONS


def _unknown_id(name: str, module: str) -> bool:
    """True when a user/group name (or number) is not known to this system."""
    if name.isdigit():
        return False  # a numeric id need not have a name
    try:
        if module == "pwd":
            import pwd

            pwd.getpwnam(name)
        else:
            import grp

            grp.getgrnam(name)
    except KeyError:
        return True
    except ImportError:  # not a Unix system: the sensor reports it when it drops privileges
        return False
    return False


def _detection_problems(section: DetectionSection) -> list[str]:
    """Load the rule packs as the sensor will (nothing is started): every problem."""
    from sipwatch.detect.engine import Engine, EngineConfig
    from sipwatch.detect.rules import RuleError

    try:
        Engine.load(
            list(section.rules),
            overrides=section.overrides or None,
            config=EngineConfig(watchlists=section.watchlists),
        )
    except RuleError as exc:
        return [f"[detection] {p}" for p in exc.problems]
    return []


def _action_problems(actions: dict[str, Any]) -> list[str]:
    """Check the [actions] tables without opening files, sockets or firewalls."""
    if not actions:
        return []
    from sipwatch.actions import check_sinks

    return check_sinks(actions)
