/* RunTally (see tally.h). */
#include "tally.h"

#include "lru.h"
#include "module.h"

#include <stdlib.h>
#include <string.h>

#define N_STAGES 5
#define MAX_TOOLS 64
static const char *const stage_names[N_STAGES] = {"", "SS", "ES", "RHJ", "TF"};

typedef struct {
    sw_lru_node node; /* first member; key: the address text */
    long long requests;
    double first, last;
    unsigned stages; /* bit i: a request labelled stage_names[i] */
    uint64_t tools;  /* bit i: a request with tool i */
    char key[];
} src_entry;

typedef struct {
    PyObject_HEAD
    long long messages, max_sources;
    long long stage_messages[N_STAGES], stage_requests[N_STAGES], stage_responses[N_STAGES];
    sw_lru sources;
    int ntools;
    char *tool_name[MAX_TOOLS];
    Py_ssize_t tool_len[MAX_TOOLS];
    long long tool_requests[MAX_TOOLS];
    const char *incomplete; /* why the tables are not the store's, or NULL */
} Tally;

static PyTypeObject TallyType;

int sw_tally_check(PyObject *o)
{
    return PyObject_TypeCheck(o, &TallyType);
}

static void entry_free(sw_lru_node *n, void *arg)
{
    (void)arg;
    free(n);
}

/* Past a bound the per-source tables stop (and their memory goes): incomplete for good. */
static void give_up(Tally *t, const char *why)
{
    if (t->incomplete == NULL)
        t->incomplete = why;
    sw_lru_free(&t->sources, entry_free, NULL);
    sw_lru_init(&t->sources);
}

static int stage_index(sw_str s)
{
    for (int i = 0; i < N_STAGES; i++) {
        size_t len = strlen(stage_names[i]);
        if ((size_t)s.n == len && memcmp(s.p, stage_names[i], len) == 0)
            return i;
    }
    return -1;
}

static int tool_index(Tally *t, sw_str tool)
{
    for (int i = 0; i < t->ntools; i++) {
        if (t->tool_len[i] == tool.n && memcmp(t->tool_name[i], tool.p, (size_t)tool.n) == 0)
            return i;
    }
    if (t->ntools == MAX_TOOLS)
        return -1;
    char *name = malloc((size_t)tool.n + 1);
    if (name == NULL)
        return -2;
    memcpy(name, tool.p, (size_t)tool.n);
    int i = t->ntools++;
    t->tool_name[i] = name;
    t->tool_len[i] = tool.n;
    t->tool_requests[i] = 0;
    return i;
}

static int add(Tally *t, sw_str stage, int is_request, int has_error, sw_str src, double ts,
               sw_str tool)
{
    t->messages++;
    int st = stage_index(stage);
    if (st < 0) {
        give_up(t, "a stage label the summary does not know");
        return 0;
    }
    t->stage_messages[st]++;
    if (!is_request) {
        if (!has_error)
            t->stage_responses[st]++;
        return 0;
    }
    t->stage_requests[st]++;
    if (t->incomplete != NULL)
        return 0;
    int ti = -1;
    if (tool.n) {
        ti = tool_index(t, tool);
        if (ti == -2) {
            PyErr_NoMemory();
            return -1;
        }
        if (ti == -1) {
            give_up(t, "more tools than the summary counts");
            return 0;
        }
        t->tool_requests[ti]++;
    }
    uint64_t h = sw_lru_hash(src.p, (size_t)src.n);
    src_entry *e = (src_entry *)sw_lru_find(&t->sources, h, src.p, (size_t)src.n);
    if (e == NULL) {
        if ((long long)t->sources.count >= t->max_sources) {
            give_up(t, "more source addresses than the summary keeps");
            return 0;
        }
        e = malloc(sizeof(*e) + (size_t)src.n);
        if (e == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(e->key, src.p, (size_t)src.n);
        e->node.hash = h;
        e->node.key = e->key;
        e->node.klen = (size_t)src.n;
        e->requests = 0;
        e->first = e->last = ts;
        e->stages = 0;
        e->tools = 0;
        if (sw_lru_insert(&t->sources, &e->node) < 0) {
            free(e);
            PyErr_NoMemory();
            return -1;
        }
    }
    e->requests++;
    if (ts < e->first)
        e->first = ts;
    if (ts > e->last)
        e->last = ts;
    e->stages |= 1u << st;
    if (ti >= 0)
        e->tools |= (uint64_t)1 << ti;
    return 0;
}

int sw_tally_add(PyObject *tally, const sw_msg *m)
{
    return add((Tally *)tally, m->stage, m->is_request, m->error.n > 0, m->src, m->ts, m->tool);
}

/* ---- Python type ------------------------------------------------------------------------- */
static int tally_init(Tally *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"max_sources", NULL};
    long long max_sources = 262144;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|L:RunTally", kwlist, &max_sources))
        return -1;
    if (max_sources < 0) {
        PyErr_SetString(PyExc_ValueError, "max_sources must be >= 0");
        return -1;
    }
    self->max_sources = max_sources;
    return 0;
}

static PyObject *tally_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    (void)args;
    (void)kw;
    Tally *self = (Tally *)type->tp_alloc(type, 0);
    if (self != NULL)
        sw_lru_init(&self->sources);
    return (PyObject *)self;
}

