/* Optional C fast paths for the SIP parser (sipwatch.sip.speedups wraps this module).
 *
 * Each function handles only the clean, common shape of its input and returns None for
 * anything else, so the Python parser stays the one definition of the results: a non-None
 * answer here must equal what the Python code gives (tests/unit/test_sip_speedups.py checks
 * this differentially). The scanning itself (start line, header lines, name-addr, Via,
 * digest, message._check) is the pure C of sipcore.h, which sipwatch._native's scanner
 * shares; this file turns its offsets into Python objects. Input is attacker bytes: every
 * index is bounds-checked, nothing is copied into a fixed buffer without a length check,
 * there is no recursion. A NULL return (with an exception) happens only when memory runs out.
 *
 * State: a few caches of str objects (header names, methods) in static memory, filled as
 * names are met and bounded; the module therefore declares m_size = -1 (one interpreter).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "sipcore.h"

static inline PyObject *latin1(const unsigned char *p, Py_ssize_t n)
{
    return PyUnicode_DecodeLatin1((const char *)p, n, NULL);
}

/* ---------------------------------------------------------------- bounded str caches */
#define CACHE_SLOTS 1024 /* power of two */
#define CACHE_FILL 512   /* at most this many entries: probe chains stay short */
#define CACHE_KEYLEN SC_KEY_MAX /* longer names are not cached */
#define MAX_PROBE 8      /* a key is stored (and so found) within this many slots of its hash */

typedef struct {
    Py_ssize_t len;
    size_t hash;
    unsigned long stamp; /* parse_head call that last put this key in its dict */
    unsigned char key[CACHE_KEYLEN];
    PyObject *value; /* owned; NULL = empty slot */
} cache_entry;

typedef struct {
    cache_entry slot[CACHE_SLOTS];
    int fill;
} str_cache;

static str_cache name_cache;          /* lowercased header name -> canonical key */
static str_cache method_cache;        /* method as written -> str */
static cache_entry *compact[26];      /* 'a'..'z' -> entry of the long name (names.COMPACT) */
static unsigned long call_stamp;      /* counts parse_head calls */
static PyObject *s_version;           /* "SIP/2.0" */
static PyObject *s_empty;             /* "" */
static PyObject *s_sip;               /* "sip" */

#define HASH_INIT ((size_t)2166136261u)
#define HASH_STEP(h, c) (((h) ^ (c)) * (size_t)16777619u)

static size_t hash_bytes(const unsigned char *p, Py_ssize_t n)
{
    size_t h = HASH_INIT;
    for (Py_ssize_t i = 0; i < n; i++)
        h = HASH_STEP(h, p[i]);
    return h;
}

/* The entry for p[0:n] (hash h), created when missing. NULL when n is too long or the
 * cache is full (*err 0: build the str yourself) or memory ran out (*err 1). */
static cache_entry *cache_entry_for(str_cache *c, const unsigned char *p, Py_ssize_t n, size_t h,
                                    int *err)
{
    *err = 0;
    if (n > CACHE_KEYLEN)
        return NULL;
    size_t i = h & (CACHE_SLOTS - 1);
    for (int probe = 0;; probe++) {
        if (probe == MAX_PROBE)
            return NULL; /* crowded neighbourhood (crafted names?): do not cache, stay fast */
        cache_entry *e = &c->slot[i];
        if (e->value == NULL)
            break;
        if (e->hash == h && e->len == n && memcmp(e->key, p, (size_t)n) == 0)
            return e;
        i = (i + 1) & (CACHE_SLOTS - 1);
    }
    if (c->fill >= CACHE_FILL)
        return NULL;
    PyObject *s = latin1(p, n);
    if (s == NULL) {
        *err = 1;
        return NULL;
    }
    PyUnicode_InternInPlace(&s);
    cache_entry *e = &c->slot[i];
    e->len = n;
    e->hash = h;
    e->stamp = 0;
    memcpy(e->key, p, (size_t)n);
    e->value = s; /* the cache owns this reference */
    c->fill++;
    return e;
}

