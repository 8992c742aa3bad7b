"""Message framing: cut datagrams and TCP streams into single SIP messages (RFC 3261 18.3).

split_datagram() handles a UDP payload holding one or more messages; StreamFramer is fed the
bytes of one TCP direction in order and returns complete messages, using Content-Length.
Both are bounded: junk is skipped and counted, oversized messages are cut and counted.
"""

from __future__ import annotations

import re

from sipwatch.sip.message import MAX_BODY, SipMessage, looks_like_sip, parse

_EOH = re.compile(rb"\r?\n\r?\n")
_CL = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*([0-9]{1,19})[ \t]*\r?$")
# a start line at the beginning of a line (stream resync)
_START = re.compile(
    rb"(?m)^(?:[!%*+.0-9A-Z_`a-z~'-]+ [^ \r\n]+ [Ss][Ii][Pp]/[0-9]+\.[0-9]+\r?\n"
    rb"|[Ss][Ii][Pp]/[0-9]+\.[0-9]+ [0-9]{3}[ \r\n])"
)

MAX_HEAD = 65536  # header block limit in a stream before we give up on a message


def _content_length(head: bytes) -> int | None:
    m = _CL.search(head)
    return int(m.group(1)) if m else None


def _head_end(data: bytes, pos: int) -> int:
    """Where the first empty line at or after pos ends (``_EOH.search(data, pos).end()``),
    -1 when there is none; two byte searches instead of the regex, about three times faster.

    Every match of \\r?\\n\\r?\\n holds "\\n\\r\\n" or "\\n\\n" (from its first LF on) and
    starts at most one byte before it, so the earliest occurrence of either marks the first
    match, and which of the two it is says where that match ends.
    """
    i = data.find(b"\n\r\n", pos)
    j = data.find(b"\n\n", pos, i + 1 if i >= 0 else len(data))
    if j >= 0:
        return j + 2
    return i + 3 if i >= 0 else -1


def split_datagram(data: bytes) -> list[bytes]:
    """The SIP messages in one UDP payload (usually one).

    Leading CR/LF keep-alives are dropped (a payload of only CR/LF gives []). A message
    is cut at its Content-Length only when what follows is another SIP message; otherwise
    the payload stays one message and parse() reports the mismatch.
    """
    n = len(data)
    if n and data[0] not in (13, 10):  # the usual payload: one message without a body
        end = _head_end(data, 0)
        if end == n or end < 0:
            return [data]
    out: list[bytes] = []
    pos = 0
    while pos < n and len(out) < 64:
        while pos < n and data[pos] in (13, 10):
            pos += 1
        if pos >= n:
            break
        head_end = _head_end(data, pos)
        if head_end < 0:
            out.append(data[pos:])
            break
        length = _content_length(data[pos:head_end])
        end = head_end + (length or 0)
        if length is None or end >= n or not looks_like_sip(data[end : end + 4096]):
            out.append(data[pos:])
            break
        out.append(data[pos:end])
        pos = end
    return out


def parse_datagram(data: bytes) -> list[SipMessage]:
    """split_datagram + parse; each part of a multi-message payload is flagged."""
    parts = split_datagram(data)
    if not parts:
        return [parse(data)] if data else []
    msgs = [parse(p) for p in parts]
    if len(msgs) > 1:
        for msg in msgs:
            if "multiple_messages" not in msg.anomalies:
                msg.anomalies.append("multiple_messages")
    return msgs


class StreamFramer:
    """Frames SIP messages out of one direction of a TCP (or TLS plaintext) stream.

    feed() returns the messages completed by the new bytes. Bounded: at most MAX_HEAD bytes
    of an unfinished header block and max_body bytes of a body are kept; the excess is
    skipped and counted in ``dropped_bytes``. Bytes that do not start a SIP message are
    skipped up to the next start line (``dropped_bytes``, ``resyncs``).
    """

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self._buf = bytearray()
        self._skip = 0  # body bytes of an oversized message still to discard
        self.max_body = max_body
        self.dropped_bytes = 0
        self.resyncs = 0
        self.truncated = 0  # messages whose body was cut at max_body
        self.messages = 0
        self._reset_scan()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        if self._skip:
            cut = min(self._skip, len(data))
            self._skip -= cut
            self.dropped_bytes += cut
            data = data[cut:]
        self._buf += data
        while self._frame_one(out):
            pass
        return out

    def close(self) -> list[bytes]:
        """End of stream: an unfinished message is returned as it is (parse flags it)."""
        buf = bytes(self._buf).lstrip(b"\r\n")
        self._buf.clear()
        self._reset_scan()
        if not buf:
            return []
        if looks_like_sip(buf) or _START.search(buf) is not None:
            self.messages += 1
            return [buf]
        self.dropped_bytes += len(buf)
        return []

    def _reset_scan(self) -> None:
        self._line_ok = False  # first line of the buffer checked to be a SIP start line
        self._scanned = 0  # header-end search resumes here (no rescans: linear in bytes fed)
        self._head_end = -1
        self._length = 0

    def _frame_one(self, out: list[bytes]) -> bool:
        buf = self._buf
        if not self._line_ok:
            # keep-alives (RFC 5626 CRLF pings) between messages
            i = 0
            while i < len(buf) and buf[i] in (13, 10):
                i += 1
            if i:
                del buf[:i]
            if not buf:
                return False
            nl = buf.find(b"\n", self._scanned)
            if nl < 0:
                self._scanned = len(buf)
                if len(buf) > MAX_HEAD:  # a start line that never ends
                    self.dropped_bytes += len(buf)
                    self.resyncs += 1
                    buf.clear()
                    self._reset_scan()
                return False
            self._scanned = 0
            if not looks_like_sip(bytes(buf[: nl + 1])):
                self._resync()
                return bool(buf)
            self._line_ok = True
        if self._head_end < 0:
            m = _EOH.search(buf, self._scanned)
            if m is None:
                self._scanned = max(0, len(buf) - 3)
                if len(buf) > MAX_HEAD:
                    self._resync()
                    return bool(buf)
                return False
            self._head_end = m.end()
            self._length = _content_length(bytes(buf[: self._head_end])) or 0
        head_end = self._head_end
        length = self._length
        keep = min(length, self.max_body)
        if len(buf) < head_end + keep:
            return False
        out.append(bytes(buf[: head_end + keep]))
        self.messages += 1
        rest_body = length - keep
        if rest_body:
            self.truncated += 1
            have = len(buf) - head_end - keep
            cut = min(have, rest_body)
            self.dropped_bytes += cut
            self._skip = rest_body - cut
            del buf[: head_end + keep + cut]
        else:
            del buf[: head_end + keep]
        self._reset_scan()
        return True

    def _resync(self) -> None:
        """Drop bytes up to the next line that starts a SIP message (or keep a tail).

        Called when the message at the start of the buffer is known to be bad, so the
        search starts after its first byte.
        """
        buf = self._buf
        m = _START.search(buf, 1)
        if m is not None:
            cut = m.start()
        else:
            # keep the last partial line: it may be the beginning of a start line
            nl = buf.rfind(b"\n")
            cut = nl + 1 if nl >= 0 else len(buf)
            if len(buf) - cut > MAX_HEAD:
                cut = len(buf)
        self.dropped_bytes += cut
        self.resyncs += 1
        del buf[:cut]
        self._reset_scan()
