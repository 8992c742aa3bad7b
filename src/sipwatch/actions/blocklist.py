"""Blocklist: put offending client addresses into firewall sets and files, with timeouts.

Policy lives here, the mechanics in firewall.py (nftables, ipset) and blockfile.py (text and
JSON files). An event qualifies by severity (default ``high`` and up), and optionally by rule
and stage (the common sink filter). Its ``src`` is then parsed with ``ipaddress`` (anything
else is refused), checked against the allowlist first, then against the private/loopback
switches; only then does it reach a backend. An address already blocked is not sent again
until it is within ``refresh_before`` seconds of expiry, so an attacker that keeps going
costs no subprocess per event, and its block is extended while it keeps going.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sipwatch.actions.base import EventFilter, QueuedSink, SinkStats, parse_common
from sipwatch.actions.blockfile import BlockEntry, read_json, write_files
from sipwatch.actions.config import Section
from sipwatch.actions.firewall import (
    MAX_TIMEOUT,
    NAME,
    NFT_FAMILIES,
    FirewallBackend,
    FirewallError,
    IPAddress,
    IpsetSet,
    NftablesSet,
)
from sipwatch.detect.events import Event

log = logging.getLogger("sipwatch.actions")
SWEEP_INTERVAL = 30.0  # seconds between expiry sweeps (a scan of the whole table)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# "private" for block_private: site-internal ranges (RFC 1918, carrier-grade NAT, link-local,
# unique local). Not Python's is_private, which also covers the documentation ranges.
PRIVATE_NETS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
              "169.254.0.0/16", "fc00::/7", "fe80::/10")
)  # fmt: skip


@dataclass(slots=True)
class BlocklistStats(SinkStats):
    blocked: int = 0  # addresses newly added
    refreshed: int = 0  # blocks extended near their expiry
    duplicate: int = 0  # already blocked, not near expiry: nothing to do
    allowlisted: int = 0  # source in the allowlist
    private: int = 0  # private or loopback source, and blocking those is off
    invalid: int = 0  # src not an address, or multicast/unspecified/scoped
    no_source: int = 0  # event without src (per-target rules)
    overflow: int = 0  # table full (max_entries)
    expired: int = 0  # blocks that ran out
    active: int = 0  # addresses blocked right now


class BlocklistSink(QueuedSink):
    kind = "blocklist"
    tick_interval = 1.0  # deferred file writes; expiry sweeps every SWEEP_INTERVAL
    stats_class = BlocklistStats

    def __init__(
        self,
        *,
        backends: Sequence[FirewallBackend] = (),
        text_file: str | Path | None = None,
        json_file: str | Path | None = None,
        timeout: int = 3600,
        refresh_before: float | None = None,
        allowlist: Sequence[str | Network] = (),
        block_private: bool = False,
        block_loopback: bool = False,
        max_entries: int = 100_000,
        file_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        **common,
    ) -> None:
        common.setdefault("event_filter", EventFilter(min_severity="high"))
        super().__init__(**common)
        if not 1 <= timeout <= MAX_TIMEOUT:
            raise ValueError(f"timeout must be 1..{MAX_TIMEOUT} seconds")
        self.backends = list(backends)
        self.text_file = Path(text_file) if text_file else None
        self.json_file = Path(json_file) if json_file else None
        self.timeout = int(timeout)
        self.refresh_before = timeout / 10 if refresh_before is None else float(refresh_before)
        self.allowlist = [ipaddress.ip_network(n, strict=False) for n in allowlist]
        self.block_private = block_private
        self.block_loopback = block_loopback
        self.max_entries = max_entries
        self.file_interval = file_interval
        self.clock = clock
        self._entries: dict[str, BlockEntry] = {}
        self._dirty = False  # files behind the table
        self._written = -file_interval  # monotonic time of the last file write
        self._swept = time.monotonic()
        for backend in self.backends:
            backend.setup()  # FirewallError here: the caller reports a setup problem
        self._restore()
        self._start()

    @property
    def stats(self) -> BlocklistStats:
        st = super().stats
        assert isinstance(st, BlocklistStats)
        st.active = len(self._entries)
        return st

    def blocked(self) -> dict[str, BlockEntry]:
        """A snapshot of the addresses blocked now (as of the last expiry sweep)."""
        while True:
            try:
                return dict(self._entries)
            except RuntimeError:  # the worker changed it while we copied: again
                continue

    # --- policy -------------------------------------------------------------------------
    def check(self, src: str) -> IPAddress | None:
        """The address to block for an event's src, or None (the reason is counted)."""
        st = self._stats
        assert isinstance(st, BlocklistStats)
        if not src:
            st.no_source += 1
            return None
        try:
            ip = ipaddress.ip_address(src)
        except ValueError:
            st.invalid += 1
            return None
        if ip.version == 6:
            if ip.scope_id:
                st.invalid += 1
                return None
            ip = ip.ipv4_mapped or ip  # ::ffff:a.b.c.d is the IPv4 client on a dual socket
        if any(ip in net for net in self.allowlist):  # first: an allowlisted peer is never hit
            st.allowlisted += 1
            return None
        if ip.is_unspecified or ip.is_multicast:
            st.invalid += 1
            return None
        if ip.is_loopback:
            if not self.block_loopback:
                st.private += 1
                return None
        elif not self.block_private and any(ip in net for net in PRIVATE_NETS):
            st.private += 1
            return None
        return ip

    def _process(self, batch: list[Event]) -> None:
        st = self._stats
        assert isinstance(st, BlocklistStats)
        now = self.clock()  # expiry itself is swept by _tick: a scan per batch costs too much
        pending: dict[str, tuple[IPAddress, Event]] = {}
        for event in batch:
            ip = self.check(event.src)
            if ip is None:
                continue
            key = str(ip)
            entry = self._entries.get(key)
            if key in pending or (entry and entry.expires - now > self.refresh_before):
                st.duplicate += 1
                continue
            if entry is None and len(self._entries) + len(pending) >= self.max_entries:
                st.overflow += 1
                continue
            pending[key] = (ip, event)
        if pending:
            self._apply([(ip, self.timeout) for ip, _ in pending.values()])
            for key, (_, ev) in pending.items():
                old = self._entries.get(key)
                if old is not None and old.expires <= now:  # ran out, not yet swept
                    old = None
                if old is None:
                    st.blocked += 1
                else:
                    st.refreshed += 1
                self._entries[key] = BlockEntry(
                    address=key, added=old.added if old else now, expires=now + self.timeout,
                    rule=ev.rule, severity=ev.severity, stage=ev.stage, event_id=ev.id,
                )  # fmt: skip
            self._dirty = True
            self._write_files(now)

    def _apply(self, items: list[tuple[IPAddress, int]]) -> None:
        """Every backend gets its chance; any failure fails the batch (nothing recorded, so
        the next event from the same source tries again)."""
        errors = []
        for backend in self.backends:
            try:
                backend.add(items)
            except FirewallError as exc:
                errors.append(f"{backend.name}: {exc}")
        if errors:
            raise FirewallError("; ".join(errors))

    def _expire(self, now: float) -> bool:
        gone = [k for k, e in self._entries.items() if e.expires <= now]
        for key in gone:
            del self._entries[key]
        self._stats.expired += len(gone)  # type: ignore[attr-defined]
        return bool(gone)

    def _tick(self) -> None:
        if time.monotonic() - self._swept >= SWEEP_INTERVAL:
            self.sweep()
        else:
            self._write_files(self.clock())

    def sweep(self) -> None:
        """Forget blocks that ran out (the firewall expires them itself) and update files."""
        now = self.clock()
        self._swept = time.monotonic()
        self._dirty |= self._expire(now)
        self._write_files(now)

    def _write_files(self, now: float, force: bool = False) -> None:
        """Rewrite the files when the table changed, at most every file_interval seconds
        (a flood of new sources would otherwise rewrite a big list for every batch)."""
        if not (self.text_file or self.json_file) or not (self._dirty or force):
            return
        if not force and time.monotonic() - self._written < self.file_interval:
            return  # the next tick writes it
        write_files(self._entries.values(), now, self.text_file, self.json_file)
        self._dirty = False
        self._written = time.monotonic()

    def _finish(self) -> None:
        self._write_files(self.clock(), force=self._dirty)  # what the last batches changed

    def _restore(self) -> None:
        """Carry unexpired blocks over a restart (the firewall may have lost them: reboot)."""
        if self.json_file is None:
            return
        try:
            saved = read_json(self.json_file)
        except ValueError as exc:
            log.warning("blocklist: ignoring %s", exc)
            return
        now = self.clock()
        items = []
        for entry in saved:
            ip = self.check(entry.address)
            remaining = int(entry.expires - now)
            if ip is None or remaining <= 0 or len(self._entries) >= self.max_entries:
                continue
            entry.address = str(ip)
            self._entries[entry.address] = entry
            items.append((ip, min(remaining, MAX_TIMEOUT)))
        if items:
            self._apply(items)
        self._write_files(now, force=True)


