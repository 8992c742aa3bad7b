"""Captures in, Records out.

Public API::

    from sipwatch.capture import read_captures, CaptureStats, CaptureError

    stats = CaptureStats()
    for record in read_captures(["trace.pcap", "folder/", "-"], bpf="udp or tcp",
                                stats=stats, on_warning=print):
        ...                              # sipwatch.record.Record, in timestamp order
    stats.as_dict()                      # packets, bytes, fragments, tcp gaps, ...

- ``read_captures(sources, bpf=None, stats=None, on_warning=None)`` -> Iterator[Record].
  sources: files (pcap micro/nano, pcapng; gzip-compressed too), folders (recursive; files are
  recognised by magic number, others skipped) and "-" (standard input). Several captures are
  merged by timestamp. Raises CaptureError (message for the user) before the first Record
  for a missing file, a file that is not a capture, an unsupported link type, a bad filter.
  A damaged/truncated capture is read up to the damage; ``on_warning`` (default: collected in
  ``stats.warnings``) gets one message naming the file, packet number and byte offset.
- ``iter_packets(source, bpf=None)`` -> Iterator[(ts, link_type, frame_bytes)]: raw frames.
- ``PacketDecoder(link_type, stats)``: ``decode_frame(ts, frame)`` / ``decode_batch(pkts, meta)``
  / ``flush()`` -> list[Record]; the layer under read_captures, usable for live capture.

Layers (one file each): reader (libpcap, gzip, stdin), sources (files, folders), linklayer
(Ethernet + VLAN/QinQ, cooked v1/v2, raw IP, loopback), ip + defrag (IPv4/IPv6, extension
headers, bounded fragment reassembly), tcp (bounded stream reassembly), tunnels (VXLAN, GRE,
ERSPAN), decode (packet -> Records), damage (where a broken file stops), stats, errors.

Record fields set here: ts, transport ("udp"/"tcp"), src, sport, dst, dport, raw, msg,
tunnel ("vxlan:VNI OUTER_SRC>OUTER_DST", "gre:KEY OUTER_SRC>OUTER_DST", "gre OUTER_SRC>..."
without key, "ipip ..."; nested tunnels joined outermost first with ", "), vlan ("100",
"100.200" for QinQ, outermost first).
"""

from sipwatch.capture.api import iter_packets, read_captures
from sipwatch.capture.decode import PacketDecoder
from sipwatch.capture.errors import CaptureError
from sipwatch.capture.stats import CaptureStats

__all__ = ["CaptureError", "CaptureStats", "PacketDecoder", "iter_packets", "read_captures"]
