/* ChallengeFast: the responder's most common answer in one C call. A REGISTER without
 * credentials gets 401 with a fresh challenge when its To user is an extension, else 404;
 * honeypot/uas.py (Responder._handle, _answer, _register, _refuse, _reply, _vias) stays the
 * definition. answer() reads everything it needs and decides before any side effect (no rng
 * draw, no stats change): whatever is not plainly that case returns None, and the Python path
 * then answers as it always does. tests/unit/honeypot/test_native_challenge.py holds the two
 * to it. */
#include "module.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_VIA_CHANGE 1024 /* uas.py _MAX_VIA_CHANGE */
#define N_FLAT 10           /* SipMessage.flat() */
#define KEEP_MAX 24

/* placeholders in the template (uas.py _NONCE, _OPAQUE; REALM only for a realm of "{dst}") */
enum { PH_NONCE = 0, PH_OPAQUE = 1, PH_REALM = 2 };

typedef struct {
    long long lo, hi;
    int width; /* accounts.py _Range: 0 or the fixed digit count */
} range_t;

typedef struct {
    PyObject_HEAD
    PyObject *line401, *line404; /* bytes: status lines */
    PyObject *tail;              /* bytes: product header, Content-Length, the blank line */
    PyObject *tmpl;              /* bytes: the challenge lines with placeholders */
    int dst_realm, opaque;
    PyObject *names; /* frozenset: the single extensions */
    range_t *ranges;
    Py_ssize_t n_ranges;
    PyObject *issue, *tag, *rng, *name_addr; /* NonceMac.issue, ToTag.tag, the rng, speedups */
    Py_ssize_t answered;                     /* requests answered here (tests check it) */
} ChallengeFast;

static PyTypeObject ChallengeFastType;

static PyObject *s_ts, *s_src, *s_sport, *s_dst, *s_msg, *s_error, *s_is_request, *s_method,
    *s_headers, *s_anomalies, *s_cseq_num, *s_cseq_method, *s_ruri, *s_flat_slot, *s_flat,
    *s_via, *s_to, *s_from, *s_call_id, *s_cseq, *s_max_forwards, *s_authorization,
    *s_proxy_authorization, *s_requests, *s_by_method, *s_challenges, *s_by_status,
    *s_answered, *s_register, *s_getrandbits, *s_mismatch, *s_invalid_version, *s_hex16,
    *i64, *i401, *i404, *i1;

/* --- new references held while one request is answered -------------------------------- */
typedef struct {
    PyObject *o[KEEP_MAX];
    int n;
} keep_t;

static PyObject *keep(keep_t *k, PyObject *o)
{
    if (o != NULL) {
        if (k->n == KEEP_MAX) { /* cannot happen: answer() keeps fewer */
            Py_DECREF(o);
            PyErr_SetString(PyExc_SystemError, "ChallengeFast: keep_t is full");
            return NULL;
        }
        k->o[k->n++] = o;
    }
    return o;
}

static void keep_clear(keep_t *k)
{
    while (k->n > 0)
        Py_DECREF(k->o[--k->n]);
}

/* an exact str with latin-1 storage: its code points are the bytes encode("latin-1") gives */
static int latin1(PyObject *o)
{
    return o != NULL && PyUnicode_CheckExact(o) && PyUnicode_KIND(o) == PyUnicode_1BYTE_KIND;
}

#define BYTES(o) ((const unsigned char *)PyUnicode_1BYTE_DATA(o))

/* headers.get(key)[0] when that is a non-empty list whose first item is a latin-1 str;
 * NULL otherwise (no exception) */
static PyObject *first_value(PyObject *headers, PyObject *key, PyObject **list)
{
    PyObject *vals = PyDict_GetItemWithError(headers, key);
    if (list != NULL)
        *list = vals;
    if (vals == NULL || !PyList_CheckExact(vals) || PyList_GET_SIZE(vals) == 0)
        return NULL;
    PyObject *v = PyList_GET_ITEM(vals, 0);
    return latin1(v) ? v : NULL;
}

