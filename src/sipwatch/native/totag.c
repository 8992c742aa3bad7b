/* ToTag: the honeypot responder's To-tag in one C call (honeypot/uas.py Responder._to_tag and
 * personality.py format_to_tag stay the definition): the 16-byte keyed BLAKE2b of
 * call-id NUL from-tag, both latin-1 with "?" for other characters, written in the
 * personality's style. tests/unit/honeypot/test_native_nonce.py holds the two to it. */
#include "blake2b.h"
#include "hashes.h"
#include "module.h"

#include <stdio.h>
#include <string.h>

#define DIGEST 16
#define KEY_MAX 64
#define ALNUM_LEN 13

/* personality.py TO_TAG_STYLES; any other name is written as a uuid, as format_to_tag does */
enum { STYLE_UUID, STYLE_AS_HEX, STYLE_ALNUM, STYLE_MD5_CRC, STYLE_DIGITS };

typedef struct {
    PyObject_HEAD
    sw_blake2b keyed; /* the state with the key block taken in, copied per tag */
    int style;
    PyObject *process_hex; /* str: Kamailio's per-process part ("md5-crc") */
} ToTag;

static PyTypeObject ToTagType;

static int style_of(PyObject *name)
{
    static const char *const names[] = {"uuid", "as-hex", "alnum", "md5-crc", "digits"};
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (PyUnicode_CompareWithASCIIString(name, names[i]) == 0)
            return i;
    return STYLE_UUID;
}

/* text.encode("latin-1", "replace") into the hash, without making the bytes object */
static int feed_latin1(sw_blake2b *s, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "ToTag.tag() takes str arguments");
        return -1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    if (kind == PyUnicode_1BYTE_KIND) { /* the code points are the latin-1 bytes */
        sw_blake2b_update(s, data, (size_t)n);
        return 0;
    }
    unsigned char buf[256];
    size_t fill = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        buf[fill++] = c < 256 ? (unsigned char)c : '?';
        if (fill == sizeof(buf)) {
            sw_blake2b_update(s, buf, fill);
            fill = 0;
        }
    }
    sw_blake2b_update(s, buf, fill);
    return 0;
}

/* 13 base-62 digits of the digest as a big-endian number, lowest first (sofia-sip's shape) */
static void alnum(const unsigned char d[DIGEST], char out[ALNUM_LEN])
{
    static const char digits[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char n[DIGEST];
    memcpy(n, d, DIGEST);
    for (int k = 0; k < ALNUM_LEN; k++) { /* n, r = divmod(n, 62), a byte at a time */
        unsigned r = 0;
        for (int i = 0; i < DIGEST; i++) {
            unsigned cur = r * 256 + n[i];
            n[i] = (unsigned char)(cur / 62);
            r = cur % 62;
        }
        out[k] = digits[r];
    }
}

static PyObject *format_tag(const ToTag *self, const unsigned char d[DIGEST])
{
    char hex[2 * DIGEST], out[40];
    sw_hex(d, DIGEST, hex);
    switch (self->style) {
    case STYLE_AS_HEX:
        memcpy(out, "as", 2);
        memcpy(out + 2, hex, 8);
        return PyUnicode_FromStringAndSize(out, 10);
    case STYLE_ALNUM:
        alnum(d, out);
        return PyUnicode_FromStringAndSize(out, ALNUM_LEN);
    case STYLE_MD5_CRC:
        out[0] = '-';
        memcpy(out + 1, hex, 4);
        out[5] = '\0';
        return PyUnicode_FromFormat("%U%s", self->process_hex, out);
    case STYLE_DIGITS: {
        unsigned long v = (unsigned long)d[0] << 24 | (unsigned long)d[1] << 16 |
                          (unsigned long)d[2] << 8 | d[3];
        int n = snprintf(out, sizeof(out), "%lu", v);
        return PyUnicode_FromStringAndSize(out, n);
    }
    default: /* 8-4-4-4-12 */
        memcpy(out, hex, 8);
        out[8] = '-';
        memcpy(out + 9, hex + 8, 4);
        out[13] = '-';
        memcpy(out + 14, hex + 12, 4);
        out[18] = '-';
        memcpy(out + 19, hex + 16, 4);
        out[23] = '-';
        memcpy(out + 24, hex + 20, 12);
        return PyUnicode_FromStringAndSize(out, 36);
    }
}

static PyObject *tt_tag(ToTag *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "tag(call_id, from_tag) takes 2 arguments");
        return NULL;
    }
    sw_blake2b s = self->keyed;
    if (feed_latin1(&s, args[0]) < 0)
        return NULL;
    sw_blake2b_update(&s, "", 1); /* the NUL between the two */
    if (feed_latin1(&s, args[1]) < 0)
        return NULL;
    unsigned char d[DIGEST];
    sw_blake2b_final(&s, d);
    return format_tag(self, d);
}

static PyObject *tt_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"key", "style", "process_hex", NULL};
    Py_buffer key;
    PyObject *style, *process_hex;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*UU:ToTag", kwlist, &key, &style,
                                     &process_hex))
        return NULL;
    if (key.len > KEY_MAX) {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "ToTag key must be at most 64 bytes");
        return NULL;
    }
    ToTag *self = (ToTag *)type->tp_alloc(type, 0);
    if (self == NULL) {
        PyBuffer_Release(&key);
        return NULL;
    }
    /* keyed BLAKE2b (RFC 7693 3.3): the key length in the parameter block, then the key
     * padded to a whole block as the first input */
    sw_blake2b_init(&self->keyed, DIGEST);
    if (key.len > 0) {
        unsigned char block[128] = {0};
        memcpy(block, key.buf, (size_t)key.len);
        self->keyed.h[0] ^= (uint64_t)key.len << 8;
        sw_blake2b_update(&self->keyed, block, sizeof(block));
    }
    PyBuffer_Release(&key);
    self->style = style_of(style);
    /* f"{process_hex}-..." writes a str subclass as its str() */
    self->process_hex = PyObject_Str(process_hex);
    if (self->process_hex == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void tt_dealloc(ToTag *self)
{
    Py_XDECREF(self->process_hex);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef tt_methods[] = {
    {"tag", (PyCFunction)(void (*)(void))tt_tag, METH_FASTCALL,
     "tag(call_id, from_tag) -> the To-tag of that dialog (uas.py Responder._to_tag)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ToTagType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sipwatch._native.ToTag",
    .tp_basicsize = sizeof(ToTag),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ToTag(key, style, process_hex): the responder's To-tags (totag.c)",
    .tp_new = tt_new,
    .tp_dealloc = (destructor)tt_dealloc,
    .tp_methods = tt_methods,
};

int sw_init_totag(PyObject *m)
{
    if (PyType_Ready(&ToTagType) < 0)
        return -1;
    Py_INCREF(&ToTagType);
    if (PyModule_AddObject(m, "ToTag", (PyObject *)&ToTagType) < 0) {
        Py_DECREF(&ToTagType);
        return -1;
    }
    return 0;
}
