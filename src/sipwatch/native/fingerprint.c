/* Attack-tool fingerprints in C (see fingerprint.h and detect/fingerprints.py). */
#include "fingerprint.h"

#include <stdlib.h>
#include <string.h>

static PyObject *py_decode_tag;      /* fingerprints.decode_sipvicious_tag */
static PyObject *py_from_user_agent; /* fingerprints.from_user_agent */
static PyObject *py_sipvicious;      /* fingerprints.SIPVICIOUS */
static sw_str sipvicious;
static PyObject *py_svcrack_tag; /* fingerprints.SVCRACK_FIXED_TAG */
static sw_str svcrack_tag;
static PyObject *py_empty, *py_quote, *py_strip, *py_lower;

/* ---- small helpers ------------------------------------------------------------------- */
void sw_pykeep_release(sw_pykeep *k)
{
    for (int i = 0; i < k->n; i++)
        Py_CLEAR(k->obj[i]);
    k->n = 0;
}

int sw_pykeep_add(sw_pykeep *k, PyObject *o)
{
    if (o == NULL)
        return -1;
    if (k->n >= SW_PYKEEP_MAX) {
        Py_DECREF(o);
        PyErr_SetString(PyExc_SystemError, "sipwatch._native: sw_pykeep is full");
        return -1;
    }
    k->obj[k->n++] = o;
    return 0;
}

int sw_utf8_of(PyObject *o, sw_str *out)
{
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
    const char *p = PyUnicode_AsUTF8AndSize(o, &out->n);
    if (p == NULL)
        return -1;
    out->p = p;
    return 0;
}

static int eq(sw_str a, sw_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, (size_t)a.n) == 0);
}

static int is_ascii(sw_str s)
{
    for (Py_ssize_t i = 0; i < s.n; i++) {
        if ((unsigned char)s.p[i] >= 0x80)
            return 0;
    }
    return 1;
}

/* hex digit values, -1 for anything else (filled by sw_fp_init) */
static signed char hex_tab[256];

static void fill_hex_tab(void)
{
    memset(hex_tab, -1, sizeof(hex_tab));
    for (int c = '0'; c <= '9'; c++)
        hex_tab[c] = (signed char)(c - '0');
    for (int c = 'a'; c <= 'f'; c++)
        hex_tab[c] = (signed char)(c - 'a' + 10);
    for (int c = 'A'; c <= 'F'; c++)
        hex_tab[c] = (signed char)(c - 'A' + 10);
}

/* hex digit value, -1 for anything else; lower_only rejects A-F */
static int hexval(unsigned char c, int lower_only)
{
    if (lower_only && c >= 'A' && c <= 'F')
        return -1;
    return hex_tab[c];
}

static PyObject *import_attr(PyObject *mod, const char *name, sw_str *bytes)
{
    PyObject *o = PyObject_GetAttrString(mod, name);
    if (o != NULL && bytes != NULL && sw_utf8_of(o, bytes) < 0)
        Py_CLEAR(o);
    return o;
}

int sw_fp_init(void)
{
    if (py_decode_tag != NULL)
        return 0;
    fill_hex_tab();
    PyObject *mod = PyImport_ImportModule("sipwatch.detect.fingerprints");
    if (mod == NULL)
        return -1;
    PyObject *dec = import_attr(mod, "decode_sipvicious_tag", NULL);
    PyObject *ua = import_attr(mod, "from_user_agent", NULL);
    PyObject *sv = import_attr(mod, "SIPVICIOUS", &sipvicious);
    PyObject *sc = import_attr(mod, "SVCRACK_FIXED_TAG", &svcrack_tag);
    Py_DECREF(mod);
    py_empty = PyUnicode_FromStringAndSize("", 0);
    py_quote = PyUnicode_FromStringAndSize("\"", 1);
    py_strip = PyUnicode_InternFromString("strip");
    py_lower = PyUnicode_InternFromString("lower");
    if (dec == NULL || ua == NULL || sv == NULL || sc == NULL || py_empty == NULL ||
        py_quote == NULL || py_strip == NULL || py_lower == NULL) {
        Py_XDECREF(dec);
        Py_XDECREF(ua);
        Py_XDECREF(sv);
        Py_XDECREF(sc);
        Py_CLEAR(py_empty);
        Py_CLEAR(py_quote);
        Py_CLEAR(py_strip);
        Py_CLEAR(py_lower);
        return -1;
    }
    py_from_user_agent = ua;
    py_sipvicious = sv;
    py_svcrack_tag = sc;
    py_decode_tag = dec; /* last: marks the constants as loaded */
    return 0;
}

PyObject *sw_fp_sipvicious_obj(void)
{
    return py_sipvicious;
}

sw_str sw_fp_sipvicious(void)
{
    return sipvicious;
}