/* --- uas.py _VIA_SIMPLE, fullmatch -------------------------------------------------------
 * SIP/2\.0/[A-Za-z]+ (?:\[([0-9A-Fa-f:.]+)\]|([^ \t;:\[\](),"]+))(?::[0-9]{1,5})?
 * ;branch=[^;," \t]*(;rport)?
 * Every part stops at a character the next cannot start with, so one pass decides it. */
static int is_alpha(unsigned c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }
static int is_digit(unsigned c) { return c >= '0' && c <= '9'; }
static int is_hex(unsigned c) { return is_digit(c) || ((c | 32) >= 'a' && (c | 32) <= 'f'); }
static int branch_char(unsigned c) { return c != ';' && c != ',' && c != '"' && c != ' ' && c != '\t'; }
static int host_char(unsigned c)
{
    return branch_char(c) && c != ':' && c != '[' && c != ']' && c != '(' && c != ')';
}

static int via_simple(const unsigned char *p, Py_ssize_t n, Py_ssize_t *host_at,
                      Py_ssize_t *host_n, int *rport)
{
    Py_ssize_t i = 8, j;
    if (n < 8 || memcmp(p, "SIP/2.0/", 8) != 0)
        return 0;
    for (j = i; j < n && is_alpha(p[j]); j++)
        ;
    if (j == i || j >= n || p[j] != ' ')
        return 0;
    i = j + 1;
    if (i < n && p[i] == '[') {
        for (j = i + 1; j < n && (is_hex(p[j]) || p[j] == ':' || p[j] == '.'); j++)
            ;
        if (j == i + 1 || j >= n || p[j] != ']')
            return 0;
        *host_at = i + 1;
        *host_n = j - i - 1;
        i = j + 1;
    } else {
        for (j = i; j < n && host_char(p[j]); j++)
            ;
        if (j == i)
            return 0;
        *host_at = i;
        *host_n = j - i;
        i = j;
    }
    if (i < n && p[i] == ':') {
        for (j = i + 1; j < n && is_digit(p[j]); j++)
            ;
        if (j - i - 1 < 1 || j - i - 1 > 5)
            return 0;
        i = j;
    }
    if (n - i < 8 || memcmp(p + i, ";branch=", 8) != 0)
        return 0;
    for (i += 8; i < n && branch_char(p[i]); i++)
        ;
    if (i == n) {
        *rport = 0;
        return 1;
    }
    if (n - i == 6 && memcmp(p + i, ";rport", 6) == 0) {
        *rport = 1;
        return 1;
    }
    return 0;
}

/* ipaddress.IPv4Address(text): four dot-separated decimal parts of 1-3 ASCII digits, no
 * leading zero, each at most 255 (Python 3.9.5 on) */
static int ipv4(const unsigned char *p, Py_ssize_t n, uint32_t *out)
{
    uint32_t v = 0;
    Py_ssize_t i = 0;
    for (int part = 0; part < 4; part++) {
        Py_ssize_t j = i;
        unsigned x = 0;
        while (j < n && is_digit(p[j]) && j - i < 4)
            x = x * 10 + (p[j++] - '0');
        Py_ssize_t len = j - i;
        if (len < 1 || len > 3 || (len > 1 && p[i] == '0') || x > 255)
            return 0;
        v = v << 8 | x;
        if (part < 3) {
            if (j >= n || p[j] != '.')
                return 0;
            j++;
        }
        i = j;
    }
    if (i != n)
        return 0;
    *out = v;
    return 1;
}

/* uas.py _same_host: 1 same, 0 not, -1 both look like IPv6 (left to ipaddress in Python).
 * Without a ':' in one of them, ip_address gives an IPv4 address or an error, and an IPv4
 * address never equals an IPv6 one, so only two IPv4 texts need reading. */
static int same_host(const unsigned char *h, Py_ssize_t hn, PyObject *src)
{
    const unsigned char *s = BYTES(src);
    Py_ssize_t sn = PyUnicode_GET_LENGTH(src);
    if (hn == sn && memcmp(h, s, (size_t)hn) == 0)
        return 1;
    int hc = memchr(h, ':', (size_t)hn) != NULL, sc = memchr(s, ':', (size_t)sn) != NULL;
    if (hc && sc)
        return -1;
    if (hc || sc)
        return 0;
    uint32_t a, b;
    return ipv4(h, hn, &a) && ipv4(s, sn, &b) && a == b;
}

