/* sipcore.h: the pure-C SIP scanning pieces shared by two accelerators.
 *
 * - sip/_speedups.c reads the latin-1 bytes of Python strs and builds Python objects;
 * - native/scan.c (sipwatch._native) reads a raw message and fills a sw_msg, no objects.
 *
 * Nothing here touches a Python object: byte ranges go in, offsets and codes come out. Each
 * function handles only the clean, common shape of its input (the one the Python parser in
 * sip/message.py, headers.py, uri.py and digest.py reads the same way on its fast paths) and
 * answers 0 for anything else, so the Python code stays the one definition of the results;
 * the differential tests (tests/unit/test_sip_speedups.py, test_native_scan.py) hold both
 * users to it. Input is attacker bytes: every index is bounds-checked, no function reads
 * outside the range it is given, nothing recurses or allocates.
 *
 * Tables and the compact-name table are static, so each including module has its own copy:
 * call sc_init_tables() (and sc_set_compact() for names.COMPACT) once at module init.
 */
#ifndef SIPWATCH_SIP_SIPCORE_H
#define SIPWATCH_SIP_SIPCORE_H

#ifndef PY_SSIZE_T_CLEAN
#define PY_SSIZE_T_CLEAN
#endif
#include <Python.h> /* Py_ssize_t only */
#include <string.h>

/* message.py's limits */
#define SC_MAX_HEADERS 256
#define SC_MAX_LINE 8192
#define SC_MAX_METHOD 32
#define SC_MAX_RURI 256
#define SC_MAX_BODY 65536
#define SC_MAX_CALL_ID 256
#define SC_MAX_FROM 256
#define SC_MAX_TO 256
#define SC_MAX_VIA 1024
#define SC_MAX_CONTACT 256

/* ---------------------------------------------------------------- character classes */
static unsigned char sc_token[256];     /* message._TOKEN */
static unsigned char sc_uri1[256];      /* SIP_URI_FAST user/host: not @:;?<>"% SP HT [ ] , */
static unsigned char sc_uri2[256];      /* SIP_URI_FAST params: uri1 plus ':' and ';' */
static unsigned char sc_via_host[256];  /* Via host: not SP HT ; : [ ] ( ) " , */
static unsigned char sc_v6[256];        /* inside an IPv6 reference's brackets: [0-9A-Fa-f:.] */
static unsigned char sc_py_space[256];  /* str.isspace() of the latin-1 character (str.split) */

static inline void sc_init_tables(void)
{
    const char *tok = "!%*+.`_~'-";
    for (int c = 0; c < 256; c++) {
        sc_token[c] = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        sc_uri1[c] = sc_via_host[c] = 1;
        sc_py_space[c] = 0;
        sc_v6[c] = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f') ||
                   c == ':' || c == '.';
    }
    for (const char *p = tok; *p; p++)
        sc_token[(unsigned char)*p] = 1;
    for (const char *p = "@:;?<>\"% \t[],"; *p; p++)
        sc_uri1[(unsigned char)*p] = 0;
    memcpy(sc_uri2, sc_uri1, sizeof(sc_uri2));
    sc_uri2[':'] = sc_uri2[';'] = 1;
    for (const char *p = " \t;:[]()\","; *p; p++)
        sc_via_host[(unsigned char)*p] = 0;
    for (int c = 0x09; c <= 0x0d; c++)
        sc_py_space[c] = 1;
    for (int c = 0x1c; c <= 0x20; c++)
        sc_py_space[c] = 1;
    sc_py_space[0x85] = sc_py_space[0xa0] = 1;
}

static inline int sc_ws(unsigned char c) { return c == ' ' || c == '\t'; }
static inline unsigned char sc_lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* True when p[0:n] equals the lowercase ASCII word w (length wn) ignoring ASCII case. */
static inline int sc_eq_nocase(const unsigned char *p, Py_ssize_t n, const char *w, Py_ssize_t wn)
{
    if (n != wn)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (sc_lower(p[i]) != (unsigned char)w[i])
            return 0;
    return 1;
}

/* Narrow [*a, *b) to strip SP/HT at both ends (str.strip(" \t")). */
static inline void sc_strip_ws(const unsigned char *p, Py_ssize_t *a, Py_ssize_t *b)
{
    while (*a < *b && sc_ws(p[*a]))
        (*a)++;
    while (*b > *a && sc_ws(p[*b - 1]))
        (*b)--;
}

/* 1 when every byte of p[0:n] is printable ASCII (0x20-0x7E) or HT; written without
 * a table or an early exit so that the compiler can vectorise it. */
static inline int sc_all_head_chars(const unsigned char *p, Py_ssize_t n)
{
    unsigned char ok = 1;
    for (Py_ssize_t i = 0; i < n; i++)
        ok &= (unsigned char)((unsigned char)(p[i] - 0x20) < 0x5f) | (p[i] == '\t');
    return ok;
}

