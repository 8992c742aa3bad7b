/* Optional C fast paths for the SIP parser (sipwatch.sip.speedups wraps this module).
 *
 * Each function handles only the clean, common shape of its input and returns None for
 * anything else, so the Python parser stays the one definition of the results: a non-None
 * answer here must equal what the Python code gives (tests/unit/test_sip_speedups.py checks
 * this differentially). Input is attacker bytes: every index is bounds-checked, nothing is
 * copied into a fixed buffer without a length check, there is no recursion. A NULL return
 * (with an exception) happens only when memory runs out.
 *
 * State: a few caches of str objects (header names, methods) in static memory, filled as
 * names are met and bounded; the module therefore declares m_size = -1 (one interpreter).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_HEADERS 256  /* message.MAX_HEADERS */
#define MAX_LINE 8192    /* message.MAX_LINE */
#define MAX_METHOD 32    /* message.MAX_METHOD */
#define MAX_RURI 256     /* message.MAX_RURI */

/* ---------------------------------------------------------------- character classes */
static unsigned char is_token[256];   /* message._TOKEN */
static unsigned char uri_c1[256];     /* SIP_URI_FAST user/host: not @:;?<>"% SP HT [ ] , */
static unsigned char uri_c2[256];     /* SIP_URI_FAST params: c1 plus ':' and ';' */
static unsigned char via_host[256];   /* Via host: not SP HT ; : [ ] ( ) " , */

static void init_tables(void)
{
    const char *tok = "!%*+.`_~'-";
    for (int c = 0; c < 256; c++) {
        is_token[c] = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        uri_c1[c] = via_host[c] = 1;
    }
    for (const char *p = tok; *p; p++)
        is_token[(unsigned char)*p] = 1;
    for (const char *p = "@:;?<>\"% \t[],"; *p; p++)
        uri_c1[(unsigned char)*p] = 0;
    memcpy(uri_c2, uri_c1, sizeof(uri_c2));
    uri_c2[':'] = uri_c2[';'] = 1;
    for (const char *p = " \t;:[]()\","; *p; p++)
        via_host[(unsigned char)*p] = 0;
}

static inline int is_ws(unsigned char c) { return c == ' ' || c == '\t'; }
static inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static inline PyObject *latin1(const unsigned char *p, Py_ssize_t n)
{
    return PyUnicode_DecodeLatin1((const char *)p, n, NULL);
}