def parse_config(sec: Section) -> dict[str, object]:
    """Keyword arguments for BlocklistSink from ``[actions.blocklist]`` (backends built)."""
    kwargs = parse_common(sec, min_severity="high")
    timeout = sec.int("timeout", 3600, minimum=1, maximum=MAX_TIMEOUT)
    kwargs["timeout"] = timeout
    if sec.has("refresh_before"):
        kwargs["refresh_before"] = sec.float("refresh_before", timeout / 10, minimum=0)
    kwargs["block_private"] = sec.bool("block_private", False)
    kwargs["block_loopback"] = sec.bool("block_loopback", False)
    kwargs["max_entries"] = sec.int("max_entries", 100_000, minimum=1, maximum=10_000_000)
    nets = []
    for text in sec.str_list("allowlist"):
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            sec.fail("allowlist", f"{text!r} is not an address or CIDR network")
    kwargs["allowlist"] = nets
    backends: list[FirewallBackend] = []
    nft = sec.sub("nftables")
    if nft is not None:
        backend = _nft_backend(nft)
        if backend is not None:
            backends.append(backend)
    ips = sec.sub("ipset")
    if ips is not None:
        backend = _ipset_backend(ips)
        if backend is not None:
            backends.append(backend)
    kwargs["backends"] = backends
    files = sec.sub("file")
    if files is not None:
        for key in ("text", "json"):
            path = files.str(key)
            if path:
                parent = Path(path).parent
                if not parent.is_dir():
                    files.fail(key, f"directory {str(parent)!r} does not exist")
                kwargs[f"{key}_file"] = path
        kwargs["file_interval"] = files.float("interval", 1.0, minimum=0, maximum=3600)
        files.done()
    if not backends and "text_file" not in kwargs and "json_file" not in kwargs:
        sec.fail("", "no target: add [nftables], [ipset] or [file] (text/json) to it")
    return kwargs


