/* The attributes of sipwatch._native.Recovery: PasswordRecovery's (stats, bounds, _head,
 * _tail, _known, _ha1_count) and copies of its tables (_ha1, _answered) for the tests. */
#include "passwords_state.h"

#include <string.h>

static const char *alg_names[2 * SW_HASH_KINDS] = {
    "MD5", "MD5-SESS", "SHA-256", "SHA-256-SESS", "SHA-512-256", "SHA-512-256-SESS",
};

static int kw_ll(PyObject *kw, const char *name, long long v)
{
    PyObject *o = PyLong_FromLongLong(v);
    if (o == NULL)
        return -1;
    int r = PyDict_SetItemString(kw, name, o);
    Py_DECREF(o);
    return r;
}

/* A fresh PasswordStats with the counters (equal to PasswordRecovery.stats field by field);
 * changing it does not change the recovery's. */
static PyObject *get_stats(sw_recovery *self, void *closure)
{
    (void)closure;
    if (sw_recovery_ready(self) < 0)
        return NULL;
    const sw_pw_stats *s = &self->stats;
    PyObject *kw = PyDict_New(), *args = PyTuple_New(0), *r = NULL;
    if (kw == NULL || args == NULL || kw_ll(kw, "requests", s->requests) < 0 ||
        kw_ll(kw, "tried", s->tried) < 0 || kw_ll(kw, "recovered", s->recovered) < 0 ||
        kw_ll(kw, "from_tag", s->from_tag) < 0 || kw_ll(kw, "from_digest", s->from_digest) < 0 ||
        kw_ll(kw, "exhausted", s->exhausted) < 0 ||
        kw_ll(kw, "unverifiable", s->unverifiable) < 0 ||
        kw_ll(kw, "responses", s->responses) < 0 ||
        kw_ll(kw, "ha1_evictions", s->ha1_evictions) < 0 ||
        kw_ll(kw, "request_evictions", s->request_evictions) < 0)
        goto done;
    r = PyObject_Call(sw_pw_stats_type(), args, kw);
done:
    Py_XDECREF(kw);
    Py_XDECREF(args);
    return r;
}

static PyObject *get_obj(sw_recovery *self, void *closure)
{
    if (sw_recovery_ready(self) < 0)
        return NULL;
    PyObject *o = *(PyObject **)((char *)self + (size_t)closure);
    return Py_NewRef(o);
}

/* _ha1 as PasswordRecovery keeps it: OrderedDict((algorithm, user, realm) -> (variants,
 * HA1s)), oldest first (a copy) */
static PyObject *get_ha1(sw_recovery *self, void *closure)
{
    (void)closure;
    if (sw_recovery_ready(self) < 0)
        return NULL;
    PyObject *collections = PyImport_ImportModule("collections");
    PyObject *od = collections ? PyObject_CallMethod(collections, "OrderedDict", NULL) : NULL;
    Py_XDECREF(collections);
    if (od == NULL)
        return NULL;
    for (sw_lru_node *n = self->ha1.oldest; n != NULL; n = n->newer) {
        sw_ha1_entry *e = (sw_ha1_entry *)n;
        int alg = (unsigned char)e->key[0];
        uint32_t ulen;
        memcpy(&ulen, e->key + 1, 4);
        sw_str user = {e->key + 5, (Py_ssize_t)ulen};
        sw_str realm = {e->key + 5 + ulen, (Py_ssize_t)(n->klen - 5 - ulen)};
        PyObject *key =
            Py_BuildValue("(sNN)", alg_names[alg], sw_text_str(user), sw_text_str(realm));
        PyObject *vars = PyTuple_New(e->nvar);
        PyObject *ha1s = PyList_New(e->n);
        int bad = key == NULL || vars == NULL || ha1s == NULL;
        for (int i = 0; !bad && i < e->nvar; i++) {
            PyObject *v = sw_text_str(e->var[i].text);
            bad = v == NULL;
            if (!bad)
                PyTuple_SET_ITEM(vars, i, v);
        }
        int hx = 2 * sw_hash_size(alg / 2);
        for (Py_ssize_t i = 0; !bad && i < e->n; i++) {
            PyObject *h = PyBytes_FromStringAndSize((const char *)e->ha1s + i * hx, hx);
            bad = h == NULL;
            if (!bad)
                PyList_SET_ITEM(ha1s, i, h);
        }
        PyObject *val = bad ? NULL : PyTuple_Pack(2, vars, ha1s);
        bad = val == NULL || PyObject_SetItem(od, key, val) < 0;
        Py_XDECREF(key);
        Py_XDECREF(vars);
        Py_XDECREF(ha1s);
        Py_XDECREF(val);
        if (bad) {
            Py_DECREF(od);
            return NULL;
        }
    }
    return od;
}

/* _answered: {request id: password}, oldest first (a copy) */
static PyObject *get_answered(sw_recovery *self, void *closure)
{
    (void)closure;
    if (sw_recovery_ready(self) < 0)
        return NULL;
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    for (sw_lru_node *n = self->answered.oldest; n != NULL; n = n->newer) {
        sw_answer *a = (sw_answer *)n;
        PyObject *k = PyLong_FromLongLong(a->id);
        if (k == NULL || PyDict_SetItem(d, k, a->pw) < 0) {
            Py_XDECREF(k);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(k);
    }
    return d;
}

static PyObject *get_ll(sw_recovery *self, void *closure)
{
    if (sw_recovery_ready(self) < 0)
        return NULL;
    return PyLong_FromLongLong(*(long long *)((char *)self + (size_t)closure));
}

#define OFF(f) ((void *)offsetof(sw_recovery, f))
PyGetSetDef sw_recovery_getset[] = {
    {"stats", (getter)get_stats, NULL, "PasswordStats: a snapshot of the counters", NULL},
    {"max_candidates", (getter)get_ll, NULL, "passwords tried per message at most",
     OFF(max_candidates)},
    {"ha1_cache", (getter)get_ll, NULL, "HA1 values kept at most", OFF(ha1_cache)},
    {"max_requests", (getter)get_ll, NULL, "requests remembered for their responses",
     OFF(max_requests)},
    {"_ha1_count", (getter)get_ll, NULL, "HA1 values in the cache", OFF(ha1_count)},
    {"_head", (getter)get_obj, NULL, "the configured candidates (tuple)", OFF(head)},
    {"_tail", (getter)get_obj, NULL, "the list candidates (tuple)", OFF(tail)},
    {"_known", (getter)get_obj, NULL, "_head and _tail (frozenset)", OFF(known_set)},
    {"_ha1", (getter)get_ha1, NULL, "the HA1 cache (a copy)", NULL},
    {"_answered", (getter)get_answered, NULL, "request id -> password (a copy)", NULL},
    {NULL},
};