static inline int sc_has_quote_or_ws(const unsigned char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i] == '"' || sc_ws(p[i]))
            return 1;
    return 0;
}

/* 1 when every byte of p[0:n] is in the set `chars` (as bytes.strip(chars) == b""). */
static inline int sc_only_of(const unsigned char *p, Py_ssize_t n, const char *chars)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i] == 0 || strchr(chars, p[i]) == NULL)
            return 0;
    return 1;
}

/* message._odd_quotes */
static inline int sc_odd_quotes(const unsigned char *p, Py_ssize_t n)
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
static inline int sc_unbalanced(const unsigned char *p, Py_ssize_t n)
{
    Py_ssize_t q = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        q += p[i] == '"';
    return (q & 1) && sc_odd_quotes(p, n);
}

/* Last parameter named `name` (ASCII case ignored) in p[0:n] split at ';', as
 * headers.header_params' simple path keeps it: *found 0 = absent, 1 = with value
 * [*va, *vb), 2 = without '='. The caller has checked there is no '"', SP or HT. */
static inline void sc_last_param(const unsigned char *p, Py_ssize_t n, const char *name,
                                 Py_ssize_t nn, int *found, Py_ssize_t *va, Py_ssize_t *vb)
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
        if (sc_eq_nocase(p + i, eq - i, name, nn)) {
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

/* ---------------------------------------------------------------- request-URI */
/* Request-URI checks of message._parse that would add an anomaly: 1 when clean. */
static inline int sc_ruri_clean(const unsigned char *u, Py_ssize_t n)
{
    if (n > SC_MAX_RURI)
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

/* ---------------------------------------------------------------- host [":" port] */
/* The host of uri.SIP_URI_FAST and headers._VIA_FAST at p[*i]: an IPv6 reference
 * "\[[0-9A-Fa-f:.]+\]" (host without its brackets, as both give it: no check that it is a
 * valid address), else a run of `plain` characters (a class without '['). Then the optional
 * ":[0-9]{1,5}"; *port is its value, or -1 when there is none or it is above 65535 (both
 * give None then). 1 with *i after it, 0 when there is no host of that shape (an empty one,
 * an unclosed or empty bracket, a ':' without digits). Six or more digits are not refused
 * here: the caller sees a digit at *i, which no caller accepts. */
static inline int sc_hostport(const unsigned char *p, Py_ssize_t n, Py_ssize_t *i,
                              const unsigned char *plain, Py_ssize_t *ha, Py_ssize_t *hb,
                              long *port)
{
    Py_ssize_t k = *i;
    if (k < n && p[k] == '[') {
        *ha = ++k;
        while (k < n && sc_v6[p[k]])
            k++;
        if (k == *ha || k >= n || p[k] != ']')
            return 0;
        *hb = k++;
    } else {
        *ha = k;
        while (k < n && plain[p[k]])
            k++;
        if (k == *ha)
            return 0;
        *hb = k;
    }
    *port = -1;
    if (k < n && p[k] == ':') {
        Py_ssize_t d0 = ++k;
        long v = 0;
        while (k < n && p[k] >= '0' && p[k] <= '9' && k - d0 < 5)
            v = v * 10 + (p[k++] - '0');
        if (k == d0)
            return 0;
        *port = v > 65535 ? -1 : v;
    }
    *i = k;
    return 1;
}

/* ---------------------------------------------------------------- SIP URI (SIP_URI_FAST) */
typedef struct {
    Py_ssize_t user_a, user_b; /* user_a < 0: no '@' */
    Py_ssize_t host_a, host_b; /* an IPv6 reference's host without its brackets */
    long port; /* -1: none or out of range */
} sc_uri_parts;

/* 1 when u[0:n] fully matches uri.SIP_URI_FAST (sip:[user@]host[:port][;params], the host a
 * name or an IPv6 reference); fills parts (offsets into u). */
static inline int sc_sip_uri_fast(const unsigned char *u, Py_ssize_t n, sc_uri_parts *out)
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
            if (!sc_uri1[u[k]])
                return 0;
        out->user_a = 4;
        out->user_b = at;
        i = at + 1;
    }
    if (!sc_hostport(u, n, &i, sc_uri1, &out->host_a, &out->host_b, &out->port))
        return 0;
    if (i < n) {
        if (u[i] != ';')
            return 0;
        for (i++; i < n; i++)
            if (!sc_uri2[u[i]])
                return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- name-addr */
typedef struct {
    Py_ssize_t d_a, d_b; /* display name as written: quoted (no quotes) or plain, stripped */
    Py_ssize_t u_a, u_b; /* URI text */
    sc_uri_parts uri;    /* offsets into the URI text */
    int tag;             /* 0: no tag parameter, 1: tag=value [t_a, t_b), 2: tag without '=' */
    Py_ssize_t t_a, t_b;
} sc_name_addr;

/* The tag of header parameters v[p+1:b] (after the ';' at v[p]) as headers.header_params'
 * simple path keeps it (o->tag, o->t_a, o->t_b): 0 when it would take its general path (a
 * '"', SP or HT). */
static inline int sc_name_addr_tag(const unsigned char *v, Py_ssize_t p, Py_ssize_t b,
                                   sc_name_addr *o)
{
    const unsigned char *pp = v + p + 1;
    Py_ssize_t pn = b - p - 1;
    if (sc_has_quote_or_ws(pp, pn))
        return 0; /* header_params' general path */
    Py_ssize_t ta = 0, tb = 0;
    sc_last_param(pp, pn, "tag", 3, &o->tag, &ta, &tb);
    o->t_a = ta + p + 1;
    o->t_b = tb + p + 1;
    return 1;
}

/* headers.parse_name_addr(value) for its usual shapes with a sip: URI (SIP_URI_FAST) and
 * simple header parameters: name-addr (_NAME_ADDR_FAST; a display name with a '"' that is not
 * its first character: _parse_name_addr_general), or addr-spec without a display name
 * (_parse_name_addr_general: the URI up to the first ';', header parameters after it, RFC
 * 3261 20.10). 1 with the parts (offsets into v), 0 when the Python code must read it. The
 * display name still needs text.text() (UTF-8 when valid) when it is not ASCII. */
static inline int sc_parse_name_addr(const unsigned char *v, Py_ssize_t n0, sc_name_addr *o)
{
    Py_ssize_t a = 0, b = n0;
    sc_strip_ws(v, &a, &b);
    if (a == b)
        return 0;
    Py_ssize_t lt = -1;
    for (Py_ssize_t i = a; i < b; i++)
        if (v[i] == '<') {
            lt = i;
            break;
        }
    o->d_a = o->d_b = a;
    o->tag = 0;
    o->t_a = o->t_b = a;
    if (lt < 0) {
        /* addr-spec: uri_text is the value up to the first ';', stripped */
        Py_ssize_t semi = b;
        for (Py_ssize_t i = a; i < b; i++) {
            if (v[i] == '"')
                return 0; /* a display name, or the parameters' general path */
            if (v[i] == ';' && semi == b)
                semi = i;
        }
        o->u_a = a;
        o->u_b = semi;
        while (o->u_b > a && sc_ws(v[o->u_b - 1]))
            o->u_b--;
        if (semi < b && !sc_name_addr_tag(v, semi, b, o))
            return 0;
    } else {
        if (v[a] == '"') {
            Py_ssize_t q = a + 1;
            while (q < b && v[q] != '"') {
                if (v[q] == '\\')
                    return 0;
                q++;
            }
            if (q >= b)
                return 0;
            Py_ssize_t p = q + 1;
            if (p < b && v[p] == ' ')
                p++;
            if (p >= b || v[p] != '<')
                return 0;
            lt = p;
            o->d_a = a + 1;
            o->d_b = q;
        } else {
            /* everything before the first '<', stripped: the regex's plain display, or with a
             * '"' in it (not first) _parse_name_addr_general's, which reads it the same way;
             * its URI is then stripped, which changes nothing that SIP_URI_FAST reads */
            o->d_a = a;
            o->d_b = lt;
            sc_strip_ws(v, &o->d_a, &o->d_b);
        }
        Py_ssize_t gt = lt + 1;
        while (gt < b && v[gt] != '>')
            gt++;
        if (gt >= b)
            return 0;
        o->u_a = lt + 1;
        o->u_b = gt;
        Py_ssize_t p = gt + 1;
        while (p < b && sc_ws(v[p]))
            p++;
        if (p < b && (v[p] != ';' || !sc_name_addr_tag(v, p, b, o)))
            return 0;
    }
    return sc_sip_uri_fast(v + o->u_a, o->u_b - o->u_a, &o->uri);
}

/* ---------------------------------------------------------------- Via branch */
/* headers.parse_via(value).branch for one via-parm of the usual shape (headers._VIA_FAST:
 * sent-by a name or an IPv6 reference): 1 with the branch in v[*a:*b] (empty when there is
 * none), 0 when the Python code must read it (also for any ',': parse_via reads one
 * via-parm, and a Via header line's top one is sc_top_via_branch's). */
static inline int sc_via_branch(const unsigned char *v, Py_ssize_t n, Py_ssize_t *a,
                                Py_ssize_t *b)
{
    *a = *b = 0;
    if (n < 11 || memcmp(v, "SIP/2.0/", 8) != 0)
        return 0;
    if (memchr(v, ',', (size_t)n) != NULL)
        return 0; /* parse_via would read the rest as parameters */
    Py_ssize_t i = 8;
    while (i < n && ((v[i] | 32) >= 'a' && (v[i] | 32) <= 'z'))
        i++;
    if (i == 8 || i >= n || v[i] != ' ')
        return 0;
    i++;
    Py_ssize_t ha, hb;
    long port;
    if (!sc_hostport(v, n, &i, sc_via_host, &ha, &hb, &port))
        return 0;
    if (i == n)
        return 1;
    if (v[i] != ';')
        return 0;
    const unsigned char *pp = v + i + 1;
    Py_ssize_t pn = n - i - 1;
    if (sc_has_quote_or_ws(pp, pn))
        return 0;
    int found;
    Py_ssize_t pa = 0, pb = 0;
    sc_last_param(pp, pn, "branch", 6, &found, &pa, &pb);
    if (found == 1) {
        *a = pa + i + 1;
        *b = pb + i + 1;
    }
    return 1;
}

/* The branch of the top Via of a Via header value, message.vias[0].branch for one value:
 * sc_via_branch of the value when it has no ','; else headers.split_commas' simple path (no
 * '"' or '<' in the value: split at every ',', strip SP/HT, drop empty parts), then
 * sc_via_branch of the first part. 1 with the branch in
 * v[*a:*b], 0 when the Python code must read it (among others when that part is not of
 * the usual shape: parse_via might give None and vias[0] be a later one). */
static inline int sc_top_via_branch(const unsigned char *v, Py_ssize_t n, Py_ssize_t *a,
                                    Py_ssize_t *b)
{
    if (memchr(v, ',', (size_t)n) == NULL)
        return sc_via_branch(v, n, a, b); /* message.vias: parse_via(value) as it is */
    Py_ssize_t pa = 0, pb = 0;
    int seen = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (v[i] == '"' || v[i] == '<')
            return 0; /* split_commas' careful path */
    for (Py_ssize_t i = 0; i <= n && !seen; i++) {
        if (i == n || v[i] == ',') {
            Py_ssize_t x = pa, y = i;
            sc_strip_ws(v, &x, &y);
            if (x < y) {
                pa = x;
                pb = y;
                seen = 1;
            } else {
                pa = i + 1;
            }
        }
    }
    if (!seen || !sc_via_branch(v + pa, pb - pa, a, b))
        return 0;
    *a += pa;
    *b += pa;
    return 1;
}

/* ---------------------------------------------------------------- digest username, realm */
/* digest.parse_digest(value)'s username and realm when digest._fast_params reads it: 1 with
 * v[*ua:*ub] and v[*ra:*rb] (*ua / *ra -1: absent, ''), 0 when the Python code must. */
static inline int sc_digest_user_realm(const unsigned char *v, Py_ssize_t n0, Py_ssize_t *ua,
                                       Py_ssize_t *ub, Py_ssize_t *ra, Py_ssize_t *rb)
{
    Py_ssize_t a = 0, b = n0;
    *ua = *ub = *ra = *rb = -1;
    sc_strip_ws(v, &a, &b);
    if (a == b)
        return 0;
    /* scheme word up to the first SP, unless it has '=' (then there is none) */
    Py_ssize_t sp = a;
    while (sp < b && v[sp] != ' ')
        sp++;
    Py_ssize_t r = sp < b ? sp + 1 : b;
    if (memchr(v + a, '=', (size_t)(sp - a)) != NULL)
        r = a;
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
                if (!sc_ws(v[k]))
                    return 0;
        } else {
            Py_ssize_t va = eq + 1, vb = j;
            sc_strip_ws(v, &va, &vb);
            if (vb > va && v[va] == '"') {
                if (vb - va < 2 || v[vb - 1] != '"')
                    return 0;
                for (Py_ssize_t k = va; k < vb; k++)
                    if (v[k] == '\\')
                        return 0;
                va++;
                vb--;
            } else {
                for (Py_ssize_t k = va; k < vb; k++)
                    if (v[k] == '"')
                        return 0;
            }
            Py_ssize_t na = i, nb = eq;
            sc_strip_ws(v, &na, &nb);
            if (*ua < 0 && sc_eq_nocase(v + na, nb - na, "username", 8)) {
                *ua = va;
                *ub = vb;
            } else if (*ra < 0 && sc_eq_nocase(v + na, nb - na, "realm", 5)) {
                *ra = va;
                *rb = vb;
            }
        }
        if (j >= b)
            break;
        i = j + 1;
    }
    return 1;
}

