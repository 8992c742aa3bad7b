"""Blocklist policy and files (no root needed); the kernel sets: tests/integration."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from actionevents import make_event
from sipwatch.actions.blocklist import BlocklistSink
from sipwatch.actions.firewall import IpsetSet, NftablesSet

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _sink(tmp_path: Path, **kw) -> BlocklistSink:
    kw.setdefault("text_file", tmp_path / "block.txt")
    kw.setdefault("json_file", tmp_path / "block.json")
    kw.setdefault("file_interval", 0)  # write at every change: the tests read right after
    return BlocklistSink(**kw)


def _run(sink: BlocklistSink, *events) -> None:
    sink.emit(list(events))
    assert sink.flush(10)


def _text(tmp_path: Path) -> list[str]:
    return (tmp_path / "block.txt").read_text().split()


def test_blocks_by_severity_into_text_and_json(tmp_path):
    clock = Clock()
    sink = _sink(tmp_path, timeout=600, clock=clock)
    hit = make_event(src="198.51.100.7", severity="high", rule="rhj.bruteforce", stage="RHJ")
    _run(sink, hit, make_event(src="198.51.100.8", severity="medium"),
         make_event(src="2001:db8::5", severity="critical"))  # fmt: skip
    assert _text(tmp_path) == ["198.51.100.7", "2001:db8::5"]
    doc = json.loads((tmp_path / "block.json").read_text())
    assert doc["count"] == 2
    first = doc["entries"][0]
    assert first == {
        "address": "198.51.100.7", "added": T0, "expires": T0 + 600, "rule": "rhj.bruteforce",
        "severity": "high", "stage": "RHJ", "event_id": hit.id,
        "added_at": "2027-01-15T08:00:00.000Z", "expires_at": "2027-01-15T08:10:00.000Z",
    }  # fmt: skip
    for name in ("block.txt", "block.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["block.json", "block.txt"]  # no temp
    st = sink.stats
    assert (st.blocked, st.filtered, st.active) == (2, 1, 2)
    sink.close()


def test_allowlist_private_loopback_and_junk_are_never_blocked(tmp_path):
    sink = _sink(tmp_path, allowlist=["198.51.100.0/24", "2001:db8:1::/48"])
    _run(
        sink,
        make_event(src="198.51.100.9", severity="critical"),  # allowlisted
        make_event(src="::ffff:198.51.100.10", severity="critical"),  # allowlisted, mapped
        make_event(src="2001:db8:1::77", severity="critical"),  # allowlisted
        make_event(src="10.1.2.3"),  # private
        make_event(src="fe80::1"),  # link-local
        make_event(src="127.0.0.1"),  # loopback
        make_event(src="1.2.3.4; rm -rf /"),  # not an address: never reaches a command
        make_event(src="fe80::1%eth0"),  # scoped
        make_event(src="224.0.0.5"),  # multicast
        make_event(src=""),  # per-target event
        make_event(src="::ffff:203.0.113.50"),  # IPv4 client on a dual-stack socket
    )
    assert _text(tmp_path) == ["203.0.113.50"]
    st = sink.stats
    assert (st.allowlisted, st.private, st.invalid, st.no_source) == (3, 3, 3, 1)
    sink.close()


def test_private_and_loopback_can_be_enabled(tmp_path):
    sink = _sink(tmp_path, block_private=True, block_loopback=True, allowlist=["10.9.0.0/16"])
    _run(sink, make_event(src="10.1.2.3"), make_event(src="127.0.0.2"),
         make_event(src="10.9.1.1"))  # fmt: skip
    assert _text(tmp_path) == ["10.1.2.3", "127.0.0.2"]  # the allowlist still wins
    sink.close()


def test_dedupe_refresh_near_expiry_and_expiry(tmp_path):
    clock = Clock()
    sink = _sink(tmp_path, timeout=1000, refresh_before=100, clock=clock)
    _run(sink, make_event(src="203.0.113.9"), make_event(src="203.0.113.9"))
    clock.now += 850
    _run(sink, make_event(src="203.0.113.9"))  # 150 s left: still fine, nothing to do
    st = sink.stats
    assert (st.blocked, st.duplicate, st.refreshed) == (1, 2, 0)
    clock.now += 100  # 50 s left: extended
    _run(sink, make_event(src="203.0.113.9", rule="tf.toll-fraud"))
    entry = sink.blocked()["203.0.113.9"]
    assert (entry.added, entry.expires, entry.rule) == (T0, T0 + 950 + 1000, "tf.toll-fraud")
    assert sink.stats.refreshed == 1
    clock.now += 1001
    sink.sweep()  # what the worker does every 30 s
    assert _text(tmp_path) == [] and sink.stats.expired == 1 and sink.stats.active == 0
    sink.close()


def test_blocks_survive_a_restart(tmp_path):
    clock = Clock()
    sink = _sink(tmp_path, timeout=1000, clock=clock)
    _run(sink, make_event(src="203.0.113.1"), make_event(src="203.0.113.2"))
    sink.close()
    clock.now += 500
    again = _sink(tmp_path, timeout=1000, clock=clock, allowlist=["203.0.113.2/32"])
    assert list(again.blocked()) == ["203.0.113.1"]  # the allowlist is applied to old entries
    assert _text(tmp_path) == ["203.0.113.1"]
    assert again.blocked()["203.0.113.1"].expires == T0 + 1000
    again.close()


def test_table_is_bounded(tmp_path):
    sink = _sink(tmp_path, max_entries=3)
    _run(sink, *(make_event(src=f"203.0.113.{i}") for i in range(1, 6)))
    assert len(_text(tmp_path)) == 3 and sink.stats.overflow == 2
    sink.close()


RECORDER = """
import json, sys
log, fail = sys.argv[1], sys.argv[2] == "fail"
with open(log, "a") as fh:
    fh.write(json.dumps({"argv": sys.argv[3:], "stdin": sys.stdin.read()}) + "\\n")
