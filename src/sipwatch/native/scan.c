/* sw_scan: the bulk path's SIP scanner (see scan.h). The scanning is sip/sipcore.h, shared
 * with the parser's accelerator (sip/_speedups.c); this file picks the row's fields out of
 * its offsets. */
#include "scan.h"
#include "fastudp.h"

#include "module.h"
#include "../sip/sipcore.h"

/* names.COMPACT is loaded and of the shape sipcore.h keeps (single lowercase letters): until
 * then, or when it is not, sw_scan answers 0 for everything. */
static int scan_ready;

static inline sw_str slice(const unsigned char *p, Py_ssize_t n)
{
    return n > 0 ? (sw_str){(const char *)p, n} : SW_STR_EMPTY;
}

/* The canonical key of a header line's name as SC_K_*, -1 for another header, -2 when the
 * Python code must decide (a compact form sipcore.h does not keep). */
static inline int key_of(const unsigned char *name, Py_ssize_t n)
{
    unsigned char buf[24]; /* longer than any SC_K_* key: such a name is another header */
    const unsigned char *k;
    int letter;
    Py_ssize_t kn = sc_canonical_key(name, n, buf, (Py_ssize_t)sizeof(buf), &k, &letter);
    if (kn == -2)
        return -2;
    return kn < 0 ? -1 : sc_known_key(k, kn);
}

/* SipMessage.flat()'s (display, user, tag) of a From/To value, for sipcore's name-addr shape
 * (a display name of printable ASCII is its own text.text()). 0: the Python code decides. */
static inline int name_addr_fields(const sc_header *x, sw_str *display, sw_str *user,
                                   sw_str *tag)
{
    *display = *user = *tag = SW_STR_EMPTY;
    if (x->count == 0)
        return 1;
    sc_name_addr na;
    if (!sc_parse_name_addr(x->p, x->n, &na))
        return 0;
    const unsigned char *u = x->p + na.u_a;
    *display = slice(x->p + na.d_a, na.d_b - na.d_a);
    if (na.uri.user_a >= 0)
        *user = slice(u + na.uri.user_a, na.uri.user_b - na.uri.user_a);
    if (na.tag == 1)
        *tag = slice(x->p + na.t_a, na.t_b - na.t_a);
    return 1;
}

