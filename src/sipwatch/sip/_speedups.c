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
#define MAX_BODY 65536   /* message.MAX_BODY */
#define MAX_CALL_ID 256  /* message.MAX_CALL_ID */
#define MAX_FROM 256     /* message.MAX_FROM */
#define MAX_TO 256       /* message.MAX_TO */
#define MAX_VIA 1024     /* message.MAX_VIA */
#define MAX_CONTACT 256  /* message.MAX_CONTACT */

/* ---------------------------------------------------------------- character classes */
static unsigned char is_token[256];   /* message._TOKEN */
static unsigned char uri_c1[256];     /* SIP_URI_FAST user/host: not @:;?<>"% SP HT [ ] , */
static unsigned char uri_c2[256];     /* SIP_URI_FAST params: c1 plus ':' and ';' */
static unsigned char via_host[256];   /* Via host: not SP HT ; : [ ] ( ) " , */
static unsigned char py_space[256];   /* str.isspace() of the latin-1 character (str.split) */

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
    for (int c = 0x09; c <= 0x0d; c++)
        py_space[c] = 1;
    for (int c = 0x1c; c <= 0x20; c++)
        py_space[c] = 1;
    py_space[0x85] = py_space[0xa0] = 1;
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

/* ---------------------------------------------------------------- check (message._check) */
enum {
    A_MISSING_VIA, A_LONG_VIA, A_MISSING_FROM, A_LONG_FROM, A_UNBALANCED_QUOTES, A_MISSING_TO,
    A_LONG_TO, A_MISSING_CALL_ID, A_LONG_CALL_ID, A_LONG_CONTACT, A_DUPLICATE_HEADER,
    A_MISSING_CSEQ, A_CSEQ_INVALID, A_CSEQ_TOO_LARGE, A_CSEQ_METHOD_MISMATCH,
    A_CONTENT_LENGTH_MISSING, A_CONTENT_LENGTH_INVALID, A_CONTENT_LENGTH_MISMATCH,
    A_BODY_TOO_LARGE, A_COUNT
};
static const char *const anomaly_names[A_COUNT] = {
    "missing_via", "long_via", "missing_from", "long_from", "unbalanced_quotes", "missing_to",
    "long_to", "missing_call_id", "long_call_id", "long_contact", "duplicate_header",
    "missing_cseq", "cseq_invalid", "cseq_too_large", "cseq_method_mismatch",
    "content_length_missing", "content_length_invalid", "content_length_mismatch",
    "body_too_large",
};
static PyObject *anomaly_str[A_COUNT]; /* interned codes */
enum {
    K_VIA, K_FROM, K_TO, K_CALL_ID, K_CSEQ, K_CONTACT, K_CONTENT_LENGTH, K_USER_AGENT, K_SERVER,
    K_AUTHORIZATION, K_PROXY_AUTHORIZATION, K_COUNT
};
static const char *const key_names[K_COUNT] = {
    "via", "from", "to", "call-id", "cseq", "contact", "content-length", "user-agent", "server",
    "authorization", "proxy-authorization",
};
static PyObject *key_str[K_COUNT]; /* interned canonical header keys */

static const unsigned char *ucs1(PyObject *s, Py_ssize_t *n);

/* message._odd_quotes */
static int odd_quotes(const unsigned char *p, Py_ssize_t n)
{
    int quoted = 0, escaped = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (escaped)
            escaped = 0;
        else if (quoted && p[i] == '\\')
            escaped = 1;
        else if (p[i] == '"')
            quoted = !quoted;
    }
    return quoted;
}

/* value.count('"') & 1 and _odd_quotes(value) */
static int unbalanced(const unsigned char *p, Py_ssize_t n)
{
    Py_ssize_t q = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        q += p[i] == '"';
    return (q & 1) && odd_quotes(p, n);
}

/* 1 when every byte of p[0:n] is in the set `chars` (as bytes.strip(chars) == b""). */
static int only_of(const unsigned char *p, Py_ssize_t n, const char *chars)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (strchr(chars, p[i]) == NULL || p[i] == 0)
            return 0;
    return 1;
}

typedef struct {
    unsigned char codes[A_COUNT]; /* anomaly codes in the order found */
    int ncodes;
    int has_cseq, has_cl;
    long long cseq_num;
    Py_ssize_t cm_a, cm_b;          /* CSeq method: offsets into cseq_v */
    const unsigned char *cseq_v;    /* CSeq value's latin-1 bytes */
    unsigned long long cl;          /* Content-Length */
    Py_ssize_t body_a, body_b;      /* body: offsets into the message */
} check_result;

/* The first str of a header's value list: 1 with its bytes, 0 absent, -1 unusual/error
 * (*err set when an exception is pending). */
static int first_value(PyObject *headers, int k, PyObject **lst, const unsigned char **p,
                       Py_ssize_t *n, int *err)
{
    *lst = PyDict_GetItemWithError(headers, key_str[k]);
    if (*lst == NULL) {
        *err = PyErr_Occurred() != NULL;
        return *err ? -1 : 0;
    }
    if (!PyList_Check(*lst) || PyList_GET_SIZE(*lst) < 1)
        return -1;
    *p = ucs1(PyList_GET_ITEM(*lst, 0), n);
    return *p == NULL ? -1 : 1;
}

