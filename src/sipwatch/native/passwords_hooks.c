/* Test and benchmark hooks of the C password recovery: sw_recover over views of records
 * (Recovery._sw_recover), and its parts alone (the hashes, parse_digest, the str operations). */
#include "passwords_state.h"
#include "pwtext.h"
#include "recordview.h"

#include <string.h>
#include <time.h>

/* _sw_recover(records) -> (passwords, seconds): sw_recover alone over views of labelled
 * records built beforehand (the bulk path's entry: tests and bench/bench_native_passwords.py);
 * the recovery's state changes as by label(), but nothing is written to the records. */
PyObject *sw_recovery_sw_recover(sw_recovery *self, PyObject *records)
{
    if (sw_recovery_ready(self) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(records, "records must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), built = 0;
    sw_msg *views = PyMem_Calloc((size_t)n + 1, sizeof(sw_msg));
    sw_keep *keeps = PyMem_Calloc((size_t)n + 1, sizeof(sw_keep));
    Py_ssize_t *ends = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    char *text = NULL;
    size_t used = 0, cap = 0;
    PyObject *result = NULL, *list = NULL;
    if (views == NULL || keeps == NULL || ends == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; built < n; built++) {
        if (sw_msg_from_record(PySequence_Fast_GET_ITEM(seq, built), &views[built],
                               &keeps[built]) < 0)
            goto done;
    }
    /* the passwords are copied out as the loop goes (each is valid until the next call) */
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (sw_recover((PyObject *)self, &views[i]) < 0)
            goto done;
        sw_str pw = views[i].password;
        if (used + (size_t)pw.n > cap) {
            size_t c = cap ? cap : 4096;
            while (c < used + (size_t)pw.n)
                c *= 2;
            char *p = PyMem_Realloc(text, c);
            if (p == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            text = p;
            cap = c;
        }
        if (pw.n)
            memcpy(text + used, pw.p, (size_t)pw.n);
        used += (size_t)pw.n;
        ends[i] = (Py_ssize_t)used;
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    list = PyList_New(n);
    for (Py_ssize_t i = 0; list != NULL && i < n; i++) {
        Py_ssize_t a = i ? ends[i - 1] : 0;
        PyObject *v = PyUnicode_DecodeUTF8(text + a, ends[i] - a, "strict");
        if (v == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, v);
    }
    if (list != NULL)
        result = Py_BuildValue("(Nd)", list, s);
done:
    if (keeps != NULL) {
        for (Py_ssize_t i = 0; i <= built && i <= n; i++)
            sw_keep_clear(&keeps[i]);
    }
    PyMem_Free(keeps);
    PyMem_Free(views);
    PyMem_Free(ends);
    PyMem_Free(text);
    Py_DECREF(seq);
    return result;
}

/* _digest_hash(kind, data) -> bytes: MD5 (0), SHA-256 (1), SHA-512/256 (2) */
static PyObject *py_digest_hash(PyObject *mod, PyObject *args)
{
    (void)mod;
    int kind;
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "iy*", &kind, &b))
        return NULL;
    if (kind < 0 || kind >= SW_HASH_KINDS) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "unknown hash kind");
        return NULL;
    }
    /* a private copy on the C heap: a read past the end is seen by AddressSanitizer */
    unsigned char *copy = PyMem_RawMalloc(b.len ? (size_t)b.len : 1);
    if (copy == NULL) {
        PyBuffer_Release(&b);
        return PyErr_NoMemory();
    }
    memcpy(copy, b.buf, (size_t)b.len);
    unsigned char out[SW_HASH_MAX];
    /* in two parts at a data-chosen split, so the streaming code is tested too */
    size_t split = b.len ? (size_t)copy[0] % ((size_t)b.len + 1) : 0;
    sw_hash2(kind, copy, split, copy + split, (size_t)b.len - split, out);
    PyMem_RawFree(copy);
    PyBuffer_Release(&b);
    return PyBytes_FromStringAndSize((const char *)out, sw_hash_size(kind));
}

/* _parse_digest(value: str) -> {name: value} for the names the recovery reads, or None */
static PyObject *py_parse_digest(PyObject *mod, PyObject *arg)
{
    (void)mod;
    sw_str t;
    PyObject *keep;
    if (sw_text_of(arg, &t, &keep) < 0)
        return NULL;
    char *copy = PyMem_RawMalloc((size_t)t.n + 1);
    char *scratch = PyMem_RawMalloc((size_t)t.n + 1);
    PyObject *out = NULL;
    if (copy == NULL || scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(copy, t.p, (size_t)t.n);
    sw_digest d;
    if (!sw_parse_digest((sw_str){copy, t.n}, &d, scratch)) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    out = PyDict_New();
    for (int k = 0; out != NULL && k < SW_D_COUNT; k++) {
        PyObject *v = sw_text_str(d.p[k]);
        if (v == NULL || PyDict_SetItemString(out, sw_digest_names[k], v) < 0)
            Py_CLEAR(out);
        Py_XDECREF(v);
    }
done:
    PyMem_RawFree(copy);
    PyMem_RawFree(scratch);
    Py_XDECREF(keep);
    return out;
}

/* _text_ops(s) -> (encode or None, len, reverse, strip, algorithm (kind, sess) or None,
 * is_auth_int): the str operations of pwtext.h */
static PyObject *py_text_ops(PyObject *mod, PyObject *arg)
{
    (void)mod;
    sw_str t;
    PyObject *keep;
    if (sw_text_of(arg, &t, &keep) < 0)
        return NULL;
    char *buf = PyMem_RawMalloc((size_t)t.n + 1), *rev = PyMem_RawMalloc((size_t)t.n + 1);
    char *copy = PyMem_RawMalloc((size_t)t.n + 1);
    PyObject *out = NULL;
    if (buf == NULL || rev == NULL || copy == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(copy, t.p, (size_t)t.n);
    t.p = copy;
    Py_ssize_t n = sw_text_encode(t, buf);
    PyObject *enc = n < 0 ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize(buf, n);
    sw_text_reverse(t, rev);
    int kind, sess;
    PyObject *alg = sw_text_algorithm(t, &kind, &sess) ? Py_BuildValue("(ii)", kind, sess)
                                                        : Py_NewRef(Py_None);
    out = Py_BuildValue("(NnNNNO)", enc, sw_text_len(t), sw_text_str((sw_str){rev, t.n}),
                        sw_text_str(sw_text_strip(t)), alg,
                        sw_text_is_auth_int(t) ? Py_True : Py_False);
done:
    PyMem_RawFree(buf);
    PyMem_RawFree(rev);
    PyMem_RawFree(copy);
    Py_XDECREF(keep);
    return out;
}

static PyMethodDef hooks[] = {
    {"_digest_hash", py_digest_hash, METH_VARARGS,
     "_digest_hash(kind, data) -> bytes: MD5 (0), SHA-256 (1), SHA-512/256 (2) (test hook)"},
    {"_parse_digest", py_parse_digest, METH_O,
     "_parse_digest(value) -> dict | None: parse_digest's params the recovery reads (test "
     "hook)"},
    {"_text_ops", py_text_ops, METH_O,
     "_text_ops(s) -> (encode, len, reverse, strip, algorithm, is_auth_int) (test hook)"},
    {NULL, NULL, 0, NULL},
};

int sw_init_passwords_hooks(PyObject *module)
{
    return PyModule_AddFunctions(module, hooks);
}