/* New reference to the str for p[0:n] (latin-1), from the cache when possible. */
static PyObject *cached_str(str_cache *c, const unsigned char *p, Py_ssize_t n)
{
    int err;
    cache_entry *e = cache_entry_for(c, p, n, hash_bytes(p, n), &err);
    if (e != NULL) {
        Py_INCREF(e->value);
        return e->value;
    }
    return err ? NULL : latin1(p, n);
}

/* headers[key].append(value), creating the list; `fresh`: key known not to be there yet. */
static int add_header(PyObject *headers, PyObject *key, PyObject *value, int fresh)
{
    if (!fresh) {
        PyObject *lst = PyDict_GetItemWithError(headers, key);
        if (lst != NULL)
            return PyList_Append(lst, value);
        if (PyErr_Occurred())
            return -1;
    }
    PyObject *lst = PyList_New(1);
    if (lst == NULL)
        return -1;
    Py_INCREF(value);
    PyList_SET_ITEM(lst, 0, value);
    int r = PyDict_SetItem(headers, key, lst);
    Py_DECREF(lst);
    return r;
}

static PyObject *new_dict(Py_ssize_t size)
{
#if PY_VERSION_HEX < 0x030E0000
    if (size > 5)
        return _PyDict_NewPresized(size); /* one allocation instead of two resizes */
#endif
    (void)size;
    return PyDict_New();
}

/* ---------------------------------------------------------------- check (message._check) */
static PyObject *anomaly_str[SC_A_COUNT]; /* interned codes */
static PyObject *key_str[SC_K_COUNT];     /* interned canonical header keys */

static const unsigned char *ucs1(PyObject *s, Py_ssize_t *n);

/* sc_header of headers[key]: 1 filled (count 0: absent), 0 unusual (not a non-empty list of
 * latin-1 strs: the Python code), -1 on an exception. */
static int header_of(PyObject *headers, int k, sc_header *x)
{
    PyObject *lst = PyDict_GetItemWithError(headers, key_str[k]);
    memset(x, 0, sizeof(*x));
    if (lst == NULL)
        return PyErr_Occurred() ? -1 : 1;
    if (!PyList_Check(lst) || PyList_GET_SIZE(lst) < 1)
        return 0;
    x->count = PyList_GET_SIZE(lst);
    for (Py_ssize_t i = 0; i < x->count; i++) {
        Py_ssize_t vn;
        const unsigned char *v = ucs1(PyList_GET_ITEM(lst, i), &vn);
        if (v == NULL)
            return 0;
        if (i == 0) {
            x->p = v;
            x->n = vn;
        }
        if (vn > x->max_len)
            x->max_len = vn;
    }
    return 1;
}

/* message._check for a message parse_head accepted: sc_check over its header dict. 1 when
 * *r holds the results, 0 when the Python code must decide, -1 on an exception. */
static int check(PyObject *headers, const unsigned char *d, Py_ssize_t n, Py_ssize_t body_at,
                 const unsigned char *m, Py_ssize_t m_len, int is_request, sc_check_result *r)
{
    static const int used[] = {SC_K_VIA, SC_K_FROM, SC_K_TO, SC_K_CALL_ID, SC_K_CSEQ,
                               SC_K_CONTACT, SC_K_CONTENT_LENGTH};
    sc_header hv[SC_K_COUNT];
    memset(hv, 0, sizeof(hv));
    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
        int got = header_of(headers, used[i], &hv[used[i]]);
        if (got <= 0)
            return got;
    }
    return sc_check(hv, d, n, body_at, m, m_len, is_request, r);
}

