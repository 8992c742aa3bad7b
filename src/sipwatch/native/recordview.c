/* sw_msg from a Python Record (see recordview.h). */
#include "recordview.h"

enum {
    N_TS, N_TRANSPORT, N_SRC, N_SPORT, N_DST, N_DPORT, N_RAW, N_MSG, N_DIRECTION, N_SENSOR,
    N_NODE, N_TUNNEL, N_VLAN, N_STAGE, N_TOOL, N_TOOL_DATA, N_FUZZ, N_NUMBER, N_NUMBER_TYPE,
    N_NUMBER_COUNTRY, N_REQUEST_ID, N_PASSWORD, N_ID, N__ID,
    /* SipMessage */
    N_IS_REQUEST, N_METHOD, N_STATUS, N_REASON, N_RURI, N_HEADERS, N_BODY, N_ANOMALIES,
    N_ERROR, N_CSEQ_NUM, N_CSEQ_METHOD, N_FLAT,
    /* header keys */
    N_H_CALL_ID, N_H_CONTACT, N_H_CONTENT_TYPE, N_H_AUTHORIZATION, N_H_PROXY_AUTHORIZATION,
    N_COMMA,
    N_COUNT
};

static const char *names[N_COUNT] = {
    "ts", "transport", "src", "sport", "dst", "dport", "raw", "msg", "direction", "sensor",
    "node", "tunnel", "vlan", "stage", "tool", "tool_data", "fuzz", "number", "number_type",
    "number_country", "request_id", "password", "id", "_id",
    "is_request", "method", "status", "reason", "ruri", "headers", "body", "anomalies",
    "error", "cseq_num", "cseq_method", "flat",
    "call-id", "contact", "content-type", "authorization", "proxy-authorization",
    ",",
};
static PyObject *str[N_COUNT];

int sw_recordview_init(void)
{
    for (int i = 0; i < N_COUNT; i++) {
        if (str[i] == NULL && (str[i] = PyUnicode_InternFromString(names[i])) == NULL)
            return -1;
    }
    return 0;
}

void sw_keep_clear(sw_keep *k)
{
    for (int i = 0; i < k->n; i++)
        Py_CLEAR(k->obj[i]);
    k->n = 0;
}

/* Keep a new reference o (NULL: an error is set) in keep; 0 or -1. */
static int keep_add(sw_keep *k, PyObject *o)
{
    if (o == NULL)
        return -1;
    if (k->n >= SW_KEEP_MAX) {
        Py_DECREF(o);
        PyErr_SetString(PyExc_SystemError, "sw_keep is full");
        return -1;
    }
    k->obj[k->n++] = o;
    return 0;
}

/* The UTF-8 bytes of a str (cached in the object, so valid while it lives). */
static int text_of(PyObject *o, sw_str *out)
{
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
    const char *p = PyUnicode_AsUTF8AndSize(o, &out->n);
    if (p == NULL)
        return -1;
    out->p = p;
    return 0;
}

/* obj.<name> as text; the object keeps the attribute alive (slots of a Record/SipMessage). */
static int attr_text(PyObject *obj, int name, sw_str *out)
{
    PyObject *v = PyObject_GetAttr(obj, str[name]);
    if (v == NULL)
        return -1;
    int r = text_of(v, out);
    Py_DECREF(v);
    return r;
}

static int attr_ll(PyObject *obj, int name, long long *out)
{
    PyObject *v = PyObject_GetAttr(obj, str[name]);
    if (v == NULL)
        return -1;
    long long x = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    *out = x;
    return 0;
}

static int attr_bool(PyObject *obj, int name, int *out)
{
    PyObject *v = PyObject_GetAttr(obj, str[name]);
    if (v == NULL)
        return -1;
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (t < 0)
        return -1;
    *out = t;
    return 0;
}

/* First value of a header list in the headers dict, "" when absent (message_row's rule). */
static int first_header(PyObject *headers, int key, sw_str *out)
{
    PyObject *vals = PyDict_GetItemWithError(headers, str[key]);
    if (vals == NULL) {
        if (PyErr_Occurred())
            return -1;
        *out = SW_STR_EMPTY;
        return 0;
    }
    int t = PyObject_IsTrue(vals);
    if (t < 0)
        return -1;
    if (!t) {
        *out = SW_STR_EMPTY;
        return 0;
    }
    PyObject *v = PySequence_GetItem(vals, 0);
    if (v == NULL)
        return -1;
    int r = text_of(v, out); /* the list keeps v alive */
    Py_DECREF(v);
    return r;
}