/* Any str of the list longer than max (-1: not all str). */
static int any_longer(PyObject *lst, Py_ssize_t max)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(lst); i++) {
        PyObject *v = PyList_GET_ITEM(lst, i);
        if (!PyUnicode_Check(v))
            return -1;
        if (PyUnicode_GET_LENGTH(v) > max)
            return 1;
    }
    return 0;
}

#define ADD(code) (r->codes[r->ncodes++] = (unsigned char)(code))

/* message._check for a message parse_head accepted (terminated, no earlier anomaly): 1 when
 * *r holds its results, 0 when the Python code must decide (unusual CSeq number, bytes
 * after the body, ...), -1 on an exception. m: the request method (m_len 0: a response). */
static int check(PyObject *headers, const unsigned char *d, Py_ssize_t n, Py_ssize_t body_at,
                 const unsigned char *m, Py_ssize_t m_len, int is_request, check_result *r)
{
    PyObject *lst;
    const unsigned char *v;
    Py_ssize_t vn;
    int err = 0, got, dup = 0;
    memset(r, 0, sizeof(*r));

    got = first_value(headers, K_VIA, &lst, &v, &vn, &err);
    if (got < 0)
        return err ? -1 : 0;
    if (got == 0) {
        ADD(A_MISSING_VIA);
    } else {
        int lg = any_longer(lst, MAX_VIA);
        if (lg < 0)
            return 0;
        if (lg)
            ADD(A_LONG_VIA);
    }
    got = first_value(headers, K_FROM, &lst, &v, &vn, &err);
    if (got < 0)
        return err ? -1 : 0;
    if (got == 0) {
        ADD(A_MISSING_FROM);
    } else {
        if (vn > MAX_FROM)
            ADD(A_LONG_FROM);
        if (unbalanced(v, vn))
            ADD(A_UNBALANCED_QUOTES);
    }
    int from_quotes = r->ncodes > 0 && r->codes[r->ncodes - 1] == A_UNBALANCED_QUOTES;
    got = first_value(headers, K_TO, &lst, &v, &vn, &err);
    if (got < 0)
        return err ? -1 : 0;
    if (got == 0) {
        ADD(A_MISSING_TO);
    } else {
        if (vn > MAX_TO)
            ADD(A_LONG_TO);
        if (!from_quotes && unbalanced(v, vn))
            ADD(A_UNBALANCED_QUOTES);
    }
    got = first_value(headers, K_CALL_ID, &lst, &v, &vn, &err);
    if (got < 0)
        return err ? -1 : 0;
    if (got == 0)
        ADD(A_MISSING_CALL_ID);
    else if (vn > MAX_CALL_ID)
        ADD(A_LONG_CALL_ID);
    got = first_value(headers, K_CONTACT, &lst, &v, &vn, &err);
    if (got < 0)
        return err ? -1 : 0;
    if (got == 1) {
        int lg = any_longer(lst, MAX_CONTACT);
        if (lg < 0)
            return 0;
        if (lg)
            ADD(A_LONG_CONTACT);
    }
    static const int singletons[] = {K_CALL_ID, K_CSEQ, K_FROM, K_TO, K_CONTENT_LENGTH};
    for (size_t i = 0; i < sizeof(singletons) / sizeof(singletons[0]); i++) {
        lst = PyDict_GetItemWithError(headers, key_str[singletons[i]]);
        if (lst == NULL && PyErr_Occurred())
            return -1;
        if (lst != NULL && PyList_Check(lst) && PyList_GET_SIZE(lst) > 1)
            dup = 1;
    }
    if (dup)
        ADD(A_DUPLICATE_HEADER);

    /* CSeq: vals[0].split() must give "number method" */
    got = first_value(headers, K_CSEQ, &lst, &v, &vn, &err);
    if (got < 0)
        return err ? -1 : 0;
    if (got == 0) {
        ADD(A_MISSING_CSEQ);
    } else {
        Py_ssize_t i = 0, a0, a1, b0, b1;
        while (i < vn && py_space[v[i]])
            i++;
        a0 = i;
        while (i < vn && !py_space[v[i]])
            i++;
        a1 = i;
        while (i < vn && py_space[v[i]])
            i++;
        b0 = i;
        while (i < vn && !py_space[v[i]])
            i++;
        b1 = i;
        while (i < vn && py_space[v[i]])
            i++;
        if (a1 == a0 || b1 == b0 || i < vn) {
            ADD(A_CSEQ_INVALID);
        } else {
            if (a1 - a0 > 10)
                return 0; /* _cseq_odd */
            long long num = 0;
            for (Py_ssize_t k = a0; k < a1; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return 0; /* negative or not a number: _cseq_odd */
                num = num * 10 + (v[k] - '0');
            }
            r->has_cseq = 1;
            r->cseq_num = num;
            r->cseq_v = v;
            r->cm_a = b0;
            r->cm_b = b1;
            if (num >= 0x80000000LL)
                ADD(A_CSEQ_TOO_LARGE);
            if (is_request && (b1 - b0 != m_len || memcmp(v + b0, m, (size_t)m_len) != 0))
                ADD(A_CSEQ_METHOD_MISMATCH);
        }
    }

    /* body and Content-Length */
    Py_ssize_t blen = n - body_at;
    r->body_a = body_at;
    r->body_b = n;
    got = first_value(headers, K_CONTENT_LENGTH, &lst, &v, &vn, &err);
    if (got < 0)
        return err ? -1 : 0;
    if (got == 0) {
        if (!only_of(d + body_at, blen, "\r\n"))
            ADD(A_CONTENT_LENGTH_MISSING);
    } else {
        int digits = vn > 0 && vn < 20;
        unsigned long long cl = 0;
        for (Py_ssize_t k = 0; digits && k < vn; k++) {
            if (v[k] < '0' || v[k] > '9')
                digits = 0;
            else
                cl = cl * 10 + (unsigned long long)(v[k] - '0'); /* < 10**19 fits */
        }
        if (!digits) {
            ADD(A_CONTENT_LENGTH_INVALID);
        } else {
            r->has_cl = 1;
            r->cl = cl;
            if (cl < (unsigned long long)blen) {
                Py_ssize_t end = body_at + (Py_ssize_t)cl;
                if (!only_of(d + end, n - end, "\r\n\t "))
                    return 0; /* another message or a mismatch: looks_like_sip decides */
                r->body_b = end;
            } else if (cl > (unsigned long long)blen) {
                ADD(A_CONTENT_LENGTH_MISMATCH);
            }
        }
    }
    if (r->body_b - r->body_a > MAX_BODY) {
        ADD(A_BODY_TOO_LARGE);
        r->body_b = r->body_a + MAX_BODY;
    }
    return 1;
}
#undef ADD

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
    /* message._check's results, or None x5 when the Python code must run it */
    PyObject *anoms = NULL, *cnum = NULL, *cmeth = NULL, *clen = NULL, *body = NULL;
    check_result cr;
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
 * Python field parsers. Composes name_addr, via_branch and digest_user_realm. */