/* --- accounts.py Accounts.exists ---------------------------------------------------------- */
static int exists(ChallengeFast *self, PyObject *user)
{
    int in = PySet_Contains(self->names, user);
    if (in != 0)
        return in;
    Py_ssize_t n = PyUnicode_GET_LENGTH(user);
    if (n == 0 || n > 18 || PyUnicode_KIND(user) != PyUnicode_1BYTE_KIND)
        return 0;
    const unsigned char *p = BYTES(user);
    long long v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    for (Py_ssize_t r = 0; r < self->n_ranges; r++) {
        const range_t *g = &self->ranges[r];
        if (g->width ? n != g->width : (p[0] == '0' && n > 1))
            continue;
        if (g->lo <= v && v <= g->hi)
            return 1;
    }
    return 0;
}

/* --- the reply, written as bytes ---------------------------------------------------------- */
typedef struct {
    char *p;
    Py_ssize_t n, cap;
    char stack[2048];
} out_t;

static int put(out_t *w, const void *p, Py_ssize_t n)
{
    if (w->n + n > w->cap) {
        Py_ssize_t cap = (w->n + n) * 2;
        char *q = PyMem_Malloc((size_t)cap);
        if (q == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(q, w->p, (size_t)w->n);
        if (w->p != w->stack)
            PyMem_Free(w->p);
        w->p = q;
        w->cap = cap;
    }
    memcpy(w->p + w->n, p, (size_t)n);
    w->n += n;
    return 0;
}

#define PUTS(w, lit) put((w), (lit), (Py_ssize_t)sizeof(lit) - 1)

/* a str as encode("latin-1", "replace") writes it */
static int put_str(out_t *w, PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    if (kind == PyUnicode_1BYTE_KIND)
        return put(w, PyUnicode_1BYTE_DATA(s), n);
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        char b = c < 256 ? (char)c : '?';
        if (put(w, &b, 1) < 0)
            return -1;
    }
    return 0;
}

static int put_bytes(out_t *w, PyObject *b)
{
    return put(w, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b));
}

/* digest.py _quote's inside: backslash and quote escaped */
static int put_quoted(out_t *w, PyObject *s)
{
    const unsigned char *p = BYTES(s);
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((p[i] == '\\' || p[i] == '"') && PUTS(w, "\\") < 0)
            return -1;
        if (put(w, p + i, 1) < 0)
            return -1;
    }
    return 0;
}

/* f"{rng.getrandbits(64):016x}" */
static PyObject *opaque_text(PyObject *rng)
{
    PyObject *bits = PyObject_CallMethodOneArg(rng, s_getrandbits, i64);
    if (bits == NULL)
        return NULL;
    PyObject *out = PyObject_Format(bits, s_hex16);
    Py_DECREF(bits);
    return out;
}

/* stats.NAME += 1 */
static int bump(PyObject *stats, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(stats, name);
    if (v == NULL)
        return -1;
    PyObject *w = PyNumber_Add(v, i1);
    Py_DECREF(v);
    if (w == NULL)
        return -1;
    int rc = PyObject_SetAttr(stats, name, w);
    Py_DECREF(w);
    return rc;
}

/* stats.NAME[key] = stats.NAME.get(key, 0) + 1 */
static int bump_key(PyObject *stats, PyObject *name, PyObject *key)
{
    PyObject *d = PyObject_GetAttr(stats, name);
    if (d == NULL)
        return -1;
    int rc = -1;
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "stats.%U is not a dict", name);
        goto done;
    }
    PyObject *v = PyDict_GetItemWithError(d, key);
    if (v == NULL && PyErr_Occurred())
        goto done;
    PyObject *w = v == NULL ? (Py_INCREF(i1), i1) : PyNumber_Add(v, i1);
    if (w == NULL)
        goto done;
    rc = PyDict_SetItem(d, key, w);
    Py_DECREF(w);
done:
    Py_DECREF(d);
    return rc;
}

