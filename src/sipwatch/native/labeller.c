/* The stage labeller in C: the labelling (see labeller.h). A line-by-line mirror of
 * sipwatch/detect/stages.py StageLabeler; the names of its functions are kept here
 * (label_request ~ _label_request, remember ~ _remember, ...); the state is in
 * labeller_tables.c. */
#include "labeller_state.h"

#include <stdlib.h>
#include <string.h>

enum { M_OTHER, M_OPTIONS, M_REGISTER, M_INVITE, M_ACK, M_CANCEL };

/* ---- strings ------------------------------------------------------------------------- */
static int in_list(sw_str s, const sw_str *list, int n)
{
    for (int i = 0; i < n; i++) {
        if (sw_str_eq(s, list[i]))
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

/* s.upper() as a slice in which ASCII letters may still be lower case (callers compare and
 * copy with sw_ascii_upper). ASCII: s itself. Otherwise Python's str.upper (Unicode rules:
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
        if (sw_ascii_upper(s.p[i]) != lit[i])
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

/* _remember(record, msg, method, number) */
static int remember(sw_labeller *self, const sw_msg *m, int is_invite, int stage,
                    PyObject *number, const sw_str *num)
{
    sw_str cseq_up;
    if (!sw_tkey_has(m))
        return 0;
    if (upper(self, m->cseq_method, &cseq_up) < 0)
        return -1;
    Py_ssize_t klen = sw_tkey_request(self, m, m->src, cseq_up);
    if (klen <= 0)
        return (int)klen;
    if (sw_seen_put(self, klen, m, stage, number, num) < 0)
        return -1;
    if (!is_invite)
        return 0;
    klen = sw_tkey_invite(self, m);
    if (klen <= 0)
        return (int)klen;
    return sw_seen_put(self, klen, m, stage, number, num);
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
        scanning = sw_source_note_user(self, m, target, !cred, number ? &num[1] : NULL);
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
        Py_ssize_t klen = sw_tkey_invite(self, m);
        if (klen < 0)
            return -1;
        if (klen > 0) {
            uint64_t h;
            sw_seen *seen = sw_seen_find(self, klen, &h);
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
    Py_ssize_t klen = sw_tkey_request(self, m, m->dst, cseq_up);
    if (klen < 0)
        return -1;
    if (klen > 0) {
        uint64_t h;
        sw_seen *seen = sw_seen_find(self, klen, &h);
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

static int label_one(sw_labeller *self, sw_msg *m)
{
    sw_labeller_release_call(self);
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
        if (sw_str_eq(m->stage, sw_lc.stage[i])) {
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
