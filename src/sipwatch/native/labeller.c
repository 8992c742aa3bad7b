/* The stage labeller in C: the labelling (see labeller.h). A line-by-line mirror of
 * sipwatch/detect/stages.py StageLabeler; the names of its functions are kept here
 * (label_request ~ _label_request, note_user ~ _note_user, ...). */
#include "labeller_state.h"

#include <stdlib.h>
#include <string.h>

sw_lconst sw_lc;

enum { M_OTHER, M_OPTIONS, M_REGISTER, M_INVITE, M_ACK, M_CANCEL };

/* ---- strings ------------------------------------------------------------------------- */
static int eq(sw_str a, sw_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, (size_t)a.n) == 0);
}

static int in_list(sw_str s, const sw_str *list, int n)
{
    for (int i = 0; i < n; i++) {
        if (eq(s, list[i]))
            return 1;
    }
    return 0;
}

static int has_high(sw_str s)
{
    for (Py_ssize_t i = 0; i < s.n; i++) {
        if ((unsigned char)s.p[i] >= 0x80)
            return 1;
    }
    return 0;
}

static char ascii_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* s.upper() as a slice in which ASCII letters may still be lower case (callers compare and
 * copy with ascii_upper). ASCII: s itself. Otherwise Python's str.upper (Unicode rules:
 * "ınvıte".upper() is "INVITE", "ß".upper() is "SS"), kept alive in self->keep. */
static int upper(sw_labeller *self, sw_str s, sw_str *out)
{
    if (!has_high(s)) {
        *out = s;
        return 0;
    }
    PyObject *u = PyUnicode_DecodeUTF8(s.p, s.n, "strict");
    if (u == NULL)
        return -1;
    PyObject *up = PyObject_CallMethod(u, "upper", NULL);
    Py_DECREF(u);
    if (sw_pykeep_add(&self->keep, up) < 0)
        return -1;
    return sw_utf8_of(up, out);
}

/* upper-cased s == lit (lit: upper-case ASCII) */
static int upper_is(sw_str s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)s.n != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (ascii_upper(s.p[i]) != lit[i])
            return 0;
    }
    return 1;
}

static int method_kind(sw_str up)
{
    switch (up.n) {
    case 3:
        return upper_is(up, "ACK") ? M_ACK : M_OTHER;
    case 6:
        return upper_is(up, "INVITE") ? M_INVITE : upper_is(up, "CANCEL") ? M_CANCEL : M_OTHER;
    case 7:
        return upper_is(up, "OPTIONS") ? M_OPTIONS : M_OTHER;
    case 8:
        return upper_is(up, "REGISTER") ? M_REGISTER : M_OTHER;
    default:
        return M_OTHER;
    }
}

/* ---- transaction keys ------------------------------------------------------------------ *
 * A key is the tuple's fields, each with its length in front (a varint), so two keys are
 * equal bytes exactly when the tuples are equal: 'R' client call_id cseq METHOD branch for _request_key,
 * 'I' src call_id cseq for _invite_key (a 4-tuple starting with "INVITE": never equal to a
 * 5-tuple). The CSeq number is 'i' + 8 bytes when it fits in int64, else 'b' + its decimal
 * text (the canonical str(int)), so equal Python ints give equal bytes. */
static int has_key(const sw_msg *m)
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
static Py_ssize_t request_key(sw_labeller *self, const sw_msg *m, sw_str client, sw_str cseq_up)
{
    if (!has_key(m))
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
        *p++ = ascii_upper(cseq_up.p[i]);
    p = put(p, m->via_branch);
    return p - self->kbuf;
}

/* _invite_key(record, msg): as request_key. A message without Call-ID or CSeq number gets
 * 0: Python builds a key with "" or None, which no stored key has (every stored one comes
 * from a message with a _request_key). */