/* ---------------------------------------------------------------- parse_head */
static PyObject *parse_head(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg))
        Py_RETURN_NONE;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);

    /* pass 1: find and check every line; nothing is allocated before the message is known
     * to be a clean one */
    sc_head hd;
    if (!sc_scan_head(d, n, 0, &hd))
        Py_RETURN_NONE;
    const int count = hd.count, is_request = hd.is_request;
    const long status = hd.status;
    const Py_ssize_t body_at = hd.body_at, m_len = hd.m_len, u_at = hd.u_at, u_len = hd.u_len,
                     r_at = hd.r_at, r_len = hd.r_len;

    /* pass 2: the header dict */
    PyObject *headers = new_dict(count);
    if (headers == NULL)
        return NULL;
    unsigned long stamp = ++call_stamp;
    for (int li = 0; li < count; li++) {
        const sc_line *h = &hd.line[li];
        const unsigned char *name = d + h->at;
        Py_ssize_t nlen = h->name_len;
        PyObject *key = NULL;
        cache_entry *e = NULL;
        int err = 0;
        unsigned char buf[CACHE_KEYLEN];
        const unsigned char *kp;
        int letter;
        Py_ssize_t kn = sc_canonical_key(name, nlen, buf, CACHE_KEYLEN, &kp, &letter);
        if (kn < 0)
            goto none; /* unusually long name, or an odd compact form: the Python parser */
        if (letter >= 0) {
            e = compact[letter];
            if (e == NULL)
                goto none; /* its long name could not be cached */
        } else {
            e = cache_entry_for(&name_cache, kp, kn, hash_bytes(kp, kn), &err);
            if (err)
                goto fail;
            if (e == NULL) { /* cache full: build the key */
                key = latin1(kp, kn);
                if (key == NULL)
                    goto fail;
            }
        }
        int fresh = 0;
        if (e != NULL) {
            key = e->value;
            Py_INCREF(key);
            fresh = e->stamp != stamp;
            e->stamp = stamp;
        }
        PyObject *val = latin1(d + h->v0, h->v1 - h->v0);
        if (val == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        int r = add_header(headers, key, val, fresh);
        Py_DECREF(key);
        Py_DECREF(val);
        if (r < 0)
            goto fail;
    }
    if (call_stamp != stamp)
        goto none; /* re-entered from a finalizer while building: stamps unreliable */

    PyObject *method, *ruri, *reason, *st;
    if (is_request) {
        method = cached_str(&method_cache, d, m_len);
        ruri = method ? latin1(d + u_at, u_len) : NULL;
        reason = s_empty;
        Py_INCREF(reason);
    } else {
        method = s_empty;
        Py_INCREF(method);
        ruri = s_empty;
        Py_INCREF(ruri);
        reason = latin1(d + r_at, r_len);
    }
    st = PyLong_FromLong(status);
    PyObject *bat = PyLong_FromSsize_t(body_at);
    PyObject *out = NULL;
    /* message._check's results, or None x5 when the Python code must run it */
    PyObject *anoms = NULL, *cnum = NULL, *cmeth = NULL, *clen = NULL, *body = NULL;
    sc_check_result cr;
    int ok = method && ruri && reason && st && bat;
    int got = ok ? check(headers, d, n, body_at, d, m_len, is_request, &cr) : -1;
    if (got == 1) {
        anoms = PyList_New(cr.ncodes);
        for (int i = 0; anoms != NULL && i < cr.ncodes; i++) {
            Py_INCREF(anomaly_str[cr.codes[i]]);
            PyList_SET_ITEM(anoms, i, anomaly_str[cr.codes[i]]);
        }
        cnum = cr.has_cseq ? PyLong_FromLongLong(cr.cseq_num) : (Py_INCREF(Py_None), Py_None);
        cmeth = cr.has_cseq ? cached_str(&method_cache, cr.cseq_v + cr.cm_a, cr.cm_b - cr.cm_a)
                            : (Py_INCREF(s_empty), s_empty);
        clen = cr.has_cl ? PyLong_FromUnsignedLongLong(cr.cl) : (Py_INCREF(Py_None), Py_None);
        body = PyBytes_FromStringAndSize((const char *)d + cr.body_a, cr.body_b - cr.body_a);
        ok = anoms && cnum && cmeth && clen && body;
    } else if (got == 0) {
        anoms = cnum = cmeth = clen = body = Py_None;
        for (int i = 0; i < 5; i++)
            Py_INCREF(Py_None);
    } else {
        ok = 0;
    }
    if (ok)
        out = PyTuple_Pack(13, is_request ? Py_True : Py_False, method, ruri, s_version, st,
                           reason, headers, bat, anoms, cnum, cmeth, clen, body);
    Py_XDECREF(method);
    Py_XDECREF(ruri);
    Py_XDECREF(reason);
    Py_XDECREF(st);
    Py_XDECREF(bat);
    Py_XDECREF(anoms);
    Py_XDECREF(cnum);
    Py_XDECREF(cmeth);
    Py_XDECREF(clen);
    Py_XDECREF(body);
    Py_DECREF(headers);
    return out;

none:
    Py_DECREF(headers);
    Py_RETURN_NONE;
fail:
    Py_DECREF(headers);
    return NULL;
}