/* What answer() read: borrowed from objects held in keep. */
typedef struct {
    PyObject *src, *dst, *msg_ts;
    long long sport;
    PyObject *vias, *top, *from, *to, *call_id, *cseq;
    Py_ssize_t host_at, host_n;
    int rport, same;
    PyObject *from_tag, *to_tag, *to_user;
} req_t;

/* 1: REGISTER without credentials on the usual path (r filled); 0: not that case; -1 error.
 * The checks are _handle's and _answer's, in effect: all of them must pass. */
static int decide(ChallengeFast *self, PyObject *record, keep_t *k, req_t *r)
{
    PyObject *ts = keep(k, PyObject_GetAttr(record, s_ts));
    if (ts == NULL)
        return -1;
    if (!PyFloat_CheckExact(ts) || !isfinite(PyFloat_AS_DOUBLE(ts)))
        return 0; /* _handle's clock repair, and int()'s of other numbers: Python's */
    r->msg_ts = ts;
    PyObject *msg = keep(k, PyObject_GetAttr(record, s_msg));
    if (msg == NULL)
        return -1;
    PyObject *o = keep(k, PyObject_GetAttr(msg, s_error));
    if (o == NULL)
        return -1;
    if (!PyUnicode_CheckExact(o) || PyUnicode_GET_LENGTH(o) != 0)
        return 0;
    o = keep(k, PyObject_GetAttr(msg, s_is_request));
    if (o == NULL)
        return -1;
    if (o != Py_True)
        return 0;
    o = keep(k, PyObject_GetAttr(msg, s_method));
    if (o == NULL)
        return -1;
    if (!PyUnicode_CheckExact(o) || PyUnicode_Compare(o, s_register) != 0)
        return 0;
    PyObject *h = keep(k, PyObject_GetAttr(msg, s_headers));
    if (h == NULL)
        return -1;
    if (!PyDict_CheckExact(h))
        return 0;
    /* _credentials: any Authorization header, even an unreadable one, is Python's */
    int has = PyDict_Contains(h, s_authorization);
    if (has == 0)
        has = PyDict_Contains(h, s_proxy_authorization);
    if (has != 0)
        return has < 0 ? -1 : 0;

    /* _vias: only the _VIA_SIMPLE top Via; the rest are echoed as they are */
    PyObject *first = first_value(h, s_via, &r->vias);
    if (first == NULL)
        return PyErr_Occurred() ? -1 : 0;
    Py_ssize_t fn = PyUnicode_GET_LENGTH(first);
    if (fn > MAX_VIA_CHANGE ||
        !via_simple(BYTES(first), fn, &r->host_at, &r->host_n, &r->rport))
        return 0;
    for (Py_ssize_t i = 1; i < PyList_GET_SIZE(r->vias); i++)
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(r->vias, i)))
            return 0;
    r->top = first;
    r->src = keep(k, PyObject_GetAttr(record, s_src));
    if (r->src == NULL)
        return -1;
    if (!latin1(r->src))
        return 0;
    if (r->rport) {
        o = keep(k, PyObject_GetAttr(record, s_sport));
        if (o == NULL)
            return -1;
        if (!PyLong_CheckExact(o))
            return 0;
        int overflow;
        r->sport = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow || (r->sport == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
    } else {
        r->same = same_host(BYTES(first) + r->host_at, r->host_n, r->src);
        if (r->same < 0)
            return 0;
    }

    /* complete: To and From name-addrs the C parser reads (_has_name_addr; else Python's),
     * Call-ID, CSeq number and method */
    PyObject *hdr[2] = {s_to, s_from}, **val[2] = {&r->to, &r->from};
    for (int i = 0; i < 2; i++) {
        *val[i] = first_value(h, hdr[i], NULL);
        if (*val[i] == NULL)
            return PyErr_Occurred() ? -1 : 0;
        PyObject *na = PyObject_CallOneArg(self->name_addr, *val[i]);
        if (na == NULL)
            return -1;
        Py_DECREF(na);
        if (na == Py_None)
            return 0;
    }
    r->call_id = first_value(h, s_call_id, NULL);
    r->cseq = first_value(h, s_cseq, NULL);
    if (r->call_id == NULL || PyUnicode_GET_LENGTH(r->call_id) == 0 || r->cseq == NULL)
        return PyErr_Occurred() ? -1 : 0;
    o = keep(k, PyObject_GetAttr(msg, s_cseq_num));
    if (o == NULL)
        return -1;
    if (o == Py_None)
        return 0;
    o = keep(k, PyObject_GetAttr(msg, s_cseq_method));
    if (o == NULL)
        return -1;
    if (!PyUnicode_CheckExact(o) || PyUnicode_GET_LENGTH(o) == 0)
        return 0;
    o = keep(k, PyObject_GetAttr(msg, s_anomalies));
    if (o == NULL)
        return -1;
    if (!PyList_CheckExact(o))
        return 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(o); i++) {
        PyObject *a = PyList_GET_ITEM(o, i);
        if (!PyUnicode_CheckExact(a) || PyUnicode_Compare(a, s_mismatch) == 0 ||
            PyUnicode_Compare(a, s_invalid_version) == 0)
            return 0;
    }

    /* _answer: Max-Forwards of ASCII digits whose first 12 are zeros is 483 */
    PyObject *mf_list;
    PyObject *mf = first_value(h, s_max_forwards, &mf_list);
    if (mf_list != NULL) {
        if (!PyList_CheckExact(mf_list) || (PyList_GET_SIZE(mf_list) > 0 && mf == NULL))
            return 0;
        if (mf != NULL) {
            const unsigned char *p = BYTES(mf);
            Py_ssize_t n = PyUnicode_GET_LENGTH(mf), i, zeros = 0;
            for (i = 0; i < n && is_digit(p[i]); i++)
                zeros += i < 12 && p[i] == '0';
            if (n > 0 && i == n && zeros == (n < 12 ? n : 12))
                return 0;
        }
    } else if (PyErr_Occurred()) {
        return -1;
    }
    /* request-URI scheme: no latin-1 character lowers to ASCII, so compare ASCII only */
    o = keep(k, PyObject_GetAttr(msg, s_ruri));
    if (o == NULL)
        return -1;
    if (!latin1(o))
        return 0;
    const unsigned char *u = BYTES(o);
    Py_ssize_t un = PyUnicode_GET_LENGTH(o), sn;
    const unsigned char *colon = memchr(u, ':', (size_t)un);
    sn = colon ? colon - u : un;
    char scheme[5] = {0};
    if (sn < 3 || sn > 4)
        return 0;
    for (Py_ssize_t i = 0; i < sn; i++)
        scheme[i] = (char)(u[i] >= 'A' && u[i] <= 'Z' ? u[i] | 32 : u[i]);
    if (strcmp(scheme, "sip") != 0 && strcmp(scheme, "sips") != 0 && strcmp(scheme, "tel") != 0)
        return 0;

    /* the flat fields Python reads: to_user, to_tag, from_tag (cached by flat()) */
    PyObject *f = keep(k, PyObject_GetAttr(msg, s_flat_slot));
    if (f == NULL)
        return -1;
    if (!PyTuple_CheckExact(f) || PyTuple_GET_SIZE(f) != N_FLAT) {
        f = keep(k, PyObject_CallMethodNoArgs(msg, s_flat));
        if (f == NULL)
            return -1;
        if (!PyTuple_CheckExact(f) || PyTuple_GET_SIZE(f) != N_FLAT)
            return 0;
    }
    r->from_tag = PyTuple_GET_ITEM(f, 3);
    r->to_user = PyTuple_GET_ITEM(f, 4);
    r->to_tag = PyTuple_GET_ITEM(f, 5);
    if (!PyUnicode_CheckExact(r->from_tag) || !PyUnicode_CheckExact(r->to_user) ||
        !PyUnicode_CheckExact(r->to_tag))
        return 0;

    /* held, not borrowed, while the rng (any Python code) runs */
    PyObject *held[] = {r->vias, r->top, r->to, r->from, r->call_id, r->cseq};
    for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
        Py_INCREF(held[i]);
        if (keep(k, held[i]) == NULL)
            return -1;
    }
    if (self->dst_realm) { /* _realm: record.dst or "sip"; placeholders in it are Python's */
        o = keep(k, PyObject_GetAttr(record, s_dst));
        if (o == NULL)
            return -1;
        if (o != Py_None) {
            if (!latin1(o) || memchr(BYTES(o), PH_NONCE, (size_t)PyUnicode_GET_LENGTH(o)) ||
                memchr(BYTES(o), PH_OPAQUE, (size_t)PyUnicode_GET_LENGTH(o)))
                return 0;
        }
        r->dst = o;
    }
    return 1;
}

