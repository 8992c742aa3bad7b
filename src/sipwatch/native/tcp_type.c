/* sipwatch._native.TcpReassembler: the Python face of sw_tcp (tcp.h), and the Framer and
 * is_foreign test hooks (framer.h).
 *
 * TcpReassembler(sink, max_flows=2048, max_ooo_segments=64, max_ooo_bytes=131072,
 *                max_total_ooo_bytes=16777216, idle_timeout=900.0, max_head=65536,
 *                max_body=65536, sip_ports=(5060, 5061))
 * sink: a BulkAnalyzer (each message takes its per-message path, in C) or any callable
 * sink(raw, ts, transport, src, sport, dst, dport, tunnel, vlan) (tests; the signature of
 * BulkAnalyzer.message).
 */
#include "module.h"
#include "tcp.h"

#include <string.h>

typedef struct {
    PyObject_HEAD
    sw_tcp t;
    PyObject *sink;
    int bulk;   /* sink is a BulkAnalyzer */
    int ready;  /* __init__ ran: t is initialised */
    int busy;   /* inside a call (a sink must not call back in) */
    int failed; /* the sink failed during this call: no more messages are handed to it */
} TcpObject;

static PyTypeObject TcpType;

static void emit(void *ctx, const sw_tcp_flow *fl, double ts, const unsigned char *msg,
                 Py_ssize_t n)
{
    TcpObject *self = ctx;
    if (self->failed)
        return;
    if (self->sink == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "TcpReassembler: no sink");
        self->failed = 1;
        return;
    }
    int r;
    if (self->bulk) {
        sw_msg m;
        memset(&m, 0, sizeof(m));
        m.ts = ts;
        m.transport = (sw_str){"tcp", 3};
        m.src = (sw_str){fl->src, fl->src_n};
        m.dst = (sw_str){fl->dst, fl->dst_n};
        m.sport = fl->sport;
        m.dport = fl->dport;
        m.tunnel = (sw_str){fl->tunnel, fl->tunnel_n};
        m.vlan = (sw_str){fl->vlan, fl->vlan_n};
        m.raw = (sw_str){(const char *)msg, n};
        r = sw_bulk_tcp_message(self->sink, &m);
    } else {
        PyObject *args =
            Py_BuildValue("(y#dss#is#is#s#)", msg, n, ts, "tcp", fl->src, (Py_ssize_t)fl->src_n,
                          fl->sport, fl->dst, (Py_ssize_t)fl->dst_n, fl->dport, fl->tunnel,
                          fl->tunnel_n, fl->vlan, fl->vlan_n);
        PyObject *res = args != NULL ? PyObject_Call(self->sink, args, NULL) : NULL;
        Py_XDECREF(args);
        r = res != NULL ? 0 : -1;
        Py_XDECREF(res);
    }
    if (r < 0)
        self->failed = 1;
}

static int enter(TcpObject *self)
{
    if (!self->ready) {
        PyErr_SetString(PyExc_TypeError, "TcpReassembler.__init__ was not called");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "TcpReassembler called from its own sink");
        return -1;
    }
    if (self->t.nomem) {
        PyErr_SetString(PyExc_MemoryError, "TcpReassembler ran out of memory earlier");
        return -1;
    }
    self->busy = 1;
    self->failed = 0;
    return 0;
}