/* ---------------------------------------------------------------- header names -> keys */
/* The canonical keys the checks and the flat fields read (message._check, store rows). */
enum {
    SC_K_VIA, SC_K_FROM, SC_K_TO, SC_K_CALL_ID, SC_K_CSEQ, SC_K_CONTACT, SC_K_CONTENT_LENGTH,
    SC_K_USER_AGENT, SC_K_SERVER, SC_K_AUTHORIZATION, SC_K_PROXY_AUTHORIZATION,
    SC_K_CONTENT_TYPE, SC_K_COUNT
};
static const char *const sc_key_names[SC_K_COUNT] = {
    "via", "from", "to", "call-id", "cseq", "contact", "content-length", "user-agent", "server",
    "authorization", "proxy-authorization", "content-type",
};

/* SC_K_* of a canonical key (lowercase), or -1 for any other header. */
static inline int sc_known_key(const unsigned char *k, Py_ssize_t n)
{
#define SC_IS(w) (memcmp(k, w, sizeof(w) - 1) == 0)
    switch (n) {
    case 2: return SC_IS("to") ? SC_K_TO : -1;
    case 3: return SC_IS("via") ? SC_K_VIA : -1;
    case 4: return SC_IS("from") ? SC_K_FROM : SC_IS("cseq") ? SC_K_CSEQ : -1;
    case 6: return SC_IS("server") ? SC_K_SERVER : -1;
    case 7: return SC_IS("call-id") ? SC_K_CALL_ID : SC_IS("contact") ? SC_K_CONTACT : -1;
    case 10: return SC_IS("user-agent") ? SC_K_USER_AGENT : -1;
    case 12: return SC_IS("content-type") ? SC_K_CONTENT_TYPE : -1;
    case 13: return SC_IS("authorization") ? SC_K_AUTHORIZATION : -1;
    case 14: return SC_IS("content-length") ? SC_K_CONTENT_LENGTH : -1;
    case 19: return SC_IS("proxy-authorization") ? SC_K_PROXY_AUTHORIZATION : -1;
    default: return -1;
    }
#undef SC_IS
}

