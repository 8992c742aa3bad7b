/* NonceMac: honeypot/nonces.py's nonce MAC and issue, one C call each (the responder issues a
 * nonce per challenge, and the hashlib calls around a MAC cost more than the hashing).
 * nonces.py stays the definition: HMAC-SHA256 over f"{src}|{stamp}" (UTF-8, surrogateescape),
 * the first 12 bytes as hex; a nonce is 8 hex digits of time, 16 of random bits and that MAC.
 * tests/unit/honeypot/test_native_nonce.py holds the two to it. */
#include "hashes.h"
#include "module.h"
#include "sha256.h"

#include <string.h>

#define STAMP_LEN 24 /* 8 hex digits of time, 16 of random bits */
#define MAC_HEX 24   /* the MAC's first 12 bytes, as hex */
#define BLOCK 64     /* SHA-256 block size: HMAC's key padding */

typedef struct {
    PyObject_HEAD
    sw_sha256_ctx inner, outer; /* the keyed HMAC states (RFC 2104), copied per MAC */
    PyObject *rng;              /* issue() calls rng.getrandbits(64), as nonces.py does */
} NonceMac;

static PyTypeObject NonceMacType;
static PyObject *s_getrandbits, *s_hex16, *i64; /* "getrandbits", "016x", 64 */

static int is_ascii(PyObject *o)
{
    return PyUnicode_CheckExact(o) && PyUnicode_IS_ASCII(o);
}

/* HMAC-SHA256 of the bytes parts[0] + parts[1] + ..., as 24 hex digits */
static void mac_hex(const NonceMac *self, const sw_str *parts, int n, char out[MAC_HEX])
{
    unsigned char d[SW_SHA256_SIZE];
    sw_sha256_ctx c = self->inner;
    for (int i = 0; i < n; i++)
        sw_sha256_update(&c, parts[i].p, (size_t)parts[i].n);
    sw_sha256_final(&c, d);
    c = self->outer;
    sw_sha256_update(&c, d, sizeof(d));
    sw_sha256_final(&c, d);
    sw_hex(d, MAC_HEX / 2, out);
}

/* The MAC of f"{src}|{stamp}".encode("utf-8", "surrogateescape") into out; -1 with the
 * exception that raises. ASCII text (addresses, stamps) is hashed in place; anything else is
 * joined and encoded as nonces.py does it, so that an error is the very same error. */
static int mac_text(const NonceMac *self, PyObject *src, PyObject *stamp, char out[MAC_HEX])
{
    if (is_ascii(src) && is_ascii(stamp)) {
        sw_str parts[3] = {
            {(const char *)PyUnicode_DATA(src), PyUnicode_GET_LENGTH(src)},
            {"|", 1},
            {(const char *)PyUnicode_DATA(stamp), PyUnicode_GET_LENGTH(stamp)},
        };
        mac_hex(self, parts, 3, out);
        return 0;
    }
    PyObject *a = PyObject_Format(src, NULL); /* what the f-string does, in its order */
    if (a == NULL)
        return -1;
    PyObject *b = PyObject_Format(stamp, NULL);
    if (b == NULL) {
        Py_DECREF(a);
        return -1;
    }
    PyObject *text = PyUnicode_FromFormat("%U|%U", a, b);
    Py_DECREF(a);
    Py_DECREF(b);
    if (text == NULL)
        return -1;
    PyObject *bytes = PyUnicode_AsEncodedString(text, "utf-8", "surrogateescape");
    Py_DECREF(text);
    if (bytes == NULL)
        return -1;
    sw_str whole = {PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes)};
    mac_hex(self, &whole, 1, out);
    Py_DECREF(bytes);
    return 0;
}

/* int(now) & 0xFFFFFFFF, with int()'s errors (nan, infinity, not a number) */
static int stamp_time(PyObject *now, uint32_t *t)
{
    if (PyFloat_CheckExact(now)) {
        double d = PyFloat_AS_DOUBLE(now);
        if (d > -9.0e18 && d < 9.0e18) { /* the cast truncates as int() does; nan fails */
            *t = (uint32_t)(uint64_t)(int64_t)d;
            return 0;
        }
    }
    PyObject *i = PyNumber_Long(now);
    if (i == NULL)
        return -1;
    *t = (uint32_t)PyLong_AsUnsignedLongLongMask(i); /* two's complement, as & takes it */
    Py_DECREF(i);
    return PyErr_Occurred() ? -1 : 0;
}

static void put_hex(char *out, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--, v >>= 4)
        out[i] = hex[v & 15];
}

static PyObject *ascii_str(const char *p, Py_ssize_t n)
{
    PyObject *s = PyUnicode_New(n, 127);
    if (s != NULL)
        memcpy(PyUnicode_1BYTE_DATA(s), p, (size_t)n);
    return s;
}

/* A nonce whose random bits are not one 64-bit number (an rng of the caller's own): the
 * stamp written as nonces.py writes it, f"{t:08x}{bits:016x}", whatever its length. */
static PyObject *issue_odd(NonceMac *self, PyObject *src, uint32_t t, PyObject *bits)
{
    char head[9];
    put_hex(head, t, 8);
    head[8] = '\0';
    PyObject *tail = PyObject_Format(bits, s_hex16);
    if (tail == NULL)
        return NULL;
    PyObject *stamp = PyUnicode_FromFormat("%s%U", head, tail);
    Py_DECREF(tail);
    if (stamp == NULL)
        return NULL;
    char mac[MAC_HEX + 1];
    PyObject *out = NULL;
    if (mac_text(self, src, stamp, mac) == 0) {
        mac[MAC_HEX] = '\0';
        out = PyUnicode_FromFormat("%U%s", stamp, mac);
    }
    Py_DECREF(stamp);
    return out;
}

