/* Uplink batch rows at the central (sipwatch/central/batchcodec.py, api_sensors.py).
 *
 * check_batch_rows(rows, kinds) -> bool
 *     True when every row is a tuple of len(kinds) values and each value has exactly its
 *     column's type and range; False otherwise, and the caller's row-by-row Python path then
 *     names the problem. kinds holds one letter per column:
 *       'i' int in the 64-bit range    'n' the same or None    't' a time: int or float,
 *       's' str                        'b' bytes                   finite, 0 <= t < 2**40
 *       'p' int 0..65535 (a port)      'f' int 0..1 (a flag)       'c' int 0..999 (a status)
 *       'l' int 0..2**31-1 (a length)
 *     Exact types, as the Python checks (`type(v) in allowed`): bool is not an int here.
 *
 * stamp_rows(rows, sensor_at, node_at, name, default_node, allowed) -> (list, -1) | (None, i)
 *     The rows with the sensor's name in column sensor_at and, where column node_at is empty,
 *     default_node; a row already so is kept as is (same object). (None, i) when row i names
 *     a node not in the set `allowed`. Rows must have passed check_batch_rows.
 *
 * One pass in C instead of a transpose and per-column sets in Python: the central's decode
 * and attribution cost about a third of its time per batch before (bench_central_ingest.py).
 */
#include "module.h"

#include <limits.h>
#include <math.h>

#define MAX_TIME 1099511627776.0 /* 2**40, as batchcodec._MAX_TS */

/* v is an int in lo..hi */
static int int_in(PyObject *v, long long lo, long long hi)
{
    if (!PyLong_CheckExact(v))
        return 0;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return overflow == 0 && x >= lo && x <= hi;
}

static int value_ok(PyObject *v, char kind)
{
    switch (kind) {
    case 'p':
        return int_in(v, 0, 65535);
    case 'f':
        return int_in(v, 0, 1);
    case 'c':
        return int_in(v, 0, 999);
    case 'l':
        return int_in(v, 0, 2147483647LL);
    case 'n':
        if (v == Py_None)
            return 1;
        /* fall through */
    case 'i':
        return int_in(v, LLONG_MIN, LLONG_MAX);
    case 't':
        if (PyFloat_CheckExact(v)) {
            double t = PyFloat_AS_DOUBLE(v);
            return t >= 0.0 && t < MAX_TIME; /* NaN fails both comparisons */
        }
        if (PyLong_CheckExact(v)) {
            int overflow = 0;
            long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (x == -1 && PyErr_Occurred()) {
                PyErr_Clear();
                return 0;
            }
            return overflow == 0 && x >= 0 && (double)x < MAX_TIME;
        }
        return 0;
    case 's':
        return PyUnicode_CheckExact(v);
    case 'b':
        return PyBytes_CheckExact(v);
    default:
        return 0;
    }
}

static PyObject *check_batch_rows(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *rows;
    const char *kinds;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "Oy#:check_batch_rows", &rows, &kinds, &width))
        return NULL;
    PyObject *seq = PySequence_Fast(rows, "rows must be a list or tuple");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    int ok = 1;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        PyObject *row = items[i];
        if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != width) {
            ok = 0;
            break;
        }
        for (Py_ssize_t j = 0; j < width; j++) {
            if (!value_ok(PyTuple_GET_ITEM(row, j), kinds[j])) {
                ok = 0;
                break;
            }
        }
    }
    Py_DECREF(seq);
    return PyBool_FromLong(ok);
}

/* row with its sensor and node columns replaced (a new tuple), or NULL with an error set */
static PyObject *restamped(PyObject *row, Py_ssize_t s, PyObject *name, Py_ssize_t nd,
                           PyObject *node)
{
    Py_ssize_t width = PyTuple_GET_SIZE(row);
    PyObject *out = PyTuple_New(width);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t j = 0; j < width; j++) {
        PyObject *v = j == s ? name : j == nd ? node : PyTuple_GET_ITEM(row, j);
        Py_INCREF(v);
        PyTuple_SET_ITEM(out, j, v);
    }
    return out;
}

static PyObject *stamp_rows(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *rows, *name, *fallback, *allowed;
    Py_ssize_t s, nd;
    if (!PyArg_ParseTuple(args, "OnnUUO:stamp_rows", &rows, &s, &nd, &name, &fallback,
                          &allowed))
        return NULL;
    if (!PyAnySet_Check(allowed)) {
        PyErr_SetString(PyExc_TypeError, "stamp_rows: allowed must be a set");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(rows, "rows must be a list or tuple");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *out = PyList_New(n);
    if (out == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = items[i];
        if (!PyTuple_CheckExact(row) || s < 0 || nd < 0 || s >= PyTuple_GET_SIZE(row) ||
            nd >= PyTuple_GET_SIZE(row)) {
            PyErr_SetString(PyExc_ValueError, "stamp_rows: rows must be checked tuples");
            goto fail;
        }
        PyObject *given = PyTuple_GET_ITEM(row, nd);
        if (!PyUnicode_CheckExact(given)) {
            PyErr_SetString(PyExc_ValueError, "stamp_rows: node must be str");
            goto fail;
        }
        PyObject *node = PyUnicode_GET_LENGTH(given) ? given : fallback;
        int in = PySet_Contains(allowed, node);
        if (in < 0)
            goto fail;
        if (!in) {
            Py_DECREF(out);
            Py_DECREF(seq);
            return Py_BuildValue("(On)", Py_None, i);
        }
        PyObject *sensor = PyTuple_GET_ITEM(row, s);
        int same = sensor == name;
        if (!same) {
            same = PyUnicode_Compare(sensor, name) == 0;
            if (PyErr_Occurred())
                goto fail;
        }
        PyObject *put;
        if (same && node == given) {
            Py_INCREF(row);
            put = row;
        } else if ((put = restamped(row, s, name, nd, node)) == NULL) {
            goto fail;
        }
        PyList_SET_ITEM(out, i, put);
    }
    Py_DECREF(seq);
    return Py_BuildValue("(Nn)", out, (Py_ssize_t)-1);
fail:
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

static PyMethodDef batchrows_methods[] = {
    {"check_batch_rows", check_batch_rows, METH_VARARGS,
     "check_batch_rows(rows, kinds) -> bool: every row a tuple with values of its column's "
     "kind (i, n, t, s, b, p, f, c, l)."},
    {"stamp_rows", stamp_rows, METH_VARARGS,
     "stamp_rows(rows, sensor_at, node_at, name, default_node, allowed) -> (list, -1) or "
     "(None, first row with a node not allowed)."},
    {NULL, NULL, 0, NULL},
};

int sw_init_batchrows(PyObject *m)
{
    return PyModule_AddFunctions(m, batchrows_methods);
}
