/* sw_rowbuf: rows of trace-store values packed into one growable byte buffer.
 *
 * The bulk path packs each message's row here (in store/schema.py MESSAGE_COLUMNS order) and
 * hands whole buffers to the SQLite writer thread, which binds the values straight out of the
 * buffer: no Python object per value, no pickling, no GIL in the thread. A buffer is owned by
 * one side at a time (the packer until sw_writer_submit, then the writer, which frees it).
 */
#ifndef SIPWATCH_NATIVE_ROWBUF_H
#define SIPWATCH_NATIVE_ROWBUF_H

#include "view.h"

typedef struct sw_rowbuf sw_rowbuf;

/* A new empty buffer for rows of ncols values; NULL (MemoryError set) when out of memory. */
sw_rowbuf *sw_rowbuf_new(int ncols);
void sw_rowbuf_free(sw_rowbuf *b);

/* Append one value to the current row; 0, or -1 with MemoryError set. Text must be valid
 * UTF-8 (the packers guarantee it); blob is any bytes. */
int sw_rowbuf_null(sw_rowbuf *b);
int sw_rowbuf_int(sw_rowbuf *b, long long v);
int sw_rowbuf_real(sw_rowbuf *b, double v);
int sw_rowbuf_text(sw_rowbuf *b, const char *p, Py_ssize_t n);
int sw_rowbuf_blob(sw_rowbuf *b, const void *p, Py_ssize_t n);
/* Close the current row: -1 with SystemError set when it does not hold ncols values. */
int sw_rowbuf_end_row(sw_rowbuf *b);

Py_ssize_t sw_rowbuf_rows(const sw_rowbuf *b);  /* complete rows */
Py_ssize_t sw_rowbuf_bytes(const sw_rowbuf *b); /* memory held, for bounding queues */

/* The messages-table row of one message (MESSAGE_COLUMNS order, exactly what
 * store/rows.py message_row gives for the same Record, `day` included); 0 or -1. */
int sw_rowbuf_message(sw_rowbuf *b, const sw_msg *m);

/* Pack a Python row tuple (ints, floats, str, bytes, None) as store/rows.py builds them;
 * 0, or -1 with an exception (TypeError for another type, UnicodeEncodeError for a str that
 * is not encodable as UTF-8: the caller cleans such a row and packs it again). */
int sw_rowbuf_tuple(sw_rowbuf *b, PyObject *row);

/* The SQLite writer thread (sqlite_writer.c). writer is a sipwatch._native.SqliteWriter.
 * Takes ownership of b in every case; blocks (GIL released) while the writer's queue is full.
 * 0, or -1 with an exception (the writer failed earlier, or is closed). */
int sw_writer_submit(PyObject *writer, sw_rowbuf *b);

#endif
