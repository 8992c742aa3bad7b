/* BulkAnalyzer: the per-message stages of the pipeline fused in C for `sipwatch analyze`.
 *
 * For each message it handles: scan (sw_scan) -> Record.id (sw_record_id) -> stage labels
 * (sw_label, the labeller shared with the Python records) -> the password (sw_recover, the
 * recovery shared with the Python records) -> the trace-store row (sw_rowbuf_message) -> the
 * SQLite writer thread. What it does
 * not handle goes, at once and in order, to a Python callable that runs the Python pipeline
 * for that one message (Record, analyzers, store), so the labeller sees every message in
 * capture order and the store ends up with the rows the Python pipeline alone would give
 * (tests/unit/test_native_analyze.py compares the two).
 *
 * Handled here: every message sw_scan accepts (digest requests included: sw_recover handles
 * every message). Frames: one SIP message in a UDP datagram over IPv4/IPv6 (fastudp.h); plain
 * TCP segments go to the C reassembler (tcp.h) when batch() is given one, and the messages it
 * frames come back here (sw_bulk_tcp_message); other frames go to the Python decoder, whose
 * record factory is this object's message() (tunnels, VLANs, split datagrams) and whose TCP
 * segments go to the same reassembler.
 */
#include "blake2b.h"
#include "fastudp.h"
#include "labeller.h"
#include "module.h"
#include "passwords.h"
#include "rowbuf.h"
#include "scan.h"
#include "tally.h"
#include "tcp.h"

#include <string.h>

#define N_STAGES 5
static const char *stage_names[N_STAGES] = {"", "SS", "ES", "RHJ", "TF"};

typedef struct {
    PyObject_HEAD
    PyObject *labeller; /* sipwatch._native.Labeller */
    PyObject *writer;   /* sipwatch._native.SqliteWriter */
    PyObject *recovery; /* sipwatch._native.Recovery, or NULL (no passwords recovered) */
    PyObject *tally;    /* sipwatch._native.RunTally, or NULL */
    PyObject *fallback; /* the Python pipeline for one message */
    PyObject *sensor, *node;
    sw_str sensor_s, node_s;
    sw_rowbuf *rows;
    int ncols;
    Py_ssize_t batch_rows;
    long long handled, fallbacks, submitted, password_responses;
    long long stages[N_STAGES + 1]; /* the last: any other label */
    /* the first failure (store, labeller, fallback): kept, because message() runs inside the
     * Python decoder, which counts and swallows the exceptions of a bad packet */
    PyObject *err_type, *err_value, *err_tb;
} Bulk;

static void keep_error(Bulk *self)
{
    if (self->err_type != NULL || !PyErr_Occurred())
        return;
    PyErr_Fetch(&self->err_type, &self->err_value, &self->err_tb);
    PyErr_NormalizeException(&self->err_type, &self->err_value, &self->err_tb);
    Py_XINCREF(self->err_type);
    Py_XINCREF(self->err_value);
    Py_XINCREF(self->err_tb);
    PyErr_Restore(self->err_type, self->err_value, self->err_tb);
}

/* Raise the kept failure (again); 0 when there is none. */
static int raise_kept(Bulk *self)
{
    if (self->err_type == NULL)
        return 0;
    Py_XINCREF(self->err_type);
    Py_XINCREF(self->err_value);
    Py_XINCREF(self->err_tb);
    PyErr_Restore(self->err_type, self->err_value, self->err_tb);
    return -1;
}

static int text(PyObject *o, sw_str *s)
{
    const char *p = PyUnicode_AsUTF8AndSize(o, &s->n);
    if (p == NULL)
        return -1;
    s->p = p;
    return 0;
}