int sw_scan(const unsigned char *d, Py_ssize_t n, sw_msg *m, char *scratch)
{
    if (!scan_ready || d == NULL)
        return 0;
    sc_head h;
    if (!sc_scan_head(d, n, 1, &h))
        return 0;

    /* the headers the checks and the row read: count, first value, longest value */
    sc_header hv[SC_K_COUNT];
    memset(hv, 0, sizeof(hv));
    for (int i = 0; i < h.count; i++) {
        const sc_line *l = &h.line[i];
        int k = key_of(d + l->at, l->name_len);
        if (k == -1)
            continue;
        if (k < 0)
            return 0;
        sc_header *x = &hv[k];
        Py_ssize_t vn = l->v1 - l->v0;
        if (x->count++ == 0) {
            x->p = d + l->v0;
            x->n = vn;
        }
        if (vn > x->max_len)
            x->max_len = vn;
    }
    sc_check_result cr;
    if (!sc_check(hv, d, n, h.body_at, d, h.m_len, h.is_request, &cr))
        return 0;

    /* flat(): request-URI user, parse_uri(ruri).user when uri.SIP_URI_FAST reads it whole
     * (what _ruri_user gives, through name_addr or ruri_uri) */
    sw_str ruri_user = SW_STR_EMPTY;
    if (h.is_request) {
        const unsigned char *u = d + h.u_at;
        sc_uri_parts up;
        if (!sc_sip_uri_fast(u, h.u_len, &up))
            return 0;
        if (up.user_a >= 0)
            ruri_user = slice(u + up.user_a, up.user_b - up.user_a);
    }
    sw_str from_display, from_user, from_tag, to_display, to_user, to_tag;
    if (!name_addr_fields(&hv[SC_K_FROM], &from_display, &from_user, &from_tag) ||
        !name_addr_fields(&hv[SC_K_TO], &to_display, &to_user, &to_tag))
        return 0;
    sw_str branch = SW_STR_EMPTY;
    if (hv[SC_K_VIA].count) {
        Py_ssize_t a, b;
        if (!sc_top_via_branch(hv[SC_K_VIA].p, hv[SC_K_VIA].n, &a, &b))
            return 0;
        branch = slice(hv[SC_K_VIA].p + a, b - a);
    }
    /* `h.get("user-agent") or h.get("server")`: the parser's lists are never empty */
    const sc_header *ua = hv[SC_K_USER_AGENT].count ? &hv[SC_K_USER_AGENT] : &hv[SC_K_SERVER];
    const sc_header *cred =
        hv[SC_K_AUTHORIZATION].count ? &hv[SC_K_AUTHORIZATION] : &hv[SC_K_PROXY_AUTHORIZATION];
    sw_str auth_user = SW_STR_EMPTY, auth_realm = SW_STR_EMPTY;
    if (cred->count) {
        Py_ssize_t a, b, c, e;
        if (!sc_digest_user_realm(cred->p, cred->n, &a, &b, &c, &e))
            return 0;
        if (a >= 0)
            auth_user = slice(cred->p + a, b - a);
        if (c >= 0)
            auth_realm = slice(cred->p + c, e - c);
    }

    /* ",".join(msg.anomalies) */
    Py_ssize_t an = 0;
    for (int i = 0; i < cr.ncodes; i++) {
        const char *name = sc_anomaly_names[cr.codes[i]];
        size_t len = strlen(name);
        if (an + (Py_ssize_t)len + 1 > SW_SCAN_SCRATCH)
            return 0; /* cannot happen: every code at most once is far shorter */
        if (i > 0)
            scratch[an++] = ',';
        memcpy(scratch + an, name, len);
        an += (Py_ssize_t)len;
    }

    /* all of it is known to be right: fill m */
    m->is_request = h.is_request;
    if (h.is_request) {
        m->method = slice(d, h.m_len);
        m->status = 0;
        m->reason = SW_STR_EMPTY;
        m->ruri = slice(d + h.u_at, h.u_len);
    } else {
        m->method = SW_STR_EMPTY;
        m->status = h.status;
        m->reason = slice(d + h.r_at, h.r_len);
        m->ruri = SW_STR_EMPTY;
    }
    m->ruri_user = ruri_user;
    m->from_display = from_display;
    m->from_user = from_user;
    m->from_tag = from_tag;
    m->to_user = to_user;
    m->to_tag = to_tag;
    m->call_id = slice(hv[SC_K_CALL_ID].p, hv[SC_K_CALL_ID].n);
    m->has_cseq = cr.has_cseq; /* at most 10 digits: always within message_row's int64 */
    m->cseq_num = cr.has_cseq ? cr.cseq_num : 0;
    m->cseq_method = cr.has_cseq ? slice(cr.cseq_v + cr.cm_a, cr.cm_b - cr.cm_a) : SW_STR_EMPTY;
    m->via_branch = branch;
    m->user_agent = slice(ua->p, ua->n);
    m->auth_user = auth_user;
    m->auth_realm = auth_realm;
    m->contact = slice(hv[SC_K_CONTACT].p, hv[SC_K_CONTACT].n);
    m->content_type = slice(hv[SC_K_CONTENT_TYPE].p, hv[SC_K_CONTENT_TYPE].n);
    m->has_credentials = hv[SC_K_AUTHORIZATION].count || hv[SC_K_PROXY_AUTHORIZATION].count;
    m->credentials = cred->count ? slice(cred->p, cred->n) : SW_STR_EMPTY;
    m->body = slice(d + cr.body_a, cr.body_b - cr.body_a);
    m->body_len = cr.body_b - cr.body_a;
    m->anomalies = slice((const unsigned char *)scratch, an);
    m->error = SW_STR_EMPTY;
    return 1;
}

/* ---------------------------------------------------------------- test and benchmark hooks */
static int set_str(PyObject *dict, const char *key, sw_str s)
{
    PyObject *v = PyUnicode_DecodeUTF8(s.p, s.n, "strict");
    if (v == NULL)
        return -1;
    int r = PyDict_SetItemString(dict, key, v);
    Py_DECREF(v);
    return r;
}

static int set_obj(PyObject *dict, const char *key, PyObject *v) /* steals v */
{
    if (v == NULL)
        return -1;
    int r = PyDict_SetItemString(dict, key, v);
    Py_DECREF(v);
    return r;
}