/* the response: _reply's compact form, text = the challenge (401) or none (404) */
static int write_reply(ChallengeFast *self, req_t *r, int code, PyObject *tag, PyObject *nonce,
                       PyObject *opaque, out_t *w)
{
    PyObject *first = r->top;
    if (put_bytes(w, code == 401 ? self->line401 : self->line404) < 0 || PUTS(w, "Via: ") < 0 ||
        put_str(w, first) < 0)
        return -1;
    char num[32];
    if (r->rport) { /* f"{first}={sport};received={src}" */
        int n = snprintf(num, sizeof(num), "=%lld;received=", r->sport);
        if (put(w, num, n) < 0 || put_str(w, r->src) < 0)
            return -1;
    } else if (!r->same && (PUTS(w, ";received=") < 0 || put_str(w, r->src) < 0)) {
        return -1;
    }
    if (PUTS(w, "\r\n") < 0)
        return -1;
    for (Py_ssize_t i = 1; i < PyList_GET_SIZE(r->vias); i++)
        if (PUTS(w, "Via: ") < 0 || put_str(w, PyList_GET_ITEM(r->vias, i)) < 0 ||
            PUTS(w, "\r\n") < 0)
            return -1;
    if (PUTS(w, "From: ") < 0 || put_str(w, r->from) < 0 || PUTS(w, "\r\nTo: ") < 0 ||
        put_str(w, r->to) < 0)
        return -1;
    if (tag != NULL && (PUTS(w, ";tag=") < 0 || put_str(w, tag) < 0))
        return -1;
    if (PUTS(w, "\r\nCall-ID: ") < 0 || put_str(w, r->call_id) < 0 || PUTS(w, "\r\nCSeq: ") < 0 ||
        put_str(w, r->cseq) < 0 || PUTS(w, "\r\n") < 0)
        return -1;
    if (code == 401) { /* template.replace(_NONCE, nonce).replace(_OPAQUE, opaque) */
        const char *t = PyBytes_AS_STRING(self->tmpl);
        Py_ssize_t tn = PyBytes_GET_SIZE(self->tmpl), from = 0;
        for (Py_ssize_t i = 0; i <= tn; i++) {
            if (i < tn && t[i] != PH_NONCE && t[i] != PH_OPAQUE && t[i] != PH_REALM)
                continue;
            if (put(w, t + from, i - from) < 0)
                return -1;
            from = i + 1;
            if (i == tn)
                break;
            int rc = 0;
            if (t[i] == PH_NONCE)
                rc = put_str(w, nonce);
            else if (t[i] == PH_OPAQUE)
                rc = opaque != NULL ? put_str(w, opaque) : 0;
            else if (r->dst == NULL || r->dst == Py_None || PyUnicode_GET_LENGTH(r->dst) == 0)
                rc = PUTS(w, "sip");
            else
                rc = put_quoted(w, r->dst);
            if (rc < 0)
                return -1;
        }
    }
    return put_bytes(w, self->tail);
}