static int bulk_init(Bulk *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"labeller", "writer", "fallback",   "recovery", "sensor",
                             "node",     "ncols",  "batch_rows", "tally",    NULL};
    PyObject *labeller, *writer, *fallback, *recovery = Py_None, *tally = Py_None;
    PyObject *sensor = NULL, *node = NULL;
    int ncols = 45;
    Py_ssize_t batch_rows = 2000;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OUUinO", kwlist, &labeller, &writer,
                                     &fallback, &recovery, &sensor, &node, &ncols, &batch_rows,
                                     &tally))
        return -1;
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be callable");
        return -1;
    }
    if (recovery != Py_None && !sw_recovery_check(recovery)) {
        PyErr_SetString(PyExc_TypeError, "recovery must be a sipwatch._native.Recovery or None");
        return -1;
    }
    if (tally != Py_None && !sw_tally_check(tally)) {
        PyErr_SetString(PyExc_TypeError, "tally must be a sipwatch._native.RunTally or None");
        return -1;
    }
    if (batch_rows < 1)
        batch_rows = 1;
    Py_CLEAR(self->tally);
    if (tally != Py_None)
        self->tally = Py_NewRef(tally);
    Py_XSETREF(self->labeller, Py_NewRef(labeller));
    Py_XSETREF(self->writer, Py_NewRef(writer));
    Py_XSETREF(self->fallback, Py_NewRef(fallback));
    Py_CLEAR(self->recovery);
    if (recovery != Py_None)
        self->recovery = Py_NewRef(recovery);
    Py_XSETREF(self->sensor, sensor ? Py_NewRef(sensor) : PyUnicode_FromString(""));
    Py_XSETREF(self->node, node ? Py_NewRef(node) : PyUnicode_FromString(""));
    if (self->sensor == NULL || self->node == NULL)
        return -1;
    if (text(self->sensor, &self->sensor_s) < 0 || text(self->node, &self->node_s) < 0)
        return -1;
    self->ncols = ncols;
    self->batch_rows = batch_rows;
    if (self->rows == NULL && (self->rows = sw_rowbuf_new(ncols)) == NULL)
        return -1;
    return 0;
}

static int bulk_traverse(Bulk *self, visitproc visit, void *arg)
{
    Py_VISIT(self->labeller);
    Py_VISIT(self->writer);
    Py_VISIT(self->recovery);
    Py_VISIT(self->tally);
    Py_VISIT(self->fallback);
    return 0;
}

static int bulk_clear(Bulk *self)
{
    Py_CLEAR(self->labeller);
    Py_CLEAR(self->writer);
    Py_CLEAR(self->recovery);
    Py_CLEAR(self->tally);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->sensor);
    Py_CLEAR(self->node);
    Py_CLEAR(self->err_type);
    Py_CLEAR(self->err_value);
    Py_CLEAR(self->err_tb);
    return 0;
}