/* ---------------------------------------------------------------- str helpers */
/* The latin-1 bytes of a str, or NULL when it has characters above U+00FF. */
static const unsigned char *ucs1(PyObject *s, Py_ssize_t *n)
{
    if (!PyUnicode_Check(s))
        return NULL;
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND)
        return NULL;
    *n = PyUnicode_GET_LENGTH(s);
    return PyUnicode_1BYTE_DATA(s);
}

/* text.text(): the UTF-8 reading of latin-1 bytes when they are valid UTF-8. */
static PyObject *people_text(const unsigned char *p, Py_ssize_t n)
{
    int ascii = 1;
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i] >= 0x80) {
            ascii = 0;
            break;
        }
    if (ascii)
        return latin1(p, n);
    PyObject *s = PyUnicode_DecodeUTF8((const char *)p, n, "strict");
    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        s = latin1(p, n);
    }
    return s;
}

/* ---------------------------------------------------------------- name_addr */
static PyObject *name_addr(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n;
    const unsigned char *v = ucs1(arg, &n);
    sc_name_addr na;
    if (v == NULL || !sc_parse_name_addr(v, n, &na))
        Py_RETURN_NONE;
    const unsigned char *u = v + na.u_a;
    const sc_uri_parts *up = &na.uri;
    PyObject *display = na.d_b > na.d_a ? people_text(v + na.d_a, na.d_b - na.d_a)
                                        : (Py_INCREF(s_empty), s_empty);
    PyObject *uri = latin1(u, na.u_b - na.u_a);
    PyObject *user = up->user_a < 0 ? (Py_INCREF(s_empty), s_empty)
                                     : latin1(u + up->user_a, up->user_b - up->user_a);
    PyObject *host = latin1(u + up->host_a, up->host_b - up->host_a);
    PyObject *port = up->port < 0 ? (Py_INCREF(Py_None), Py_None) : PyLong_FromLong(up->port);
    PyObject *tag = na.tag == 1 ? latin1(v + na.t_a, na.t_b - na.t_a)
                                : (Py_INCREF(Py_None), Py_None);
    PyObject *out = NULL;
    if (display && uri && user && host && port && tag)
        out = PyTuple_Pack(7, display, uri, s_sip, user, host, port, tag);
    Py_XDECREF(display);
    Py_XDECREF(uri);
    Py_XDECREF(user);
    Py_XDECREF(host);
    Py_XDECREF(port);
    Py_XDECREF(tag);
    return out;
}

/* ---------------------------------------------------------------- via_branch */
static PyObject *via_branch(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n, a, b;
    const unsigned char *v = ucs1(arg, &n);
    if (v == NULL || !sc_via_branch(v, n, &a, &b))
        Py_RETURN_NONE;
    if (a == b)
        return (Py_INCREF(s_empty), s_empty);
    return latin1(v + a, b - a);
}

/* ---------------------------------------------------------------- digest_user_realm */
static PyObject *digest_user_realm(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n, ua, ub, ra, rb;
    const unsigned char *v = ucs1(arg, &n);
    if (v == NULL || !sc_digest_user_realm(v, n, &ua, &ub, &ra, &rb))
        Py_RETURN_NONE;
    PyObject *user = ua < 0 ? (Py_INCREF(s_empty), s_empty) : latin1(v + ua, ub - ua);
    PyObject *realm = ra < 0 ? (Py_INCREF(s_empty), s_empty) : latin1(v + ra, rb - ra);
    PyObject *out = NULL;
    if (user && realm)
        out = PyTuple_Pack(2, user, realm);
    Py_XDECREF(user);
    Py_XDECREF(realm);
    return out;
}

/* ---------------------------------------------------------------- flat */
/* Borrowed first value of headers[k1] (else headers[k2] when k2 >= 0), as `h.get(k1) or
 * h.get(k2)`; NULL with *err 0 when absent (or an empty list), *err 1 on an exception. */