static PyObject *cf_answer(ChallengeFast *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "answer(record, stats) takes 2 arguments");
        return NULL;
    }
    if (self->rng == NULL || self->issue == NULL || self->tag == NULL ||
        self->name_addr == NULL) /* cleared by the garbage collector */
        Py_RETURN_NONE;
    keep_t k = {{NULL}, 0};
    req_t r = {0};
    PyObject *stats = args[1], *tag = NULL, *nonce = NULL, *opaque = NULL, *out = NULL;
    out_t w;
    w.p = w.stack;
    w.n = 0;
    w.cap = sizeof(w.stack);
    int rc = decide(self, args[0], &k, &r);
    if (rc <= 0) {
        keep_clear(&k);
        if (rc == 0)
            Py_RETURN_NONE;
        return NULL;
    }
    int ext = exists(self, r.to_user);
    if (ext < 0)
        goto done;
    int code = ext ? 401 : 404;
    if (PyUnicode_GET_LENGTH(r.to_tag) == 0) { /* final response, no To-tag yet: add ours */
        PyObject *call[2] = {r.call_id, r.from_tag};
        tag = PyObject_Vectorcall(self->tag, call, 2, NULL);
        if (tag == NULL)
            goto done;
        if (!PyUnicode_Check(tag)) {
            PyErr_SetString(PyExc_TypeError, "ToTag.tag() did not return a str");
            goto done;
        }
    }
    /* the side effects from here on, in _refuse's order: nonce, opaque, then the stats */
    if (code == 401) {
        PyObject *call[2] = {r.src, r.msg_ts};
        nonce = PyObject_Vectorcall(self->issue, call, 2, NULL);
        if (nonce == NULL)
            goto done;
        if (!PyUnicode_Check(nonce)) {
            PyErr_SetString(PyExc_TypeError, "NonceMac.issue() did not return a str");
            goto done;
        }
        if (self->opaque) {
            opaque = opaque_text(self->rng);
            if (opaque == NULL)
                goto done;
        }
    }
    if (write_reply(self, &r, code, tag, nonce, opaque, &w) < 0)
        goto done;
    PyObject *reply = PyBytes_FromStringAndSize(w.p, w.n);
    if (reply == NULL)
        goto done;
    out = PyList_New(1);
    if (out == NULL) {
        Py_DECREF(reply);
        goto done;
    }
    PyList_SET_ITEM(out, 0, reply);
    if (bump(stats, s_requests) < 0 || bump_key(stats, s_by_method, s_register) < 0 ||
        (code == 401 && bump(stats, s_challenges) < 0) ||
        bump_key(stats, s_by_status, code == 401 ? i401 : i404) < 0 ||
        bump(stats, s_answered) < 0) {
        Py_CLEAR(out);
        goto done;
    }
    self->answered++;