int sw_labels_from_record(PyObject *rec, sw_msg *m)
{
    if (attr_text(rec, N_STAGE, &m->stage) < 0 || attr_text(rec, N_TOOL, &m->tool) < 0 ||
        attr_text(rec, N_TOOL_DATA, &m->tool_data) < 0 ||
        attr_bool(rec, N_FUZZ, &m->fuzz) < 0 || attr_text(rec, N_NUMBER, &m->number) < 0 ||
        attr_text(rec, N_NUMBER_TYPE, &m->number_type) < 0 ||
        attr_text(rec, N_NUMBER_COUNTRY, &m->number_country) < 0 ||
        attr_ll(rec, N_REQUEST_ID, &m->request_id) < 0 ||
        attr_text(rec, N_PASSWORD, &m->password) < 0)
        return -1;
    return 0;
}

static int parsed_from_msg(PyObject *msg, sw_msg *m, sw_keep *keep)
{
    if (attr_bool(msg, N_IS_REQUEST, &m->is_request) < 0 ||
        attr_text(msg, N_METHOD, &m->method) < 0 || attr_text(msg, N_REASON, &m->reason) < 0 ||
        attr_text(msg, N_RURI, &m->ruri) < 0 || attr_text(msg, N_ERROR, &m->error) < 0 ||
        attr_text(msg, N_CSEQ_METHOD, &m->cseq_method) < 0)
        return -1;
    long long status;
    if (attr_ll(msg, N_STATUS, &status) < 0)
        return -1;
    m->status = (int)status;

    PyObject *flat = PyObject_CallMethodNoArgs(msg, str[N_FLAT]);
    if (flat == NULL)
        return -1;
    /* flat() is cached in the message (msg._flat): the message keeps the tuple alive */
    int bad = !PyTuple_Check(flat) || PyTuple_GET_SIZE(flat) != 10;
    sw_str *dest[10] = {&m->ruri_user, &m->from_display, &m->from_user, &m->from_tag,
                        &m->to_user,   &m->to_tag,       &m->via_branch, &m->user_agent,
                        &m->auth_user, &m->auth_realm};
    for (int i = 0; !bad && i < 10; i++)
        bad = text_of(PyTuple_GET_ITEM(flat, i), dest[i]) < 0;
    Py_DECREF(flat);
    if (bad) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "SipMessage.flat() is not a 10-tuple");
        return -1;
    }

    PyObject *headers = PyObject_GetAttr(msg, str[N_HEADERS]);
    if (headers == NULL)
        return -1;
    int r = -1;
    if (!PyDict_Check(headers)) {
        PyErr_SetString(PyExc_TypeError, "SipMessage.headers is not a dict");
        goto done;
    }
    if (first_header(headers, N_H_CALL_ID, &m->call_id) < 0 ||
        first_header(headers, N_H_CONTACT, &m->contact) < 0 ||
        first_header(headers, N_H_CONTENT_TYPE, &m->content_type) < 0)
        goto done;
    int a = PyDict_Contains(headers, str[N_H_AUTHORIZATION]);
    int b = a ? a : PyDict_Contains(headers, str[N_H_PROXY_AUTHORIZATION]);
    if (a < 0 || b < 0)
        goto done;
    m->has_credentials = a || b;
    /* msg.credentials parses `h.get("authorization") or h.get("proxy-authorization")`[0] */
    m->credentials = SW_STR_EMPTY;
    if (m->has_credentials) {
        PyObject *vals = PyDict_GetItemWithError(headers, str[N_H_AUTHORIZATION]);
        int t = vals == NULL ? 0 : PyObject_IsTrue(vals);
        if (t < 0 || PyErr_Occurred())
            goto done;
        if (!t) {
            vals = PyDict_GetItemWithError(headers, str[N_H_PROXY_AUTHORIZATION]);
            t = vals == NULL ? 0 : PyObject_IsTrue(vals);
            if (t < 0 || PyErr_Occurred())
                goto done;
        }
        if (t) {
            PyObject *v = PySequence_GetItem(vals, 0);
            if (v == NULL)
                goto done;
            int failed = text_of(v, &m->credentials) < 0; /* the list keeps v alive */
            Py_DECREF(v);
            if (failed)
                goto done;
        }
    }
    r = 0;