static Py_ssize_t invite_key(sw_labeller *self, const sw_msg *m)
{
    if (!has_key(m))
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

static sw_seen *seen_find(sw_labeller *self, Py_ssize_t klen, uint64_t *hash)
{
    *hash = sw_lru_hash(self->kbuf, (size_t)klen);
    return (sw_seen *)sw_lru_find(&self->requests, *hash, self->kbuf, (size_t)klen);
}

/* requests[k] = seen unless k is there (then move_to_end); evict the oldest over the bound */
static int remember_key(sw_labeller *self, Py_ssize_t klen, const sw_msg *m, int stage,
                        PyObject *number, const sw_str *num)
{
    uint64_t h;
    sw_seen *e = seen_find(self, klen, &h);
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

/* _remember(record, msg, method, number) */
static int remember(sw_labeller *self, const sw_msg *m, int is_invite, int stage,
                    PyObject *number, const sw_str *num)
{
    sw_str cseq_up;
    if (!has_key(m))
        return 0;
    if (upper(self, m->cseq_method, &cseq_up) < 0)
        return -1;
    Py_ssize_t klen = request_key(self, m, m->src, cseq_up);
    if (klen <= 0)
        return (int)klen;
    if (remember_key(self, klen, m, stage, number, num) < 0)
        return -1;
    if (!is_invite)
        return 0;
    klen = invite_key(self, m);
    if (klen <= 0)
        return (int)klen;
    return remember_key(self, klen, m, stage, number, num);
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
static int note_user(sw_labeller *self, const sw_msg *m, sw_str user, int count,
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
    if (ntype != NULL && !eq(*ntype, sw_lc.extension) && !eq(*ntype, sw_lc.shorttype))
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

/* ---- dialled numbers ------------------------------------------------------------------- */
/* self.numbers.classify(user): 1 with *number (kept in self->keep) and num[] set, 0 for None */
static int classify(sw_labeller *self, sw_str user, PyObject **number, sw_str num[3])
{
    PyObject *s = PyUnicode_DecodeUTF8(user.p, user.n, "strict");
    if (s == NULL)
        return -1;
    PyObject *numbers = Py_NewRef(self->numbers); /* Python code may replace self.numbers */
    PyObject *r = PyObject_CallMethodOneArg(numbers, sw_lc.s_classify, s);
    Py_DECREF(numbers);
    Py_DECREF(s);
    if (r == NULL)
        return -1;
    if (r == Py_None) {
        Py_DECREF(r);
        *number = NULL;
        return 0;
    }
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 3) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "classify() must return a NumberClass or None");
        return -1;
    }
    if (sw_pykeep_add(&self->keep, r) < 0)
        return -1;
    for (int i = 0; i < 3; i++) {
        if (sw_utf8_of(PyTuple_GET_ITEM(r, i), &num[i]) < 0)
            return -1;
    }
    *number = r;
    return 1;
}

static void set_number(sw_labeller *self, sw_msg *m, PyObject *number, const sw_str *num)
{
    m->number = num[0];
    m->number_type = num[1];
    m->number_country = num[2];
    self->number = number;
}

static int chargeable(const sw_str *ntype)
{
    return in_list(*ntype, sw_lc.chargeable, sw_lc.n_chargeable);
}

/* ---- requests -------------------------------------------------------------------------- */
static int label_request(sw_labeller *self, sw_msg *m)
{
    sw_str method;
    if (upper(self, m->method, &method) < 0)
        return -1;
    int kind = method_kind(method);
    sw_str tool, data;
    int r = sw_fingerprint(&self->ua, m->from_tag, m->user_agent, m->from_display, m->to_user,
                           &self->fp, &self->keep, &tool, &data);
    if (r < 0)
        return -1;
    if (r) {
        m->tool = tool;
        m->tool_data = data;
    }
    int cred = m->has_credentials;
    sw_str target = m->ruri_user.n ? m->ruri_user : m->to_user;
    if (kind == M_REGISTER) /* the REGISTER's request-URI has no user: the To user */
        target = m->to_user.n ? m->to_user : m->ruri_user;

    PyObject *number = NULL;
    sw_str num[3] = {SW_STR_EMPTY, SW_STR_EMPTY, SW_STR_EMPTY};
    if (kind == M_INVITE && target.n) {
        if (classify(self, target, &number, num) < 0)
            return -1;
        if (number != NULL)
            set_number(self, m, number, num);
    }
    int scanning = 0;
    if (kind == M_OPTIONS || kind == M_INVITE || kind == M_REGISTER) {
        scanning = note_user(self, m, target, !cred, number ? &num[1] : NULL);
        if (scanning < 0)
            return -1;
    }
    int stage = 0;
    switch (kind) {
    case M_OPTIONS:
        stage = scanning ? sw_lc.es : sw_lc.ss;
        break;
    case M_REGISTER:
        /* svcrack fetches a fresh nonce (no credentials, fixed tag) before every password */
        stage = (cred || sw_fp_is_svcrack_tag(m->from_tag)) ? sw_lc.rhj : sw_lc.es;
        break;
    case M_INVITE:
        if (number != NULL && chargeable(&num[1]))
            stage = sw_lc.tf;
        else if (scanning && !cred)
            stage = sw_lc.es;
        break;
    case M_ACK:
    case M_CANCEL: {
        /* these belong to an INVITE transaction: same Call-ID and CSeq number (get(): the
         * use order does not change) */
        Py_ssize_t klen = invite_key(self, m);
        if (klen < 0)
            return -1;
        if (klen > 0) {
            uint64_t h;
            sw_seen *seen = seen_find(self, klen, &h);
            if (seen != NULL) {
                stage = seen->stage;
                if (m->tool.n == 0) {
                    m->tool = seen->tool;
                    m->tool_data = seen->tool_data;
                }
            }
        }
        break;
    }
    default:
        break;
    }
    m->stage = sw_lc.stage[stage];
    return remember(self, m, kind == M_INVITE, stage, number, num);
}

/* ---- responses ------------------------------------------------------------------------- */
static int infer_response(sw_labeller *self, sw_msg *m, sw_str cseq_up)
{
    int kind = method_kind(cseq_up);
    sw_str tag = m->from_tag, data;
    int have = sw_fp_decode_tag(tag, &self->fp, &self->keep, &data);
    if (have < 0)
        return -1;
    if (have) {
        /* the From tag is the requester's, echoed: its tool, not the responder's */
        m->tool = sw_fp_sipvicious();
        m->tool_data = sw_fp_tool_data(data, m->to_user, &self->fp);
    }
    if (kind == M_OPTIONS) {
        m->stage = sw_lc.stage[sw_lc.ss];
    }
    else if (kind == M_INVITE) {
        if (m->to_user.n) {
            PyObject *number;
            sw_str num[3];
            if (classify(self, m->to_user, &number, num) < 0)
                return -1;
            if (number != NULL) {
                set_number(self, m, number, num);
                if (chargeable(&num[1]))
                    m->stage = sw_lc.stage[sw_lc.tf];
            }
        }
    }
    else if (kind == M_REGISTER && sw_fp_is_svcrack_tag(tag)) {
        m->stage = sw_lc.stage[sw_lc.rhj];
        /* fingerprint(tag): the decoded data when there is some, else svcrack's tag */
        m->tool = sw_fp_sipvicious();
        m->tool_data = have ? sw_fp_tool_data(data, SW_STR_EMPTY, &self->fp) : SW_STR_EMPTY;
    }
    else if (kind == M_REGISTER && have) {
        int colon = data.n > 0 && memchr(data.p, ':', (size_t)data.n) != NULL;
        m->stage = sw_lc.stage[colon ? sw_lc.rhj : sw_lc.es];
    }
    return 0;
}

static int label_response(sw_labeller *self, sw_msg *m)
{
    sw_str cseq_up;
    if (upper(self, m->cseq_method, &cseq_up) < 0)
        return -1;
    /* a response travels back: its destination is the client that sent the request */
    Py_ssize_t klen = request_key(self, m, m->dst, cseq_up);
    if (klen < 0)
        return -1;
    if (klen > 0) {
        uint64_t h;
        sw_seen *seen = seen_find(self, klen, &h);
        if (seen != NULL) {
            sw_lru_touch(&self->requests, &seen->node);
            self->responses_matched++;
            m->request_id = seen->request_id;
            m->stage = sw_lc.stage[seen->stage];
            m->tool = seen->tool;
            m->tool_data = seen->tool_data;
            if (seen->number != NULL)
                set_number(self, m, seen->number, seen->num);
            return 0;
        }
    }
    self->responses_inferred++;
    return infer_response(self, m, cseq_up);
}

/* ---- label() ----------------------------------------------------------------------------- */
static int is_fuzz(const sw_msg *m)
{
    if (m->error.n && !in_list(m->error, sw_lc.benign_errors, sw_lc.n_benign_errors))
        return 1;
    /* anomaly codes, comma-joined: fuzz unless every one is benign */
    const char *p = m->anomalies.p, *end = p + m->anomalies.n;
    if (m->anomalies.n == 0)
        return 0;
    for (;;) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end;
        sw_str code = {p, e - p};
        if (!in_list(code, sw_lc.benign_anomalies, sw_lc.n_benign_anomalies))
            return 1;
        if (c == NULL)
            return 0;
        p = c + 1;
    }
}

