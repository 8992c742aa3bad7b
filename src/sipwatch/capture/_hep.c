/* Optional C fast path for the HEP3 chunk walk (sipwatch.capture.hep wraps it).
 *
 * scan3(data: bytes) -> tuple | int: the same result as hep._scan3_py: a 20-slot tuple
 * indexed by vendor-0 chunk type (slot 0: None; fixed-size chunks as int, IPv4/IPv6
 * addresses as text, variable chunks as bytes; None = absent), or an int index into
 * hep.REASONS when the packet is malformed. Unknown chunks are skipped (the Python decoder
 * keeps them when a caller asks for every field). Input is attacker bytes: every read is
 * bounds-checked; the walk is bounded by the packet length (each chunk is >= 6 bytes).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <stdio.h>

#define SLOTS 20
/* index into hep.REASONS */
enum { R_SHORT = 0, R_MAGIC, R_LENGTH, R_CHUNK_TRUNC, R_CHUNK_LEN, R_CHUNK_SIZE };

static const int sizes[SLOTS] = {0, 1, 1, 4, 4, 16, 16, 2, 2, 4, 4, 1, 4, 2, 0, 0, 0, 0, 2, 0};

static inline unsigned u16(const unsigned char *p) { return ((unsigned)p[0] << 8) | p[1]; }
static inline unsigned long u32(const unsigned char *p)
{
    return ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16) | ((unsigned long)p[2] << 8) | p[3];
}

static PyObject *reason(int r) { return PyLong_FromLong(r); }

static PyObject *scan3(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "scan3 needs bytes");
        return NULL;
    }
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    if (n < 6)
        return reason(R_SHORT);
    if (memcmp(d, "HEP3", 4) != 0)
        return reason(R_MAGIC);
    if ((Py_ssize_t)u16(d + 4) != n)
        return reason(R_LENGTH);
    Py_ssize_t at[SLOTS], len[SLOTS];
    for (int i = 0; i < SLOTS; i++)
        at[i] = -1;
    Py_ssize_t pos = 6;
    while (pos < n) {
        if (n - pos < 6)
            return reason(R_CHUNK_TRUNC);
        unsigned vendor = u16(d + pos), type = u16(d + pos + 2), clen = u16(d + pos + 4);
        if (clen < 6)
            return reason(R_CHUNK_LEN);
        if (pos + (Py_ssize_t)clen > n)
            return reason(R_CHUNK_TRUNC);
        if (vendor == 0 && type > 0 && type < SLOTS) {
            if (sizes[type] && (int)clen - 6 != sizes[type])
                return reason(R_CHUNK_SIZE);
            at[type] = pos + 6;
            len[type] = clen - 6;
        }
        pos += clen;
    }
    PyObject *t = PyTuple_New(SLOTS);
    if (t == NULL)
        return NULL;
    for (int i = 0; i < SLOTS; i++) {
        PyObject *v;
        const unsigned char *p = d + at[i];
        if (at[i] < 0) {
            v = Py_None;
            Py_INCREF(v);
        } else if (i == 3 || i == 4) {
            char buf[16];
            int k = snprintf(buf, sizeof buf, "%u.%u.%u.%u", p[0], p[1], p[2], p[3]);
            v = PyUnicode_FromStringAndSize(buf, k);
        } else if (i == 5 || i == 6) {
            char buf[INET6_ADDRSTRLEN];
            if (inet_ntop(AF_INET6, p, buf, sizeof buf) == NULL)
                buf[0] = 0;
            v = PyUnicode_FromString(buf);
        } else if (sizes[i] == 1) {
            v = PyLong_FromLong(p[0]);
        } else if (sizes[i] == 2) {
            v = PyLong_FromLong((long)u16(p));
        } else if (sizes[i] == 4) {
            v = PyLong_FromUnsignedLong(u32(p));
        } else {
            v = PyBytes_FromStringAndSize((const char *)p, len[i]);
        }
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyMethodDef methods[] = {
    {"scan3", scan3, METH_O, "scan3(data: bytes) -> 20-slot tuple | int (index into REASONS)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hep", "C fast path for sipwatch.capture.hep (see hep.py).", 0,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hep(void) { return PyModule_Create(&module); }
