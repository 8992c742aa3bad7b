/* sipwatch._native.Recovery: the Python type around the C password recovery (see
 * passwords.h), a drop-in for sipwatch.detect.passwords.PasswordRecovery: construction,
 * label(), recover() (its attributes: passwords_attrs.c; test hooks: passwords_hooks.c). */
#include "passwords_state.h"
#include "pwtext.h"
#include <limits.h>

/* ---- what is read from detect/passwords.py, once ---------------------------------------- */
static PyObject *stats_type;    /* PasswordStats */
PyObject *sw_pw_stats_type(void)
{
    return stats_type;
}

static PyObject *builtin_words; /* builtin_words() */
static long long default_max_candidates, default_ha1_cache, default_max_requests;
static PyObject *s_request_id, *s_msg, *s_headers, *s_is_request, *s_credentials, *s_method,
    *s_body, *s_tool, *s_tool_data, *s_id, *s_password, *s_params, *s_authorization,
    *s_proxy_authorization, *s_sipvicious, *s_empty;
static PyObject *s_names[SW_D_COUNT];
sw_str sw_pw_sipvicious;

/* The UTF-8 of a str without surrogates (cached in the str); 0 or -1. */
static int sw_text_of_plain(PyObject *s, sw_str *out)
{
    if (!PyUnicode_Check(s)) {
        PyErr_SetString(PyExc_TypeError, "passwords.SIPVICIOUS is not a str");
        return -1;
    }
    out->p = PyUnicode_AsUTF8AndSize(s, &out->n);
    return out->p == NULL ? -1 : 0;
}

/* an int as a long long, the range's end beyond it (the bounds are compared with counts) */
static int as_ll(PyObject *v, const char *what, long long *out)
{
    PyObject *i = PyNumber_Index(v);
    if (i == NULL) {
        PyErr_Format(PyExc_TypeError, "%s must be an int", what);
        return -1;
    }
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(i, &overflow);
    Py_DECREF(i);
    if (x == -1 && PyErr_Occurred())
        return -1;
    *out = overflow > 0 ? LLONG_MAX : overflow < 0 ? LLONG_MIN : x;
    return 0;
}

static int load_python(void)
{
    if (stats_type != NULL)
        return 0;
    PyObject *mod = PyImport_ImportModule("sipwatch.detect.passwords");
    if (mod == NULL)
        return -1;
    int r = -1;
    PyObject *st = PyObject_GetAttrString(mod, "PasswordStats");
    PyObject *bw = PyObject_GetAttrString(mod, "builtin_words");
    PyObject *mc = PyObject_GetAttrString(mod, "DEFAULT_MAX_CANDIDATES");
    PyObject *hc = PyObject_GetAttrString(mod, "DEFAULT_HA1_CACHE");
    PyObject *mr = PyObject_GetAttrString(mod, "DEFAULT_MAX_REQUESTS");
    PyObject *sv = PyObject_GetAttrString(mod, "SIPVICIOUS");
    if (st && bw && mc && hc && mr && sv && sw_text_of_plain(sv, &sw_pw_sipvicious) == 0 &&
        as_ll(mc, "DEFAULT_MAX_CANDIDATES",
                                            &default_max_candidates) == 0 &&
        as_ll(hc, "DEFAULT_HA1_CACHE", &default_ha1_cache) == 0 &&
        as_ll(mr, "DEFAULT_MAX_REQUESTS", &default_max_requests) == 0) {
        stats_type = Py_NewRef(st);
        builtin_words = Py_NewRef(bw);
        Py_XSETREF(s_sipvicious, Py_NewRef(sv)); /* the str keeps sw_pw_sipvicious alive */
        r = 0;
    }
    Py_XDECREF(sv);
    Py_XDECREF(st);
    Py_XDECREF(bw);
    Py_XDECREF(mc);
    Py_XDECREF(hc);
    Py_XDECREF(mr);
    Py_DECREF(mod);
    return r;
}

int sw_text_of(PyObject *s, sw_str *out, PyObject **keep)
{
    *keep = NULL;
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(s)->tp_name);
        return -1;
    }
    const char *p = PyUnicode_AsUTF8AndSize(s, &out->n);
    if (p != NULL) {
        out->p = p;
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return -1;
    PyErr_Clear(); /* lone surrogates: their three-byte forms */
    PyObject *b = PyUnicode_AsEncodedString(s, "utf-8", "surrogatepass");
    if (b == NULL)
        return -1;
    out->p = PyBytes_AS_STRING(b);
    out->n = PyBytes_GET_SIZE(b);
    *keep = b;
    return 0;
}

