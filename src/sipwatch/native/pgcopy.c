/* PostgreSQL binary COPY data for a batch of rows (sipwatch/store/pgcopy.py).
 *
 * pg_copy_binary(rows, kinds) -> bytes
 *     The whole COPY ... FROM STDIN (FORMAT BINARY) stream: signature, header, one tuple per
 *     row, trailer. kinds holds one letter per column, for the column's PostgreSQL type:
 *       'q' int8   'i' int4   'h' int2   'd' float8   't' text   'b' bytea
 *     None is NULL in any column. UnicodeEncodeError for text UTF-8 cannot hold (a lone
 *     surrogate) and TypeError for a value of the wrong type, as psycopg's binary dumpers
 *     raise them, so the caller's cleaning fallback still applies. OverflowError for an int
 *     that does not fit its column: psycopg sends such a value and the server refuses the
 *     COPY, so the batch fails either way, here before anything is sent.
 *
 * Replaces one Copy.write_row call per row, with its per-value dumper lookups: the largest
 * Python cost of storing a batch at the central (bench_central_ingest.py).
 */
#include "module.h"

#include <stdint.h>
#include <string.h>

typedef struct {
    char *data;
    size_t len, cap;
} outbuf;

static int reserve(outbuf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *grown = PyMem_Realloc(b->data, cap);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = grown;
    b->cap = cap;
    return 0;
}

static void put_be(outbuf *b, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        b->data[b->len++] = (char)(v >> (8 * i));
}

/* length word and data of one field; reserve() must have made room for the length word */
static int put_field(outbuf *b, PyObject *v, char kind, Py_ssize_t col)
{
    if (v == Py_None) {
        put_be(b, 0xFFFFFFFFu, 4);
        return 0;
    }
    switch (kind) {
    case 'q':
    case 'i':
    case 'h': {
        if (!PyLong_Check(v)) {
            PyErr_Format(PyExc_TypeError, "column %zd: int expected, not %.100s", col,
                         Py_TYPE(v)->tp_name);
            return -1;
        }
        long long x = PyLong_AsLongLong(v);
        if (x == -1 && PyErr_Occurred())
            return -1;
        int size = kind == 'q' ? 8 : kind == 'i' ? 4 : 2;
        if ((kind == 'i' && (x < INT32_MIN || x > INT32_MAX)) ||
            (kind == 'h' && (x < INT16_MIN || x > INT16_MAX))) {
            PyErr_Format(PyExc_OverflowError, "column %zd: %lld does not fit int%d", col, x,
                         size);
            return -1;
        }
        if (reserve(b, 4 + (size_t)size) < 0)
            return -1;
        put_be(b, (uint64_t)size, 4);
        put_be(b, (uint64_t)x, size);
        return 0;
    }
    case 'd': {
        double d = PyFloat_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred())
            return -1;
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        if (reserve(b, 12) < 0)
            return -1;
        put_be(b, 8, 4);
        put_be(b, bits, 8);
        return 0;
    }
    case 't':
    case 'b': {
        const char *p;
        Py_ssize_t n;
        if (kind == 't') {
            if (!PyUnicode_Check(v)) {
                PyErr_Format(PyExc_TypeError, "column %zd: str expected, not %.100s", col,
                             Py_TYPE(v)->tp_name);
                return -1;
            }
            p = PyUnicode_AsUTF8AndSize(v, &n);
            if (p == NULL)
                return -1;
        } else {
            if (!PyBytes_Check(v)) {
                PyErr_Format(PyExc_TypeError, "column %zd: bytes expected, not %.100s", col,
                             Py_TYPE(v)->tp_name);
                return -1;
            }
            p = PyBytes_AS_STRING(v);
            n = PyBytes_GET_SIZE(v);
        }
        if (n > INT32_MAX) {
            PyErr_Format(PyExc_OverflowError, "column %zd: value too long for COPY", col);
            return -1;
        }
        if (reserve(b, 4 + (size_t)n) < 0)
            return -1;
        put_be(b, (uint64_t)n, 4);
        memcpy(b->data + b->len, p, (size_t)n);
        b->len += (size_t)n;
        return 0;
    }
    default:
        PyErr_Format(PyExc_ValueError, "column %zd: unknown kind %c", col, kind);
        return -1;
    }
}

static const char signature[] = "PGCOPY\n\377\r\n"; /* + NUL, flags 0, header extension 0 */

static PyObject *pg_copy_binary(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *rows;
    const char *kinds;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "Oy#:pg_copy_binary", &rows, &kinds, &width))
        return NULL;
    if (width > INT16_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many columns");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(rows, "rows must be a list or tuple");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    outbuf b = {NULL, 0, 0};
    if (reserve(&b, 19) < 0)
        goto fail;
    memcpy(b.data, signature, 11); /* the 10 characters and their NUL */
    b.len = 11;
    put_be(&b, 0, 4);
    put_be(&b, 0, 4);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = items[i];
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != width) {
            PyErr_Format(PyExc_ValueError, "row %zd: a tuple of %zd values expected", i, width);
            goto fail;
        }
        if (reserve(&b, 2 + 4 * (size_t)width) < 0)
            goto fail;
        put_be(&b, (uint64_t)width, 2);
        for (Py_ssize_t j = 0; j < width; j++) {
            if (reserve(&b, 4) < 0 || put_field(&b, PyTuple_GET_ITEM(row, j), kinds[j], j) < 0)
                goto fail;
        }
    }
    if (reserve(&b, 2) < 0)
        goto fail;
    put_be(&b, 0xFFFF, 2);
    Py_DECREF(seq);
    PyObject *out = PyBytes_FromStringAndSize(b.data, (Py_ssize_t)b.len);
    PyMem_Free(b.data);
    return out;
fail:
    PyMem_Free(b.data);
    Py_DECREF(seq);
    return NULL;
}

static PyMethodDef pgcopy_methods[] = {
    {"pg_copy_binary", pg_copy_binary, METH_VARARGS,
     "pg_copy_binary(rows, kinds) -> bytes: the binary COPY stream of the rows (kinds: q i h "
     "d t b per column)."},
    {NULL, NULL, 0, NULL},
};

int sw_init_pgcopy(PyObject *m)
{
    return PyModule_AddFunctions(m, pgcopy_methods);
}