static PyObject *flat(PyObject *self, PyObject *args)
{
    PyObject *headers, *ruri;
    if (!PyArg_UnpackTuple(args, "flat", 2, 2, &headers, &ruri))
        return NULL;
    if (!PyDict_Check(headers) || !PyUnicode_Check(ruri))
        Py_RETURN_NONE;
    PyObject *f[10] = {NULL};
    PyObject *na[2] = {NULL, NULL}, *ru = NULL, *dg = NULL, *out = NULL;
    int err = 0;
    /* request-URI user: name_addr(ruri) when it reads the whole value as its URI */
    if (PyUnicode_GET_LENGTH(ruri) == 0) {
        f[0] = s_empty;
    } else {
        ru = name_addr(self, ruri);
        if (ru == NULL)
            goto done;
        if (ru == Py_None)
            goto none;
        int same = PyUnicode_Compare(PyTuple_GET_ITEM(ru, 1), ruri);
        if (same == -1 && PyErr_Occurred())
            goto done;
        if (same != 0)
            goto none;
        f[0] = PyTuple_GET_ITEM(ru, 3);
    }
    for (int w = 0; w < 2; w++) { /* From, To: (display, user, tag) */
        PyObject *v = first_of(headers, w ? K_TO : K_FROM, -1, &err);
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
    PyObject *v = first_of(headers, K_VIA, -1, &err);
    if (err)
        goto fail_or_none;
    if (v == NULL) {
        f[6] = s_empty;
        Py_INCREF(s_empty);
    } else {
        f[6] = via_branch(self, v); /* new reference */
        if (f[6] == NULL)
            goto done;
        if (f[6] == Py_None)
            goto none;
    }
    v = first_of(headers, K_USER_AGENT, K_SERVER, &err);
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
    v = first_of(headers, K_AUTHORIZATION, K_PROXY_AUTHORIZATION, &err);
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
    Py_XDECREF(f[6]);
    Py_XDECREF(f[7]);
    Py_XDECREF(ru);
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
    init_tables();
    s_version = PyUnicode_InternFromString("SIP/2.0");
    s_empty = PyUnicode_New(0, 0);
    s_sip = PyUnicode_InternFromString("sip");
    if (s_version == NULL || s_empty == NULL || s_sip == NULL)
        return NULL;
    for (int i = 0; i < A_COUNT; i++)
        if ((anomaly_str[i] = PyUnicode_InternFromString(anomaly_names[i])) == NULL)
            return NULL;
    for (int i = 0; i < K_COUNT; i++)
        if ((key_str[i] = PyUnicode_InternFromString(key_names[i])) == NULL)
            return NULL;
    return PyModule_Create(&module);
}