/* ---- construction ----------------------------------------------------------------------- */
/* A candidate (a str that encodes) into the known set and r->cands[i]. */
static int add_candidate(sw_recovery *r, PyObject *s, Py_ssize_t i)
{
    sw_str t;
    PyObject *keep;
    if (sw_text_of(s, &t, &keep) < 0)
        return -1;
    int plain = sw_text_plain(t);
    sw_known *k = PyMem_Malloc(sizeof(sw_known) + (size_t)t.n * (plain ? 1 : 2) + 1);
    if (k == NULL) {
        Py_XDECREF(keep);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(k->buf, t.p, (size_t)t.n);
    k->c.text = (sw_str){k->buf, t.n};
    Py_ssize_t bn = plain ? t.n : sw_text_encode(t, k->buf + t.n);
    k->c.bytes = (sw_str){plain ? k->buf : k->buf + t.n, bn < 0 ? 0 : bn};
    Py_XDECREF(keep);
    k->c.obj = Py_NewRef(s);
    k->node.hash = sw_lru_hash(k->buf, (size_t)t.n);
    k->node.key = k->buf;
    k->node.klen = (size_t)t.n;
    if (sw_lru_insert(&r->known, &k->node) < 0) {
        Py_DECREF(k->c.obj);
        PyMem_Free(k);
        PyErr_NoMemory();
        return -1;
    }
    r->cands[i] = k;
    return 0;
}

/* _encodable(s) for a str: 1, 0, or -1 */
static int encodable(PyObject *s)
{
    sw_str t;
    PyObject *keep;
    if (sw_text_of(s, &t, &keep) < 0)
        return -1;
    int ok = sw_text_encodable(t);
    Py_XDECREF(keep);
    return ok;
}

/* head = list(dict.fromkeys(c for c in map(str, candidates) if _encodable(c))) */
static PyObject *make_head(PyObject *candidates)
{
    PyObject *it = PyObject_GetIter(candidates);
    if (it == NULL)
        return NULL;
    PyObject *seen = PyDict_New(), *head = PyList_New(0), *c;
    if (seen == NULL || head == NULL)
        goto fail;
    while ((c = PyIter_Next(it)) != NULL) {
        PyObject *s = PyObject_Str(c);
        Py_DECREF(c);
        if (s == NULL)
            goto fail;
        int ok = encodable(s);
        int known = ok > 0 ? PyDict_Contains(seen, s) : 0;
        if (ok < 0 || known < 0 ||
            (ok && !known &&
             (PyDict_SetItem(seen, s, Py_None) < 0 || PyList_Append(head, s) < 0))) {
            Py_DECREF(s);
            goto fail;
        }
        Py_DECREF(s);
    }
    if (PyErr_Occurred())
        goto fail;
    Py_DECREF(it);
    Py_DECREF(seen);
    return head;
fail:
    Py_DECREF(it);
    Py_XDECREF(seen);
    Py_XDECREF(head);
    return NULL;
}

/* the deduplicated list words that can ever be tried (PasswordRecovery.__init__) */
static PyObject *make_tail(PyObject *words, PyObject *known, long long room)
{
    PyObject *it = PyObject_GetIter(words);
    if (it == NULL)
        return NULL;
    PyObject *tail = PyList_New(0), *w;
    if (tail == NULL)
        goto fail;
    while ((w = PyIter_Next(it)) != NULL) {
        if (PyList_GET_SIZE(tail) >= room) {
            Py_DECREF(w);
            break;
        }
        int in = PySet_Contains(known, w);
        if (in < 0) {
            Py_DECREF(w);
            goto fail;
        }
        if (!in) {
            int ok = encodable(w);
            if (ok < 0 || (ok && (PySet_Add(known, w) < 0 || PyList_Append(tail, w) < 0))) {
                Py_DECREF(w);
                goto fail;
            }
        }
        Py_DECREF(w);
    }
    if (PyErr_Occurred())
        goto fail;
    Py_DECREF(it);
    return tail;
fail:
    Py_DECREF(it);
    Py_XDECREF(tail);
    return NULL;
}

static void reset(sw_recovery *r)
{
    sw_recovery_free(r);
    sw_lru_init(&r->known);
    sw_lru_init(&r->ha1);
    sw_lru_init(&r->answered);
    sw_lru_init(&r->ha2);
    memset(&r->stats, 0, sizeof(r->stats));
    Py_CLEAR(r->head);
    Py_CLEAR(r->tail);
    Py_CLEAR(r->known_set);
    Py_CLEAR(r->last);
    r->ready = 0;
}

#define SW_RESERVE_MAX ((long long)1 << 17)

static int Recovery_init(sw_recovery *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"candidates", "wordlist", "max_candidates", "ha1_cache",
                             "max_requests", NULL};
    PyObject *candidates = NULL, *wordlist = Py_None, *mc = NULL, *hc = NULL, *mr = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOOOO:Recovery", kwlist, &candidates,
                                     &wordlist, &mc, &hc, &mr))
        return -1;
    if (load_python() < 0)
        return -1;
    long long max_candidates = default_max_candidates, ha1_cache = default_ha1_cache;
    long long max_requests = default_max_requests;
    if ((mc && as_ll(mc, "max_candidates", &max_candidates) < 0) ||
        (hc && as_ll(hc, "ha1_cache", &ha1_cache) < 0) ||
        (mr && as_ll(mr, "max_requests", &max_requests) < 0))
        return -1;
    reset(self);
    self->max_candidates = max_candidates > 1 ? max_candidates : 1;
    self->ha1_cache = ha1_cache > self->max_candidates ? ha1_cache : self->max_candidates;
    self->max_requests = max_requests > 1 ? max_requests : 1;

    PyObject *empty = PyTuple_New(0);
    PyObject *head = empty ? make_head(candidates ? candidates : empty) : NULL;
    Py_XDECREF(empty);
    if (head == NULL)
        return -1;
    PyObject *words = wordlist == Py_None ? PyObject_CallNoArgs(builtin_words)
                                          : Py_NewRef(wordlist);
    PyObject *known = words ? PySet_New(head) : NULL;
    PyObject *tail = known ? make_tail(words, known, self->max_candidates -
                                                         PyList_GET_SIZE(head))
                           : NULL;
    Py_XDECREF(words);
    int r = -1;
    if (tail == NULL)
        goto done;
    Py_ssize_t nh = PyList_GET_SIZE(head), nt = PyList_GET_SIZE(tail);
    self->cands = PyMem_Calloc((size_t)(nh + nt) + 1, sizeof(sw_known *));
    if (self->cands == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (sw_lru_reserve(&self->known, (size_t)(nh + nt) + 1) < 0 ||
        sw_lru_reserve(&self->answered,
                       (size_t)(self->max_requests < SW_RESERVE_MAX ? self->max_requests + 1
                                                                    : SW_RESERVE_MAX)) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nh + nt; i++) {
        PyObject *s = i < nh ? PyList_GET_ITEM(head, i) : PyList_GET_ITEM(tail, i - nh);
        if (add_candidate(self, s, i) < 0)
            goto done;
        if (i < nh)
            self->nhead++;
        else
            self->ntail++;
    }
    self->head = PyList_AsTuple(head);
    self->tail = PyList_AsTuple(tail);
    self->known_set = PyFrozenSet_New(known);
    if (self->head == NULL || self->tail == NULL || self->known_set == NULL)
        goto done;
    self->ready = 1;
    r = 0;
done:
    Py_DECREF(head);
    Py_XDECREF(known);
    Py_XDECREF(tail);
    return r;
}