/* 0, or -1 with the sink's exception (or a MemoryError) set */
static int leave(TcpObject *self)
{
    self->busy = 0;
    if (self->failed) {
        self->failed = 0;
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "TcpReassembler: the sink failed");
        return -1;
    }
    if (self->t.nomem) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int tcp_init(TcpObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"sink",         "max_flows", "max_ooo_segments",
                             "max_ooo_bytes", "max_total_ooo_bytes", "idle_timeout",
                             "max_head",     "max_body",  "sip_ports", NULL};
    PyObject *sink, *ports = NULL;
    Py_ssize_t max_flows = 2048, max_seg = 64, max_bytes = 128 * 1024;
    Py_ssize_t max_total = 16 * 1024 * 1024, max_head = 65536, max_body = 65536;
    double idle = 900.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|nnnndnnO", kwlist, &sink, &max_flows,
                                     &max_seg, &max_bytes, &max_total, &idle, &max_head,
                                     &max_body, &ports))
        return -1;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "TcpReassembler is busy");
        return -1;
    }
    int bulk = sw_bulk_is(sink);
    if (!bulk && !PyCallable_Check(sink)) {
        PyErr_SetString(PyExc_TypeError, "sink must be a BulkAnalyzer or callable");
        return -1;
    }
    if (max_flows < 1 || max_seg < 0 || max_bytes < 0 || max_total < 0 || max_head < 0 ||
        max_body < 0) {
        PyErr_SetString(PyExc_ValueError, "TcpReassembler: bad bound");
        return -1;
    }
    int port_list[SW_TCP_MAX_PORTS], n_ports = 2;
    port_list[0] = 5060, port_list[1] = 5061;
    if (ports != NULL) {
        PyObject *seq = PySequence_Fast(ports, "sip_ports must be a sequence of ints");
        if (seq == NULL)
            return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        if (n > SW_TCP_MAX_PORTS) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "too many sip_ports");
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
            if (v == -1 && PyErr_Occurred()) {
                Py_DECREF(seq);
                return -1;
            }
            port_list[i] = (int)v;
        }
        n_ports = (int)n;
        Py_DECREF(seq);
    }
    if (self->ready)
        sw_tcp_free(&self->t);
    sw_tcp_init(&self->t);
    self->t.max_flows = max_flows;
    self->t.max_ooo_segments = max_seg;
    self->t.max_ooo_bytes = max_bytes;
    self->t.max_total_ooo_bytes = max_total;
    self->t.idle_timeout = idle;
    self->t.max_head = max_head;
    self->t.max_body = max_body;
    memcpy(self->t.sip_ports, port_list, sizeof(port_list));
    self->t.n_sip_ports = n_ports;
    self->t.emit = emit;
    self->t.ctx = self;
    Py_XSETREF(self->sink, Py_NewRef(sink));
    self->bulk = bulk;
    self->ready = 1;
    return 0;
}

static int tcp_traverse(TcpObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->sink);
    return 0;
}

static int tcp_clear(TcpObject *self)
{
    Py_CLEAR(self->sink);
    return 0;
}