static void bulk_dealloc(Bulk *self)
{
    PyObject_GC_UnTrack(self);
    bulk_clear(self);
    if (self->rows != NULL)
        sw_rowbuf_free(self->rows); /* rows not submitted by flush() are dropped */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Hand the packed rows to the writer thread. */
static int submit(Bulk *self)
{
    Py_ssize_t n = sw_rowbuf_rows(self->rows);
    if (n == 0)
        return 0;
    sw_rowbuf *full = self->rows;
    self->rows = sw_rowbuf_new(self->ncols);
    self->submitted += n;
    int r = sw_writer_submit(self->writer, full); /* takes full in every case */
    if (self->rows == NULL)
        return -1;
    return r;
}

static void count_stage(Bulk *self, const sw_str *stage)
{
    for (int i = 0; i < N_STAGES; i++) {
        size_t len = strlen(stage_names[i]);
        if ((size_t)stage->n == len && memcmp(stage->p, stage_names[i], len) == 0) {
            self->stages[i]++;
            return;
        }
    }
    self->stages[N_STAGES]++;
}

/* The rest of the pipeline for a message whose seen and parsed fields are filled. */
static int finish(Bulk *self, sw_msg *m)
{
    /* labels start empty (sw_label leaves alone what the Python labeller leaves alone) */
    m->stage = m->tool = m->tool_data = SW_STR_EMPTY;
    m->number = m->number_type = m->number_country = SW_STR_EMPTY;
    m->fuzz = 0;
    m->request_id = 0;
    m->cseq_big = SW_STR_EMPTY;
    m->sensor = self->sensor_s;
    m->node = self->node_s;
    m->direction = SW_STR_EMPTY;
    m->id = sw_record_id(m);
    if (sw_label(self->labeller, m) < 0)
        return -1;
    m->password = SW_STR_EMPTY;
    /* PasswordRecovery.label: the password a digest request tried; a response: its request's */
    if (self->recovery != NULL && sw_recover(self->recovery, m) < 0)
        return -1;
    if (m->request_id && m->password.n)
        self->password_responses++;
    count_stage(self, &m->stage);
    if (self->tally != NULL && sw_tally_add(self->tally, m) < 0)
        return -1;
    if (sw_rowbuf_message(self->rows, m) < 0)
        return -1;
    self->handled++;
    if (sw_rowbuf_rows(self->rows) >= self->batch_rows)
        return submit(self);
    return 0;
}

/* One message: the C path, or the Python one. seen: m's seen fields are filled (tunnel and
 * vlan included); pyargs builds the fallback's arguments when needed. */
static int one_message(Bulk *self, sw_msg *m, PyObject *(*pyargs)(void *), void *ctx)
{
    char scratch[SW_SCAN_SCRATCH];
    if (sw_scan((const unsigned char *)m->raw.p, m->raw.n, m, scratch))
        return finish(self, m);
    PyObject *args = pyargs(ctx);
    if (args == NULL)
        return -1;
    self->fallbacks++;
    PyObject *r = PyObject_Call(self->fallback, args, NULL);
    Py_DECREF(args);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* --- the messages of TCP streams (tcp.h: the reassembler hands them over) ----------------- */
static PyObject *tcp_pyargs(void *ctx)
{
    const sw_msg *m = ctx;
    PyObject *t = Py_BuildValue("(y#ds#s#is#is#s#)", m->raw.p, m->raw.n, m->ts, m->transport.p,
                                m->transport.n, m->src.p, m->src.n, m->sport, m->dst.p,
                                m->dst.n, m->dport, m->tunnel.p, m->tunnel.n, m->vlan.p,
                                m->vlan.n);
    return t;
}

static PyTypeObject BulkType;

int sw_bulk_is(PyObject *o)
{
    return PyObject_TypeCheck(o, &BulkType);
}

int sw_bulk_tcp_message(PyObject *bulk, sw_msg *m)
{
    Bulk *self = (Bulk *)bulk;
    if (one_message(self, m, tcp_pyargs, m) < 0) {
        keep_error(self);
        return -1;
    }
    return 0;
}

/* --- message(): the record factory of the Python decoder ---------------------------------- */
typedef struct {
    PyObject *raw, *ts, *transport, *src, *sport, *dst, *dport, *tunnel, *vlan;
} msg_args;

static PyObject *msg_pyargs(void *ctx)
{
    msg_args *a = ctx;
    return PyTuple_Pack(9, a->raw, a->ts, a->transport, a->src, a->sport, a->dst, a->dport,
                        a->tunnel, a->vlan);
}

static PyObject *bulk_message(Bulk *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"raw", "ts", "transport", "src", "sport", "dst", "dport",
                             "tunnel", "vlan", NULL};
    msg_args a = {0};
    PyObject *empty = PyUnicode_FromString("");
    if (empty == NULL)
        return NULL;
    a.tunnel = a.vlan = empty;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "SOUUOUO|UU", kwlist, &a.raw, &a.ts,
                                     &a.transport, &a.src, &a.sport, &a.dst, &a.dport,
                                     &a.tunnel, &a.vlan)) {
        Py_DECREF(empty);
        return NULL;
    }
    sw_msg m;
    memset(&m, 0, sizeof(m));
    int ok = -1;
    m.ts = PyFloat_AsDouble(a.ts);
    long sport = PyLong_AsLong(a.sport), dport = PyLong_AsLong(a.dport);
    if (PyErr_Occurred())
        goto done;
    m.sport = (int)sport;
    m.dport = (int)dport;
    m.raw.p = PyBytes_AS_STRING(a.raw);
    m.raw.n = PyBytes_GET_SIZE(a.raw);
    if (text(a.transport, &m.transport) < 0 || text(a.src, &m.src) < 0 ||
        text(a.dst, &m.dst) < 0 || text(a.tunnel, &m.tunnel) < 0 || text(a.vlan, &m.vlan) < 0)
        goto done;
    ok = one_message(self, &m, msg_pyargs, &a);
done:
    Py_DECREF(empty);
    if (ok < 0) {
        keep_error(self);
        return NULL;
    }
    Py_RETURN_NONE; /* the message is handled: the decoder keeps no Record */
}

/* --- batch(): one next_batch() result ------------------------------------------------------ */
typedef struct {
    const unsigned char *payload;
    Py_ssize_t n;
    double ts;
    const char *src, *dst;
    int sport, dport;
} frame_args;