done:
    if (w.p != w.stack)
        PyMem_Free(w.p);
    Py_XDECREF(tag);
    Py_XDECREF(nonce);
    Py_XDECREF(opaque);
    keep_clear(&k);
    return out;
}

static PyObject *cf_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"line401", "line404", "tail", "template", "dst_realm", "opaque",
                             "names", "ranges", "issue", "tag", "rng", "name_addr", NULL};
    PyObject *l401, *l404, *tail, *tmpl, *names, *ranges, *issue, *tag, *rng, *name_addr;
    int dst_realm, opaque;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "SSSSppO!O!OOOO:ChallengeFast", kwlist, &l401,
                                     &l404, &tail, &tmpl, &dst_realm, &opaque, &PyFrozenSet_Type,
                                     &names, &PyTuple_Type, &ranges, &issue, &tag, &rng,
                                     &name_addr))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(ranges);
    range_t *rs = PyMem_Calloc((size_t)(n ? n : 1), sizeof(range_t));
    if (rs == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(ranges, i), "LLi:ChallengeFast range", &rs[i].lo,
                              &rs[i].hi, &rs[i].width)) {
            PyMem_Free(rs);
            return NULL;
        }
    }
    ChallengeFast *self = (ChallengeFast *)type->tp_alloc(type, 0);
    if (self == NULL) {
        PyMem_Free(rs);
        return NULL;
    }
    self->ranges = rs;
    self->n_ranges = n;
    self->dst_realm = dst_realm;
    self->opaque = opaque;
    PyObject **slots[] = {&self->line401, &self->line404, &self->tail, &self->tmpl,
                          &self->names, &self->issue, &self->tag, &self->rng,
                          &self->name_addr};
    PyObject *vals[] = {l401, l404, tail, tmpl, names, issue, tag, rng, name_addr};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        Py_INCREF(vals[i]);
        *slots[i] = vals[i];
    }
    return (PyObject *)self;
}