if fail:
    sys.stderr.write("Error: Could not process rule: Operation not permitted\\n")
    sys.exit(1)
"""


def _recorder(tmp_path: Path, fail: bool = False) -> tuple[list[str], Path]:
    """A stand-in for nft/ipset that records its argv and stdin (no root needed)."""
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    log = tmp_path / "calls.jsonl"
    return [sys.executable, str(script), str(log), "fail" if fail else "ok"], log


def _calls(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def test_nft_and_ipset_commands(tmp_path):
    nft_cmd, log = _recorder(tmp_path)
    backends = [
        NftablesSet(command=nft_cmd, create=True),
        IpsetSet(command=nft_cmd, set4="sw4", set6="sw6", create=True, maxelem=1000),
    ]
    sink = _sink(tmp_path, backends=backends, timeout=3600)
    _run(sink, make_event(src="198.51.100.7"), make_event(src="2001:db8::7"),
         make_event(src="198.51.100.8; reboot"))  # fmt: skip
    sink.close()
    create_nft, create_ipset, add_nft, add_ipset = _calls(log)
    assert create_nft["argv"] == add_nft["argv"] == ["-f", "-"]
    assert (
        "add chain inet sipwatch input { type filter hook input priority -10; policy accept; }"
        in create_nft["stdin"]
    )
    assert "add rule inet sipwatch input ip saddr @blocklist4 drop" in create_nft["stdin"]
    assert add_nft["stdin"].splitlines() == [
        "add element inet sipwatch blocklist4 { 198.51.100.7 }",
        "delete element inet sipwatch blocklist4 { 198.51.100.7 }",
        "add element inet sipwatch blocklist4 { 198.51.100.7 timeout 3600s }",
        "add element inet sipwatch blocklist6 { 2001:db8::7 }",
        "delete element inet sipwatch blocklist6 { 2001:db8::7 }",
        "add element inet sipwatch blocklist6 { 2001:db8::7 timeout 3600s }",
    ]
    assert create_ipset["argv"] == add_ipset["argv"] == ["-exist", "restore"]
    assert create_ipset["stdin"].splitlines() == [
        "create sw4 hash:ip family inet timeout 0 maxelem 1000",
        "create sw6 hash:ip family inet6 timeout 0 maxelem 1000",
    ]
    assert add_ipset["stdin"].splitlines() == [
        "add sw4 198.51.100.7 timeout 3600", "add sw6 2001:db8::7 timeout 3600"]  # fmt: skip


def test_failing_firewall_is_counted_and_retried(tmp_path):
    cmd, log = _recorder(tmp_path, fail=True)
    sink = _sink(tmp_path, backends=[NftablesSet(command=cmd)])
    _run(sink, make_event(src="198.51.100.7"))
    _run(sink, make_event(src="198.51.100.7"))  # not recorded as blocked: tried again
    st = sink.stats
    assert (st.failed, st.errors, st.blocked, st.active) == (2, 2, 0, 0)
    assert "Operation not permitted" in st.last_error
    assert len(_calls(log)) == 2 and _text(tmp_path) == []
    sink.close()


def test_setup_failure_raises(tmp_path):
    cmd, _ = _recorder(tmp_path, fail=True)
    with pytest.raises(Exception, match="Operation not permitted"):
        BlocklistSink(backends=[NftablesSet(command=cmd, create=True)])


def test_names_are_checked():
    with pytest.raises(ValueError, match="bad nftables name"):
        NftablesSet(table="x; flush ruleset")


def test_file_writes_are_throttled_but_never_lost(tmp_path):
    sink = _sink(tmp_path, file_interval=3600)  # start-up writes the (empty) list
    _run(sink, make_event(src="203.0.113.1"), make_event(src="203.0.113.2"))
    assert _text(tmp_path) == []  # within the interval: deferred to a tick ...
    sink.close()  # ... or to the end
    assert _text(tmp_path) == ["203.0.113.1", "203.0.113.2"]
