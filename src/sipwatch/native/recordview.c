/* sw_msg from a Python Record (see recordview.h). */
#include "recordview.h"

#include <structmember.h> /* T_OBJECT_EX: how a __slots__ member is declared */

enum {
    N_TS, N_TRANSPORT, N_SRC, N_SPORT, N_DST, N_DPORT, N_RAW, N_MSG, N_DIRECTION, N_SENSOR,
    N_NODE, N_TUNNEL, N_VLAN, N_STAGE, N_TOOL, N_TOOL_DATA, N_FUZZ, N_NUMBER, N_NUMBER_TYPE,
    N_NUMBER_COUNTRY, N_REQUEST_ID, N_PASSWORD, N_ID, N__ID,
    /* SipMessage */
    N_IS_REQUEST, N_METHOD, N_STATUS, N_REASON, N_RURI, N_HEADERS, N_BODY, N_ANOMALIES,
    N_ERROR, N_CSEQ_NUM, N_CSEQ_METHOD, N_FLAT, N__FLAT,
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
    "error", "cseq_num", "cseq_method", "flat", "_flat",
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

/* Slot offsets of the exact classes seen (Record, SipMessage): a __slots__ attribute read by
 * its offset skips the attribute lookup, ~30 ns each and ~35 per record. Valid while the
 * class is unchanged: CPython gives a class a new version tag whenever it is modified, so a
 * changed tag (or another class) rebuilds the map or takes PyObject_GetAttr. */
typedef struct {
    PyTypeObject *type; /* borrowed: the map is dropped when the tag no longer matches */
    unsigned int tag;
    Py_ssize_t off[N_COUNT]; /* 0: not a plain object slot, use PyObject_GetAttr */
} slot_map;

static slot_map rec_slots, msg_slots;

static void map_slots(slot_map *sm, PyTypeObject *type)
{
    memset(sm, 0, sizeof(*sm));
    for (int i = 0; i < N_COUNT; i++) {
        PyObject *d = _PyType_Lookup(type, str[i]); /* borrowed, no error set */
        if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            PyMemberDef *md = ((PyMemberDescrObject *)d)->d_member;
            if (md->type == T_OBJECT_EX && !(md->flags & READONLY) && md->offset > 0)
                sm->off[i] = md->offset;
        }
    }
    /* _PyType_Lookup assigned a version tag if the class had none; without one (CPython ran
     * out of tags) every field of this class is read by name */
    sm->type = type;
    if (!PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG))
        memset(sm->off, 0, sizeof(sm->off)); /* tag 0: this map reads nothing by offset */
    else
        sm->tag = type->tp_version_tag;
}

/* the map describes obj's class as it is now */
static inline int slots_current(PyObject *obj, const slot_map *sm)
{
    PyTypeObject *type = Py_TYPE(obj);
    return sm->type == type &&
           (sm->tag == 0 || (PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG) &&
                             sm->tag == type->tp_version_tag));
}

