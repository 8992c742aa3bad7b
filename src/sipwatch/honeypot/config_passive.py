"""The passive parts of the sensor config: ``[capture]`` (live capture) and ``[hep]`` (collector).

Read by config.py's reader (same problem-line format); kept here so config.py stays one job.

    [capture]
    interface = "eth0"            # "" = no live capture; "any" = every interface
    filter = "port 5060 or port 5061"
    promiscuous = false
    snaplen = 262144
    buffer_mb = 32                # kernel capture buffer
    pcap_dir = ""                 # also write the raw frames to rotating pcap files
    pcap_rotate_mb = 100
    pcap_keep = 10

    [hep]
    listen = ["0.0.0.0:9060"]     # UDP and TCP on each; [] = no collector
    auth_key = ""                 # "" = accept packets without a key
    max_connections = 256
    [hep.nodes]                   # capture agent id or node name -> node name
    2001 = "berlin"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class CaptureSection:
    interface: str = ""
    filter: str = ""
    promiscuous: bool = False
    snaplen: int = 262144
    buffer_mb: int = 32
    pcap_dir: str = ""
    pcap_rotate_mb: int = 100
    pcap_keep: int = 10


@dataclass(frozen=True, slots=True)
class HepSection:
    listen: tuple[str, ...] = ()
    auth_key: str = ""
    max_connections: int = 256
    nodes: dict[str, str] = field(default_factory=dict)


_CAPTURE_INTS = {"snaplen": (64, 262144), "buffer_mb": (1, 4096),
                 "pcap_rotate_mb": (1, 1_000_000), "pcap_keep": (1, 1_000_000)}  # fmt: skip


def _kind(value: Any) -> str:
    return {bool: "true or false", int: "an integer", str: "a string", list: "a list",
            dict: "a table", float: "a number"}.get(type(value), type(value).__name__)  # fmt: skip


def read_capture(raw: Any, bad) -> CaptureSection:
    """[capture] from TOML; `bad(where, what)` records a problem."""
    if raw is None:
        return CaptureSection()
    if not isinstance(raw, dict):
        bad("[capture]", "expected a table")
        return CaptureSection()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"[capture] {key}"
        if key in ("interface", "filter", "pcap_dir"):
            if not isinstance(value, str) or any(ord(c) < 32 for c in value):
                bad(where, f"expected a one-line string (got {_kind(value)})")
                continue
        elif key == "promiscuous":
            if not isinstance(value, bool):
                bad(where, f"expected true or false (got {_kind(value)})")
                continue
        elif key in _CAPTURE_INTS:
            lo, hi = _CAPTURE_INTS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                bad(where, f"expected an integer from {lo} to {hi} (got {value!r})")
                continue
        else:
            bad(where, "unknown key (known: interface, filter, promiscuous, snaplen, buffer_mb, "
                "pcap_dir, pcap_rotate_mb, pcap_keep)")  # fmt: skip
            continue
        values[key] = value
    section = CaptureSection(**values)
    if section.filter and not section.interface:
        bad("[capture] filter", "set, but [capture] interface is not")
    return section


def read_hep(raw: Any, bad) -> HepSection:
    """[hep] from TOML; `bad(where, what)` records a problem."""
    from sipwatch.capture.hep_collector import parse_address

    if raw is None:
        return HepSection()
    if not isinstance(raw, dict):
        bad("[hep]", "expected a table")
        return HepSection()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"[hep] {key}"
        if key == "listen":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                bad(where, 'expected a list of "ADDRESS:PORT", e.g. ["0.0.0.0:9060"]')
                continue
            fine = True
            for item in value:
                try:
                    parse_address(item)
                except ValueError:
                    bad(where, f'expected "ADDRESS:PORT" with an IP address (got {item!r})')
                    fine = False
            if fine:
                values[key] = tuple(value)
        elif key == "auth_key":
            if not isinstance(value, str):
                bad(where, f"expected a string (got {_kind(value)})")
                continue
            values[key] = value
        elif key == "max_connections":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
                bad(where, f"expected an integer from 1 to 100000 (got {value!r})")
                continue
            values[key] = value
        elif key == "nodes":
            if not isinstance(value, dict) or not all(
                isinstance(v, str) and v for v in value.values()
            ):
                bad(
                    where,
                    'expected a table of agent id or node name = "node", e.g. 2001 = "berlin"',
                )
                continue
            values[key] = {str(k): v for k, v in value.items()}
        else:
            bad(where, "unknown key (known: listen, auth_key, max_connections, nodes)")
    return HepSection(**values)


def passive(cfg: Any) -> bool:
    """True when the config captures or collects HEP (then [[listen]] may be empty)."""
    return bool(cfg.capture.interface or cfg.hep.listen)


def with_passive(
    cfg: Any,
    *,
    capture: str | None = None,
    bpf: str | None = None,
    hep_listen: list[str] | None = None,
    hep_export: str | None = None,
    hep_id: int | None = None,
    hep_key: str | None = None,
    hep_transport: str | None = None,
    from_file: bool = True,
) -> Any:
    """The config with the command line's --capture/--filter/--hep-*; checked like the file.

    Without a config file (from_file False), --capture or --hep-listen make a purely passive
    sensor: the default loopback honeypot listeners are not started.
    """
    from dataclasses import replace

    from sipwatch.honeypot.config import ConfigError

    problems: list[str] = []

    def bad(where: str, what: str) -> None:
        problems.append(f"command line: {where}: {what}")

    out = cfg
    if capture is not None or bpf is not None:
        raw = {"interface": capture if capture is not None else cfg.capture.interface,
               "filter": bpf if bpf is not None else cfg.capture.filter}  # fmt: skip
        c = read_capture(raw, lambda where, what: bad(where.replace("[capture] ", "--"), what))
        out = replace(out, capture=replace(cfg.capture, interface=c.interface, filter=c.filter))
    if hep_listen:
        h = read_hep({"listen": list(hep_listen)}, lambda w, what: bad("--hep-listen", what))
        out = replace(out, hep=replace(cfg.hep, listen=h.listen))
    if hep_key is not None and hep_export is None and hep_listen:
        out = replace(out, hep=replace(out.hep, auth_key=hep_key))
    if hep_export is not None or hep_id is not None or hep_transport is not None:
        table = dict(cfg.actions.get("hep", {})) if isinstance(cfg.actions.get("hep"), dict) else {}
        if hep_export is not None:
            table["address"] = hep_export
        if hep_id is not None:
            table["agent_id"] = hep_id
        if hep_key is not None:
            table["auth_key"] = hep_key
        if hep_transport is not None:
            table["transport"] = hep_transport
        from sipwatch.actions import check_sinks

        problems += [f"command line: {p}" for p in check_sinks({"hep": table})]
        out = replace(out, actions={**cfg.actions, "hep": table})
    if problems:
        raise ConfigError(problems)
    if not from_file and (capture or hep_listen):
        out = replace(out, listen=())
    return out