/* what the previous call's label slices pointed into */
static void release_call(sw_labeller *self)
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
    release_call(self);
    sw_lru_free(&self->sources, source_free_node, NULL);
    sw_lru_free(&self->requests, seen_free_node, NULL);
    sw_ua_cache_free(&self->ua);
    free(self->kbuf);
    self->kbuf = NULL;
    self->kcap = 0;
}

static int label_one(sw_labeller *self, sw_msg *m)
{
    release_call(self);
    int fuzz = is_fuzz(m);
    m->fuzz = fuzz;
    if (fuzz)
        self->fuzz++;
    int r = 0;
    if (m->is_request)
        r = label_request(self, m);
    else if (m->status)
        r = label_response(self, m);
    if (r < 0)
        return -1;
    int stage = -1;
    for (int i = 0; i <= SW_NSTAGES; i++) {
        if (eq(m->stage, sw_lc.stage[i])) {
            stage = i;
            break;
        }
    }
    if (stage < 0) {
        /* stats.labelled[stage] += 1 on a Record whose stage was something else */
        PyObject *s = PyUnicode_DecodeUTF8(m->stage.p, m->stage.n, "strict");
        if (s != NULL) {
            PyErr_SetObject(PyExc_KeyError, s);
            Py_DECREF(s);
        }
        return -1;
    }
    if (stage)
        self->labelled[stage]++;
    else
        self->unlabelled++;
    if (m->tool.n)
        self->tools++;
    return 0;
}

int sw_label_impl(sw_labeller *self, sw_msg *m)
{
    /* Python code run from inside (classify, a finalizer) must not label with this labeller
     * while it holds pointers into its own tables */
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Labeller.label() called from inside label()");
        return -1;
    }
    self->busy = 1;
    int r = label_one(self, m);
    self->busy = 0;
    return r;
}

int sw_label(PyObject *labeller, sw_msg *m)
{
    if (!PyObject_TypeCheck(labeller, &sw_labeller_type)) {
        PyErr_SetString(PyExc_TypeError, "sw_label: not a sipwatch._native.Labeller");
        return -1;
    }
    return sw_label_impl((sw_labeller *)labeller, m);
}
