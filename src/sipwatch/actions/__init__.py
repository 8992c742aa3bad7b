"""Actions: where detection events go (JSON lines, syslog, webhook, blocklist).

``build_sinks(config)`` turns the ``[actions]`` part of the configuration into sinks::

    {"jsonl": {"path": "events.jsonl"}, "syslog": {}, "webhook": {"url": "https://..."},
     "blocklist": {"nftables": {"create": True}, "allowlist": ["192.0.2.0/24"]}}

A section may also be a list of tables (``[[actions.webhook]]``) for several sinks of one
kind, and ``enabled = false`` skips it. Every config problem is reported at once, one line
each, as an ActionConfigError; nothing is started unless the whole config is valid. Each
sink queues events and works on its own thread (see base.py); docs/actions.md describes
the keys.
"""

from __future__ import annotations

from collections.abc import Callable

from sipwatch.actions import blocklist, hep_export, jsonl, syslog, webhook
from sipwatch.actions.base import EventFilter, QueuedSink, SinkStats
from sipwatch.actions.blocklist import BlocklistSink
from sipwatch.actions.config import ActionConfigError, Section
from sipwatch.actions.firewall import FirewallError
from sipwatch.actions.jsonl import JsonlSink
from sipwatch.actions.syslog import SyslogSink
from sipwatch.actions.webhook import WebhookSink
from sipwatch.detect.events import EventSink

__all__ = [
    "ActionConfigError",
    "BlocklistSink",
    "EventFilter",
    "EventSink",
    "JsonlSink",
    "QueuedSink",
    "SinkStats",
    "SyslogSink",
    "WebhookSink",
    "build_sinks",
    "check_sinks",
    "sink_stats",
]

# kind -> (parse config section into keyword arguments, sink class)
KINDS: dict[str, tuple[Callable[[Section], dict[str, object]], type[QueuedSink]]] = {
    "jsonl": (jsonl.parse_config, JsonlSink),
    "syslog": (syslog.parse_config, SyslogSink),
    "webhook": (webhook.parse_config, WebhookSink),
    "blocklist": (blocklist.parse_config, BlocklistSink),
    "hep": (hep_export.parse_config, hep_export.HepExporter),  # records, not events
}


def check_sinks(config: dict, prefix: str = "actions") -> list[str]:
    """Every problem of an ``[actions]`` config, without starting anything ([] when valid)."""
    return _plan(config, prefix)[1]


def build_sinks(config: dict, prefix: str = "actions") -> list[QueuedSink]:
    """Validate the whole ``[actions]`` config, then start one sink per enabled section."""
    planned, errors = _plan(config, prefix)
    if errors:
        raise ActionConfigError(errors)
    sinks: list[QueuedSink] = []
    try:
        for name, cls, kwargs in planned:
            try:
                sinks.append(cls(**kwargs))
            except (OSError, ValueError, FirewallError) as exc:  # can't open, can't set up
                raise ActionConfigError([f"[{name}] {_one_line(exc)}"]) from None
    except ActionConfigError:
        for sink in sinks:
            sink.close(timeout=1.0)
        raise
    return sinks


def _plan(
    config: dict, prefix: str
) -> tuple[list[tuple[str, type[QueuedSink], dict[str, object]]], list[str]]:
    """The sinks a config asks for (kind, class, arguments) and its problems."""
    errors: list[str] = []
    if not isinstance(config, dict):
        return [], [f"[{prefix}] must be a table"]
    planned: list[tuple[str, type[QueuedSink], dict[str, object]]] = []
    for kind, value in config.items():
        if kind not in KINDS:
            errors.append(f"[{prefix}] {kind}: unknown action (known: {', '.join(KINDS)})")
            continue
        parse, cls = KINDS[kind]
        tables = value if isinstance(value, list) else [value]
        for i, table in enumerate(tables):
            name = f"{prefix}.{kind}" + (f"[{i}]" if isinstance(value, list) else "")
            sec = Section(name, table, errors)
            enabled = sec.bool("enabled", True)
            if not enabled:
                continue
            kwargs = parse(sec)
            sec.done()
            kwargs["name"] = name.removeprefix(f"{prefix}.")
            planned.append((name, cls, kwargs))
    return planned, errors


def sink_stats(sinks: list[QueuedSink]) -> dict[str, dict[str, object]]:
    """Counters of every sink by name (received, dropped, failed, ...) for logs and metrics."""
    return {sink.name: sink.stats.as_dict() for sink in sinks}


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__