/* Compact forms (names.COMPACT, given by sc_set_compact): per letter 'a'..'z' its long name. */
#define SC_KEY_MAX 40 /* longest name kept here (and by _speedups' name cache) */
enum { SC_COMPACT_NONE, SC_COMPACT_OK, SC_COMPACT_ODD };
typedef struct {
    unsigned char state; /* SC_COMPACT_ODD: a compact form whose long name is not kept here */
    unsigned char len;
    unsigned char name[SC_KEY_MAX];
} sc_compact_entry;
static sc_compact_entry sc_compact[26];

/* Record a compact form: letter (a single lowercase ASCII letter) -> long name. 0 when kept;
 * -1 when the pair is not of the kept shape (the letter is then refused: see
 * sc_canonical_key), -2 when the letter itself is not a..z (the caller decides). */
static inline int sc_set_compact(const unsigned char *letter, Py_ssize_t ln,
                                 const unsigned char *name, Py_ssize_t nn)
{
    if (ln != 1 || letter[0] < 'a' || letter[0] > 'z')
        return -2;
    sc_compact_entry *e = &sc_compact[letter[0] - 'a'];
    if (nn < 1 || nn > SC_KEY_MAX) {
        e->state = SC_COMPACT_ODD;
        return -1;
    }
    e->state = SC_COMPACT_OK;
    e->len = (unsigned char)nn;
    memcpy(e->name, name, (size_t)nn);
    return 0;
}