static PyObject *first_of(PyObject *headers, int k1, int k2, int *err)
{
    *err = 0;
    for (int k = k1;; k = k2) {
        PyObject *lst = PyDict_GetItemWithError(headers, key_str[k]);
        if (lst == NULL && PyErr_Occurred()) {
            *err = 1;
            return NULL;
        }
        if (lst != NULL && !PyList_Check(lst)) {
            *err = 2; /* not a list: the Python code */
            return NULL;
        }
        if (lst != NULL && PyList_GET_SIZE(lst) > 0)
            return PyList_GET_ITEM(lst, 0);
        if (k == k2 || k2 < 0)
            return NULL;
    }
}

/* flat(headers, ruri) -> SipMessage.flat()'s 10 strs, or None when any part needs the
 * Python field parsers. Composes name_addr (From, To) and digest_user_realm; reads the
 * request-URI with sc_sip_uri_fast (parse_uri's fast path: URI parameters included) and the
 * top Via with sc_top_via_branch (message.vias[0]: a line of several via-parms too). */
static PyObject *flat(PyObject *self, PyObject *args)
{
    PyObject *headers, *ruri;
    if (!PyArg_UnpackTuple(args, "flat", 2, 2, &headers, &ruri))
        return NULL;
    if (!PyDict_Check(headers) || !PyUnicode_Check(ruri))
        Py_RETURN_NONE;
    PyObject *f[10] = {NULL};
    PyObject *na[2] = {NULL, NULL}, *dg = NULL, *out = NULL;
    int err = 0;
    /* request-URI user: parse_uri(ruri).user when uri.SIP_URI_FAST reads it whole (what
     * SipMessage._ruri_user gives, through name_addr or ruri_uri) */
    Py_ssize_t rn;
    const unsigned char *rp = ucs1(ruri, &rn);
    if (rp == NULL)
        goto none;
    if (rn == 0) {
        f[0] = s_empty;
        Py_INCREF(s_empty);
    } else {
        sc_uri_parts parts;
        if (!sc_sip_uri_fast(rp, rn, &parts))
            goto none;
        f[0] = parts.user_a < 0 ? (Py_INCREF(s_empty), s_empty)
                                : latin1(rp + parts.user_a, parts.user_b - parts.user_a);
        if (f[0] == NULL)
            goto done;
    }
    for (int w = 0; w < 2; w++) { /* From, To: (display, user, tag) */
        PyObject *v = first_of(headers, w ? SC_K_TO : SC_K_FROM, -1, &err);
        if (err)
            goto fail_or_none;
        PyObject **slot = w ? f + 3 : f;
        if (v == NULL) {
            if (!w)
                slot[1] = s_empty;
            slot[w ? 1 : 2] = s_empty;
            slot[w ? 2 : 3] = s_empty;
            continue;
        }
        na[w] = name_addr(self, v);
        if (na[w] == NULL)
            goto done;
        if (na[w] == Py_None)
            goto none;
        PyObject *tag = PyTuple_GET_ITEM(na[w], 6);
        if (!w)
            f[1] = PyTuple_GET_ITEM(na[w], 0);
        slot[w ? 1 : 2] = PyTuple_GET_ITEM(na[w], 3);
        slot[w ? 2 : 3] = tag == Py_None ? s_empty : tag;
    }
    /* f: 0 ruri_user, 1 from_display, 2 from_user, 3 from_tag, 4 to_user, 5 to_tag */
    PyObject *v = first_of(headers, SC_K_VIA, -1, &err);
    if (err)
        goto fail_or_none;
    if (v == NULL) {
        f[6] = s_empty;
        Py_INCREF(s_empty);
    } else {
        /* the top via-parm's branch (message.vias[0]), also of a line of several */
        Py_ssize_t vn, a, b;
        const unsigned char *vp = ucs1(v, &vn);
        if (vp == NULL || !sc_top_via_branch(vp, vn, &a, &b))
            goto none;
        f[6] = a == b ? (Py_INCREF(s_empty), s_empty) : latin1(vp + a, b - a); /* new ref */
        if (f[6] == NULL)
            goto done;
    }
    v = first_of(headers, SC_K_USER_AGENT, SC_K_SERVER, &err);
    if (err)
        goto fail_or_none;
    if (v == NULL) {
        f[7] = s_empty;
        Py_INCREF(s_empty);
    } else {
        Py_ssize_t un;
        const unsigned char *up = ucs1(v, &un);
        if (up == NULL)
            goto none;
        f[7] = people_text(up, un); /* new reference */
        if (f[7] == NULL)
            goto done;
    }
    v = first_of(headers, SC_K_AUTHORIZATION, SC_K_PROXY_AUTHORIZATION, &err);
    if (err)
        goto fail_or_none;
    if (v == NULL) {
        f[8] = f[9] = s_empty;
    } else {
        dg = digest_user_realm(self, v);
        if (dg == NULL)
            goto done;
        if (dg == Py_None)
            goto none;
        f[8] = PyTuple_GET_ITEM(dg, 0);
        f[9] = PyTuple_GET_ITEM(dg, 1);
    }
    out = PyTuple_Pack(10, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]);
    goto done;