def _names(sec: Section, defaults: dict[str, str | None]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, default in defaults.items():
        value = sec.str(key, default)
        if value and not NAME.fullmatch(value):
            sec.fail(key, "must be a letter then up to 30 letters, digits or '_'")
            value = default
        out[key] = value or None
    return out


def _command(sec: Section, default: str) -> list[str]:
    command = sec.str_list("command", [default])
    if not command or not all(command):
        sec.fail("command", "must be a non-empty list of arguments")
        return [default]
    return command


def _nft_backend(sec: Section) -> NftablesSet | None:
    names = _names(sec, {"table": "sipwatch", "set4": "blocklist4", "set6": "blocklist6",
                         "chain": "input"})  # fmt: skip
    family = sec.str("family", "inet", choices=NFT_FAMILIES) or "inet"
    priority = sec.int("priority", -10, minimum=-1000, maximum=1000)
    create = sec.bool("create", False)
    command = _command(sec, "nft")
    enabled = sec.bool("enabled", True)
    sec.done()
    if not enabled:
        return None
    return NftablesSet(command=command, family=family, table=names["table"] or "sipwatch",
                       set4=names["set4"] or "blocklist4", set6=names["set6"],
                       chain=names["chain"] or "input", priority=priority,
                       create=create)  # fmt: skip


def _ipset_backend(sec: Section) -> IpsetSet | None:
    names = _names(sec, {"set4": "sipwatch4", "set6": "sipwatch6"})
    create = sec.bool("create", False)
    maxelem = sec.int("maxelem", 65536, minimum=1, maximum=2**31 - 1)
    command = _command(sec, "ipset")
    enabled = sec.bool("enabled", True)
    sec.done()
    if not enabled:
        return None
    return IpsetSet(command=command, set4=names["set4"] or "sipwatch4", set6=names["set6"],
                    create=create, maxelem=maxelem)  # fmt: skip