/* ---- SIPVicious From tag ------------------------------------------------------------- */
int sw_fp_decode_tag(sw_str tag, sw_fp_buf *buf, sw_pykeep *keep, sw_str *out)
{
    /* not tag, longer than _MAX_TAG, odd length, not hex: None (a tag with a byte >= 0x80
     * is not hex, so counting bytes instead of characters changes nothing) */
    if (tag.n == 0 || tag.n > SW_FP_MAX_TAG || tag.n % 2)
        return 0;
    Py_ssize_t nraw = tag.n / 2;
    unsigned char *raw = (unsigned char *)buf->data;
    const unsigned char *hex = (const unsigned char *)tag.p;
    int bad = 0;
    for (Py_ssize_t i = 0; i < nraw; i++) {
        int hi = hex_tab[hex[2 * i]], lo = hex_tab[hex[2 * i + 1]];
        bad |= hi | lo; /* negative when either is not hex */
        raw[i] = (unsigned char)(((unsigned)hi << 4) | ((unsigned)lo & 0x0f));
    }
    if (bad < 0)
        return 0;
    /* data, sep, rnd = raw.partition(b"\x01") */
    const unsigned char *sep = memchr(raw, 0x01, (size_t)nraw);
    if (sep == NULL || sep == raw)
        return 0;
    Py_ssize_t ndata = sep - raw, nrnd = nraw - ndata - 1;
    if (nrnd < 1 || nrnd > 10)
        return 0;
    for (Py_ssize_t i = 0; i < nrnd; i++) {
        if (sep[1 + i] < '0' || sep[1 + i] > '9')
            return 0;
    }
    int ascii = 1;
    for (Py_ssize_t i = 0; i < ndata; i++) {
        if (raw[i] >= 0x80) {
            ascii = 0;
            break;
        }
    }
    if (ascii) {
        /* ASCII decodes as itself; str.isprintable() of ASCII: 0x20..0x7e */
        for (Py_ssize_t i = 0; i < ndata; i++) {
            if (raw[i] < 0x20 || raw[i] > 0x7e)
                return 0;
        }
        out->p = buf->data;
        out->n = ndata;
        return 1;
    }
    /* UTF-8 validity and Unicode printability: Python's own answer */
    PyObject *s = PyUnicode_FromStringAndSize(tag.p, tag.n); /* the tag is ASCII hex */
    if (s == NULL)
        return -1;
    PyObject *r = PyObject_CallOneArg(py_decode_tag, s);
    Py_DECREF(s);
    if (r == NULL)
        return -1;
    if (r == Py_None) {
        Py_DECREF(r);
        return 0;
    }
    if (sw_pykeep_add(keep, r) < 0)
        return -1;
    return sw_utf8_of(r, out) < 0 ? -1 : 1;
}

sw_str sw_fp_tool_data(sw_str data, sw_str to_user, sw_fp_buf *buf)
{
    if (eq(data, to_user))
        return data;
    /* svmap_target: 12 lower-case hex digits -> "a.b.c.d:port" */
    if (data.n != 12)
        return data;
    unsigned char b[6];
    for (int i = 0; i < 6; i++) {
        int hi = hexval((unsigned char)data.p[2 * i], 1);
        int lo = hexval((unsigned char)data.p[2 * i + 1], 1);
        if (hi < 0 || lo < 0)
            return data;
        b[i] = (unsigned char)(hi << 4 | lo);
    }
    int n = snprintf(buf->target, sizeof(buf->target), "%u.%u.%u.%u:%u", b[0], b[1], b[2], b[3],
                     (unsigned)(b[4] << 8 | b[5]));
    return (sw_str){buf->target, n};
}

int sw_fp_is_svcrack_tag(sw_str tag)
{
    return eq(tag, svcrack_tag);
}

/* ---- User-Agent -> tool --------------------------------------------------------------- */
typedef struct {
    sw_lru_node node; /* first member */
    PyObject *tool;
    sw_str tool_bytes;
    char key[];
} ua_entry;

static void ua_free(sw_lru_node *n, void *arg)
{
    (void)arg;
    ua_entry *e = (ua_entry *)n;
    Py_XDECREF(e->tool);
    free(e);
}

void sw_ua_cache_init(sw_ua_cache *c)
{
    sw_lru_init(&c->t);
}

void sw_ua_cache_free(sw_ua_cache *c)
{
    sw_lru_free(&c->t, ua_free, NULL);
}

static PyObject *call_from_user_agent(sw_str ua)
{
    PyObject *s = PyUnicode_DecodeUTF8(ua.p, ua.n, "strict");
    if (s == NULL)
        return NULL;
    PyObject *r = PyObject_CallOneArg(py_from_user_agent, s);
    Py_DECREF(s);
    if (r != NULL && !PyUnicode_Check(r)) {
        PyErr_SetString(PyExc_TypeError, "from_user_agent() did not return a str");
        Py_CLEAR(r);
    }
    return r;
}