static void Recovery_dealloc(sw_recovery *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    reset(self);
    tp->tp_free((PyObject *)self);
}

int sw_recovery_ready(sw_recovery *self)
{
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Recovery.__init__ was not called");
        return -1;
    }
    return 0;
}

/* ---- recover ---------------------------------------------------------------------------- */
#define KEEP_MAX (SW_D_COUNT + 2)

/* recover() on Python objects: the password as a new str ("" when none). */
static PyObject *recover_objects(sw_recovery *self, PyObject *cred, PyObject *method,
                                 PyObject *body, PyObject *svcrack)
{
    PyObject *keep[KEEP_MAX] = {NULL};
    int nkeep = 0;
    PyObject *result = NULL;
    Py_buffer view = {0};
    int have_view = 0;
    sw_digest d;
    sw_str m, sv;
    PyObject *params = PyObject_GetAttr(cred, s_params);
    if (params == NULL)
        return NULL;
    for (int k = 0; k < SW_D_COUNT; k++) {
        PyObject *v;
        if (PyDict_Check(params)) {
            v = Py_XNewRef(PyDict_GetItemWithError(params, s_names[k]));
        }
        else {
            v = PyObject_GetItem(params, s_names[k]);
            if (v == NULL && PyErr_ExceptionMatches(PyExc_KeyError))
                PyErr_Clear();
        }
        if (v == NULL) {
            if (PyErr_Occurred())
                goto done;
            d.p[k] = SW_STR_EMPTY;
            continue;
        }
        int bad = sw_text_of(v, &d.p[k], &keep[nkeep]) < 0;
        Py_DECREF(v); /* the params dict keeps the str alive */
        if (bad)
            goto done;
        nkeep += keep[nkeep] != NULL;
    }
    if (sw_text_of(method, &m, &keep[nkeep]) < 0)
        goto done;
    nkeep += keep[nkeep] != NULL;
    if (sw_text_of(svcrack, &sv, &keep[nkeep]) < 0)
        goto done;
    nkeep += keep[nkeep] != NULL;
    if (PyObject_GetBuffer(body, &view, PyBUF_SIMPLE) < 0)
        goto done;
    have_view = 1;
    sw_pw pw;
    if (sw_recovery_recover(self, &d, m, (sw_str){view.buf, view.len}, sv, &pw) < 0)
        goto done;
    result = sw_pw_object(&pw);
done:
    if (have_view)
        PyBuffer_Release(&view);
    for (int i = 0; i < nkeep; i++)
        Py_DECREF(keep[i]);
    Py_DECREF(params);
    return result;
}