/* True when p[0:n] equals the lowercase ASCII word w (length wn) ignoring ASCII case. */
static int eq_nocase(const unsigned char *p, Py_ssize_t n, const char *w, Py_ssize_t wn)
{
    if (n != wn)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (lower(p[i]) != (unsigned char)w[i])
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- bounded str caches */
#define CACHE_SLOTS 1024 /* power of two */
#define CACHE_FILL 512   /* at most this many entries: probe chains stay short */
#define CACHE_KEYLEN 40  /* longer names are not cached */
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
static unsigned char compact_set[26]; /* the letter is a compact form */
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

/* ---------------------------------------------------------------- parse_head */
/* Request-URI checks of message._parse that would add an anomaly: 1 when clean. */
static int ruri_clean(const unsigned char *u, Py_ssize_t n)
{
    if (n > MAX_RURI)
        return 0;
    Py_ssize_t colon = -1, at = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (u[i] == ':' && colon < 0)
            colon = i;
        if (u[i] == '@')
            at = i;
    }
    if (colon <= 0)
        return 0;
    int alnum = 1, schemeok = ((u[0] | 32) >= 'a' && (u[0] | 32) <= 'z');
    for (Py_ssize_t i = 0; i < colon; i++) {
        unsigned char c = u[i];
        int an = (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
        if (!an)
            alnum = 0;
        if (!an && c != '+' && c != '.' && c != '-')
            schemeok = 0;
    }
    if (!alnum && !schemeok)
        return 0;
    for (Py_ssize_t i = at + 1; i < n; i++)
        if (u[i] == '?')
            return 0;
    return 1;
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

typedef struct {
    Py_ssize_t at, name_len, v0, v1;
} header_line;

static PyObject *parse_head(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg))
        Py_RETURN_NONE;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    if (n < 4 || d[0] == '\r' || d[0] == '\n')
        Py_RETURN_NONE;

    /* pass 1: find and check every line; nothing is allocated before the message is known
     * to be a clean one. Lines end in CRLF; the first CRLFCRLF ends the head (as
     * bytes.find(b"\r\n\r\n")); any LF without a CR before it is a bare LF. */
    header_line lines[MAX_HEADERS];
    int count = 0;
    Py_ssize_t first_len = -1, body_at = -1, pos = 0;
    while (body_at < 0) {
        const unsigned char *lf = memchr(d + pos, '\n', (size_t)(n - pos));
        if (lf == NULL)
            Py_RETURN_NONE; /* no CRLFCRLF */
        Py_ssize_t k = lf - d;
        if (k <= pos || d[k - 1] != '\r')
            Py_RETURN_NONE; /* bare LF (or an empty line, which is the end: seen below) */
        Py_ssize_t len = k - 1 - pos;
        if (len > MAX_LINE)
            Py_RETURN_NONE;
        if (k + 2 < n && d[k + 1] == '\r' && d[k + 2] == '\n')
            body_at = k + 3;
        if (first_len < 0) {
            first_len = len;
        } else {
            const unsigned char *ln = d + pos;
            if (count >= MAX_HEADERS)
                Py_RETURN_NONE;
            Py_ssize_t nlen = 0;
            while (nlen < len && is_token[ln[nlen]])
                nlen++;
            Py_ssize_t c = nlen;
            while (c < len && is_ws(ln[c]))
                c++;
            if (nlen == 0 || c >= len || ln[c] != ':')
                Py_RETURN_NONE; /* folded, no colon, not a token name */
            Py_ssize_t v0 = c + 1, v1 = len;
            while (v0 < v1 && is_ws(ln[v0]))
                v0++;
            while (v1 > v0 && is_ws(ln[v1 - 1]))
                v1--;
            header_line *h = &lines[count++];
            h->at = pos;
            h->name_len = nlen;
            h->v0 = pos + v0;
            h->v1 = pos + v1;
        }
        pos = k + 1;
    }

    /* start line */
    int is_request;
    long status = 0;
    Py_ssize_t m_len = 0, u_at = 0, u_len = 0, r_at = 0, r_len = 0;
    if (first_len >= 4 && lower(d[0]) == 's' && lower(d[1]) == 'i' && lower(d[2]) == 'p' &&
        d[3] == '/') {
        /* SIP/2.0 SP 3DIGIT [SP reason] */
        is_request = 0;
        if (first_len < 11 || memcmp(d, "SIP/2.0 ", 8) != 0)
            Py_RETURN_NONE;
        for (int i = 8; i < 11; i++) {
            if (d[i] < '0' || d[i] > '9')
                Py_RETURN_NONE;
            status = status * 10 + (d[i] - '0');
        }
        if (status < 100 || status > 699)
            Py_RETURN_NONE;
        if (first_len > 11) {
            if (d[11] != ' ')
                Py_RETURN_NONE;
            Py_ssize_t a = 12, b = first_len;
            while (a < b && is_ws(d[a]))
                a++;
            while (b > a && is_ws(d[b - 1]))
                b--;
            r_at = a;
            r_len = b - a;
        }
    } else {
        /* METHOD SP URI SP SIP/2.0 */
        is_request = 1;
        Py_ssize_t i = 0;
        while (i < first_len && is_token[d[i]])
            i++;
        m_len = i;
        if (m_len == 0 || m_len > MAX_METHOD || i >= first_len || d[i] != ' ')
            Py_RETURN_NONE;
        u_at = ++i;
        while (i < first_len && d[i] > 0x20 && d[i] < 0x7f)
            i++;
        u_len = i - u_at;
        if (u_len == 0 || first_len - i != 8 || memcmp(d + i, " SIP/2.0", 8) != 0)
            Py_RETURN_NONE;
        if (!ruri_clean(d + u_at, u_len))
            Py_RETURN_NONE;
    }

    /* pass 2: the header dict */
    PyObject *headers = new_dict(count);
    if (headers == NULL)
        return NULL;
    unsigned long stamp = ++call_stamp;
    for (int li = 0; li < count; li++) {
        const header_line *h = &lines[li];
        const unsigned char *name = d + h->at;
        Py_ssize_t nlen = h->name_len;
        PyObject *key = NULL;
        cache_entry *e = NULL;
        int err = 0;
        unsigned char c0 = lower(name[0]);
        if (nlen == 1 && c0 >= 'a' && c0 <= 'z' && compact_set[c0 - 'a']) {
            e = compact[c0 - 'a'];
            if (e == NULL)
                goto none; /* its long name could not be cached */
        } else if (nlen <= CACHE_KEYLEN) {
            unsigned char buf[CACHE_KEYLEN];
            size_t hh = HASH_INIT;
            for (Py_ssize_t i = 0; i < nlen; i++) {
                buf[i] = lower(name[i]);
                hh = HASH_STEP(hh, buf[i]);
            }
            e = cache_entry_for(&name_cache, buf, nlen, hh, &err);
            if (err)
                goto fail;
            if (e == NULL) { /* cache full: build the key */
                key = latin1(buf, nlen);
                if (key == NULL)
                    goto fail;
            }
        } else {
            goto none; /* unusually long name: the Python parser */
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
    if (method && ruri && reason && st && bat)
        out = PyTuple_Pack(8, is_request ? Py_True : Py_False, method, ruri, s_version, st,
                           reason, headers, bat);
    Py_XDECREF(method);
    Py_XDECREF(ruri);
    Py_XDECREF(reason);
    Py_XDECREF(st);
    Py_XDECREF(bat);
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

static void strip_ws(const unsigned char *p, Py_ssize_t *a, Py_ssize_t *b)
{
    while (*a < *b && is_ws(p[*a]))
        (*a)++;
    while (*b > *a && is_ws(p[*b - 1]))
        (*b)--;
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

/* Last parameter named `name` (ASCII case ignored) in p[0:n] split at ';', as
 * headers.header_params' simple path keeps it: *found 0 = absent, 1 = with value
 * [*va, *vb), 2 = without '='. The caller has checked there is no '"', SP or HT. */
static void last_param(const unsigned char *p, Py_ssize_t n, const char *name, Py_ssize_t nn,
                       int *found, Py_ssize_t *va, Py_ssize_t *vb)
{
    Py_ssize_t i = 0;
    *found = 0;
    while (i <= n) {
        Py_ssize_t j = i;
        while (j < n && p[j] != ';')
            j++;
        Py_ssize_t eq = i;
        while (eq < j && p[eq] != '=')
            eq++;
        if (eq_nocase(p + i, eq - i, name, nn)) {
            if (eq < j) {
                *found = 1;
                *va = eq + 1;
                *vb = j;
            } else {
                *found = 2;
            }
        }
        i = j + 1;
    }
}

static int has_quote_or_ws(const unsigned char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i] == '"' || is_ws(p[i]))
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- SIP URI (SIP_URI_FAST) */
typedef struct {
    Py_ssize_t user_a, user_b; /* user_a < 0: no '@' */
    Py_ssize_t host_a, host_b;
    long port; /* -1: none or out of range */
} uri_parts;

/* 1 when u[0:n] fully matches uri.SIP_URI_FAST; fills parts (offsets into u). */
static int sip_uri_fast(const unsigned char *u, Py_ssize_t n, uri_parts *out)
{
    if (n < 5 || memcmp(u, "sip:", 4) != 0)
        return 0;
    Py_ssize_t i = 4, at = -1;
    for (Py_ssize_t k = 4; k < n; k++)
        if (u[k] == '@') {
            at = k;
            break;
        }
    out->user_a = -1;
    out->user_b = -1;
    if (at >= 0) {
        for (Py_ssize_t k = 4; k < at; k++)
            if (!uri_c1[u[k]])
                return 0;
        out->user_a = 4;
        out->user_b = at;
        i = at + 1;
    }
    out->host_a = i;
    while (i < n && uri_c1[u[i]])
        i++;
    out->host_b = i;
    if (out->host_b == out->host_a)
        return 0;
    out->port = -1;
    if (i < n && u[i] == ':') {
        Py_ssize_t d0 = ++i;
        long port = 0;
        while (i < n && u[i] >= '0' && u[i] <= '9' && i - d0 < 5)
            port = port * 10 + (u[i++] - '0');
        if (i == d0)
            return 0;
        out->port = port > 65535 ? -1 : port;
    }
    if (i < n) {
        if (u[i] != ';')
            return 0;
        for (i++; i < n; i++)
            if (!uri_c2[u[i]])
                return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- name_addr */
static PyObject *name_addr(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n0;
    const unsigned char *v = ucs1(arg, &n0);
    if (v == NULL)
        Py_RETURN_NONE;
    Py_ssize_t a = 0, b = n0;
    strip_ws(v, &a, &b);
    v += a;
    Py_ssize_t n = b - a;
    if (n == 0)
        Py_RETURN_NONE;

    Py_ssize_t lt = -1;
    for (Py_ssize_t i = 0; i < n; i++)
        if (v[i] == '<') {
            lt = i;
            break;
        }
    Py_ssize_t d_a = 0, d_b = 0, u_a, u_b;
    int quoted = 0, tag_found = 0;
    Py_ssize_t t_a = 0, t_b = 0;
    if (lt < 0) {
        /* addr-spec without parameters: the whole value is the URI */
        for (Py_ssize_t i = 0; i < n; i++)
            if (v[i] == ';' || v[i] == '"')
                Py_RETURN_NONE;
        u_a = 0;
        u_b = n;
    } else {
        if (v[0] == '"') {
            Py_ssize_t q = 1;
            while (q < n && v[q] != '"') {
                if (v[q] == '\\')
                    Py_RETURN_NONE;
                q++;
            }
            if (q >= n)
                Py_RETURN_NONE;
            Py_ssize_t p = q + 1;
            if (p < n && v[p] == ' ')
                p++;
            if (p >= n || v[p] != '<')
                Py_RETURN_NONE;
            lt = p;
            quoted = 1;
            d_a = 1;
            d_b = q;
        } else {
            for (Py_ssize_t i = 0; i < lt; i++)
                if (v[i] == '"')
                    Py_RETURN_NONE;
            d_a = 0;
            d_b = lt;
            strip_ws(v, &d_a, &d_b);
        }
        Py_ssize_t gt = lt + 1;
        while (gt < n && v[gt] != '>')
            gt++;
        if (gt >= n)
            Py_RETURN_NONE;
        u_a = lt + 1;
        u_b = gt;
        Py_ssize_t p = gt + 1;
        while (p < n && is_ws(v[p]))
            p++;
        if (p < n) {
            if (v[p] != ';')
                Py_RETURN_NONE;
            const unsigned char *pp = v + p + 1;
            Py_ssize_t pn = n - p - 1;
            if (has_quote_or_ws(pp, pn))
                Py_RETURN_NONE; /* header_params' general path */
            last_param(pp, pn, "tag", 3, &tag_found, &t_a, &t_b);
            t_a += p + 1;
            t_b += p + 1;
        }
    }
    (void)quoted;
    uri_parts up;
    if (!sip_uri_fast(v + u_a, u_b - u_a, &up))
        Py_RETURN_NONE;

    PyObject *display = d_b > d_a ? people_text(v + d_a, d_b - d_a) : (Py_INCREF(s_empty), s_empty);
    PyObject *uri = latin1(v + u_a, u_b - u_a);
    PyObject *user = up.user_a < 0 ? (Py_INCREF(s_empty), s_empty)
                                    : latin1(v + u_a + up.user_a, up.user_b - up.user_a);
    PyObject *host = latin1(v + u_a + up.host_a, up.host_b - up.host_a);
    PyObject *port = up.port < 0 ? (Py_INCREF(Py_None), Py_None) : PyLong_FromLong(up.port);
    PyObject *tag = tag_found == 1 ? latin1(v + t_a, t_b - t_a) : (Py_INCREF(Py_None), Py_None);
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
    Py_ssize_t n;
    const unsigned char *v = ucs1(arg, &n);
    if (v == NULL || n < 11 || memcmp(v, "SIP/2.0/", 8) != 0)
        Py_RETURN_NONE;
    if (memchr(v, ',', (size_t)n) != NULL)
        Py_RETURN_NONE; /* several via-parms: message.vias splits them first */
    Py_ssize_t i = 8;
    while (i < n && ((v[i] | 32) >= 'a' && (v[i] | 32) <= 'z'))
        i++;
    if (i == 8 || i >= n || v[i] != ' ')
        Py_RETURN_NONE;
    Py_ssize_t h = ++i;
    while (i < n && via_host[v[i]])
        i++;
    if (i == h)
        Py_RETURN_NONE;
    if (i < n && v[i] == ':') {
        Py_ssize_t d0 = ++i;
        while (i < n && v[i] >= '0' && v[i] <= '9' && i - d0 < 5)
            i++;
        if (i == d0)
            Py_RETURN_NONE;
    }
    if (i == n)
        return (Py_INCREF(s_empty), s_empty);
    if (v[i] != ';')
        Py_RETURN_NONE;
    const unsigned char *pp = v + i + 1;
    Py_ssize_t pn = n - i - 1;
    if (has_quote_or_ws(pp, pn))
        Py_RETURN_NONE;
    int found;
    Py_ssize_t a = 0, b = 0;
    last_param(pp, pn, "branch", 6, &found, &a, &b);
    if (found != 1)
        return (Py_INCREF(s_empty), s_empty);
    return latin1(pp + a, b - a);
}

/* ---------------------------------------------------------------- digest_user_realm */
static PyObject *digest_user_realm(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n0;
    const unsigned char *v = ucs1(arg, &n0);
    if (v == NULL)
        Py_RETURN_NONE;
    Py_ssize_t a = 0, b = n0;
    strip_ws(v, &a, &b);
    if (a == b)
        Py_RETURN_NONE;
    /* scheme word up to the first SP, unless it has '=' (then there is none) */
    Py_ssize_t sp = a;
    while (sp < b && v[sp] != ' ')
        sp++;
    Py_ssize_t r = sp < b ? sp + 1 : b;
    if (memchr(v + a, '=', (size_t)(sp - a)) != NULL)
        r = a;
    Py_ssize_t ua = -1, ub = -1, ra = -1, rb = -1;
    Py_ssize_t i = r;
    for (;;) { /* parts split at ',', as digest._fast_params */
        Py_ssize_t j = i;
        while (j < b && v[j] != ',')
            j++;
        Py_ssize_t eq = i;
        while (eq < j && v[eq] != '=')
            eq++;
        if (eq == j) {
            for (Py_ssize_t k = i; k < j; k++)
                if (!is_ws(v[k]))
                    Py_RETURN_NONE;
        } else {
            Py_ssize_t va = eq + 1, vb = j;
            strip_ws(v, &va, &vb);
            if (vb > va && v[va] == '"') {
                if (vb - va < 2 || v[vb - 1] != '"')
                    Py_RETURN_NONE;
                for (Py_ssize_t k = va; k < vb; k++)
                    if (v[k] == '\\')
                        Py_RETURN_NONE;
                va++;
                vb--;
            } else {
                for (Py_ssize_t k = va; k < vb; k++)
                    if (v[k] == '"')
                        Py_RETURN_NONE;
            }
            Py_ssize_t na = i, nb = eq;
            strip_ws(v, &na, &nb);
            if (ua < 0 && eq_nocase(v + na, nb - na, "username", 8)) {
                ua = va;
                ub = vb;
            } else if (ra < 0 && eq_nocase(v + na, nb - na, "realm", 5)) {
                ra = va;
                rb = vb;
            }
        }
        if (j >= b)
            break;
        i = j + 1;
    }
    PyObject *user = ua < 0 ? (Py_INCREF(s_empty), s_empty) : latin1(v + ua, ub - ua);
    PyObject *realm = ra < 0 ? (Py_INCREF(s_empty), s_empty) : latin1(v + ra, rb - ra);
    PyObject *out = NULL;
    if (user && realm)
        out = PyTuple_Pack(2, user, realm);
    Py_XDECREF(user);
    Py_XDECREF(realm);
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
        Py_ssize_t kn, vn;
        const unsigned char *kp = ucs1(k, &kn), *vp = ucs1(val, &vn);
        if (kp == NULL || vp == NULL || kn != 1 || kp[0] < 'a' || kp[0] > 'z')
            continue;
        int err;
        cache_entry *e = cache_entry_for(&name_cache, vp, vn, hash_bytes(vp, vn), &err);
        if (err)
            return NULL;
        compact[kp[0] - 'a'] = e; /* NULL (not cached): the name is left to Python */
        compact_set[kp[0] - 'a'] = 1;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"parse_head", parse_head, METH_O,
     "parse_head(data: bytes) -> (is_request, method, ruri, version, status, reason, headers,"
     " body_at) | None: the start line and header dict of a clean message."},
    {"name_addr", name_addr, METH_O,
     "name_addr(value: str) -> (display, uri_text, scheme, user, host, port, tag) | None"},
    {"via_branch", via_branch, METH_O, "via_branch(value: str) -> str | None"},
    {"digest_user_realm", digest_user_realm, METH_O,
     "digest_user_realm(value: str) -> (username, realm) | None"},
    {"set_compact", set_compact, METH_O, "set_compact(COMPACT): compact header names to use"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "C fast paths for sipwatch.sip (see speedups.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    init_tables();
    s_version = PyUnicode_InternFromString("SIP/2.0");
    s_empty = PyUnicode_New(0, 0);
    s_sip = PyUnicode_InternFromString("sip");
    if (s_version == NULL || s_empty == NULL || s_sip == NULL)
        return NULL;
    return PyModule_Create(&module);
}