fail_or_none:
    if (err == 1)
        goto done;
none:
    out = Py_None;
    Py_INCREF(out);
done:
    Py_XDECREF(f[0]);
    Py_XDECREF(f[6]);
    Py_XDECREF(f[7]);
    Py_XDECREF(na[0]);
    Py_XDECREF(na[1]);
    Py_XDECREF(dg);
    return out;
}

/* ---------------------------------------------------------------- set_compact */
static PyObject *set_compact(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyDict_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "set_compact needs a dict");
        return NULL;
    }
    PyObject *k, *val;
    Py_ssize_t it = 0;
    while (PyDict_Next(arg, &it, &k, &val)) {
        Py_ssize_t kn = 0, vn = 0;
        const unsigned char *kp = ucs1(k, &kn), *vp = ucs1(val, &vn);
        if (kp == NULL || kn != 1 || kp[0] < 'a' || kp[0] > 'z')
            continue;
        if (vp == NULL) /* not latin-1: the letter is left to Python */
            vn = 0;
        if (sc_set_compact(kp, kn, vp, vn) < 0)
            continue;
        int err;
        cache_entry *e = cache_entry_for(&name_cache, vp, vn, hash_bytes(vp, vn), &err);
        if (err)
            return NULL;
        compact[kp[0] - 'a'] = e; /* NULL (not cached): the name is left to Python */
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"parse_head", parse_head, METH_O,
     "parse_head(data: bytes) -> (is_request, method, ruri, version, status, reason, headers,"
     " body_at, anomalies, cseq_num, cseq_method, content_length, body) | None: a clean"
     " message's start line, header dict and message._check results (the last five None"
     " when _check must run)."},
    {"name_addr", name_addr, METH_O,
     "name_addr(value: str) -> (display, uri_text, scheme, user, host, port, tag) | None"},
    {"via_branch", via_branch, METH_O, "via_branch(value: str) -> str | None"},
    {"digest_user_realm", digest_user_realm, METH_O,
     "digest_user_realm(value: str) -> (username, realm) | None"},
    {"flat", flat, METH_VARARGS,
     "flat(headers: dict, ruri: str) -> SipMessage.flat()'s 10 strs | None"},
    {"set_compact", set_compact, METH_O, "set_compact(COMPACT): compact header names to use"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "C fast paths for sipwatch.sip (see speedups.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    sc_init_tables();
    s_version = PyUnicode_InternFromString("SIP/2.0");
    s_empty = PyUnicode_New(0, 0);
    s_sip = PyUnicode_InternFromString("sip");
    if (s_version == NULL || s_empty == NULL || s_sip == NULL)
        return NULL;
    for (int i = 0; i < SC_A_COUNT; i++)
        if ((anomaly_str[i] = PyUnicode_InternFromString(sc_anomaly_names[i])) == NULL)
            return NULL;
    for (int i = 0; i < SC_K_COUNT; i++)
        if ((key_str[i] = PyUnicode_InternFromString(sc_key_names[i])) == NULL)
            return NULL;
    return PyModule_Create(&module);
}