static PyObject *Recovery_recover(sw_recovery *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"cred", "method", "body", "svcrack", NULL};
    PyObject *cred, *method, *body = NULL, *svcrack = s_empty;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OO:recover", kwlist, &cred, &method, &body,
                                     &svcrack))
        return NULL;
    if (sw_recovery_ready(self) < 0)
        return NULL;
    PyObject *empty_bytes = body == NULL ? PyBytes_FromStringAndSize("", 0) : NULL;
    if (body == NULL && empty_bytes == NULL)
        return NULL;
    PyObject *r = recover_objects(self, cred, method, body ? body : empty_bytes, svcrack);
    Py_XDECREF(empty_bytes);
    return r;
}

/* ---- label(record) ---------------------------------------------------------------------- */
static int attr_ll(PyObject *o, PyObject *name, long long *out, int *fits)
{
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        return -1;
    int t = PyObject_IsTrue(v);
    *fits = 0;
    *out = 0;
    if (t > 0 && PyLong_Check(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred())
            t = -1;
        else if (!overflow) {
            *out = x;
            *fits = 1;
        }
    }
    Py_DECREF(v);
    return t;
}

/* label(record) -> record: the password this digest attempt tried; a response: its
 * request's */
static PyObject *Recovery_label(sw_recovery *self, PyObject *record)
{
    if (sw_recovery_ready(self) < 0)
        return NULL;
    long long rid;
    int fits;
    int t = attr_ll(record, s_request_id, &rid, &fits);
    if (t < 0)
        return NULL;
    if (t) { /* a response whose request the labeller matched */
        PyObject *pw = fits ? sw_recovery_answered(self, rid) : NULL;
        if (pw != NULL) {
            Py_INCREF(pw); /* setattr may run code */
            int r = PyObject_SetAttr(record, s_password, pw);
            Py_DECREF(pw);
            if (r < 0)
                return NULL;
            self->stats.responses++;
        }
        return Py_NewRef(record);
    }
    PyObject *msg = PyObject_GetAttr(record, s_msg);
    if (msg == NULL)
        return NULL;
    PyObject *result = NULL, *headers = NULL, *cred = NULL, *tool = NULL, *claim = NULL;
    PyObject *method = NULL, *body = NULL, *pw = NULL;
    headers = PyObject_GetAttr(msg, s_headers);
    if (headers == NULL)
        goto done;
    int a = PySequence_Contains(headers, s_authorization);
    int b = a == 0 ? PySequence_Contains(headers, s_proxy_authorization) : 0;
    if (a < 0 || b < 0)
        goto done;
    if (a || b) {
        PyObject *isreq = PyObject_GetAttr(msg, s_is_request);
        if (isreq == NULL)
            goto done;
        int is = PyObject_IsTrue(isreq);
        Py_DECREF(isreq);
        if (is < 0)
            goto done;
        if (!is)
            a = b = 0;
    }
    if (!(a || b)) {
        result = Py_NewRef(record);
        goto done;
    }
    cred = PyObject_GetAttr(msg, s_credentials);
    if (cred == NULL)
        goto done;
    if (cred == Py_None) {
        result = Py_NewRef(record);
        goto done;
    }
    self->stats.requests++;
    /* the labeller decoded SIPVicious' From tag into tool_data (svcrack: "user:password") */
    tool = PyObject_GetAttr(record, s_tool);
    if (tool == NULL)
        goto done;
    int sv = PyObject_RichCompareBool(tool, s_sipvicious, Py_EQ);
    if (sv < 0)
        goto done;
    claim = sv ? PyObject_GetAttr(record, s_tool_data) : Py_NewRef(s_empty);
    method = claim ? PyObject_GetAttr(msg, s_method) : NULL;
    body = method ? PyObject_GetAttr(msg, s_body) : NULL;
    pw = body ? recover_objects(self, cred, method, body, claim) : NULL;
    if (pw == NULL)
        goto done;
    if (PyUnicode_GET_LENGTH(pw)) {
        if (PyObject_SetAttr(record, s_password, pw) < 0)
            goto done;
        PyObject *id = PyObject_GetAttr(record, s_id);
        if (id == NULL)
            goto done;
        long long x = PyLong_AsLongLong(id);
        Py_DECREF(id);
        if ((x == -1 && PyErr_Occurred()) || sw_recovery_answer(self, x, pw) < 0)
            goto done;
    }
    result = Py_NewRef(record);
done:
    Py_DECREF(msg);
    Py_XDECREF(headers);
    Py_XDECREF(cred);
    Py_XDECREF(tool);
    Py_XDECREF(claim);
    Py_XDECREF(method);
    Py_XDECREF(body);
    Py_XDECREF(pw);
    return result;
}

