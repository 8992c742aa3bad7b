"""build_sinks: config dicts (TOML tables) to running sinks, or one line per mistake."""

from __future__ import annotations

import socket

import pytest

from actionevents import make_event
from sipwatch.actions import (
    ActionConfigError,
    BlocklistSink,
    JsonlSink,
    SyslogSink,
    WebhookSink,
    build_sinks,
)


def test_builds_every_kind(tmp_path):
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(tmp_path / "log"))
    rx.settimeout(10)
    config = {
        "jsonl": {"path": str(tmp_path / "events.jsonl"), "min_severity": "medium"},
        "syslog": {"socket": str(tmp_path / "log"), "facility": "local5", "rules": ["es.*"]},
        "webhook": [
            {"url": "http://127.0.0.1:9/hook", "retries": 0, "enabled": False},
            {"url": "https://example.invalid/x", "bearer_token": "t", "max_queue": 10},
        ],
        "blocklist": {"file": {"text": str(tmp_path / "b.txt")}, "stages": ["RHJ", "TF"]},
    }
    sinks = build_sinks(config)
    try:
        assert [type(s) for s in sinks] == [JsonlSink, SyslogSink, WebhookSink, BlocklistSink]
        assert [s.name for s in sinks] == ["jsonl", "syslog", "webhook[1]", "blocklist"]
        jsonl, syslog, webhook, blocklist = sinks
        assert jsonl.event_filter.min_severity == "medium"
        assert blocklist.event_filter.min_severity == "high"  # the blocklist's own default
        assert webhook.max_queue == 10 and webhook.retries == 3
        syslog.emit([make_event()])
        assert rx.recv(4096).startswith(b"<171>")  # local5 (21) * 8 + err (3)
    finally:
        for s in sinks:
            s.close(timeout=0.1)
        rx.close()


def test_every_mistake_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    config = {
        "jsonl": {"path": 5, "colour": "red"},
        "webhook": {"url": "ftp://x", "retries": -1, "bearer_token_env": "NO_SUCH_TOKEN",
                    "headers": {"X-A": "1\r\nX-B: 2"}},
        "syslog": {"format": "rfc5424", "facility": "auth2", "port": 99999},
        "blocklist": {
            "allowlist": ["10.0.0.0/33"], "min_severity": "urgent", "timeout": True,
            "nftables": {"table": "x; flush ruleset", "command": []},
            "file": {"json": str(tmp_path / "missing" / "b.json")},
        },
        "email": {},
    }  # fmt: skip
    with pytest.raises(ActionConfigError) as err:
        build_sinks(config)
    missing = tmp_path / "missing"
    assert err.value.errors == [
        "[actions.jsonl] path: must be a string, not an integer",
        "[actions.jsonl] colour: unknown key (known: close_timeout, enabled, fsync, max_queue, "
        "min_severity, path, rules, stages, timestamp)",
        "[actions.webhook] url: must be http(s)://host[:port]/path, not 'ftp://x'",
        "[actions.webhook] retries: must be >= 0, not -1",
        "[actions.webhook] headers: bad header 'X-A'",
        "[actions.webhook] bearer_token_env: environment variable NO_SUCH_TOKEN is not set",
        "[actions.syslog] port: must be <= 65535, not 99999",
        "[actions.syslog] format: rfc5424 is for network collectors (host); local sockets take "
        "rfc3164",
        "[actions.syslog] facility: must be one of 'kern', 'user', 'mail', 'daemon', 'auth', "
        "'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp', 'local0', 'local1', "
        "'local2', 'local3', 'local4', 'local5', 'local6', 'local7', not 'auth2'",
        "[actions.blocklist] min_severity: must be one of 'info', 'low', 'medium', 'high', "
        "'critical', not 'urgent'",
        "[actions.blocklist] timeout: must be an integer, not a boolean",
        "[actions.blocklist] allowlist: '10.0.0.0/33' is not an address or CIDR network",
        "[actions.blocklist.nftables] table: must be a letter then up to 30 letters, digits or '_'",
        "[actions.blocklist.nftables] command: must be a non-empty list of arguments",
        f"[actions.blocklist.file] json: directory '{missing}' does not exist",
        "[actions] email: unknown action (known: jsonl, syslog, webhook, blocklist, hep)",
    ]
    assert str(err.value).count("\n") == len(err.value.errors) - 1


def test_section_shapes():
    with pytest.raises(ActionConfigError) as err:
        build_sinks({"webhook": [{"url": "http://127.0.0.1/"}, "x"], "blocklist": {}})
    assert err.value.errors == [
        "[actions.webhook[1]] must be a table",
        "[actions.webhook[1]] url: is required",
        "[actions.blocklist] no target: add [nftables], [ipset] or [file] (text/json) to it",
    ]
    with pytest.raises(ActionConfigError, match=r"^\[actions\] must be a table$"):
        build_sinks([])  # type: ignore[arg-type]
    assert build_sinks({}) == []


def test_start_up_failure_is_one_line_and_nothing_keeps_running(tmp_path):
    (tmp_path / "dir.jsonl").mkdir()
    config = {
        "jsonl": {"path": str(tmp_path / "ok.jsonl")},
        "syslog": {"socket": "/dev/null/x", "format": "rfc3164"},
        "blocklist": {"nftables": {"command": ["/nonexistent/nft"], "create": True}},
    }
    with pytest.raises(ActionConfigError) as err:
        build_sinks(config)
    (line,) = err.value.errors
    assert line.startswith("[actions.blocklist] /nonexistent/nft: [Errno 2] No such file")
    with pytest.raises(ActionConfigError) as err:
        build_sinks({"jsonl": {"path": str(tmp_path / "dir.jsonl")}})
    assert err.value.errors == [f"[actions.jsonl] {tmp_path / 'dir.jsonl'}: Is a directory"]
