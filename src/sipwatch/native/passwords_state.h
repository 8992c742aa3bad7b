/* Inside the C password recovery: its object and table entries (passwords.c: the recovery,
 * passwords_type.c: the Python type). */
#ifndef SIPWATCH_NATIVE_PASSWORDS_STATE_H
#define SIPWATCH_NATIVE_PASSWORDS_STATE_H

#include "digest_parse.h"
#include "hashes.h"
#include "lru.h"
#include "passwords.h"

#define SW_VARIANTS 5         /* passwords.user_variants: at most five */
#define SW_MAX_USER_VARIANT 64 /* passwords._MAX_USER_VARIANT */
#define SW_HA2_CACHE_MAX 4096 /* passwords._HA2_CACHE_MAX */

/* PasswordStats */
typedef struct {
    long long requests, tried, recovered, from_tag, from_digest, exhausted, unverifiable,
        responses, ha1_evictions, request_evictions;
} sw_pw_stats;

/* one candidate password */
typedef struct {
    sw_str text;  /* the str's text (pwtext.h) */
    sw_str bytes; /* what the digest hashes: str.encode("utf-8", "surrogateescape") */
    PyObject *obj; /* the str (configured and list candidates); NULL for a username variant */
} sw_cand;

/* a configured or list candidate, in the known set */
typedef struct {
    sw_lru_node node; /* first member; its key is the text */
    sw_cand c;
    char buf[]; /* text, then bytes when they differ */
} sw_known;

/* _ha1[(algorithm, user, realm)] = (variants, HA1s); key: algorithm id, len(user text) as 4
 * bytes, user text, realm text */
typedef struct {
    sw_lru_node node; /* first member */
    int nvar;
    sw_cand var[SW_VARIANTS];
    Py_ssize_t n, cap;    /* HA1s computed, room */
    unsigned char *ha1s;  /* n HA1s as hex, each 2 * sw_hash_size(kind) bytes */
    char *vbuf;           /* the variants' texts and bytes */
    char key[];
} sw_ha1_entry;

/* _answered[request id] = password */
typedef struct {
    sw_lru_node node; /* first member; key: the id's 8 bytes */
    long long id;
    PyObject *pw;
} sw_answer;

/* the HA2 cache: H(method:uri) as hex; key: hash kind, method text, 0, uri text */
typedef struct {
    sw_lru_node node; /* first member */
    char hex[2 * SW_HASH_MAX];
    char key[];
} sw_ha2_entry;

typedef struct {
    PyObject_HEAD
    int ready;
    long long max_candidates, ha1_cache, max_requests;
    sw_known **cands; /* _head then _tail */
    Py_ssize_t nhead, ntail;
    sw_lru known; /* _known: the texts of cands */
    sw_lru ha1;   /* _ha1 */
    long long ha1_count;
    sw_lru answered; /* _answered */
    sw_lru ha2;      /* _HA2_CACHE (one per recovery here; it only saves work) */
    sw_pw_stats stats;
    PyObject *head, *tail, *known_set; /* _head, _tail (tuples), _known (frozenset) */
    PyObject *last;                    /* the str sw_recover's m->password points into */
    char *scratch;                     /* per-message buffers */
    size_t scratch_cap;
} sw_recovery;

extern PyTypeObject sw_recovery_type;

/* fingerprints.SIPVICIOUS (as passwords.py imports it), read with the Python constants */
extern sw_str sw_pw_sipvicious;

/* what recover() gives */
enum { SW_PW_NONE, SW_PW_CAND, SW_PW_CLAIM };
typedef struct {
    int kind;
    const sw_cand *cand; /* SW_PW_CAND */
    sw_str claim;        /* SW_PW_CLAIM: svcrack's password (may be "") */
} sw_pw;

/* PasswordRecovery.recover on texts (pwtext.h): the digest's parameters, the method, the
 * body and svcrack's tag data. 0 with *out set, or -1 with an exception (no memory). The
 * result points into the recovery's tables or into svcrack: valid until the next call. */
int sw_recovery_recover(sw_recovery *r, const sw_digest *d, sw_str method, sw_str body,
                        sw_str svcrack, sw_pw *out);

/* The password as a str (a new reference). */
PyObject *sw_pw_object(const sw_pw *pw);

/* _answered.get(id): a borrowed str, or NULL */
PyObject *sw_recovery_answered(sw_recovery *r, long long id);

/* answered[id] = pw, then the FIFO bound; 0 or -1 */
int sw_recovery_answer(sw_recovery *r, long long id, PyObject *pw);

/* Free an HA1 cache entry, an HA2 cache entry (sw_lru callbacks). */
void sw_pw_free_entry(sw_lru_node *n, void *arg);
void sw_pw_free_ha2(sw_lru_node *n, void *arg);

/* Empty the tables (state only; the candidates and bounds stay). */
void sw_recovery_clear_tables(sw_recovery *r);

/* Free the tables and the candidates. */
void sw_recovery_free(sw_recovery *r);

/* Room for n bytes in r->scratch; 0 or -1 (no memory, exception set). */
int sw_recovery_scratch(sw_recovery *r, size_t n);

/* The text of a str (the surrogatepass UTF-8): 0, or -1 with an exception. *keep gets a new
 * reference to an object that holds the bytes when the str's own UTF-8 cannot (NULL else). */
int sw_text_of(PyObject *s, sw_str *out, PyObject **keep);

/* The str of a text (decoded with surrogatepass), a new reference. */
static inline PyObject *sw_text_str(sw_str t)
{
    return PyUnicode_DecodeUTF8(t.p, t.n, "surrogatepass");
}

/* passwords_type.c: 0, or -1 with RuntimeError when __init__ has not run; PasswordStats
 * (borrowed, once a Recovery was made) */
int sw_recovery_ready(sw_recovery *self);
PyObject *sw_pw_stats_type(void);

/* passwords_attrs.c: the attributes */
extern PyGetSetDef sw_recovery_getset[];

/* passwords_hooks.c: Recovery._sw_recover, and the module's test hooks (0 or -1) */
PyObject *sw_recovery_sw_recover(sw_recovery *self, PyObject *records);
int sw_init_passwords_hooks(PyObject *module);

#endif