static PyObject *Recovery_call(sw_recovery *self, PyObject *args, PyObject *kwds)
{
    PyObject *record;
    static char *kwlist[] = {"record", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Recovery", kwlist, &record))
        return NULL;
    return Recovery_label(self, record);
}

static PyMethodDef Recovery_methods[] = {
    {"label", (PyCFunction)Recovery_label, METH_O,
     "label(record) -> record: fill record.password when the password it tried can be "
     "recovered (a response: its request's)."},
    {"recover", (PyCFunction)(void (*)(void))Recovery_recover, METH_VARARGS | METH_KEYWORDS,
     "recover(cred, method, body=b'', svcrack='') -> str: the password that gives this digest "
     "response ('' when none of the candidates does)."},
    {"_sw_recover", (PyCFunction)sw_recovery_sw_recover, METH_O,
     "_sw_recover(records) -> (passwords, seconds): sw_recover alone over prebuilt views of "
     "labelled records (test and benchmark hook)."},
    {NULL},
};

PyTypeObject sw_recovery_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sipwatch._native.Recovery",
    .tp_basicsize = sizeof(sw_recovery),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Recovery(candidates=(), wordlist=None, max_candidates=1000, ha1_cache=65536, "
              "max_requests=65536): the password recovery in C, a drop-in for "
              "sipwatch.detect.passwords.PasswordRecovery (same passwords, state and stats).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Recovery_init,
    .tp_dealloc = (destructor)Recovery_dealloc,
    .tp_call = (ternaryfunc)Recovery_call,
    .tp_methods = Recovery_methods,
    .tp_getset = sw_recovery_getset,
};

static int intern_names(void)
{
    struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&s_request_id, "request_id"},
        {&s_msg, "msg"},
        {&s_headers, "headers"},
        {&s_is_request, "is_request"},
        {&s_credentials, "credentials"},
        {&s_method, "method"},
        {&s_body, "body"},
        {&s_tool, "tool"},
        {&s_tool_data, "tool_data"},
        {&s_id, "id"},
        {&s_password, "password"},
        {&s_params, "params"},
        {&s_authorization, "authorization"},
        {&s_proxy_authorization, "proxy-authorization"},
        {&s_sipvicious, "sipvicious"}, /* replaced by fingerprints.SIPVICIOUS */
        {&s_empty, ""},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL &&
            (*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL)
            return -1;
    }
    for (int k = 0; k < SW_D_COUNT; k++) {
        if (s_names[k] == NULL &&
            (s_names[k] = PyUnicode_InternFromString(sw_digest_names[k])) == NULL)
            return -1;
    }
    return 0;
}

int sw_init_passwords(PyObject *module)
{
    if (intern_names() < 0 || PyType_Ready(&sw_recovery_type) < 0)
        return -1;
    if (sw_init_passwords_hooks(module) < 0)
        return -1;
    Py_INCREF(&sw_recovery_type);
    if (PyModule_AddObject(module, "Recovery", (PyObject *)&sw_recovery_type) < 0) {
        Py_DECREF(&sw_recovery_type);
        return -1;
    }
    return 0;
}
