/* The stage labeller's state (see labeller_state.h): transaction keys, the request table
 * (StageLabeler._requests) and the source table (_sources), LRU-bounded like the OrderedDicts
 * (move_to_end on a hit, the oldest out over the bound) with the same eviction counts. */
#include "labeller_state.h"

#include <stdlib.h>
#include <string.h>

/* ---- transaction keys ------------------------------------------------------------------ *
 * A key is the tuple's fields, each with its length in front (a varint), so two keys are
 * equal bytes exactly when the tuples are equal: 'R' client call_id cseq METHOD branch for
 * _request_key, 'I' src call_id cseq for _invite_key (a 4-tuple starting with "INVITE": never
 * equal to a 5-tuple). The CSeq number is 'i' + 8 bytes when it fits in int64, else 'b' +
 * its decimal text (the canonical str(int)), so equal Python ints give equal bytes. */
int sw_tkey_has(const sw_msg *m)
{
    return m->call_id.n > 0 && (m->has_cseq || m->cseq_big.n > 0);
}

static int kreserve(sw_labeller *self, size_t need)
{
    if (need <= self->kcap)
        return 0;
    size_t cap = self->kcap ? self->kcap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(self->kbuf, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->kbuf = p;
    self->kcap = cap;
    return 0;
}

/* a length as a varint: 7 bits a byte, low bits first, high bit set on all but the last */
#define VARINT_MAX 10

static char *put_len(char *p, Py_ssize_t n)
{
    uint64_t v = (uint64_t)n;
    while (v >= 0x80) {
        *p++ = (char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

static char *put(char *p, sw_str s)
{
    p = put_len(p, s.n);
    if (s.n)
        memcpy(p, s.p, (size_t)s.n);
    return p + s.n;
}

static size_t cseq_size(const sw_msg *m)
{
    return m->has_cseq ? 1 + 8 : 1 + VARINT_MAX + (size_t)m->cseq_big.n;
}

static char *put_cseq(char *p, const sw_msg *m)
{
    if (m->has_cseq) {
        *p++ = 'i';
        memcpy(p, &m->cseq_num, 8);
        return p + 8;
    }
    *p++ = 'b';
    return put(p, m->cseq_big);
}

/* _request_key(client, msg) into self->kbuf (cseq_up: msg.cseq_method.upper()); the key's
 * length, or 0 for None, or -1 on error */
Py_ssize_t sw_tkey_request(sw_labeller *self, const sw_msg *m, sw_str client, sw_str cseq_up)
{
    if (!sw_tkey_has(m))
        return 0;
    size_t need = 1 + VARINT_MAX + (size_t)client.n + VARINT_MAX + (size_t)m->call_id.n +
                  cseq_size(m) + VARINT_MAX + (size_t)cseq_up.n + VARINT_MAX +
                  (size_t)m->via_branch.n;
    if (kreserve(self, need) < 0)
        return -1;
    char *p = self->kbuf;
    *p++ = 'R';
    p = put(p, client);
    p = put(p, m->call_id);
    p = put_cseq(p, m);
    p = put_len(p, cseq_up.n);
    for (Py_ssize_t i = 0; i < cseq_up.n; i++)
        *p++ = sw_ascii_upper(cseq_up.p[i]);
    p = put(p, m->via_branch);
    return p - self->kbuf;
}

/* _invite_key(record, msg): as request_key. A message without Call-ID or CSeq number gets
 * 0: Python builds a key with "" or None, which no stored key has (every stored one comes
 * from a message with a _request_key). */
Py_ssize_t sw_tkey_invite(sw_labeller *self, const sw_msg *m)
{
    if (!sw_tkey_has(m))
        return 0;
    size_t need = 1 + VARINT_MAX + (size_t)m->src.n + VARINT_MAX + (size_t)m->call_id.n +
                  cseq_size(m);
    if (kreserve(self, need) < 0)
        return -1;
    char *p = self->kbuf;
    *p++ = 'I';
    p = put(p, m->src);
    p = put(p, m->call_id);
    p = put_cseq(p, m);
    return p - self->kbuf;
}

/* ---- the request table (_requests) ------------------------------------------------------ */
static void seen_free(sw_seen *e)
{
    Py_XDECREF(e->number);
    free(e);
}

static void seen_free_node(sw_lru_node *n, void *arg)
{
    (void)arg;
    seen_free((sw_seen *)n);
}

sw_seen *sw_seen_find(sw_labeller *self, Py_ssize_t klen, uint64_t *hash)
{
    *hash = sw_lru_hash(self->kbuf, (size_t)klen);
    return (sw_seen *)sw_lru_find(&self->requests, *hash, self->kbuf, (size_t)klen);
}

/* requests[k] = seen unless k is there (then move_to_end); evict the oldest over the bound */
int sw_seen_put(sw_labeller *self, Py_ssize_t klen, const sw_msg *m, int stage,
                        PyObject *number, const sw_str *num)
{
    uint64_t h;
    sw_seen *e = sw_seen_find(self, klen, &h);
    if (e != NULL) {
        sw_lru_touch(&self->requests, &e->node); /* a retransmission: keep the first copy */
        return 0;
    }
    size_t size = sizeof(sw_seen) + (size_t)klen + (size_t)m->tool.n + (size_t)m->tool_data.n;
    e = malloc(size);
    if (e == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    char *p = e->bytes;
    memcpy(p, self->kbuf, (size_t)klen);
    e->node.hash = h;
    e->node.key = p;
    e->node.klen = (size_t)klen;
    p += klen;
    if (m->tool.n)
        memcpy(p, m->tool.p, (size_t)m->tool.n);
    e->tool = (sw_str){p, m->tool.n};
    p += m->tool.n;
    if (m->tool_data.n)
        memcpy(p, m->tool_data.p, (size_t)m->tool_data.n);
    e->tool_data = (sw_str){p, m->tool_data.n};
    e->next_dead = NULL;
    e->request_id = m->id;
    e->stage = stage;
    e->number = number;
    if (number != NULL) {
        Py_INCREF(number);
        e->num[0] = num[0];
        e->num[1] = num[1];
        e->num[2] = num[2];
    }
    if (sw_lru_insert(&self->requests, &e->node) < 0) {
        seen_free(e);
        PyErr_NoMemory();
        return -1;
    }
    if ((long long)self->requests.count > self->max_requests) {
        /* popitem(last=False); the label slices of this call may point into it: it is freed
         * at the start of the next call */
        sw_seen *old = (sw_seen *)sw_lru_pop_oldest(&self->requests);
        old->next_dead = self->dead;
        self->dead = old;
        self->request_evictions++;
    }
    return 0;
}

/* ---- the source table (_sources) --------------------------------------------------------- */
static void users_clear(sw_source *s)
{
    for (Py_ssize_t i = 0; i < s->nusers; i++)
        free(s->users[i].p);
    s->nusers = 0;
}

static void source_free(sw_source *s)
{
    users_clear(s);
    free(s->users);
    free(s);
}

static void source_free_node(sw_lru_node *n, void *arg)
{
    (void)arg;
    source_free((sw_source *)n);
}

/* state.users.add(user) */
static int users_add(sw_source *s, sw_str user)
{
    uint64_t h = sw_lru_hash(user.p, (size_t)user.n);
    for (Py_ssize_t i = 0; i < s->nusers; i++) {
        if (s->users[i].hash == h && s->users[i].n == user.n &&
            memcmp(s->users[i].p, user.p, (size_t)user.n) == 0)
            return 0;
    }
    if (s->nusers == s->cap) {
        Py_ssize_t cap = s->cap ? s->cap * 2 : 4;
        sw_user *u = realloc(s->users, (size_t)cap * sizeof(*u));
        if (u == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->users = u;
        s->cap = cap;
    }
    char *p = malloc((size_t)user.n);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(p, user.p, (size_t)user.n);
    s->users[s->nusers++] = (sw_user){h, user.n, p};
    return 0;
}

/* _note_user(record, user, count, internal): 1 when the source is scanning, 0, -1 on error.
 * ntype: the dialled number's type, NULL when the number is None. */
int sw_source_note_user(sw_labeller *self, const sw_msg *m, sw_str user, int count,
                     const sw_str *ntype)
{
    sw_source *gone = NULL; /* evicted at once (max_sources < 1): used, then freed */
    uint64_t h = sw_lru_hash(m->src.p, (size_t)m->src.n);
    sw_source *s = (sw_source *)sw_lru_find(&self->sources, h, m->src.p, (size_t)m->src.n);
    if (s == NULL) {
        s = malloc(sizeof(sw_source) + (size_t)m->src.n);
        if (s == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(s->key, m->src.p, (size_t)m->src.n);
        s->node.hash = h;
        s->node.key = s->key;
        s->node.klen = (size_t)m->src.n;
        s->last_ts = m->ts;
        s->scanning = 0;
        s->nusers = s->cap = 0;
        s->users = NULL;
        if (sw_lru_insert(&self->sources, &s->node) < 0) {
            source_free(s);
            PyErr_NoMemory();
            return -1;
        }
        if ((long long)self->sources.count > self->max_sources) {
            sw_source *old = (sw_source *)sw_lru_pop_oldest(&self->sources);
            self->source_evictions++;
            if (old == s)
                gone = s;
            else
                source_free(old);
        }
    }
    else {
        sw_lru_touch(&self->sources, &s->node);
        if (m->ts - s->last_ts >= self->idle_reset_s) {
            users_clear(s);
            s->scanning = 0;
        }
    }
    if (m->ts > s->last_ts) /* max(state.last_ts, record.ts) */
        s->last_ts = m->ts;
    /* INVITEs count only towards internal extensions (or names) */
    if (ntype != NULL && !sw_str_eq(*ntype, sw_lc.extension) && !sw_str_eq(*ntype, sw_lc.shorttype))
        count = 0;
    int r = 0;
    if (count && user.n && !s->scanning) {
        r = users_add(s, user);
        if (r == 0 && (long long)s->nusers >= self->ext_scan_users) {
            s->scanning = 1;
            users_clear(s); /* no longer needed: keeps the state small */
        }
    }
    int scanning = s->scanning;
    if (gone != NULL)
        source_free(gone);
    return r < 0 ? -1 : scanning;
}

/* what the previous call's label slices pointed into */
void sw_labeller_release_call(sw_labeller *self)
{
    while (self->dead != NULL) {
        sw_seen *e = self->dead;
        self->dead = e->next_dead;
        seen_free(e);
    }
    sw_pykeep_release(&self->keep);
    self->number = NULL;
}

void sw_labeller_free_state(sw_labeller *self)
{
    sw_labeller_release_call(self);
    sw_lru_free(&self->sources, source_free_node, NULL);
    sw_lru_free(&self->requests, seen_free_node, NULL);
    sw_ua_cache_free(&self->ua);
    free(self->kbuf);
    self->kbuf = NULL;
    self->kcap = 0;
}