static PyObject *frame_pyargs(void *ctx)
{
    frame_args *a = ctx;
    PyObject *empty = PyUnicode_FromString("");
    if (empty == NULL)
        return NULL;
    PyObject *t = Py_BuildValue("(y#dssisiOO)", a->payload, a->n, a->ts, "udp", a->src,
                                a->sport, a->dst, a->dport, empty, empty);
    Py_DECREF(empty);
    return t;
}

static PyObject *bulk_batch(Bulk *self, PyObject *args)
{
    Py_buffer pk, mt;
    int dlt;
    PyObject *frame, *tcp = Py_None;
    if (!PyArg_ParseTuple(args, "y*y*iO|O", &pk, &mt, &dlt, &frame, &tcp))
        return NULL;
    if (tcp == Py_None)
        tcp = NULL; /* TCP frames go to the Python decoder (its own reassembler) */
    if ((tcp != NULL && !sw_tcp_check(tcp, (PyObject *)self)) || raise_kept(self) < 0) {
        PyBuffer_Release(&pk);
        PyBuffer_Release(&mt);
        return NULL;
    }
    sw_link link;
    sw_link_init(&link, dlt);
    const unsigned char *pkts = pk.buf;
    const unsigned char *meta = mt.buf;
    Py_ssize_t count = mt.len / 16;
    long long n_sip = 0, n_other = 0;
    int failed = 0;
    static const char udp[] = "udp";
    for (Py_ssize_t i = 0; i < count && !failed; i++) {
        unsigned int v[4]; /* sec, usec, offset, caplen (native byte order) */
        memcpy(v, meta + 16 * i, sizeof(v));
        double ts = (double)v[0] + (double)v[1] * 1e-6;
        Py_ssize_t off = v[2], caplen = v[3];
        sw_udp u;
        int kind = SW_FRAME_PYTHON;
        int whole = off >= 0 && caplen >= 0 && off + caplen <= pk.len;
        if (whole)
            kind = sw_classify_frame(&link, pkts + off, caplen, &u);
        if (kind == SW_FRAME_PYTHON && whole && tcp != NULL) {
            /* a plain TCP frame: to the reassembler, which the Python decoder shares */
            int r = sw_tcp_take_frame(tcp, &link, pkts + off, caplen, ts);
            if (r < 0)
                failed = 1;
            if (r != 0)
                continue;
        }
        if (kind == SW_FRAME_OTHER) {
            n_other++;
            continue;
        }
        if (kind == SW_FRAME_SIP) {
            n_sip++;
            char src[48], dst[48];
            int sn = sw_addr_text(u.src, u.v6, src), dn = sw_addr_text(u.dst, u.v6, dst);
            if (sn < 0 || dn < 0) {
                PyErr_SetString(PyExc_SystemError, "address text failed");
                failed = 1;
                break;
            }
            sw_msg m;
            memset(&m, 0, sizeof(m));
            m.ts = ts;
            m.transport = (sw_str){udp, 3};
            m.src = (sw_str){src, sn};
            m.dst = (sw_str){dst, dn};
            m.sport = u.sport;
            m.dport = u.dport;
            m.tunnel = m.vlan = SW_STR_EMPTY;
            m.raw = (sw_str){(const char *)u.payload, u.n};
            frame_args fa = {u.payload, u.n, ts, src, dst, u.sport, u.dport};
            if (one_message(self, &m, frame_pyargs, &fa) < 0)
                failed = 1;
            continue;
        }
        /* the Python decoder's general path for this frame */
        PyObject *r = PyObject_CallFunction(frame, "dOnnII", ts, pk.obj, off, off + caplen,
                                            v[0], v[1]);
        if (r == NULL)
            failed = 1;
        else
            Py_DECREF(r);
        if (!failed && raise_kept(self) < 0)
            failed = 1; /* message() failed inside the decoder, which swallowed it */
    }
    PyBuffer_Release(&pk);
    PyBuffer_Release(&mt);
    if (failed) {
        keep_error(self);
        return NULL;
    }
    return Py_BuildValue("(LL)", n_sip, n_other);
}