/* The canonical key of header name p[0:n] (token characters) as message.canonical_name maps
 * it: a compact form's long name, else the name lowercased into buf (cap bytes). Sets *key
 * and returns its length; *letter is the compact letter's index (else -1). Returns -1 when
 * the name is longer than cap, -2 for a compact form whose long name is not kept here. */
static inline Py_ssize_t sc_canonical_key(const unsigned char *p, Py_ssize_t n, unsigned char *buf,
                                          Py_ssize_t cap, const unsigned char **key, int *letter)
{
    *letter = -1;
    if (n == 1) {
        unsigned char c = sc_lower(p[0]);
        if (c >= 'a' && c <= 'z' && sc_compact[c - 'a'].state != SC_COMPACT_NONE) {
            const sc_compact_entry *e = &sc_compact[c - 'a'];
            if (e->state == SC_COMPACT_ODD)
                return -2;
            *letter = c - 'a';
            *key = e->name;
            return e->len;
        }
    }
    if (n > cap)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++)
        buf[i] = sc_lower(p[i]);
    *key = buf;
    return n;
}

/* ---------------------------------------------------------------- start line and headers */
typedef struct {
    Py_ssize_t at, name_len, v0, v1; /* line start, name d[at:at+name_len], value d[v0:v1] */
} sc_line;

typedef struct {
    int is_request;
    int status;               /* responses */
    Py_ssize_t m_len;         /* requests: the method is d[0:m_len] */
    Py_ssize_t u_at, u_len;   /* requests: the request-URI */
    Py_ssize_t r_at, r_len;   /* responses: the reason phrase (stripped) */
    Py_ssize_t body_at;       /* after the first CRLFCRLF */
    int count;                /* header lines */
    sc_line line[SC_MAX_HEADERS];
} sc_head;

/* The start line and header lines of a message whose start line and header loop add no
 * anomaly and no error in message._parse: no leading CR/LF, CRLF line ends only, a CRLFCRLF,
 * no folding, every header line "token[SP/HT]: value", at most SC_MAX_HEADERS lines of at
 * most SC_MAX_LINE bytes, "METHOD SP URI SP SIP/2.0" (token method of at most SC_MAX_METHOD,
 * printable-ASCII request-URI that sc_ruri_clean accepts) or "SIP/2.0 SP 3DIGIT[ SP reason]"
 * with a status in 100..699. 1 when it is that shape (h filled), else 0.
 * ascii_only: also 0 when the head holds a byte other than printable ASCII and HT. */
