/* sw_rowbuf: rows of trace-store values in one growable byte buffer (rowbuf.h, rowbuf_impl.h).
 *
 * Also the packers: the messages row of an sw_msg (what store/rows.py message_row gives) and
 * the row of a Python tuple; and the test hooks sipwatch._native.message_row(record) and
 * sipwatch._native.pack_rows(rows), which unpack a buffer back into Python values.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <time.h>

#include "module.h"
#include "recordview.h"
#include "rowbuf_impl.h"

#define SW_ROWBUF_FIRST (64 * 1024)

sw_rowbuf *sw_rowbuf_new(int ncols)
{
    if (ncols <= 0) {
        PyErr_SetString(PyExc_ValueError, "a row needs at least one column");
        return NULL;
    }
    sw_rowbuf *b = PyMem_RawCalloc(1, sizeof(*b));
    if (b == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    b->data = PyMem_RawMalloc(SW_ROWBUF_FIRST);
    if (b->data == NULL) {
        PyMem_RawFree(b);
        PyErr_NoMemory();
        return NULL;
    }
    b->cap = SW_ROWBUF_FIRST;
    b->ncols = ncols;
    return b;
}

void sw_rowbuf_free(sw_rowbuf *b)
{
    if (b == NULL)
        return;
    PyMem_RawFree(b->data);
    PyMem_RawFree(b);
}

Py_ssize_t sw_rowbuf_rows(const sw_rowbuf *b) { return b->rows; }

Py_ssize_t sw_rowbuf_bytes(const sw_rowbuf *b) { return (Py_ssize_t)(b->cap + sizeof(*b)); }

/* Room for n more bytes. */
static int reserve(sw_rowbuf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    size_t cap = b->cap;
    while (cap - b->len < n) {
        if (cap > (size_t)PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    unsigned char *d = PyMem_RawRealloc(b->data, cap);
    if (d == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

static int too_many(sw_rowbuf *b)
{
    if (b->cur < b->ncols)
        return 0;
    PyErr_Format(PyExc_SystemError, "row buffer: more than %d values in a row", b->ncols);
    return -1;
}

int sw_rowbuf_null(sw_rowbuf *b)
{
    if (too_many(b) < 0 || reserve(b, 1) < 0)
        return -1;
    b->data[b->len++] = SW_V_NULL;
    b->cur++;
    return 0;
}

static int put8(sw_rowbuf *b, int tag, const void *v)
{
    if (too_many(b) < 0 || reserve(b, 9) < 0)
        return -1;
    b->data[b->len] = (unsigned char)tag;
    memcpy(b->data + b->len + 1, v, 8);
    b->len += 9;
    b->cur++;
    return 0;
}

int sw_rowbuf_int(sw_rowbuf *b, long long v)
{
    int64_t x = (int64_t)v;
    return put8(b, SW_V_INT, &x);
}

int sw_rowbuf_real(sw_rowbuf *b, double v) { return put8(b, SW_V_REAL, &v); }

static int put_bytes(sw_rowbuf *b, int tag, const void *p, Py_ssize_t n)
{
    if (n < 0 || n > INT_MAX) { /* SQLite binds at most INT_MAX bytes (as the sqlite3 module) */
        PyErr_SetString(PyExc_OverflowError, "string longer than INT_MAX bytes");
        return -1;
    }
    if (too_many(b) < 0 || reserve(b, 5 + (size_t)n) < 0)
        return -1;
    uint32_t len = (uint32_t)n;
    unsigned char *d = b->data + b->len;
    d[0] = (unsigned char)tag;
    memcpy(d + 1, &len, 4);
    if (n > 0)
        memcpy(d + 5, p, (size_t)n);
    b->len += 5 + (size_t)n;
    b->cur++;
    return 0;
}

int sw_rowbuf_text(sw_rowbuf *b, const char *p, Py_ssize_t n) { return put_bytes(b, SW_V_TEXT, p, n); }

int sw_rowbuf_blob(sw_rowbuf *b, const void *p, Py_ssize_t n) { return put_bytes(b, SW_V_BLOB, p, n); }

int sw_rowbuf_end_row(sw_rowbuf *b)
{
    if (b->cur != b->ncols) {
        PyErr_Format(PyExc_SystemError, "row buffer: a row of %d values, expected %d", b->cur,
                     b->ncols);
        return -1;
    }
    b->cur = 0;
    b->rows++;
    b->row_start = b->len;
    return 0;
}

/* Drop the open row (a packer failed half-way): the buffer holds complete rows only. */
static void abandon_row(sw_rowbuf *b)
{
    b->len = b->row_start;
    b->cur = 0;
}

/* --- day_of (store/rows.py): the UTC day of ts, 'YYYY-MM-DD' ------------------------------ */

/* Python's float floor division (floatobject.c _float_div_mod), so that the day number is
 * exactly int(ts // 86400) for every double. */
static double py_floordiv(double vx, double wx)
{
    double mod = fmod(vx, wx);
    double div = (vx - mod) / wx;
    if (mod) {
        if ((wx < 0) != (mod < 0))
            div -= 1.0;
    }
    if (div) {
        double fl = floor(div);
        if (div - fl > 0.5)
            fl += 1.0;
        return fl;
    }
    return copysign(0.0, vx / wx);
}

/* Fill b's day cache for ts, the way day_of does it: time.strftime("%Y-%m-%d",
 * time.gmtime(n * 86400)), and "1970-01-01" wherever Python raises ValueError, OverflowError
 * or OSError (ts not finite, n * 86400 outside time_t, gmtime or the year outside int). */
static void day_of(sw_rowbuf *b, double ts)
{
    static const char epoch[] = "1970-01-01";
    double n = py_floordiv(ts, 86400.0);
    if (b->day_ok && n == b->day_n)
        return;
    b->day_ok = 1;
    b->day_n = n;
    memcpy(b->day, epoch, sizeof(epoch));
    b->day_len = sizeof(epoch) - 1;
    /* n * 86400 must fit time_t (int64): |n| <= 106751991167300 (exact in a double) */
    if (!isfinite(n) || n < -106751991167300.0 || n > 106751991167300.0)
        return;
    time_t t = (time_t)((long long)n * 86400LL);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return;
    if ((long long)tm.tm_year + 1900 > INT_MAX) /* time.strftime reads the year as a C int */
        return;
    char buf[sizeof(b->day)];
    size_t k = strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
    if (k == 0)
        return;
    memcpy(b->day, buf, k);
    b->day_len = k;
}

/* --- the messages row of one message ------------------------------------------------------- */

#define TXT(s) sw_rowbuf_text(b, (s).p, (s).n)

int sw_rowbuf_message(sw_rowbuf *b, const sw_msg *m)
{
    if (b->ncols != SW_MESSAGE_NCOLS || b->cur != 0) {
        PyErr_Format(PyExc_SystemError, "row buffer: messages rows need %d columns, an empty row",
                     SW_MESSAGE_NCOLS);
        return -1;
    }
    day_of(b, m->ts);
    if (sw_rowbuf_int(b, m->id) < 0 || sw_rowbuf_real(b, m->ts) < 0 ||
        sw_rowbuf_text(b, b->day, (Py_ssize_t)b->day_len) < 0 || TXT(m->transport) < 0 ||
        TXT(m->src) < 0 || sw_rowbuf_int(b, m->sport) < 0 || TXT(m->dst) < 0 ||
        sw_rowbuf_int(b, m->dport) < 0 || TXT(m->direction) < 0 ||
        sw_rowbuf_int(b, m->is_request ? 1 : 0) < 0 || TXT(m->method) < 0 ||
        sw_rowbuf_int(b, m->status) < 0 || TXT(m->reason) < 0 || TXT(m->ruri) < 0 ||
        TXT(m->ruri_user) < 0 || TXT(m->from_user) < 0 || TXT(m->from_tag) < 0 ||
        TXT(m->to_user) < 0 || TXT(m->to_tag) < 0 || TXT(m->call_id) < 0 ||
        (m->has_cseq ? sw_rowbuf_int(b, m->cseq_num) : sw_rowbuf_null(b)) < 0 ||
        TXT(m->cseq_method) < 0 || TXT(m->via_branch) < 0 || TXT(m->user_agent) < 0 ||
        TXT(m->auth_user) < 0 || TXT(m->auth_realm) < 0 || TXT(m->contact) < 0 ||
        TXT(m->content_type) < 0 || sw_rowbuf_int(b, m->body_len) < 0 ||
        TXT(m->anomalies) < 0 || TXT(m->error) < 0 || TXT(m->stage) < 0 || TXT(m->tool) < 0 ||
        TXT(m->tool_data) < 0 || sw_rowbuf_int(b, m->fuzz ? 1 : 0) < 0 || TXT(m->number) < 0 ||
        TXT(m->number_type) < 0 || TXT(m->number_country) < 0 ||
        sw_rowbuf_int(b, m->request_id) < 0 || TXT(m->sensor) < 0 || TXT(m->node) < 0 ||
        TXT(m->tunnel) < 0 || TXT(m->vlan) < 0 || sw_rowbuf_blob(b, m->raw.p, m->raw.n) < 0 ||
        TXT(m->password) < 0 || sw_rowbuf_end_row(b) < 0) {
        abandon_row(b);
        return -1;
    }
    return 0;
}

#undef TXT

/* --- the row of a Python tuple --------------------------------------------------------------- */

static int pack_value(sw_rowbuf *b, PyObject *v)
{
    if (v == Py_None)
        return sw_rowbuf_null(b);
    if (PyUnicode_Check(v)) {
        Py_ssize_t n;
        const char *p = PyUnicode_AsUTF8AndSize(v, &n); /* UnicodeEncodeError: surrogates */
        return p == NULL ? -1 : sw_rowbuf_text(b, p, n);
    }
    if (PyLong_Check(v)) { /* bool too, as the sqlite3 module binds it */
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) {
            PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to SQLite INTEGER");
            return -1;
        }
        if (x == -1 && PyErr_Occurred())
            return -1;
        return sw_rowbuf_int(b, x);
    }
    if (PyFloat_Check(v))
        return sw_rowbuf_real(b, PyFloat_AS_DOUBLE(v));
    if (PyBytes_Check(v))
        return sw_rowbuf_blob(b, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
    if (PyObject_CheckBuffer(v)) { /* bytearray, memoryview: blobs, as the sqlite3 module */
        Py_buffer view;
        if (PyObject_GetBuffer(v, &view, PyBUF_SIMPLE) < 0)
            return -1;
        int r = sw_rowbuf_blob(b, view.buf, view.len);
        PyBuffer_Release(&view);
        return r;
    }
    PyErr_Format(PyExc_TypeError, "a trace-store row value cannot be of type %.100s",
                 Py_TYPE(v)->tp_name);
    return -1;
}

int sw_rowbuf_tuple(sw_rowbuf *b, PyObject *row)
{
    if (!PyTuple_Check(row)) {
        PyErr_Format(PyExc_TypeError, "a row must be a tuple, not %.100s", Py_TYPE(row)->tp_name);
        return -1;
    }
    if (b->cur != 0) {
        PyErr_SetString(PyExc_SystemError, "row buffer: a row is already open");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(row);
    if (n != b->ncols) {
        PyErr_Format(PyExc_ValueError, "a row of %zd values, the statement takes %d", n, b->ncols);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (pack_value(b, PyTuple_GET_ITEM(row, i)) < 0) {
            abandon_row(b);
            return -1;
        }
    }
    if (sw_rowbuf_end_row(b) < 0) {
        abandon_row(b);
        return -1;
    }
    return 0;
}

/* --- test hooks: a buffer back into Python values ------------------------------------------- */

static PyObject *unpack_rows(const sw_rowbuf *b)
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    size_t pos = 0;
    for (Py_ssize_t r = 0; r < b->rows; r++) {
        PyObject *row = PyTuple_New(b->ncols);
        if (row == NULL)
            goto fail;
        for (int c = 0; c < b->ncols; c++) {
            sw_value v;
            PyObject *o = NULL;
            if (sw_rowbuf_read(b, &pos, &v) < 0) {
                PyErr_SetString(PyExc_SystemError, "row buffer: malformed");
            }
            else if (v.tag == SW_V_NULL) {
                o = Py_NewRef(Py_None);
            }
            else if (v.tag == SW_V_INT) {
                o = PyLong_FromLongLong(v.i);
            }
            else if (v.tag == SW_V_REAL) {
                o = PyFloat_FromDouble(v.d);
            }
            else if (v.tag == SW_V_TEXT) {
                o = PyUnicode_DecodeUTF8((const char *)v.p, v.n, "strict");
            }
            else {
                o = PyBytes_FromStringAndSize((const char *)v.p, v.n);
            }
            if (o == NULL) {
                Py_DECREF(row);
                goto fail;
            }
            PyTuple_SET_ITEM(row, c, o);
        }
        int r2 = PyList_Append(out, row);
        Py_DECREF(row);
        if (r2 < 0)
            goto fail;
    }
    if (pos != b->len) {
        PyErr_SetString(PyExc_SystemError, "row buffer: bytes after the last row");
        goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *py_message_row(PyObject *self, PyObject *record)
{
    (void)self;
    sw_msg m;
    sw_keep keep = SW_KEEP_INIT;
    sw_rowbuf *b = NULL;
    PyObject *rows = NULL, *row = NULL;
    if (sw_msg_from_record(record, &m, &keep) < 0)
        goto done;
    if ((b = sw_rowbuf_new(SW_MESSAGE_NCOLS)) == NULL || sw_rowbuf_message(b, &m) < 0)
        goto done;
    if ((rows = unpack_rows(b)) == NULL)
        goto done;
    row = Py_NewRef(PyList_GET_ITEM(rows, 0));
done:
    Py_XDECREF(rows);
    sw_rowbuf_free(b);
    sw_keep_clear(&keep);
    return row;
}

static PyObject *py_pack_rows(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *seq;
    int ncols;
    if (!PyArg_ParseTuple(args, "Oi:pack_rows", &seq, &ncols))
        return NULL;
    PyObject *fast = PySequence_Fast(seq, "pack_rows() takes a sequence of tuples");
    if (fast == NULL)
        return NULL;
    PyObject *out = NULL;
    sw_rowbuf *b = sw_rowbuf_new(ncols);
    if (b == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
        if (sw_rowbuf_tuple(b, PySequence_Fast_GET_ITEM(fast, i)) < 0)
            goto done;
    }
    out = unpack_rows(b);
done:
    sw_rowbuf_free(b);
    Py_DECREF(fast);
    return out;
}

static PyMethodDef rowbuf_methods[] = {
    {"message_row", py_message_row, METH_O,
     "message_row(record) -> tuple: the messages row the C bulk path stores for a Record "
     "(for tests: it must equal sipwatch.store.rows.message_row(record))."},
    {"pack_rows", py_pack_rows, METH_VARARGS,
     "pack_rows(rows, ncols) -> list[tuple]: rows packed into a row buffer and read back "
     "(for tests)."},
    {NULL, NULL, 0, NULL},
};

int sw_init_rowbuf(PyObject *m)
{
    if (PyModule_AddFunctions(m, rowbuf_methods) < 0)
        return -1;
    return PyModule_AddIntConstant(m, "MESSAGE_NCOLS", SW_MESSAGE_NCOLS);
}
