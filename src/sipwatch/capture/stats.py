"""Counters for everything the capture layer reads, decodes or drops (nothing is silent)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

MAX_WARNINGS = 100  # warnings kept for the summary; more are only counted


@dataclass(slots=True)
class CaptureStats:
    files: int = 0  # captures opened
    packets: int = 0  # frames read from libpcap (after the BPF filter)
    bytes: int = 0  # captured bytes of those frames
    non_ip: int = 0  # frames without IPv4/IPv6 (ARP, LLDP, STP, ...)
    decode_errors: int = 0  # headers cut short or inconsistent
    other_proto: int = 0  # IP packets that are neither UDP, TCP nor a tunnel we open
    non_sip: int = 0  # UDP datagrams / TCP segments whose payload is not SIP
    keepalives: int = 0  # CRLF keep-alives and empty payloads on SIP ports
    sip_messages: int = 0  # Records produced
    unparsable: int = 0  # payloads on SIP ports that are not SIP yet kept (fuzzing evidence)
    fragments: int = 0  # IP fragments seen
    fragments_reassembled: int = 0  # datagrams rebuilt from fragments
    fragments_dropped: int = 0  # fragments thrown away (timeout, table full, too many, bad)
    tunnels_vxlan: int = 0  # packets decapsulated
    tunnels_gre: int = 0
    tunnels_other: int = 0  # IP-in-IP, IPv6-in-IP
    tcp_segments: int = 0  # TCP segments with payload on SIP flows
    tcp_out_of_order: int = 0  # segments that arrived ahead of a hole
    tcp_retransmissions: int = 0  # segments (or parts) already seen
    tcp_gaps: int = 0  # holes skipped (lost segments): the stream resynchronises after them
    tcp_gap_bytes: int = 0  # bytes of stream never seen
    tcp_flows_evicted: int = 0  # flows dropped because the flow table was full
    tcp_framing_drops: int = 0  # stream bytes the framer gave up on (no SIP start line)
    internal_errors: int = 0  # bugs: a packet made our decoder fail (reported as a warning)
    truncated_files: int = 0
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)

    def as_dict(self) -> dict[str, int]:
        """The counters (not the warnings), e.g. for a summary table or JSON."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "warnings"}