static inline int sc_scan_head(const unsigned char *d, Py_ssize_t n, int ascii_only, sc_head *h)
{
    if (n < 4 || d[0] == '\r' || d[0] == '\n')
        return 0;
    /* Lines end in CRLF; the first CRLFCRLF ends the head (as bytes.find(b"\r\n\r\n")); any
     * LF without a CR before it is a bare LF. */
    int count = 0;
    Py_ssize_t first_len = -1, body_at = -1, pos = 0;
    while (body_at < 0) {
        const unsigned char *lf = memchr(d + pos, '\n', (size_t)(n - pos));
        if (lf == NULL)
            return 0; /* no CRLFCRLF */
        Py_ssize_t k = lf - d;
        if (k <= pos || d[k - 1] != '\r')
            return 0; /* bare LF (or an empty line, which is the end: seen below) */
        Py_ssize_t len = k - 1 - pos;
        if (len > SC_MAX_LINE)
            return 0;
        if (k + 2 < n && d[k + 1] == '\r' && d[k + 2] == '\n')
            body_at = k + 3;
        if (first_len < 0) {
            first_len = len;
        } else {
            const unsigned char *ln = d + pos;
            if (count >= SC_MAX_HEADERS)
                return 0;
            Py_ssize_t nlen = 0;
            while (nlen < len && sc_token[ln[nlen]])
                nlen++;
            Py_ssize_t c = nlen;
            while (c < len && sc_ws(ln[c]))
                c++;
            if (nlen == 0 || c >= len || ln[c] != ':')
                return 0; /* folded, no colon, not a token name */
            Py_ssize_t v0 = c + 1, v1 = len;
            while (v0 < v1 && sc_ws(ln[v0]))
                v0++;
            while (v1 > v0 && sc_ws(ln[v1 - 1]))
                v1--;
            if (ascii_only && !sc_all_head_chars(ln + v0, v1 - v0))
                return 0;
            sc_line *l = &h->line[count++];
            l->at = pos;
            l->name_len = nlen;
            l->v0 = pos + v0;
            l->v1 = pos + v1;
        }
        pos = k + 1;
    }
    h->count = count;
    h->body_at = body_at;

    /* start line */
    int status = 0;
    h->m_len = h->u_at = h->u_len = h->r_at = h->r_len = 0;
    if (first_len >= 4 && sc_lower(d[0]) == 's' && sc_lower(d[1]) == 'i' &&
        sc_lower(d[2]) == 'p' && d[3] == '/') {
        /* SIP/2.0 SP 3DIGIT [SP reason] */
        h->is_request = 0;
        if (first_len < 11 || memcmp(d, "SIP/2.0 ", 8) != 0)
            return 0;
        for (int i = 8; i < 11; i++) {
            if (d[i] < '0' || d[i] > '9')
                return 0;
            status = status * 10 + (d[i] - '0');
        }
        if (status < 100 || status > 699)
            return 0;
        if (first_len > 11) {
            if (d[11] != ' ')
                return 0;
            Py_ssize_t a = 12, b = first_len;
            while (a < b && sc_ws(d[a]))
                a++;
            while (b > a && sc_ws(d[b - 1]))
                b--;
            if (ascii_only && !sc_all_head_chars(d + a, b - a))
                return 0;
            h->r_at = a;
            h->r_len = b - a;
        }
    } else {
        /* METHOD SP URI SP SIP/2.0: every byte is printable ASCII once this matches */
        h->is_request = 1;
        Py_ssize_t i = 0;
        while (i < first_len && sc_token[d[i]])
            i++;
        h->m_len = i;
        if (i == 0 || i > SC_MAX_METHOD || i >= first_len || d[i] != ' ')
            return 0;
        h->u_at = ++i;
        while (i < first_len && d[i] > 0x20 && d[i] < 0x7f)
            i++;
        h->u_len = i - h->u_at;
        if (h->u_len == 0 || first_len - i != 8 || memcmp(d + i, " SIP/2.0", 8) != 0)
            return 0;
        if (!sc_ruri_clean(d + h->u_at, h->u_len))
            return 0;
    }
    h->status = status;
    return 1;
}

/* ---------------------------------------------------------------- looks_like_sip */
/* "SIP/" (any case) "[0-9]+\.[0-9]+" at p[i]: the index after it, or -1. */
static inline Py_ssize_t sc_sip_version_at(const unsigned char *p, Py_ssize_t n, Py_ssize_t i)
{
    if (n - i < 4 || sc_lower(p[i]) != 's' || sc_lower(p[i + 1]) != 'i' ||
        sc_lower(p[i + 2]) != 'p' || p[i + 3] != '/')
        return -1;
    i += 4;
    Py_ssize_t a = i;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    if (i == a || i >= n || p[i] != '.')
        return -1;
    a = ++i;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    return i == a ? -1 : i;
}

