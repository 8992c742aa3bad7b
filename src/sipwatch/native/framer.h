/* sw_framer: SIP messages out of one direction of a TCP stream, the C twin of
 * sipwatch.sip.framing.StreamFramer (Content-Length framing, CR/LF keep-alives, resync on the
 * next start line, MAX_HEAD and max_body caps, dropped bytes counted).
 *
 * An exact mirror: the same bytes fed in the same pieces give the same messages and the same
 * dropped_bytes, quirks included (tests/unit/test_native_tcp.py holds the two to it with
 * hypothesis). Messages are handed to a callback as slices of the framer's buffer, valid only
 * during the call. No Python API calls.
 */
#ifndef SIPWATCH_NATIVE_FRAMER_H
#define SIPWATCH_NATIVE_FRAMER_H

#include "view.h"

typedef struct {
    unsigned char *data;
    Py_ssize_t start, len, cap; /* the buffer is data[start : start + len] */
    unsigned long long skip;    /* body bytes of an oversized message still to discard */
    long long dropped;          /* StreamFramer.dropped_bytes */
    Py_ssize_t max_head, max_body;
    /* StreamFramer._reset_scan state */
    int line_ok;
    Py_ssize_t scanned, head_end;
    unsigned long long length;
} sw_framer;

/* one complete message (or, from close, an unfinished one kept as evidence) */
typedef void (*sw_framer_emit)(void *ctx, const unsigned char *msg, Py_ssize_t n);

void sw_framer_init(sw_framer *f, Py_ssize_t max_head, Py_ssize_t max_body);
/* Forget the bytes (keeps the allocation): a fresh StreamFramer with the same caps. */
void sw_framer_reset(sw_framer *f);
void sw_framer_free(sw_framer *f);
/* StreamFramer.feed: 0, or -1 when the buffer could not grow (nothing emitted then). */
int sw_framer_feed(sw_framer *f, const unsigned char *d, Py_ssize_t n, sw_framer_emit emit,
                   void *ctx);
/* StreamFramer.close: the unfinished message, if it is one; the buffer is emptied. */
void sw_framer_close(sw_framer *f, sw_framer_emit emit, void *ctx);

/* decode.is_foreign: a payload of TLS/DTLS, STUN or an HTTP-like protocol (n > 0). */
int sw_is_foreign(const unsigned char *d, Py_ssize_t n);

#endif