static PyObject *bulk_check(Bulk *self, PyObject *Py_UNUSED(ignored))
{
    if (raise_kept(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *bulk_flush(Bulk *self, PyObject *Py_UNUSED(ignored))
{
    if (submit(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *bulk_counts(Bulk *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *stages = PyDict_New();
    if (stages == NULL)
        return NULL;
    for (int i = 0; i < N_STAGES; i++) {
        if (!self->stages[i])
            continue;
        PyObject *v = PyLong_FromLongLong(self->stages[i]);
        if (v == NULL || PyDict_SetItemString(stages, stage_names[i], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(stages);
            return NULL;
        }
        Py_DECREF(v);
    }
    return Py_BuildValue("{sLsLsLsLsN}", "handled", self->handled, "fallbacks",
                         self->fallbacks, "submitted", self->submitted, "password_responses",
                         self->password_responses, "stages", stages);
}

static PyMethodDef bulk_methods[] = {
    {"message", (PyCFunction)(void (*)(void))bulk_message, METH_VARARGS | METH_KEYWORDS,
     "message(raw, ts, transport, src, sport, dst, dport, tunnel='', vlan='') -> None: one "
     "message through the C path or the fallback (a record factory for the Python decoder)"},
    {"batch", (PyCFunction)bulk_batch, METH_VARARGS,
     "batch(pkts, meta, dlt, frame, tcp=None) -> (sip, non_sip): the frames of one "
     "next_batch(); frame(ts, pkts, start, end, sec, usec) decodes a frame the C path leaves "
     "to Python; tcp: the TcpReassembler (sink: this object) that the Python decoder also "
     "uses, which then takes the plain TCP frames in C"},
    {"check", (PyCFunction)bulk_check, METH_NOARGS,
     "raise the first failure of message() (which the Python decoder may have swallowed)"},
    {"flush", (PyCFunction)bulk_flush, METH_NOARGS, "hand the packed rows to the writer"},
    {"counts", (PyCFunction)bulk_counts, METH_NOARGS,
     "{handled, fallbacks, submitted, password_responses, stages}"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BulkType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sipwatch._native.BulkAnalyzer",
    .tp_basicsize = sizeof(Bulk),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "BulkAnalyzer(labeller, writer, fallback, recovery=None, sensor='', node='', "
              "ncols=45, batch_rows=2000): the pipeline's per-message stages in C",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)bulk_init,
    .tp_dealloc = (destructor)bulk_dealloc,
    .tp_traverse = (traverseproc)bulk_traverse,
    .tp_clear = (inquiry)bulk_clear,
    .tp_methods = bulk_methods,
};

/* --- test hooks: the frame rules against their Python definitions ------------------------- */
static PyObject *py_looks_like_sip(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "bytes expected");
        return NULL;
    }
    return PyBool_FromLong(
        sw_looks_like_sip((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg)));
}

static PyObject *py_one_message(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "bytes expected");
        return NULL;
    }
    return PyBool_FromLong(
        sw_one_message((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg)));
}

static PyObject *py_classify_frame(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer f;
    int dlt;
    if (!PyArg_ParseTuple(args, "y*i", &f, &dlt))
        return NULL;
    sw_link link;
    sw_link_init(&link, dlt);
    sw_udp u;
    int kind = sw_classify_frame(&link, f.buf, f.len, &u);
    PyObject *out;
    if (kind != SW_FRAME_SIP) {
        out = Py_BuildValue("(iO)", kind, Py_None);
    } else {
        char src[48], dst[48];
        sw_addr_text(u.src, u.v6, src);
        sw_addr_text(u.dst, u.v6, dst);
        out = Py_BuildValue("(i(y#sisi))", kind, u.payload, u.n, src, u.sport, dst, u.dport);
    }
    PyBuffer_Release(&f);
    return out;
}

static PyMethodDef hooks[] = {
    {"looks_like_sip", py_looks_like_sip, METH_O, "message.looks_like_sip in C (test hook)"},
    {"one_message", py_one_message, METH_O,
     "framing.split_datagram(d) == [d] in C (test hook)"},
    {"classify_frame", py_classify_frame, METH_VARARGS,
     "classify_frame(frame, dlt) -> (kind, (payload, src, sport, dst, dport) | None)"},
    {NULL, NULL, 0, NULL},
};

int sw_init_core(PyObject *m)
{
    if (PyModule_AddFunctions(m, hooks) < 0)
        return -1;
    if (PyType_Ready(&BulkType) < 0)
        return -1;
    Py_INCREF(&BulkType);
    if (PyModule_AddObject(m, "BulkAnalyzer", (PyObject *)&BulkType) < 0) {
        Py_DECREF(&BulkType);
        return -1;
    }
    return 0;
}