int sw_ua_tool(sw_ua_cache *c, sw_str ua, sw_pykeep *keep, sw_str *tool)
{
    if (ua.n == 0) {
        *tool = SW_STR_EMPTY;
        return 0;
    }
    if (ua.n > SW_UA_CACHE_KEY_MAX) {
        PyObject *r = call_from_user_agent(ua);
        if (sw_pykeep_add(keep, r) < 0)
            return -1;
        return sw_utf8_of(r, tool);
    }
    uint64_t h = sw_lru_hash(ua.p, (size_t)ua.n);
    sw_lru_node *n = sw_lru_find(&c->t, h, ua.p, (size_t)ua.n);
    if (n != NULL) {
        sw_lru_touch(&c->t, n);
        *tool = ((ua_entry *)n)->tool_bytes;
        return 0;
    }
    PyObject *r = call_from_user_agent(ua);
    if (r == NULL)
        return -1;
    ua_entry *e = malloc(sizeof(ua_entry) + (size_t)ua.n);
    if (e == NULL) {
        Py_DECREF(r);
        PyErr_NoMemory();
        return -1;
    }
    e->tool = r;
    if (sw_utf8_of(r, &e->tool_bytes) < 0) {
        ua_free(&e->node, NULL);
        return -1;
    }
    memcpy(e->key, ua.p, (size_t)ua.n);
    e->node.hash = h;
    e->node.key = e->key;
    e->node.klen = (size_t)ua.n;
    if (sw_lru_insert(&c->t, &e->node) < 0) {
        ua_free(&e->node, NULL);
        PyErr_NoMemory();
        return -1;
    }
    if (c->t.count > SW_UA_CACHE_MAX)
        ua_free(sw_lru_pop_oldest(&c->t), NULL); /* never e: it is the newest */
    *tool = e->tool_bytes;
    return 0;
}

/* ---- display name --------------------------------------------------------------------- */
static int py_space(unsigned char c)
{
    /* str.isspace() for ASCII: \t \n \v \f \r, \x1c-\x1f, space */
    return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
}

int sw_fp_display_is_sipvicious(sw_str d)
{
    if (d.n == 0)
        return sipvicious.n == 0;
    if (is_ascii(d)) {
        const char *p = d.p, *e = d.p + d.n;
        while (p < e && py_space((unsigned char)*p))
            p++;
        while (e > p && py_space((unsigned char)e[-1]))
            e--;
        while (p < e && *p == '"')
            p++;
        while (e > p && e[-1] == '"')
            e--;
        if (e - p != sipvicious.n)
            return 0;
        for (Py_ssize_t i = 0; i < sipvicious.n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c >= 'A' && c <= 'Z')
                c = (unsigned char)(c - 'A' + 'a');
            if (c != (unsigned char)sipvicious.p[i])
                return 0;
        }
        return 1;
    }
    /* Unicode whitespace and case: Python's str methods */
    PyObject *s = PyUnicode_DecodeUTF8(d.p, d.n, "strict");
    if (s == NULL)
        return -1;
    PyObject *t = PyObject_CallMethodNoArgs(s, py_strip);
    Py_DECREF(s);
    if (t == NULL)
        return -1;
    PyObject *u = PyObject_CallMethodOneArg(t, py_strip, py_quote);
    Py_DECREF(t);
    if (u == NULL)
        return -1;
    PyObject *l = PyObject_CallMethodNoArgs(u, py_lower);
    Py_DECREF(u);
    if (l == NULL)
        return -1;
    int r = PyObject_RichCompareBool(l, py_sipvicious, Py_EQ);
    Py_DECREF(l);
    return r;
}

/* ---- fingerprint() -------------------------------------------------------------------- */
int sw_fingerprint(sw_ua_cache *c, sw_str tag, sw_str ua, sw_str display, sw_str to_user,
                   sw_fp_buf *buf, sw_pykeep *keep, sw_str *tool, sw_str *data)
{
    sw_str d;
    int r = sw_fp_decode_tag(tag, buf, keep, &d);
    if (r < 0)
        return -1;
    if (r) {
        *tool = sipvicious;
        *data = sw_fp_tool_data(d, to_user, buf);
        return 1;
    }
    if (sw_fp_is_svcrack_tag(tag)) {
        *tool = sipvicious;
        *data = SW_STR_EMPTY;
        return 1;
    }
    sw_str t;
    if (sw_ua_tool(c, ua, keep, &t) < 0)
        return -1;
    if (t.n) {
        *tool = t;
        *data = SW_STR_EMPTY;
        return 1;
    }
    r = sw_fp_display_is_sipvicious(display);
    if (r <= 0)
        return r;
    *tool = sipvicious;
    *data = SW_STR_EMPTY;
    return 1;
}
