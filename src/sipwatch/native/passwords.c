/* The password recovery in C (see passwords.h): PasswordRecovery.recover, _search, _prepare,
 * _ha2, and sw_recover for the bulk path (the tables: passwords_tables.c). Each function names
 * the Python it mirrors; detect/passwords.py is the definition. */
#include "passwords_state.h"
#include "pwtext.h"

#include <stdint.h>
#include <string.h>

static char *put(char *o, const char *p, Py_ssize_t n)
{
    if (n > 0)
        memcpy(o, p, (size_t)n);
    return o + n;
}

/* str.encode("utf-8", "surrogateescape"): the text itself when it has no surrogate, else a
 * copy at *bump. 0, or -1 when it cannot be encoded. */
static int encode(sw_str t, char **bump, sw_str *out)
{
    if (sw_text_plain(t)) {
        *out = t;
        return 0;
    }
    Py_ssize_t n = sw_text_encode(t, *bump);
    if (n < 0)
        return -1;
    *out = (sw_str){*bump, n};
    *bump += n;
    return 0;
}

static inline int text_eq(sw_str a, sw_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, (size_t)a.n) == 0);
}

static inline int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* ---- _ha2: H(method:uri) as hex, cached ------------------------------------------------ */
/* 1 with hex (2 * size digits) set, 0 when method or uri cannot be encoded, -1 (no memory) */
static int ha2_of(sw_recovery *r, int kind, sw_str method, sw_str uri, char *hex, char **bump)
{
    int hx = 2 * sw_hash_size(kind);
    size_t kn = 5 + (size_t)method.n + (size_t)uri.n;
    char *key = *bump;
    uint32_t mlen = (uint32_t)method.n;
    key[0] = (char)kind;
    memcpy(key + 1, &mlen, 4);
    put(put(key + 5, method.p, method.n), uri.p, uri.n);
    uint64_t h = sw_lru_hash(key, kn);
    sw_lru_node *hit = sw_lru_find(&r->ha2, h, key, kn);
    if (hit != NULL) {
        sw_lru_touch(&r->ha2, hit);
        memcpy(hex, ((sw_ha2_entry *)hit)->hex, (size_t)hx);
        return 1;
    }
    *bump += kn;
    sw_str mb, ub;
    if (encode(method, bump, &mb) < 0 || encode(uri, bump, &ub) < 0)
        return 0;
    unsigned char d[SW_HASH_MAX];
    sw_hash_ctx c;
    sw_hash_init(&c, kind);
    sw_hash_update(&c, mb.p, (size_t)mb.n);
    sw_hash_update(&c, ":", 1);
    sw_hash_update(&c, ub.p, (size_t)ub.n);
    sw_hash_final(&c, d);
    sw_hex(d, sw_hash_size(kind), hex);
    /* bounded: attackers can send endless URIs (Python clears its cache when full; which
     * entries are kept only decides what is computed again) */
    if (r->ha2.count >= SW_HA2_CACHE_MAX)
        sw_pw_free_ha2(sw_lru_pop_oldest(&r->ha2), NULL);
    sw_ha2_entry *e = PyMem_Malloc(sizeof(sw_ha2_entry) + kn);
    if (e == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(e->key, key, kn);
    memcpy(e->hex, hex, (size_t)hx);
    e->node.hash = h;
    e->node.key = e->key;
    e->node.klen = kn;
    if (sw_lru_insert(&r->ha2, &e->node) < 0) {
        PyMem_Free(e);
        PyErr_NoMemory();
        return -1;
    }
    return 1;
}

/* ---- _prepare --------------------------------------------------------------------------- */
typedef struct {
    int kind, size, sess, alg; /* alg: kind * 2 + sess, the cache key's algorithm */
    unsigned char want[SW_HASH_MAX];
    char *fin; /* [HA1 (2 * size)][suffix]: the final hash's input */
    Py_ssize_t fin_n;
    char *tail; /* -sess: [HA1][":nonce:cnonce"] */
    Py_ssize_t tail_n;
} prepared;

/* 1 ready, 0 where _prepare gives None (no password can give this response), -1 (error) */
static int prepare(sw_recovery *r, const sw_digest *d, sw_str method, sw_str body,
                   prepared *c, char **bump)
{
    if (!sw_text_algorithm(d->p[SW_D_ALGORITHM], &c->kind, &c->sess))
        return 0;
    c->size = sw_hash_size(c->kind);
    c->alg = c->kind * 2 + c->sess;
    int hx = 2 * c->size;
    /* len(response) == 2 * size and bytes.fromhex: exactly that many hex digits */
    sw_str resp = d->p[SW_D_RESPONSE];
    if (resp.n != hx)
        return 0;
    for (int i = 0; i < c->size; i++) {
        int hi = hexval((unsigned char)resp.p[2 * i]);
        int lo = hexval((unsigned char)resp.p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        c->want[i] = (unsigned char)(hi << 4 | lo);
    }
    sw_str qop = d->p[SW_D_QOP];
    const char *comma = qop.n ? memchr(qop.p, ',', (size_t)qop.n) : NULL;
    if (comma != NULL) /* a client must pick one; verify() takes the first */
        qop = sw_text_strip((sw_str){qop.p, comma - qop.p});
    sw_str nonce = d->p[SW_D_NONCE], cnonce = d->p[SW_D_CNONCE], nc = d->p[SW_D_NC];
    sw_str uri = d->p[SW_D_URI];
    sw_str nonce_b, cnonce_b;
    if (encode(nonce, bump, &nonce_b) < 0)
        return 0;
    char ha2[2 * SW_HASH_MAX];
    char *o;
    if (qop.n && cnonce.n && nc.n) { /* RFC 2617 */
        if (sw_text_is_auth_int(qop)) {
            sw_str mb, ub;
            if (encode(method, bump, &mb) < 0 || encode(uri, bump, &ub) < 0)
                return 0;
            unsigned char dg[SW_HASH_MAX];
            char body_hex[2 * SW_HASH_MAX];
            sw_hash2(c->kind, body.p, (size_t)body.n, NULL, 0, dg);
            sw_hex(dg, c->size, body_hex);
            sw_hash_ctx h;
            sw_hash_init(&h, c->kind);
            sw_hash_update(&h, mb.p, (size_t)mb.n);
            sw_hash_update(&h, ":", 1);
            sw_hash_update(&h, ub.p, (size_t)ub.n);
            sw_hash_update(&h, ":", 1);
            sw_hash_update(&h, body_hex, (size_t)hx);
            sw_hash_final(&h, dg);
            sw_hex(dg, c->size, ha2);
        }
        else {
            int got = ha2_of(r, c->kind, method, uri, ha2, bump);
            if (got <= 0)
                return got;
        }
        sw_str nc_b, qop_b;
        if (encode(nc, bump, &nc_b) < 0 || encode(cnonce, bump, &cnonce_b) < 0 ||
            encode(qop, bump, &qop_b) < 0)
            return 0;
        c->fin = *bump;
        o = c->fin + hx;
        *o++ = ':';
        o = put(o, nonce_b.p, nonce_b.n);
        *o++ = ':';
        o = put(o, nc_b.p, nc_b.n);
        *o++ = ':';
        o = put(o, cnonce_b.p, cnonce_b.n);
        *o++ = ':';
        o = put(o, qop_b.p, qop_b.n);
        *o++ = ':';
        o = put(o, ha2, hx);
    }
    else { /* RFC 2069, also svcrack's qop=auth without cnonce/nc */
        int got = ha2_of(r, c->kind, method, uri, ha2, bump);
        if (got <= 0)
            return got;
        c->fin = *bump;
        o = c->fin + hx;
        *o++ = ':';
        o = put(o, nonce_b.p, nonce_b.n);
        *o++ = ':';
        o = put(o, ha2, hx);
    }
    c->fin_n = o - c->fin;
    *bump = o;
    c->tail = NULL;
    c->tail_n = 0;
    if (c->sess) {
        if (encode(cnonce, bump, &cnonce_b) < 0)
            return 0;
        c->tail = *bump;
        o = c->tail + hx;
        *o++ = ':';
        o = put(o, nonce_b.p, nonce_b.n);
        *o++ = ':';
        o = put(o, cnonce_b.p, cnonce_b.n);
        c->tail_n = o - c->tail;
        *bump = o;
    }
    return 1;
}

/* new((sess(ha1) if sess else ha1) + suffix).digest() == want, for an HA1 as hex */
static int check(const prepared *c, const char *ha1)
{
    unsigned char d[SW_HASH_MAX];
    int hx = 2 * c->size;
    char sess_hex[2 * SW_HASH_MAX];
    if (c->sess) {
        memcpy(c->tail, ha1, (size_t)hx);
        sw_hash2(c->kind, c->tail, (size_t)c->tail_n, NULL, 0, d);
        sw_hex(d, c->size, sess_hex);
        ha1 = sess_hex;
    }
    memcpy(c->fin, ha1, (size_t)hx);
    sw_hash2(c->kind, c->fin, (size_t)c->fin_n, NULL, 0, d);
    return memcmp(d, c->want, (size_t)c->size) == 0;
}

/* _ha1: H(user:realm:password) as hex */
static void ha1_of(const prepared *c, sw_str prefix, sw_str pw, char *out)
{
    unsigned char d[SW_HASH_MAX];
    sw_hash2(c->kind, prefix.p, (size_t)prefix.n, pw.p, (size_t)pw.n, d);
    sw_hex(d, c->size, out);
}

/* ---- _search ---------------------------------------------------------------------------- */
/* The variants of user_variants(user) not in _known, each once (dict.fromkeys): into e. */
static int make_variants(sw_recovery *r, sw_ha1_entry *e, sw_str user)
{
    e->nvar = 0;
    e->vbuf = NULL;
    Py_ssize_t len = sw_text_len(user);
    if (user.n == 0 || len > SW_MAX_USER_VARIANT)
        return 0;
    int plain = sw_text_plain(user);
    Py_ssize_t n = user.n, total = 6 * n + 7;
    char *buf = PyMem_Malloc((size_t)(plain ? total : 2 * total));
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    e->vbuf = buf;
    /* user, user + user, user + "123", user + "1234", user[::-1] */
    sw_str v[SW_VARIANTS];
    char *o = buf;
    v[0] = (sw_str){o, n};
    o = put(o, user.p, n);
    v[1] = (sw_str){o, 2 * n};
    o = put(put(o, user.p, n), user.p, n);
    v[2] = (sw_str){o, n + 3};
    o = put(put(o, user.p, n), "123", 3);
    v[3] = (sw_str){o, n + 4};
    o = put(put(o, user.p, n), "1234", 4);
    v[4] = (sw_str){o, n};
    sw_text_reverse(user, o);
    o += n;
    for (int i = 0; i < SW_VARIANTS; i++) {
        if (sw_lru_find(&r->known, sw_lru_hash(v[i].p, (size_t)v[i].n), v[i].p,
                        (size_t)v[i].n) != NULL)
            continue;
        int dup = 0;
        for (int j = 0; j < e->nvar && !dup; j++)
            dup = text_eq(e->var[j].text, v[i]);
        if (dup)
            continue;
        sw_cand *c = &e->var[e->nvar++];
        c->text = v[i];
        c->obj = NULL;
        if (plain) {
            c->bytes = v[i];
        }
        else { /* the user encodes (its prefix did), so every variant does */
            Py_ssize_t bn = sw_text_encode(v[i], o);
            c->bytes = (sw_str){o, bn < 0 ? 0 : bn};
            o += bn < 0 ? 0 : bn;
        }
    }
    return 0;
}

static inline const sw_cand *cand_at(const sw_recovery *r, const sw_ha1_entry *e, Py_ssize_t i)
{
    if (i < r->nhead)
        return &r->cands[i]->c;
    i -= r->nhead;
    if (i < e->nvar)
        return &e->var[i];
    return &r->cands[r->nhead + i - e->nvar]->c;
}

/* _evict */
static void evict(sw_recovery *r)
{
    while (r->ha1_count > r->ha1_cache && r->ha1.count > 1) {
        sw_ha1_entry *e = (sw_ha1_entry *)sw_lru_pop_oldest(&r->ha1);
        r->ha1_count -= e->n;
        r->stats.ha1_evictions++;
        sw_pw_free_entry(&e->node, NULL);
    }
}

/* _search: 0 with *found (NULL: none of the candidates), or -1 (no memory) */
static int search(sw_recovery *r, const prepared *c, sw_str prefix, sw_str user, sw_str realm,
                  long long limit, const sw_cand **found, char **bump)
{
    *found = NULL;
    size_t kn = 5 + (size_t)user.n + (size_t)realm.n;
    char *key = *bump;
    uint32_t ulen = (uint32_t)user.n;
    key[0] = (char)c->alg;
    memcpy(key + 1, &ulen, 4);
    put(put(key + 5, user.p, user.n), realm.p, realm.n);
    uint64_t h = sw_lru_hash(key, kn);
    sw_ha1_entry *e = (sw_ha1_entry *)sw_lru_find(&r->ha1, h, key, kn);
    if (e == NULL) {
        e = PyMem_Calloc(1, sizeof(sw_ha1_entry) + kn);
        if (e == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(e->key, key, kn);
        e->node.hash = h;
        e->node.key = e->key;
        e->node.klen = kn;
        if (make_variants(r, e, user) < 0 || sw_lru_insert(&r->ha1, &e->node) < 0) {
            if (!PyErr_Occurred())
                PyErr_NoMemory();
            sw_pw_free_entry(&e->node, NULL);
            return -1;
        }
    }
    else {
        sw_lru_touch(&r->ha1, &e->node);
    }
    int hx = 2 * c->size;
    Py_ssize_t total = r->nhead + e->nvar + r->ntail;
    if (limit < total)
        total = (Py_ssize_t)(limit < 0 ? 0 : limit);
    long long tried = 0;
    /* the HA1s computed for earlier messages first */
    Py_ssize_t i = 0;
    for (; i < e->n && i < total; i++) {
        tried++;
        if (check(c, (const char *)e->ha1s + i * hx)) {
            *found = cand_at(r, e, i);
            break;
        }
    }
    if (*found == NULL && e->n < total) {
        if (e->cap < total) {
            Py_ssize_t cap = e->cap ? e->cap : 8;
            while (cap < total)
                cap *= 2;
            if (cap > total)
                cap = total;
            unsigned char *p = PyMem_Realloc(e->ha1s, (size_t)cap * (size_t)hx);
            if (p == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            e->ha1s = p;
            e->cap = cap;
        }
        Py_ssize_t added = 0;
        for (i = e->n; i < total; i++) {
            const sw_cand *cd = cand_at(r, e, i);
            char *slot = (char *)e->ha1s + i * hx;
            ha1_of(c, prefix, cd->bytes, slot);
            e->n++;
            added++;
            tried++;
            if (check(c, slot)) {
                *found = cd;
                break;
            }
        }
        if (added) {
            r->ha1_count += added;
            evict(r);
        }
    }
    r->stats.tried += tried;
    return 0;
}

/* ---- recover ---------------------------------------------------------------------------- */
int sw_recovery_recover(sw_recovery *r, const sw_digest *d, sw_str method, sw_str body,
                        sw_str svcrack, sw_pw *out)
{
    sw_pw_stats *stats = &r->stats;
    out->kind = SW_PW_NONE;
    out->cand = NULL;
    out->claim = SW_STR_EMPTY;
    /* user, sep, claim = svcrack.partition(":") */
    const char *colon = svcrack.n ? memchr(svcrack.p, ':', (size_t)svcrack.n) : NULL;
    int sep = colon != NULL;
    sw_str cuser = sep ? (sw_str){svcrack.p, colon - svcrack.p} : svcrack;
    sw_str claim = sep ? (sw_str){colon + 1, svcrack.p + svcrack.n - (colon + 1)} : SW_STR_EMPTY;

    size_t need = 1024 + 4 * ((size_t)method.n + (size_t)svcrack.n);
    for (int k = 0; k < SW_D_COUNT; k++)
        need += 4 * (size_t)d->p[k].n;
    if (sw_recovery_scratch(r, need) < 0)
        return -1;
    char *bump = r->scratch;
    prepared c;
    int ok = prepare(r, d, method, body, &c, &bump);
    if (ok < 0)
        return -1;
    if (ok == 0) {
        stats->unverifiable++;
        /* nothing to check the claim against: svcrack's own record of what it sent */
        if (sep && text_eq(cuser, d->p[SW_D_USERNAME])) {
            stats->from_tag++;
            stats->recovered++;
            out->kind = SW_PW_CLAIM;
            out->claim = claim;
        }
        return 0;
    }
    /* _ha1_prefix: f"{user}:{realm}:" */
    sw_str user = d->p[SW_D_USERNAME], realm = d->p[SW_D_REALM], ub, rb;
    if (encode(user, &bump, &ub) < 0 || encode(realm, &bump, &rb) < 0) {
        stats->unverifiable++; /* verify() cannot match any password for this user and realm */
        return 0;
    }
    char *o = bump;
    sw_str prefix = {o, ub.n + rb.n + 2};
    o = put(o, ub.p, ub.n);
    *o++ = ':';
    o = put(o, rb.p, rb.n);
    *o++ = ':';
    bump = o;
    long long limit = r->max_candidates;
    if (sep) {
        stats->tried++;
        limit--;
        /* _matches: an unencodable claim matches nothing */
        sw_str cb;
        if (encode(claim, &bump, &cb) == 0) {
            char ha1[2 * SW_HASH_MAX];
            ha1_of(&c, prefix, cb, ha1);
            if (check(&c, ha1)) {
                stats->from_tag++;
                stats->recovered++;
                out->kind = SW_PW_CLAIM;
                out->claim = claim;
                return 0;
            }
        }
    }
    const sw_cand *found;
    if (search(r, &c, prefix, user, realm, limit, &found, &bump) < 0)
        return -1;
    if (found == NULL) {
        stats->exhausted++;
        return 0;
    }
    stats->from_digest++;
    stats->recovered++;
    out->kind = SW_PW_CAND;
    out->cand = found;
    return 0;
}

PyObject *sw_pw_object(const sw_pw *pw)
{
    if (pw->kind == SW_PW_CAND && pw->cand->obj != NULL)
        return Py_NewRef(pw->cand->obj);
    sw_str t = pw->kind == SW_PW_CAND ? pw->cand->text
               : pw->kind == SW_PW_CLAIM ? pw->claim
                                         : SW_STR_EMPTY;
    return PyUnicode_DecodeUTF8(t.p, t.n, "surrogatepass");
}

/* ---- the bulk path ---------------------------------------------------------------------- */
int sw_recovery_check(PyObject *o)
{
    return PyObject_TypeCheck(o, &sw_recovery_type);
}

/* m->password: the text the store writes for pw (store/writer.py clean_text: lone
 * surrogates as U+FFFD), kept alive in r->last */
static int stored_text(sw_recovery *r, PyObject *pw, sw_str *out)
{
    Py_INCREF(pw);
    Py_XSETREF(r->last, pw);
    const char *p = PyUnicode_AsUTF8AndSize(pw, &out->n);
    if (p == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -1;
        PyErr_Clear();
        PyObject *b = PyUnicode_AsEncodedString(pw, "utf-8", "surrogatepass");
        if (b == NULL)
            return -1;
        PyObject *clean = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b),
                                               "replace");
        Py_DECREF(b);
        if (clean == NULL)
            return -1;
        Py_XSETREF(r->last, clean);
        p = PyUnicode_AsUTF8AndSize(clean, &out->n);
        if (p == NULL)
            return -1;
    }
    out->p = p;
    return 0;
}

int sw_recover(PyObject *recovery, sw_msg *m)
{
    sw_recovery *r = (sw_recovery *)recovery;
    m->password = SW_STR_EMPTY;
    if (!r->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Recovery.__init__ was not called");
        return -1;
    }
    if (m->request_id) { /* a response whose request the labeller matched */
        PyObject *pw = sw_recovery_answered(r, m->request_id);
        if (pw != NULL) {
            if (stored_text(r, pw, &m->password) < 0)
                return -1;
            r->stats.responses++;
        }
        return 0;
    }
    if (!m->has_credentials || !m->is_request)
        return 0;
    sw_str cred = m->credentials;
    /* the values _unquote rewrites: room for the value's length */
    char small[1024];
    char *pscratch = cred.n < (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc((size_t)cred.n);
    if (pscratch == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    sw_digest d;
    int rc = 0;
    if (sw_parse_digest(cred, &d, pscratch)) {
        r->stats.requests++;
        /* the labeller decoded SIPVicious' From tag into tool_data (svcrack: "user:password") */
        sw_str claim = SW_STR_EMPTY;
        if (text_eq(m->tool, sw_pw_sipvicious))
            claim = m->tool_data;
        sw_pw pw;
        rc = sw_recovery_recover(r, &d, m->method, m->body, claim, &pw);
        int nonempty = pw.kind == SW_PW_CAND || (pw.kind == SW_PW_CLAIM && pw.claim.n > 0);
        if (rc == 0 && nonempty) {
            PyObject *obj = sw_pw_object(&pw);
            rc = obj == NULL || sw_recovery_answer(r, m->id, obj) < 0 ||
                         stored_text(r, obj, &m->password) < 0
                     ? -1
                     : 0;
            Py_XDECREF(obj);
        }
    }
    if (pscratch != small)
        PyMem_Free(pscratch);
    return rc;
}