/* The sw_msg fields sw_scan fills, as a dict of Python values. */
static PyObject *fields_dict(const sw_msg *m)
{
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    const struct {
        const char *key;
        sw_str value;
    } strs[] = {
        {"method", m->method},
        {"reason", m->reason},
        {"ruri", m->ruri},
        {"ruri_user", m->ruri_user},
        {"from_display", m->from_display},
        {"from_user", m->from_user},
        {"from_tag", m->from_tag},
        {"to_user", m->to_user},
        {"to_tag", m->to_tag},
        {"call_id", m->call_id},
        {"cseq_method", m->cseq_method},
        {"via_branch", m->via_branch},
        {"user_agent", m->user_agent},
        {"auth_user", m->auth_user},
        {"auth_realm", m->auth_realm},
        {"credentials", m->credentials},
        {"contact", m->contact},
        {"content_type", m->content_type},
        {"anomalies", m->anomalies},
        {"error", m->error},
    };
    int bad = set_obj(out, "is_request", PyBool_FromLong(m->is_request)) < 0 ||
              set_obj(out, "status", PyLong_FromLong(m->status)) < 0 ||
              set_obj(out, "has_cseq", PyBool_FromLong(m->has_cseq)) < 0 ||
              set_obj(out, "cseq_num", m->has_cseq ? PyLong_FromLongLong(m->cseq_num)
                                                  : (Py_INCREF(Py_None), Py_None)) < 0 ||
              set_obj(out, "has_credentials", PyBool_FromLong(m->has_credentials)) < 0 ||
              set_obj(out, "body_len", PyLong_FromSsize_t(m->body_len)) < 0 ||
              set_obj(out, "body", PyBytes_FromStringAndSize(m->body.p, m->body.n)) < 0;
    for (size_t i = 0; !bad && i < sizeof(strs) / sizeof(strs[0]); i++)
        bad = set_str(out, strs[i].key, strs[i].value) < 0;
    if (bad) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* scan(raw: bytes) -> dict | None. The test hook scans a private copy of exactly len(raw)
 * bytes on the C heap: a bytes object has a NUL after its data and small ones live in
 * pymalloc's arenas, so a read past the end would go unseen by AddressSanitizer there. */
static PyObject *py_scan(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "scan() needs bytes");
        return NULL;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    unsigned char *copy = PyMem_RawMalloc(n > 0 ? (size_t)n : 1);
    if (copy == NULL)
        return PyErr_NoMemory();
    memcpy(copy, PyBytes_AS_STRING(arg), (size_t)n);
    sw_msg m;
    char scratch[SW_SCAN_SCRATCH];
    memset(&m, 0, sizeof(m));
    PyObject *out;
    if (sw_scan(copy, n, &m, scratch))
        out = fields_dict(&m); /* before the copy the slices point into is freed */
    else
        out = (Py_INCREF(Py_None), Py_None);
    PyMem_RawFree(copy);
    return out;
}

/* scan_count(payloads: list[bytes]) -> int: how many of them sw_scan handles */
static PyObject *py_scan_count(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyList_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "scan_count() needs a list of bytes");
        return NULL;
    }
    sw_msg m;
    char scratch[SW_SCAN_SCRATCH];
    Py_ssize_t handled = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(arg); i++) {
        PyObject *b = PyList_GET_ITEM(arg, i);
        if (!PyBytes_Check(b)) {
            PyErr_SetString(PyExc_TypeError, "scan_count() needs a list of bytes");
            return NULL;
        }
        handled += sw_scan((const unsigned char *)PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), &m,
                           scratch);
    }
    return PyLong_FromSsize_t(handled);
}

static PyMethodDef scan_methods[] = {
    {"scan", py_scan, METH_O,
     "scan(raw: bytes) -> dict | None: the sw_msg fields sw_scan fills (None: the Python"
     " parser decides). A test hook."},
    {"scan_count", py_scan_count, METH_O,
     "scan_count(payloads: list[bytes]) -> int: how many sw_scan handles. A benchmark hook."},
    {NULL, NULL, 0, NULL},
};

/* names.COMPACT into sipcore's table: 1 when every form is of the kept shape, 0 when not
 * (the scanner then stays off), -1 with an exception. */
static int load_compact(void)
{
    PyObject *names = PyImport_ImportModule("sipwatch.sip.names");
    if (names == NULL)
        return -1;
    PyObject *compact = PyObject_GetAttrString(names, "COMPACT");
    Py_DECREF(names);
    if (compact == NULL)
        return -1;
    int ok = PyDict_Check(compact);
    PyObject *k, *v;
    Py_ssize_t it = 0;
    while (ok && PyDict_Next(compact, &it, &k, &v)) {
        Py_ssize_t kn, vn;
        const char *kp = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &kn) : NULL;
        const char *vp = PyUnicode_Check(v) ? PyUnicode_AsUTF8AndSize(v, &vn) : NULL;
        if (kp == NULL || vp == NULL) {
            if (PyErr_Occurred()) {
                Py_DECREF(compact);
                return -1;
            }
            ok = 0;
            break;
        }
        ok = sc_set_compact((const unsigned char *)kp, kn, (const unsigned char *)vp, vn) == 0;
    }
    Py_DECREF(compact);
    return ok;
}

int sw_init_scan(PyObject *module)
{
    sc_init_tables();
    int got = load_compact();
    if (got < 0)
        return -1;
    scan_ready = got;
    return PyModule_AddFunctions(module, scan_methods);
}

/* message.looks_like_sip for the frame rules (fastudp.h): sipcore's, whose tables this file
 * initialises. */
int sw_looks_like_sip(const unsigned char *d, Py_ssize_t n) { return sc_looks_like_sip(d, n); }
