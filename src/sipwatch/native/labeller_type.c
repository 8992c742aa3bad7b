/* sipwatch._native.Labeller: the Python type around sw_label (see labeller.h), a drop-in for
 * sipwatch.detect.stages.StageLabeler. */
#include "labeller_state.h"
#include "recordview.h"

#include <limits.h>
#include <time.h>

/* ---- config ---------------------------------------------------------------------------- */
static int config_int(PyObject *cfg, const char *name, long long *out)
{
    PyObject *v = PyObject_GetAttrString(cfg, name);
    if (v == NULL)
        return -1;
    if (!PyLong_Check(v)) {
        PyErr_Format(PyExc_TypeError, "LabelerConfig.%s must be an int, not %.100s", name,
                     Py_TYPE(v)->tp_name);
        Py_DECREF(v);
        return -1;
    }
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    /* compared with counts only: a bound beyond the range acts as the range's end */
    *out = overflow > 0 ? LLONG_MAX : overflow < 0 ? LLONG_MIN : x;
    return 0;
}

static int set_config(sw_labeller *self, PyObject *cfg)
{
    long long ext, ms, mr;
    double idle;
    if (config_int(cfg, "ext_scan_users", &ext) < 0 || config_int(cfg, "max_sources", &ms) < 0 ||
        config_int(cfg, "max_requests", &mr) < 0)
        return -1;
    PyObject *v = PyObject_GetAttrString(cfg, "idle_reset_s");
    if (v == NULL)
        return -1;
    idle = PyFloat_AsDouble(v);
    Py_DECREF(v);
    if (idle == -1.0 && PyErr_Occurred())
        return -1;
    self->ext_scan_users = ext;
    self->max_sources = ms;
    self->max_requests = mr;
    self->idle_reset_s = idle;
    Py_INCREF(cfg);
    Py_XSETREF(self->config, cfg);
    return 0;
}

/* ---- the type ------------------------------------------------------------------------- */
static void reset(sw_labeller *self)
{
    sw_labeller_free_state(self);
    sw_lru_init(&self->sources);
    sw_lru_init(&self->requests);
    sw_ua_cache_init(&self->ua);
    memset(self->labelled, 0, sizeof(self->labelled));
    self->unlabelled = self->fuzz = self->tools = self->responses_matched = 0;
    self->responses_inferred = self->source_evictions = self->request_evictions = 0;
}

#define SW_RESERVE_MAX ((size_t)1 << 17)

static size_t reserve_for(long long bound)
{
    if (bound < 0)
        return 1;
    return (unsigned long long)bound >= SW_RESERVE_MAX ? SW_RESERVE_MAX : (size_t)bound + 1;
}

