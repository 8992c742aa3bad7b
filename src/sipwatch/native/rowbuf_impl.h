/* Inside sw_rowbuf: the layout the packers write and the SQLite writer thread reads.
 * Private to rowbuf.c and sqlite_writer.c; everyone else uses rowbuf.h.
 *
 * A buffer is one byte array of values, row after row, ncols values a row. Each value is a
 * one-byte tag and its payload, unaligned (read with memcpy):
 *   SW_V_NULL  -
 *   SW_V_INT   8 bytes, int64 (host order)
 *   SW_V_REAL  8 bytes, double
 *   SW_V_TEXT  4 bytes uint32 length, then the UTF-8 bytes
 *   SW_V_BLOB  4 bytes uint32 length, then the bytes
 * Text and blob values are bound by the writer straight from the buffer (SQLITE_STATIC):
 * the buffer neither moves nor changes once it has been submitted.
 */
#ifndef SIPWATCH_NATIVE_ROWBUF_IMPL_H
#define SIPWATCH_NATIVE_ROWBUF_IMPL_H

#include <stdint.h>
#include <string.h>

#include "rowbuf.h"

enum { SW_V_NULL = 0, SW_V_INT = 1, SW_V_REAL = 2, SW_V_TEXT = 3, SW_V_BLOB = 4 };

/* the messages row: store/schema.py MESSAGE_COLUMNS */
#define SW_MESSAGE_NCOLS 45

struct sw_rowbuf {
    unsigned char *data;
    size_t len, cap;
    size_t row_start;   /* offset where the current (open) row begins */
    int ncols;
    int cur;            /* values in the current row */
    Py_ssize_t rows;    /* complete rows */
    sw_rowbuf *next;    /* the writer's queue link */
    /* day_of cache (sw_rowbuf_message): one buffer is used by one thread at a time */
    int day_ok;
    double day_n;
    char day[40];
    size_t day_len;
};

/* One value read back from a buffer. */
typedef struct {
    int tag;
    long long i;
    double d;
    const unsigned char *p;
    uint32_t n;
} sw_value;

/* Read the value at *pos and advance *pos. The buffer was written by the packers, so it is
 * well formed; end guards against reading past it all the same (returns -1). */
static inline int sw_rowbuf_read(const sw_rowbuf *b, size_t *pos, sw_value *v)
{
    size_t at = *pos;
    if (at >= b->len)
        return -1;
    const unsigned char *d = b->data;
    v->tag = d[at++];
    switch (v->tag) {
    case SW_V_NULL:
        break;
    case SW_V_INT:
        if (b->len - at < 8)
            return -1;
        memcpy(&v->i, d + at, 8);
        at += 8;
        break;
    case SW_V_REAL:
        if (b->len - at < 8)
            return -1;
        memcpy(&v->d, d + at, 8);
        at += 8;
        break;
    case SW_V_TEXT:
    case SW_V_BLOB:
        if (b->len - at < 4)
            return -1;
        memcpy(&v->n, d + at, 4);
        at += 4;
        if (b->len - at < v->n)
            return -1;
        v->p = d + at;
        at += v->n;
        break;
    default:
        return -1;
    }
    *pos = at;
    return 0;
}

#endif