done:
    Py_DECREF(headers);
    if (r < 0)
        return -1;

    /* cseq_num: None, or an int; outside the int64 range it is stored as NULL (message_row) */
    PyObject *cseq = PyObject_GetAttr(msg, str[N_CSEQ_NUM]);
    if (cseq == NULL)
        return -1;
    m->has_cseq = 0;
    if (cseq != Py_None) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(cseq, &overflow);
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(cseq);
            return -1;
        }
        if (!overflow) {
            m->has_cseq = 1;
            m->cseq_num = v;
        } else {
            /* keys compare the exact number: keep its canonical decimal text */
            PyObject *text = PyObject_Str(cseq);
            if (text == NULL || keep_add(keep, text) < 0 || text_of(text, &m->cseq_big) < 0) {
                Py_DECREF(cseq);
                return -1;
            }
        }
    }
    Py_DECREF(cseq);

    PyObject *body = PyObject_GetAttr(msg, str[N_BODY]);
    if (body == NULL)
        return -1;
    if (PyBytes_Check(body)) {
        m->body = (sw_str){PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body)}; /* msg keeps it */
        m->body_len = m->body.n;
    }
    else { /* not the parser's: only its length is read (the store's body_len) */
        m->body = SW_STR_EMPTY;
        m->body_len = PyObject_Length(body);
    }
    Py_DECREF(body);
    if (m->body_len < 0)
        return -1;

    PyObject *anomalies = PyObject_GetAttr(msg, str[N_ANOMALIES]);
    if (anomalies == NULL)
        return -1;
    PyObject *joined = PyUnicode_Join(str[N_COMMA], anomalies);
    Py_DECREF(anomalies);
    if (joined == NULL || keep_add(keep, joined) < 0)
        return -1;
    return text_of(joined, &m->anomalies);
}

int sw_msg_from_record(PyObject *rec, sw_msg *m, sw_keep *keep)
{
    return sw_msg_from_record_id(rec, m, keep, 1);
}

int sw_msg_from_record_id(PyObject *rec, sw_msg *m, sw_keep *keep, int compute_id)
{
    memset(m, 0, sizeof(*m));
    PyObject *ts = PyObject_GetAttr(rec, str[N_TS]);
    if (ts == NULL)
        return -1;
    m->ts = PyFloat_AsDouble(ts);
    Py_DECREF(ts);
    if (m->ts == -1.0 && PyErr_Occurred())
        return -1;
    long long sport, dport;
    if (attr_text(rec, N_TRANSPORT, &m->transport) < 0 || attr_text(rec, N_SRC, &m->src) < 0 ||
        attr_text(rec, N_DST, &m->dst) < 0 || attr_ll(rec, N_SPORT, &sport) < 0 ||
        attr_ll(rec, N_DPORT, &dport) < 0 || attr_text(rec, N_DIRECTION, &m->direction) < 0 ||
        attr_text(rec, N_SENSOR, &m->sensor) < 0 || attr_text(rec, N_NODE, &m->node) < 0 ||
        attr_text(rec, N_TUNNEL, &m->tunnel) < 0 || attr_text(rec, N_VLAN, &m->vlan) < 0)
        return -1;
    m->sport = (int)sport;
    m->dport = (int)dport;

    PyObject *raw = PyObject_GetAttr(rec, str[N_RAW]);
    if (raw == NULL)
        return -1;
    if (!PyBytes_Check(raw)) {
        Py_DECREF(raw);
        PyErr_SetString(PyExc_TypeError, "Record.raw is not bytes");
        return -1;
    }
    m->raw.p = PyBytes_AS_STRING(raw); /* the record keeps it alive */
    m->raw.n = PyBytes_GET_SIZE(raw);
    Py_DECREF(raw);

    PyObject *msg = PyObject_GetAttr(rec, str[N_MSG]);
    if (msg == NULL)
        return -1;
    int r = parsed_from_msg(msg, m, keep);
    Py_DECREF(msg);
    if (r < 0 || sw_labels_from_record(rec, m) < 0)
        return -1;
    return attr_ll(rec, compute_id ? N_ID : N__ID, &m->id);
}