static int Labeller_init(sw_labeller *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"config", "numbers", NULL};
    PyObject *config = Py_None, *numbers = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:Labeller", kwlist, &config, &numbers))
        return -1;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Labeller.__init__() called from inside label()");
        return -1;
    }
    if (sw_lconst_load() < 0)
        return -1;
    /* self.config = config or LabelerConfig() */
    int t = PyObject_IsTrue(config);
    if (t < 0)
        return -1;
    PyObject *cfg = t ? Py_NewRef(config) : PyObject_CallNoArgs(sw_lc.config_type);
    if (cfg == NULL)
        return -1;
    int r = set_config(self, cfg);
    Py_DECREF(cfg);
    if (r < 0)
        return -1;
    /* self.numbers = numbers or NumberClassifier(self.config.default_region) */
    t = PyObject_IsTrue(numbers);
    if (t < 0)
        return -1;
    PyObject *num;
    if (t) {
        num = Py_NewRef(numbers);
    }
    else {
        PyObject *region = PyObject_GetAttrString(self->config, "default_region");
        if (region == NULL)
            return -1;
        num = PyObject_CallOneArg(sw_lc.classifier_type, region);
        Py_DECREF(region);
        if (num == NULL)
            return -1;
    }
    Py_XSETREF(self->numbers, num);
    reset(self);
    /* room for the bounds up front (up to SW_RESERVE_MAX entries): no rehashing as the
     * tables fill; the slot arrays are calloc'ed, so untouched pages cost nothing */
    if (sw_lru_reserve(&self->sources, reserve_for(self->max_sources)) < 0 ||
        sw_lru_reserve(&self->requests, reserve_for(self->max_requests)) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int ready(sw_labeller *self)
{
    if (self->config == NULL || self->numbers == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Labeller.__init__ was not called");
        return -1;
    }
    return 0;
}

static int Labeller_traverse(sw_labeller *self, visitproc visit, void *arg)
{
    Py_VISIT(self->config);
    Py_VISIT(self->numbers);
    return 0;
}

static int Labeller_clear(sw_labeller *self)
{
    Py_CLEAR(self->config);
    Py_CLEAR(self->numbers);
    return 0;
}

static void Labeller_dealloc(sw_labeller *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    sw_labeller_free_state(self);
    Labeller_clear(self);
    tp->tp_free((PyObject *)self);
}

/* ---- label(record) ------------------------------------------------------------------- */
static PyObject *n_stage, *n_tool, *n_tool_data, *n_fuzz, *n_number, *n_number_type,
    *n_number_country, *n_request_id, *n_id, *n_label;

/* The str for a label slice: an object it came from when known, else decoded. */
static PyObject *str_of(sw_labeller *self, sw_str s)
{
    if (s.n == 0)
        return Py_NewRef(sw_lc.stage_obj[0]);
    for (int i = 1; i <= SW_NSTAGES; i++) {
        if (s.p == sw_lc.stage[i].p)
            return Py_NewRef(sw_lc.stage_obj[i]);
    }
    if (s.p == sw_fp_sipvicious().p)
        return Py_NewRef(sw_fp_sipvicious_obj());
    if (self->number != NULL) {
        for (int i = 0; i < 3; i++) {
            PyObject *item = PyTuple_GET_ITEM(self->number, i);
            Py_ssize_t n;
            if (PyUnicode_AsUTF8AndSize(item, &n) == s.p && n == s.n)
                return Py_NewRef(item);
        }
    }
    return PyUnicode_DecodeUTF8(s.p, s.n, "strict");
}

static int write_str(sw_labeller *self, PyObject *rec, PyObject *name, sw_str was, sw_str now)
{
    if ((was.p == now.p && was.n == now.n) || (was.n == 0 && now.n == 0))
        return 0; /* unchanged: the record already holds this value */
    PyObject *v = str_of(self, now);
    if (v == NULL)
        return -1;
    int r = PyObject_SetAttr(rec, name, v);
    Py_DECREF(v);
    return r;
}

static int write_back(sw_labeller *self, PyObject *rec, const sw_msg *was, const sw_msg *m)
{
    if (write_str(self, rec, n_stage, was->stage, m->stage) < 0 ||
        write_str(self, rec, n_tool, was->tool, m->tool) < 0 ||
        write_str(self, rec, n_tool_data, was->tool_data, m->tool_data) < 0 ||
        write_str(self, rec, n_number, was->number, m->number) < 0 ||
        write_str(self, rec, n_number_type, was->number_type, m->number_type) < 0 ||
        write_str(self, rec, n_number_country, was->number_country, m->number_country) < 0 ||
        PyObject_SetAttr(rec, n_fuzz, m->fuzz ? Py_True : Py_False) < 0)
        return -1;
    if (m->request_id != was->request_id) {
        PyObject *v = PyLong_FromLongLong(m->request_id);
        if (v == NULL)
            return -1;
        int r = PyObject_SetAttr(rec, n_request_id, v);
        Py_DECREF(v);
        return r;
    }
    return 0;
}

static PyObject *Labeller_label(sw_labeller *self, PyObject *record)
{
    if (ready(self) < 0)
        return NULL;
    sw_msg m;
    sw_keep keep = SW_KEEP_INIT;
    if (sw_msg_from_record_id(record, &m, &keep, 0) < 0) {
        sw_keep_clear(&keep);
        return NULL;
    }
    if (m.id == 0 && m.is_request && m.call_id.n && (m.has_cseq || m.cseq_big.n)) {
        /* a request with a transaction key is remembered under record.id: compute it (the
         * Python labeller asks for it in the same case) */
        PyObject *id = PyObject_GetAttr(record, n_id);
        m.id = id ? PyLong_AsLongLong(id) : -1;
        Py_XDECREF(id);
        if (m.id == -1 && PyErr_Occurred()) {
            sw_keep_clear(&keep);
            return NULL;
        }
    }
    sw_msg was = m;
    int r = sw_label_impl(self, &m);
    /* the record gets what was written before an error too, as in Python */
    PyObject *et, *ev, *tb;
    if (r < 0)
        PyErr_Fetch(&et, &ev, &tb);
    int w = write_back(self, record, &was, &m);
    if (r < 0) {
        if (w < 0)
            PyErr_Clear();
        PyErr_Restore(et, ev, tb);
    }
    sw_keep_clear(&keep);
    if (r < 0 || w < 0)
        return NULL;
    return Py_NewRef(record);
}

static PyObject *Labeller_label_all(sw_labeller *self, PyObject *records)
{
    /* map(self.label, records): lazy, in order, like the generator of StageLabeler */
    PyObject *label = PyObject_GetAttr((PyObject *)self, n_label);
    if (label == NULL)
        return NULL;
    PyObject *r = PyObject_CallFunctionObjArgs((PyObject *)&PyMap_Type, label, records, NULL);
    Py_DECREF(label);
    return r;
}

/* _time_sw_label(records) -> (count, seconds): sw_label alone over views built beforehand
 * (bench/bench_native_labeller.py); the records are labelled as by label(), in order, but
 * nothing is written back to them. */
static PyObject *Labeller_time_sw_label(sw_labeller *self, PyObject *records)
{
    if (ready(self) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(records, "records must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), built = 0;
    sw_msg *views = PyMem_Calloc((size_t)n + 1, sizeof(sw_msg));
    sw_keep *keeps = PyMem_Calloc((size_t)n + 1, sizeof(sw_keep));
    PyObject *result = NULL;
    if (views == NULL || keeps == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; built < n; built++) {
        if (sw_msg_from_record(PySequence_Fast_GET_ITEM(seq, built), &views[built],
                               &keeps[built]) < 0)
            goto done;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (Py_ssize_t i = 0; i < n; i++) {
        sw_msg w = views[i];
        if (sw_label_impl(self, &w) < 0)
            goto done;
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    result = Py_BuildValue("(nd)", n, s);
done:
    if (keeps != NULL) {
        for (Py_ssize_t i = 0; i <= built && i <= n; i++)
            sw_keep_clear(&keeps[i]);
    }
    PyMem_Free(keeps);
    PyMem_Free(views);
    Py_DECREF(seq);
    return result;
}

/* ---- attributes ----------------------------------------------------------------------- */
static PyObject *get_config(sw_labeller *self, void *closure)
{
    (void)closure;
    if (ready(self) < 0)
        return NULL;
    return Py_NewRef(self->config);
}

static int put_config(sw_labeller *self, PyObject *v, void *closure)
{
    (void)closure;
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete config");
        return -1;
    }
    return set_config(self, v);
}

static PyObject *get_numbers(sw_labeller *self, void *closure)
{
    (void)closure;
    if (ready(self) < 0)
        return NULL;
    return Py_NewRef(self->numbers);
}

static int put_numbers(sw_labeller *self, PyObject *v, void *closure)
{
    (void)closure;
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete numbers");
        return -1;
    }
    Py_INCREF(v);
    Py_XSETREF(self->numbers, v);
    return 0;
}

static int kw_ll(PyObject *kw, const char *name, long long v)
{
    PyObject *o = PyLong_FromLongLong(v);
    if (o == NULL)
        return -1;
    int r = PyDict_SetItemString(kw, name, o);
    Py_DECREF(o);
    return r;
}

/* A fresh LabelerStats with the counters (compares equal to StageLabeler.stats field by
 * field); changing it does not change the labeller's. */
static PyObject *get_stats(sw_labeller *self, void *closure)
{
    (void)closure;
    if (ready(self) < 0)
        return NULL;
    PyObject *labelled = PyDict_New(), *kw = PyDict_New(), *args = PyTuple_New(0), *r = NULL;
    if (labelled == NULL || kw == NULL || args == NULL)
        goto done;
    for (int i = 1; i <= SW_NSTAGES; i++) {
        PyObject *o = PyLong_FromLongLong(self->labelled[i]);
        int e = o == NULL || PyDict_SetItem(labelled, sw_lc.stage_obj[i], o) < 0;
        Py_XDECREF(o);
        if (e)
            goto done;
    }
    if (PyDict_SetItemString(kw, "labelled", labelled) < 0 ||
        kw_ll(kw, "unlabelled", self->unlabelled) < 0 || kw_ll(kw, "fuzz", self->fuzz) < 0 ||
        kw_ll(kw, "tools", self->tools) < 0 ||
        kw_ll(kw, "responses_matched", self->responses_matched) < 0 ||
        kw_ll(kw, "responses_inferred", self->responses_inferred) < 0 ||
        kw_ll(kw, "source_evictions", self->source_evictions) < 0 ||
        kw_ll(kw, "request_evictions", self->request_evictions) < 0)
        goto done;
    r = PyObject_Call(sw_lc.stats_type, args, kw);
done:
    Py_XDECREF(labelled);
    Py_XDECREF(kw);
    Py_XDECREF(args);
    return r;
}

static PyGetSetDef Labeller_getset[] = {
    {"config", (getter)get_config, (setter)put_config, "LabelerConfig (read when set)", NULL},
    {"numbers", (getter)get_numbers, (setter)put_numbers, "NumberClassifier", NULL},
    {"stats", (getter)get_stats, NULL, "LabelerStats: a snapshot of the counters", NULL},
    {NULL},
};

static PyMethodDef Labeller_methods[] = {
    {"label", (PyCFunction)Labeller_label, METH_O,
     "label(record) -> record: fill stage, tool, tool_data, fuzz, number*, request_id."},
    {"label_all", (PyCFunction)Labeller_label_all, METH_O,
     "label_all(records) -> iterator: label each record of an iterable, in order."},
    {"_time_sw_label", (PyCFunction)Labeller_time_sw_label, METH_O,
     "_time_sw_label(records) -> (count, seconds): sw_label alone over prebuilt views."},
    {NULL},
};

PyTypeObject sw_labeller_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sipwatch._native.Labeller",
    .tp_basicsize = sizeof(sw_labeller),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Labeller(config=None, numbers=None): the stage labeller in C, a drop-in for "
              "sipwatch.detect.stages.StageLabeler (same labels, state and stats).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Labeller_init,
    .tp_dealloc = (destructor)Labeller_dealloc,
    .tp_traverse = (traverseproc)Labeller_traverse,
    .tp_clear = (inquiry)Labeller_clear,
    .tp_methods = Labeller_methods,
    .tp_getset = Labeller_getset,
};

static int intern_names(void)
{
    struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&n_stage, "stage"},   {&n_tool, "tool"},     {&n_tool_data, "tool_data"},
        {&n_fuzz, "fuzz"},     {&n_number, "number"}, {&n_number_type, "number_type"},
        {&n_number_country, "number_country"},        {&n_request_id, "request_id"},
        {&n_id, "id"},         {&n_label, "label"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL &&
            (*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL)
            return -1;
    }
    return 0;
}

int sw_init_labeller(PyObject *module)
{
    if (intern_names() < 0 || sw_lconst_seed() < 0 || PyType_Ready(&sw_labeller_type) < 0)
        return -1;
    Py_INCREF(&sw_labeller_type);
    if (PyModule_AddObject(module, "Labeller", (PyObject *)&sw_labeller_type) < 0) {
        Py_DECREF(&sw_labeller_type);
        return -1;
    }
    return 0;
}