static PyObject *nm_issue(NonceMac *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "issue(src, now) takes 2 arguments");
        return NULL;
    }
    if (self->rng == NULL) { /* cleared by the garbage collector (a cycle through the rng) */
        PyErr_SetString(PyExc_ValueError, "NonceMac has no rng");
        return NULL;
    }
    /* nonces.py's order: the time, the random bits, then the source's bytes */
    uint32_t t;
    if (stamp_time(args[1], &t) < 0)
        return NULL;
    PyObject *bits = PyObject_CallMethodOneArg(self->rng, s_getrandbits, i64);
    if (bits == NULL)
        return NULL;
    unsigned long long r = 0;
    int odd = !PyLong_CheckExact(bits);
    if (!odd) {
        r = PyLong_AsUnsignedLongLong(bits);
        if (r == (unsigned long long)-1 && PyErr_Occurred()) { /* negative, or 2**64 up */
            PyErr_Clear();
            odd = 1;
        }
    }
    if (odd) {
        PyObject *out = issue_odd(self, args[0], t, bits);
        Py_DECREF(bits);
        return out;
    }
    Py_DECREF(bits);
    char nonce[STAMP_LEN + MAC_HEX];
    put_hex(nonce, t, 8);
    put_hex(nonce + 8, r, 16);
    PyObject *src = args[0];
    if (is_ascii(src)) { /* the usual source: an address */
        sw_str parts[3] = {
            {(const char *)PyUnicode_DATA(src), PyUnicode_GET_LENGTH(src)},
            {"|", 1},
            {nonce, STAMP_LEN},
        };
        mac_hex(self, parts, 3, nonce + STAMP_LEN);
    } else {
        PyObject *stamp = ascii_str(nonce, STAMP_LEN);
        if (stamp == NULL)
            return NULL;
        int rc = mac_text(self, src, stamp, nonce + STAMP_LEN);
        Py_DECREF(stamp);
        if (rc < 0)
            return NULL;
    }
    return ascii_str(nonce, sizeof(nonce));
}

static PyObject *nm_mac(NonceMac *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "mac(src, stamp) takes 2 arguments");
        return NULL;
    }
    char mac[MAC_HEX];
    if (mac_text(self, args[0], args[1], mac) < 0)
        return NULL;
    return ascii_str(mac, MAC_HEX);
}

/* the HMAC key block XORed with pad, hashed: a MAC then starts from a copy */
static void keyed_state(sw_sha256_ctx *c, const unsigned char key[BLOCK], unsigned char pad)
{
    unsigned char block[BLOCK];
    for (int i = 0; i < BLOCK; i++)
        block[i] = key[i] ^ pad;
    sw_sha256_init(c);
    sw_sha256_update(c, block, BLOCK);
}

static PyObject *nm_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"secret", "rng", NULL};
    Py_buffer secret;
    PyObject *rng;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*O:NonceMac", kwlist, &secret, &rng))
        return NULL;
    unsigned char key[BLOCK] = {0}; /* RFC 2104: a longer key is hashed, a shorter padded */
    if (secret.len > BLOCK) {
        sw_sha256_ctx c;
        sw_sha256_init(&c);
        sw_sha256_update(&c, secret.buf, (size_t)secret.len);
        sw_sha256_final(&c, key);
    } else {
        memcpy(key, secret.buf, (size_t)secret.len);
    }
    PyBuffer_Release(&secret);
    NonceMac *self = (NonceMac *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    keyed_state(&self->inner, key, 0x36);
    keyed_state(&self->outer, key, 0x5C);
    Py_INCREF(rng);
    self->rng = rng;
    return (PyObject *)self;
}

static int nm_traverse(NonceMac *self, visitproc visit, void *arg)
{
    Py_VISIT(self->rng);
    return 0;
}

static int nm_clear(NonceMac *self)
{
    Py_CLEAR(self->rng);
    return 0;
}

static void nm_dealloc(NonceMac *self)
{
    PyObject_GC_UnTrack(self);
    nm_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef nm_methods[] = {
    {"issue", (PyCFunction)(void (*)(void))nm_issue, METH_FASTCALL,
     "issue(src, now) -> a fresh 48-hex-digit nonce (nonces.py NonceIssuer.issue)"},
    {"mac", (PyCFunction)(void (*)(void))nm_mac, METH_FASTCALL,
     "mac(src, stamp) -> the 24 hex digits of HMAC-SHA256(secret, f'{src}|{stamp}')"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject NonceMacType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sipwatch._native.NonceMac",
    .tp_basicsize = sizeof(NonceMac),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "NonceMac(secret, rng): the digest nonces of honeypot/nonces.py (nonce.c)",
    .tp_new = nm_new,
    .tp_dealloc = (destructor)nm_dealloc,
    .tp_traverse = (traverseproc)nm_traverse,
    .tp_clear = (inquiry)nm_clear,
    .tp_methods = nm_methods,
};

int sw_init_nonce(PyObject *m)
{
    s_getrandbits = PyUnicode_InternFromString("getrandbits");
    s_hex16 = PyUnicode_InternFromString("016x");
    i64 = PyLong_FromLong(64);
    if (s_getrandbits == NULL || s_hex16 == NULL || i64 == NULL)
        return -1;
    if (PyType_Ready(&NonceMacType) < 0)
        return -1;
    Py_INCREF(&NonceMacType);
    if (PyModule_AddObject(m, "NonceMac", (PyObject *)&NonceMacType) < 0) {
        Py_DECREF(&NonceMacType);
        return -1;
    }
    return 0;
}