static void tcp_dealloc(TcpObject *self)
{
    PyObject_GC_UnTrack(self);
    tcp_clear(self);
    if (self->ready)
        sw_tcp_free(&self->t); /* flows not flushed are dropped */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *tcp_packet(TcpObject *self, PyObject *args)
{
    double ts;
    const char *src, *dst, *tunnel, *vlan;
    Py_buffer payload;
    Py_ssize_t src_n, dst_n, tunnel_n, vlan_n;
    int sport, dport, flags;
    unsigned long seq;
    if (!PyArg_ParseTuple(args, "dy#iy#is#s#kiy*", &ts, &src, &src_n, &sport, &dst, &dst_n,
                          &dport, &tunnel, &tunnel_n, &vlan, &vlan_n, &seq, &flags, &payload))
        return NULL;
    if (src_n != dst_n || (src_n != 4 && src_n != 16)) {
        PyBuffer_Release(&payload);
        PyErr_SetString(PyExc_ValueError, "addresses must be 4 or 16 bytes, both alike");
        return NULL;
    }
    if (enter(self) < 0) {
        PyBuffer_Release(&payload);
        return NULL;
    }
    sw_tcp_packet(&self->t, ts, (const unsigned char *)src, (const unsigned char *)dst,
                  (int)src_n, sport & 0xFFFF, dport & 0xFFFF, tunnel, tunnel_n, vlan, vlan_n,
                  (uint32_t)seq, flags, payload.buf, payload.len);
    PyBuffer_Release(&payload);
    if (leave(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tcp_flush(TcpObject *self, PyObject *Py_UNUSED(ignored))
{
    if (enter(self) < 0)
        return NULL;
    sw_tcp_flush(&self->t);
    if (leave(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tcp_counts(TcpObject *self, PyObject *Py_UNUSED(ignored))
{
    const sw_tcp_counts *c = &self->t.c;
    return Py_BuildValue(
        "{sLsLsLsLsLsLsLsLsL}", "non_sip", c->non_sip, "sip_messages", c->sip_messages,
        "tcp_segments", c->tcp_segments, "tcp_out_of_order", c->tcp_out_of_order,
        "tcp_retransmissions", c->tcp_retransmissions, "tcp_gaps", c->tcp_gaps, "tcp_gap_bytes",
        c->tcp_gap_bytes, "tcp_flows_evicted", c->tcp_flows_evicted, "tcp_framing_drops",
        c->tcp_framing_drops);
}

static Py_ssize_t tcp_len(TcpObject *self)
{
    return self->ready ? (Py_ssize_t)self->t.flows.count : 0;
}

int sw_tcp_check(PyObject *o, PyObject *bulk)
{
    if (!PyObject_TypeCheck(o, &TcpType) || ((TcpObject *)o)->sink != bulk) {
        PyErr_SetString(PyExc_TypeError,
                        "tcp must be a TcpReassembler whose sink is this BulkAnalyzer");
        return 0;
    }
    return 1;
}

int sw_tcp_take_frame(PyObject *o, const sw_link *l, const unsigned char *f, Py_ssize_t caplen,
                      double ts)
{
    TcpObject *self = (TcpObject *)o;
    sw_tcp_frame s;
    if (!sw_tcp_decode_frame(l, f, caplen, &s))
        return 0;
    if (enter(self) < 0)
        return -1;
    sw_tcp_packet(&self->t, ts, s.src, s.dst, s.alen, s.sport, s.dport, "", 0, "", 0, s.seq,
                  s.flags, s.payload, s.n);
    return leave(self) < 0 ? -1 : 1;
}

static PyObject *tcp_take_frame(TcpObject *self, PyObject *args)
{
    Py_buffer f;
    int dlt;
    double ts;
    if (!PyArg_ParseTuple(args, "y*id", &f, &dlt, &ts))
        return NULL;
    sw_link link;
    sw_link_init(&link, dlt);
    int r = sw_tcp_take_frame((PyObject *)self, &link, f.buf, f.len, ts);
    PyBuffer_Release(&f);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyMethodDef tcp_methods[] = {
    {"packet", (PyCFunction)tcp_packet, METH_VARARGS,
     "packet(ts, src, sport, dst, dport, tunnel, vlan, seq, flags, payload): one TCP segment "
     "as PacketDecoder._tcp decoded it (src, dst: packed addresses)"},
    {"take_frame", (PyCFunction)tcp_take_frame, METH_VARARGS,
     "take_frame(frame, dlt, ts) -> bool: what BulkAnalyzer.batch does with a frame that is "
     "not one UDP SIP message: True when it was a plain TCP frame, now handled; False when "
     "the Python decoder takes it (test hook)"},
    {"flush", (PyCFunction)tcp_flush, METH_NOARGS,
     "end of capture: deliver what waits behind holes, emit unfinished messages, forget"},
    {"counts", (PyCFunction)tcp_counts, METH_NOARGS,
     "the CaptureStats counters this reassembler added to, by name"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods tcp_as_sequence = {.sq_length = (lenfunc)tcp_len};

static PyTypeObject TcpType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sipwatch._native.TcpReassembler",
    .tp_basicsize = sizeof(TcpObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "TcpReassembler(sink, max_flows=2048, max_ooo_segments=64, max_ooo_bytes=131072, "
              "max_total_ooo_bytes=16777216, idle_timeout=900.0, max_head=65536, "
              "max_body=65536, sip_ports=(5060, 5061)): capture/tcp.py's TcpReassembler and "
              "StreamFramer in C; messages go to sink",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)tcp_init,
    .tp_dealloc = (destructor)tcp_dealloc,
    .tp_traverse = (traverseproc)tcp_traverse,
    .tp_clear = (inquiry)tcp_clear,
    .tp_methods = tcp_methods,
    .tp_as_sequence = &tcp_as_sequence,
};

/* --- test hooks ---------------------------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    sw_framer f;
    int ready;
} FramerObject;

static int framer_init(FramerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"max_body", "max_head", NULL};
    Py_ssize_t max_body = 65536, max_head = 65536;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|nn", kwlist, &max_body, &max_head))
        return -1;
    if (self->ready)
        sw_framer_free(&self->f);
    sw_framer_init(&self->f, max_head, max_body);
    self->ready = 1;
    return 0;
}

static void framer_dealloc(FramerObject *self)
{
    if (self->ready)
        sw_framer_free(&self->f);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static void framer_collect(void *ctx, const unsigned char *msg, Py_ssize_t n)
{
    PyObject *out = ctx;
    if (PyErr_Occurred())
        return;
    PyObject *b = PyBytes_FromStringAndSize((const char *)msg, n);
    if (b != NULL) {
        PyList_Append(out, b);
        Py_DECREF(b);
    }
}

static PyObject *framer_feed(FramerObject *self, PyObject *arg)
{
    Py_buffer d;
    if (!self->ready) {
        PyErr_SetString(PyExc_TypeError, "Framer.__init__ was not called");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &d, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *out = PyList_New(0);
    if (out != NULL && sw_framer_feed(&self->f, d.buf, d.len, framer_collect, out) < 0)
        PyErr_NoMemory();
    PyBuffer_Release(&d);
    if (out != NULL && PyErr_Occurred())
        Py_CLEAR(out);
    return out;
}

static PyObject *framer_close(FramerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->ready) {
        PyErr_SetString(PyExc_TypeError, "Framer.__init__ was not called");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out != NULL)
        sw_framer_close(&self->f, framer_collect, out);
    if (out != NULL && PyErr_Occurred())
        Py_CLEAR(out);
    return out;
}

static PyObject *framer_dropped(FramerObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(self->f.dropped);
}

static PyObject *framer_buffered(FramerObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->f.len);
}

static PyMethodDef framer_methods[] = {
    {"feed", (PyCFunction)framer_feed, METH_O, "StreamFramer.feed"},
    {"close", (PyCFunction)framer_close, METH_NOARGS, "StreamFramer.close"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef framer_getset[] = {
    {"dropped_bytes", (getter)framer_dropped, NULL, "StreamFramer.dropped_bytes", NULL},
    {"buffered", (getter)framer_buffered, NULL, "StreamFramer.buffered", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FramerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sipwatch._native.Framer",
    .tp_basicsize = sizeof(FramerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Framer(max_body=65536, max_head=65536): sw_framer, StreamFramer in C (test hook)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)framer_init,
    .tp_dealloc = (destructor)framer_dealloc,
    .tp_methods = framer_methods,
    .tp_getset = framer_getset,
};

static PyObject *py_is_foreign(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg) || PyBytes_GET_SIZE(arg) == 0) {
        PyErr_SetString(PyExc_TypeError, "non-empty bytes expected");
        return NULL;
    }
    return PyBool_FromLong(
        sw_is_foreign((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg)));
}

static PyMethodDef hooks[] = {
    {"is_foreign", py_is_foreign, METH_O, "decode.is_foreign in C (test hook)"},
    {NULL, NULL, 0, NULL},
};

static int add_type(PyObject *m, PyTypeObject *type, const char *name)
{
    if (PyType_Ready(type) < 0)
        return -1;
    Py_INCREF(type);
    if (PyModule_AddObject(m, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

int sw_init_tcp(PyObject *m)
{
    if (PyModule_AddFunctions(m, hooks) < 0)
        return -1;
    if (add_type(m, &TcpType, "TcpReassembler") < 0)
        return -1;
    return add_type(m, &FramerType, "Framer");
}
