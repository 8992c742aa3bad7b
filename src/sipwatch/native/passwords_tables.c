/* The tables of the C password recovery (see passwords_state.h): the answered table, freeing
 * the HA1 and HA2 caches and the candidates, the per-call scratch buffer. */
#include "passwords_state.h"

#include <string.h>

/* ---- scratch: one bump-allocated buffer per call --------------------------------------- */
int sw_recovery_scratch(sw_recovery *r, size_t n)
{
    if (n <= r->scratch_cap)
        return 0;
    size_t cap = r->scratch_cap ? r->scratch_cap : 4096;
    while (cap < n)
        cap *= 2;
    char *p = PyMem_Realloc(r->scratch, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    r->scratch = p;
    r->scratch_cap = cap;
    return 0;
}

void sw_pw_free_ha2(sw_lru_node *n, void *arg)
{
    (void)arg;
    PyMem_Free(n);
}

void sw_pw_free_entry(sw_lru_node *n, void *arg)
{
    (void)arg;
    sw_ha1_entry *e = (sw_ha1_entry *)n;
    PyMem_Free(e->ha1s);
    PyMem_Free(e->vbuf);
    PyMem_Free(e);
}

/* ---- _answered -------------------------------------------------------------------------- */
static void free_answer(sw_lru_node *n, void *arg)
{
    (void)arg;
    sw_answer *a = (sw_answer *)n;
    Py_XDECREF(a->pw);
    PyMem_Free(a);
}

PyObject *sw_recovery_answered(sw_recovery *r, long long id)
{
    uint64_t h = sw_lru_hash(&id, sizeof(id));
    sw_answer *a = (sw_answer *)sw_lru_find(&r->answered, h, (const char *)&id, sizeof(id));
    return a != NULL ? a->pw : NULL;
}

int sw_recovery_answer(sw_recovery *r, long long id, PyObject *pw)
{
    uint64_t h = sw_lru_hash(&id, sizeof(id));
    sw_answer *a = (sw_answer *)sw_lru_find(&r->answered, h, (const char *)&id, sizeof(id));
    if (a != NULL) { /* a dict keeps the key where it was */
        Py_INCREF(pw);
        Py_SETREF(a->pw, pw);
        return 0;
    }
    a = PyMem_Malloc(sizeof(sw_answer));
    if (a == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    a->id = id;
    a->pw = Py_NewRef(pw);
    a->node.hash = h;
    a->node.key = (const char *)&a->id;
    a->node.klen = sizeof(a->id);
    if (sw_lru_insert(&r->answered, &a->node) < 0) {
        free_answer(&a->node, NULL);
        PyErr_NoMemory();
        return -1;
    }
    if ((long long)r->answered.count > r->max_requests) {
        free_answer(sw_lru_pop_oldest(&r->answered), NULL);
        r->stats.request_evictions++;
    }
    return 0;
}

/* ---- state ------------------------------------------------------------------------------ */
void sw_recovery_clear_tables(sw_recovery *r)
{
    sw_lru_clear(&r->ha1, sw_pw_free_entry, NULL);
    sw_lru_clear(&r->answered, free_answer, NULL);
    sw_lru_clear(&r->ha2, sw_pw_free_ha2, NULL);
    r->ha1_count = 0;
}

static void free_known(sw_lru_node *n, void *arg)
{
    (void)arg;
    sw_known *k = (sw_known *)n;
    Py_XDECREF(k->c.obj);
    PyMem_Free(k);
}

void sw_recovery_free(sw_recovery *r)
{
    sw_lru_free(&r->ha1, sw_pw_free_entry, NULL);
    sw_lru_free(&r->answered, free_answer, NULL);
    sw_lru_free(&r->ha2, sw_pw_free_ha2, NULL);
    sw_lru_free(&r->known, free_known, NULL); /* frees every candidate */
    PyMem_Free(r->cands);
    r->cands = NULL;
    r->nhead = r->ntail = 0;
    r->ha1_count = 0;
    PyMem_Free(r->scratch);
    r->scratch = NULL;
    r->scratch_cap = 0;
}