/* obj.<name>, a new reference (NULL with an error set) */
static PyObject *get(PyObject *obj, int name, slot_map *sm)
{
    if (!slots_current(obj, sm))
        map_slots(sm, Py_TYPE(obj));
    if (slots_current(obj, sm) && sm->off[name]) {
        PyObject *v = *(PyObject **)((char *)obj + sm->off[name]);
        if (v != NULL)
            return Py_NewRef(v);
    }
    return PyObject_GetAttr(obj, str[name]); /* unset slot: the AttributeError */
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
static int attr_text(PyObject *obj, int name, sw_str *out, slot_map *sm)
{
    PyObject *v = get(obj, name, sm);
    if (v == NULL)
        return -1;
    int r = text_of(v, out);
    Py_DECREF(v);
    return r;
}

static int attr_ll(PyObject *obj, int name, long long *out, slot_map *sm)
{
    PyObject *v = get(obj, name, sm);
    if (v == NULL)
        return -1;
    long long x = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    *out = x;
    return 0;
}

static int attr_bool(PyObject *obj, int name, int *out, slot_map *sm)
{
    PyObject *v = get(obj, name, sm);
    if (v == NULL)
        return -1;
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (t < 0)
        return -1;
    *out = t;
    return 0;
}

/* the same for the fields of a Record and of its SipMessage */
static int rec_text(PyObject *r, int name, sw_str *out)
{
    return attr_text(r, name, out, &rec_slots);
}

static int rec_ll(PyObject *r, int name, long long *out)
{
    return attr_ll(r, name, out, &rec_slots);
}

static int rec_bool(PyObject *r, int name, int *out)
{
    return attr_bool(r, name, out, &rec_slots);
}

static int msg_text(PyObject *m, int name, sw_str *out)
{
    return attr_text(m, name, out, &msg_slots);
}

static int msg_ll(PyObject *m, int name, long long *out)
{
    return attr_ll(m, name, out, &msg_slots);
}

static int msg_bool(PyObject *m, int name, int *out)
{
    return attr_bool(m, name, out, &msg_slots);
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
    if (rec_text(rec, N_STAGE, &m->stage) < 0 || rec_text(rec, N_TOOL, &m->tool) < 0 ||
        rec_text(rec, N_TOOL_DATA, &m->tool_data) < 0 ||
        rec_bool(rec, N_FUZZ, &m->fuzz) < 0 || rec_text(rec, N_NUMBER, &m->number) < 0 ||
        rec_text(rec, N_NUMBER_TYPE, &m->number_type) < 0 ||
        rec_text(rec, N_NUMBER_COUNTRY, &m->number_country) < 0 ||
        rec_ll(rec, N_REQUEST_ID, &m->request_id) < 0 ||
        rec_text(rec, N_PASSWORD, &m->password) < 0)
        return -1;
    return 0;
}

static int parsed_from_msg(PyObject *msg, sw_msg *m, sw_keep *keep)
{
    if (msg_bool(msg, N_IS_REQUEST, &m->is_request) < 0 ||
        msg_text(msg, N_METHOD, &m->method) < 0 || msg_text(msg, N_REASON, &m->reason) < 0 ||
        msg_text(msg, N_RURI, &m->ruri) < 0 || msg_text(msg, N_ERROR, &m->error) < 0 ||
        msg_text(msg, N_CSEQ_METHOD, &m->cseq_method) < 0)
        return -1;
    long long status;
    if (msg_ll(msg, N_STATUS, &status) < 0)
        return -1;
    m->status = (int)status;

    /* the cached tuple when flat() ran already (msg._flat), else the call computes it */
    PyObject *flat = NULL;
    if (slots_current(msg, &msg_slots) && msg_slots.off[N__FLAT]) {
        flat = *(PyObject **)((char *)msg + msg_slots.off[N__FLAT]);
        if (flat != NULL && PyTuple_CheckExact(flat))
            Py_INCREF(flat);
        else
            flat = NULL;
    }
    if (flat == NULL && (flat = PyObject_CallMethodNoArgs(msg, str[N_FLAT])) == NULL)
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

    PyObject *headers = get(msg, N_HEADERS, &msg_slots);
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
    PyObject *cseq = get(msg, N_CSEQ_NUM, &msg_slots);
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

    PyObject *body = get(msg, N_BODY, &msg_slots);
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

    PyObject *anomalies = get(msg, N_ANOMALIES, &msg_slots);
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
    PyObject *ts = get(rec, N_TS, &rec_slots);
    if (ts == NULL)
        return -1;
    m->ts = PyFloat_AsDouble(ts);
    Py_DECREF(ts);
    if (m->ts == -1.0 && PyErr_Occurred())
        return -1;
    long long sport, dport;
    if (rec_text(rec, N_TRANSPORT, &m->transport) < 0 || rec_text(rec, N_SRC, &m->src) < 0 ||
        rec_text(rec, N_DST, &m->dst) < 0 || rec_ll(rec, N_SPORT, &sport) < 0 ||
        rec_ll(rec, N_DPORT, &dport) < 0 || rec_text(rec, N_DIRECTION, &m->direction) < 0 ||
        rec_text(rec, N_SENSOR, &m->sensor) < 0 || rec_text(rec, N_NODE, &m->node) < 0 ||
        rec_text(rec, N_TUNNEL, &m->tunnel) < 0 || rec_text(rec, N_VLAN, &m->vlan) < 0)
        return -1;
    m->sport = (int)sport;
    m->dport = (int)dport;

    PyObject *raw = get(rec, N_RAW, &rec_slots);
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

    PyObject *msg = get(rec, N_MSG, &rec_slots);
    if (msg == NULL)
        return -1;
    int r = parsed_from_msg(msg, m, keep);
    Py_DECREF(msg);
    if (r < 0 || sw_labels_from_record(rec, m) < 0)
        return -1;
    return rec_ll(rec, compute_id ? N_ID : N__ID, &m->id);
}