static void tally_dealloc(Tally *self)
{
    sw_lru_free(&self->sources, entry_free, NULL);
    for (int i = 0; i < self->ntools; i++)
        free(self->tool_name[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *tally_add(Tally *self, PyObject *args)
{
    const char *stage, *src, *tool;
    Py_ssize_t nstage, nsrc, ntool;
    int is_request, has_error;
    double ts;
    if (!PyArg_ParseTuple(args, "s#pps#ds#:add", &stage, &nstage, &is_request, &has_error,
                          &src, &nsrc, &ts, &tool, &ntool))
        return NULL;
    if (add(self, (sw_str){stage, nstage}, is_request, has_error, (sw_str){src, nsrc}, ts,
            (sw_str){tool, ntool}) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *text(const char *p, Py_ssize_t n)
{
    return PyUnicode_DecodeUTF8(p, n, "surrogateescape");
}

static PyObject *stage_tuple(unsigned bits)
{
    PyObject *out = PyTuple_New(0);
    for (int i = 1; out != NULL && i < N_STAGES; i++) { /* the labelled stages only */
        if (!(bits & (1u << i)))
            continue;
        PyObject *s = PyUnicode_FromString(stage_names[i]);
        if (s == NULL || _PyTuple_Resize(&out, PyTuple_GET_SIZE(out) + 1) < 0) {
            Py_XDECREF(s);
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(out, PyTuple_GET_SIZE(out) - 1, s);
    }
    return out;
}

/* tables() -> {"stages": [...], "sources": [...], "tools": [...]}, None when incomplete */
static PyObject *tally_tables(Tally *self, PyObject *Py_UNUSED(ignored))
{
    if (self->incomplete != NULL)
        Py_RETURN_NONE;
    long long stage_sources[N_STAGES] = {0}, tool_sources[MAX_TOOLS] = {0};
    PyObject *sources = PyList_New(0), *stages = NULL, *tools = NULL, *out = NULL;
    if (sources == NULL)
        return NULL;
    for (sw_lru_node *n = self->sources.oldest; n != NULL; n = n->newer) {
        src_entry *e = (src_entry *)n;
        for (int i = 0; i < N_STAGES; i++)
            stage_sources[i] += (e->stages >> i) & 1u;
        for (int i = 0; i < self->ntools; i++)
            tool_sources[i] += (long long)((e->tools >> i) & 1u);
        PyObject *st = stage_tuple(e->stages);
        PyObject *row = st == NULL ? NULL
                                   : Py_BuildValue("(NLddN)", text(e->key, (Py_ssize_t)n->klen),
                                                   e->requests, e->first, e->last, st);
        if (row == NULL || PyList_Append(sources, row) < 0) {
            Py_XDECREF(row);
            goto done;
        }
        Py_DECREF(row);
    }
    if ((stages = PyList_New(0)) == NULL || (tools = PyList_New(0)) == NULL)
        goto done;
    for (int i = 0; i < N_STAGES; i++) {
        if (self->stage_messages[i] == 0)
            continue;
        PyObject *row = Py_BuildValue("(sLLLL)", stage_names[i], self->stage_messages[i],
                                      self->stage_requests[i], self->stage_responses[i],
                                      stage_sources[i]);
        if (row == NULL || PyList_Append(stages, row) < 0) {
            Py_XDECREF(row);
            goto done;
        }
        Py_DECREF(row);
    }
    for (int i = 0; i < self->ntools; i++) {
        PyObject *row = Py_BuildValue("(NLL)", text(self->tool_name[i], self->tool_len[i]),
                                      self->tool_requests[i], tool_sources[i]);
        if (row == NULL || PyList_Append(tools, row) < 0) {
            Py_XDECREF(row);
            goto done;
        }
        Py_DECREF(row);
    }
    out = Py_BuildValue("{sOsOsO}", "stages", stages, "sources", sources, "tools", tools);
done:
    Py_XDECREF(sources);
    Py_XDECREF(stages);
    Py_XDECREF(tools);
    return out;
}

static PyObject *get_messages(Tally *self, void *c)
{
    (void)c;
    return PyLong_FromLongLong(self->messages);
}

static PyObject *get_incomplete(Tally *self, void *c)
{
    (void)c;
    if (self->incomplete == NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(self->incomplete);
}

static PyMethodDef tally_methods[] = {
    {"add", (PyCFunction)tally_add, METH_VARARGS,
     "add(stage, is_request, has_error, src, ts, tool): count one stored message"},
    {"tables", (PyCFunction)tally_tables, METH_NOARGS,
     "tables() -> {'stages': [(stage, messages, requests, responses, sources)], 'sources': "
     "[(src, requests, first, last, stages)], 'tools': [(tool, requests, sources)]}, or None "
     "when incomplete"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef tally_getset[] = {
    {"messages", (getter)get_messages, NULL, "messages counted", NULL},
    {"incomplete", (getter)get_incomplete, NULL, "why tables() is None, else None", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TallyType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sipwatch._native.RunTally",
    .tp_basicsize = sizeof(Tally),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "RunTally(max_sources=262144): the summary tables of one run (tally.h)",
    .tp_new = tally_new,
    .tp_init = (initproc)tally_init,
    .tp_dealloc = (destructor)tally_dealloc,
    .tp_methods = tally_methods,
    .tp_getset = tally_getset,
};

int sw_init_tally(PyObject *m)
{
    if (PyType_Ready(&TallyType) < 0)
        return -1;
    Py_INCREF(&TallyType);
    if (PyModule_AddObject(m, "RunTally", (PyObject *)&TallyType) < 0) {
        Py_DECREF(&TallyType);
        return -1;
    }
    return 0;
}