static int cf_traverse(ChallengeFast *self, visitproc visit, void *arg)
{
    Py_VISIT(self->issue);
    Py_VISIT(self->tag);
    Py_VISIT(self->rng);
    Py_VISIT(self->name_addr);
    return 0;
}

static int cf_clear(ChallengeFast *self)
{
    Py_CLEAR(self->issue);
    Py_CLEAR(self->tag);
    Py_CLEAR(self->rng);
    Py_CLEAR(self->name_addr);
    return 0;
}

static void cf_dealloc(ChallengeFast *self)
{
    PyObject_GC_UnTrack(self);
    cf_clear(self);
    Py_XDECREF(self->line401);
    Py_XDECREF(self->line404);
    Py_XDECREF(self->tail);
    Py_XDECREF(self->tmpl);
    Py_XDECREF(self->names);
    PyMem_Free(self->ranges);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *cf_get_answered(ChallengeFast *self, void *closure)
{
    return PyLong_FromSsize_t(self->answered);
}

static PyGetSetDef cf_getset[] = {
    {"answered", (getter)cf_get_answered, NULL, "requests answered by answer()", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef cf_methods[] = {
    {"answer", (PyCFunction)(void (*)(void))cf_answer, METH_FASTCALL,
     "answer(record, stats) -> [reply bytes] for a REGISTER without credentials (401 or "
     "404), stats counted as Responder.handle counts them; None: not that case (no side "
     "effect, the Python path answers)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ChallengeFastType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sipwatch._native.ChallengeFast",
    .tp_basicsize = sizeof(ChallengeFast),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "ChallengeFast(...): the responder's REGISTER -> 401/404 (challenge.c)",
    .tp_new = cf_new,
    .tp_dealloc = (destructor)cf_dealloc,
    .tp_traverse = (traverseproc)cf_traverse,
    .tp_clear = (inquiry)cf_clear,
    .tp_methods = cf_methods,
    .tp_getset = cf_getset,
};

int sw_init_challenge(PyObject *m)
{
    struct {
        PyObject **p;
        const char *s;
    } names[] = {
        {&s_ts, "ts"}, {&s_src, "src"}, {&s_sport, "sport"}, {&s_dst, "dst"}, {&s_msg, "msg"},
        {&s_error, "error"}, {&s_is_request, "is_request"}, {&s_method, "method"},
        {&s_headers, "headers"}, {&s_anomalies, "anomalies"}, {&s_cseq_num, "cseq_num"},
        {&s_cseq_method, "cseq_method"}, {&s_ruri, "ruri"}, {&s_flat_slot, "_flat"},
        {&s_flat, "flat"}, {&s_via, "via"}, {&s_to, "to"}, {&s_from, "from"},
        {&s_call_id, "call-id"}, {&s_cseq, "cseq"}, {&s_max_forwards, "max-forwards"},
        {&s_authorization, "authorization"}, {&s_proxy_authorization, "proxy-authorization"},
        {&s_requests, "requests"}, {&s_by_method, "by_method"}, {&s_challenges, "challenges"},
        {&s_by_status, "by_status"}, {&s_answered, "answered"}, {&s_register, "REGISTER"},
        {&s_getrandbits, "getrandbits"}, {&s_mismatch, "cseq_method_mismatch"},
        {&s_invalid_version, "invalid_version"}, {&s_hex16, "016x"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if ((*names[i].p = PyUnicode_InternFromString(names[i].s)) == NULL)
            return -1;
    i64 = PyLong_FromLong(64);
    i401 = PyLong_FromLong(401);
    i404 = PyLong_FromLong(404);
    i1 = PyLong_FromLong(1);
    if (i64 == NULL || i401 == NULL || i404 == NULL || i1 == NULL)
        return -1;
    if (PyType_Ready(&ChallengeFastType) < 0)
        return -1;
    Py_INCREF(&ChallengeFastType);
    if (PyModule_AddObject(m, "ChallengeFast", (PyObject *)&ChallengeFastType) < 0) {
        Py_DECREF(&ChallengeFastType);
        return -1;
    }
    return 0;
}