/* message.looks_like_sip(p[0:n]): message._START_LINE.match(data, 0, 4096), that is
 *   [\r\n]*(?:TOKEN+[ \t]+[^ \t\r\n]+[ \t]+SIP/d+.d+[ \t]*\r?\n
 *          |SIP/d+.d+[ \t]+[0-9]{3}(?:[ \t\r\n]|$))
 * on the first 4096 bytes ('$' matches there too). Every run is taken whole: a shorter one
 * would leave a character the next part cannot start with, so nothing backtracks. */
static inline int sc_looks_like_sip(const unsigned char *p, Py_ssize_t n)
{
    if (n > 4096)
        n = 4096;
    Py_ssize_t i = 0;
    while (i < n && (p[i] == '\r' || p[i] == '\n'))
        i++;
    const Py_ssize_t s = i;
    while (i < n && sc_token[p[i]]) /* request line */
        i++;
    if (i > s && i < n && sc_ws(p[i])) {
        while (i < n && sc_ws(p[i]))
            i++;
        Py_ssize_t u = i;
        while (i < n && !sc_ws(p[i]) && p[i] != '\r' && p[i] != '\n')
            i++;
        if (i > u && i < n && sc_ws(p[i])) {
            while (i < n && sc_ws(p[i]))
                i++;
            i = sc_sip_version_at(p, n, i);
            if (i >= 0) {
                while (i < n && sc_ws(p[i]))
                    i++;
                if (i < n && p[i] == '\r')
                    i++;
                if (i < n && p[i] == '\n')
                    return 1;
            }
        }
    }
    i = sc_sip_version_at(p, n, s); /* status line */
    if (i < 0 || i >= n || !sc_ws(p[i]))
        return 0;
    while (i < n && sc_ws(p[i]))
        i++;
    if (n - i < 3)
        return 0;
    for (int k = 0; k < 3; k++, i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return i == n || sc_ws(p[i]) || p[i] == '\r' || p[i] == '\n';
}

/* ---------------------------------------------------------------- check (message._check) */
enum {
    SC_A_MISSING_VIA, SC_A_LONG_VIA, SC_A_MISSING_FROM, SC_A_LONG_FROM, SC_A_UNBALANCED_QUOTES,
    SC_A_MISSING_TO, SC_A_LONG_TO, SC_A_MISSING_CALL_ID, SC_A_LONG_CALL_ID, SC_A_LONG_CONTACT,
    SC_A_DUPLICATE_HEADER, SC_A_MISSING_CSEQ, SC_A_CSEQ_INVALID, SC_A_CSEQ_TOO_LARGE,
    SC_A_CSEQ_METHOD_MISMATCH, SC_A_CONTENT_LENGTH_MISSING, SC_A_CONTENT_LENGTH_INVALID,
    SC_A_CONTENT_LENGTH_MISMATCH, SC_A_BODY_TOO_LARGE, SC_A_MULTIPLE_MESSAGES, SC_A_COUNT
};
static const char *const sc_anomaly_names[SC_A_COUNT] = {
    "missing_via", "long_via", "missing_from", "long_from", "unbalanced_quotes", "missing_to",
    "long_to", "missing_call_id", "long_call_id", "long_contact", "duplicate_header",
    "missing_cseq", "cseq_invalid", "cseq_too_large", "cseq_method_mismatch",
    "content_length_missing", "content_length_invalid", "content_length_mismatch",
    "body_too_large", "multiple_messages",
};

/* What the checks read of one header: how many values it has, the first, the longest. */
typedef struct {
    Py_ssize_t count;       /* 0: absent */
    const unsigned char *p; /* first value's (latin-1) bytes */
    Py_ssize_t n;
    Py_ssize_t max_len;     /* length of the longest value */
} sc_header;

typedef struct {
    unsigned char codes[SC_A_COUNT]; /* anomaly codes in the order found */
    int ncodes;
    int has_cseq, has_cl;
    long long cseq_num;
    const unsigned char *cseq_v; /* CSeq value's bytes; the method is cseq_v[cm_a:cm_b] */
    Py_ssize_t cm_a, cm_b;
    unsigned long long cl;       /* Content-Length */
    Py_ssize_t body_a, body_b;   /* body: offsets into the message */
} sc_check_result;

#define SC_ADD(code) (r->codes[r->ncodes++] = (unsigned char)(code))

/* message._check for a message sc_scan_head accepted (terminated, no earlier anomaly), from
 * its headers hv[SC_K_*] (count 0: absent): 1 when *r holds its results, 0 when the Python
 * code must decide (a CSeq number that is not 1..10 ASCII digits). d[0:n]: the message,
 * body at body_at; m[0:m_len]: the request method. */
static inline int sc_check(const sc_header *hv, const unsigned char *d, Py_ssize_t n,
                           Py_ssize_t body_at, const unsigned char *m, Py_ssize_t m_len,
                           int is_request, sc_check_result *r)
{
    const sc_header *x;
    memset(r, 0, sizeof(*r));

    x = &hv[SC_K_VIA];
    if (x->count == 0)
        SC_ADD(SC_A_MISSING_VIA);
    else if (x->max_len > SC_MAX_VIA)
        SC_ADD(SC_A_LONG_VIA);
    x = &hv[SC_K_FROM];
    int from_quotes = 0;
    if (x->count == 0) {
        SC_ADD(SC_A_MISSING_FROM);
    } else {
        if (x->n > SC_MAX_FROM)
            SC_ADD(SC_A_LONG_FROM);
        if (sc_unbalanced(x->p, x->n)) {
            SC_ADD(SC_A_UNBALANCED_QUOTES);
            from_quotes = 1;
        }
    }
    x = &hv[SC_K_TO];
    if (x->count == 0) {
        SC_ADD(SC_A_MISSING_TO);
    } else {
        if (x->n > SC_MAX_TO)
            SC_ADD(SC_A_LONG_TO);
        if (!from_quotes && sc_unbalanced(x->p, x->n))
            SC_ADD(SC_A_UNBALANCED_QUOTES);
    }
    x = &hv[SC_K_CALL_ID];
    if (x->count == 0)
        SC_ADD(SC_A_MISSING_CALL_ID);
    else if (x->n > SC_MAX_CALL_ID)
        SC_ADD(SC_A_LONG_CALL_ID);
    x = &hv[SC_K_CONTACT];
    if (x->count > 0 && x->max_len > SC_MAX_CONTACT)
        SC_ADD(SC_A_LONG_CONTACT);
    if (hv[SC_K_CALL_ID].count > 1 || hv[SC_K_CSEQ].count > 1 || hv[SC_K_FROM].count > 1 ||
        hv[SC_K_TO].count > 1 || hv[SC_K_CONTENT_LENGTH].count > 1)
        SC_ADD(SC_A_DUPLICATE_HEADER);

    /* CSeq: vals[0].split() must give "number method" */
    x = &hv[SC_K_CSEQ];
    if (x->count == 0) {
        SC_ADD(SC_A_MISSING_CSEQ);
    } else {
        const unsigned char *v = x->p;
        Py_ssize_t vn = x->n, i = 0, a0, a1, b0, b1;
        while (i < vn && sc_py_space[v[i]])
            i++;
        a0 = i;
        while (i < vn && !sc_py_space[v[i]])
            i++;
        a1 = i;
        while (i < vn && sc_py_space[v[i]])
            i++;
        b0 = i;
        while (i < vn && !sc_py_space[v[i]])
            i++;
        b1 = i;
        while (i < vn && sc_py_space[v[i]])
            i++;
        if (a1 == a0 || b1 == b0 || i < vn) {
            SC_ADD(SC_A_CSEQ_INVALID);
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
                SC_ADD(SC_A_CSEQ_TOO_LARGE);
            if (is_request && (b1 - b0 != m_len || memcmp(v + b0, m, (size_t)m_len) != 0))
                SC_ADD(SC_A_CSEQ_METHOD_MISMATCH);
        }
    }

    /* body and Content-Length */
    Py_ssize_t blen = n - body_at;
    r->body_a = body_at;
    r->body_b = n;
    x = &hv[SC_K_CONTENT_LENGTH];
    if (x->count == 0) {
        if (!sc_only_of(d + body_at, blen, "\r\n"))
            SC_ADD(SC_A_CONTENT_LENGTH_MISSING);
    } else {
        const unsigned char *v = x->p;
        Py_ssize_t vn = x->n;
        int digits = vn > 0 && vn < 20;
        unsigned long long cl = 0;
        for (Py_ssize_t k = 0; digits && k < vn; k++) {
            if (v[k] < '0' || v[k] > '9')
                digits = 0;
            else
                cl = cl * 10 + (unsigned long long)(v[k] - '0'); /* < 10**19 fits */
        }
        if (!digits) {
            SC_ADD(SC_A_CONTENT_LENGTH_INVALID);
        } else {
            r->has_cl = 1;
            r->cl = cl;
            if (cl < (unsigned long long)blen) {
                Py_ssize_t end = body_at + (Py_ssize_t)cl;
                if (!sc_only_of(d + end, n - end, "\r\n\t "))
                    SC_ADD(sc_looks_like_sip(d + end, n - end) ? SC_A_MULTIPLE_MESSAGES
                                                                : SC_A_CONTENT_LENGTH_MISMATCH);
                r->body_b = end;
            } else if (cl > (unsigned long long)blen) {
                SC_ADD(SC_A_CONTENT_LENGTH_MISMATCH);
            }
        }
    }
    if (r->body_b - r->body_a > SC_MAX_BODY) {
        SC_ADD(SC_A_BODY_TOO_LARGE);
        r->body_b = r->body_a + SC_MAX_BODY;
    }
    return 1;
}
#undef SC_ADD

#endif
