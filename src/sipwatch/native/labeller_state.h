/* Inside the C stage labeller: its object, its table entries and the constants it shares
 * with sipwatch.detect.stages (labeller.c: the labelling, labeller_type.c: the Python type). */
#ifndef SIPWATCH_NATIVE_LABELLER_STATE_H
#define SIPWATCH_NATIVE_LABELLER_STATE_H

#include <string.h>

#include "fingerprint.h"
#include "labeller.h"
#include "lru.h"

/* stage index: 0 is "", 1.. are stages.STAGES in its order */
#define SW_NSTAGES 4

/* Strings and sets read from the Python modules once, so both labellers use the same. */
typedef struct {
    PyObject *stage_obj[SW_NSTAGES + 1]; /* [0] is "" */
    sw_str stage[SW_NSTAGES + 1];
    int ss, es, rhj, tf; /* indexes of SS, ES, RHJ, TF */
    /* frozensets as lists of byte strings */
    sw_str benign_anomalies[8], benign_errors[8], chargeable[16];
    int n_benign_anomalies, n_benign_errors, n_chargeable;
    PyObject *keep; /* a list holding the objects the slices above point into */
    sw_str extension, shorttype; /* numbers.EXTENSION, numbers.SHORT */
    PyObject *config_type, *stats_type, *classifier_type; /* LabelerConfig, LabelerStats, ... */
    PyObject *s_classify;                                 /* "classify" */
} sw_lconst;

extern sw_lconst sw_lc;

/* one distinct user part of a source (detect/stages.py _Source.users) */
typedef struct {
    uint64_t hash;
    Py_ssize_t n;
    char *p;
} sw_user;

/* _Source: per-source state, keyed by the source address */
typedef struct {
    sw_lru_node node; /* first member */
    double last_ts;
    int scanning;
    Py_ssize_t nusers, cap;
    sw_user *users;
    char key[];
} sw_source;

/* _Seen: what a response inherits from its request, keyed by a transaction key */
typedef struct sw_seen {
    sw_lru_node node; /* first member */
    struct sw_seen *next_dead;
    long long request_id;
    int stage;          /* stage index */
    PyObject *number;   /* NumberClass or NULL (None) */
    sw_str num[3];      /* its number, type, country */
    sw_str tool, tool_data; /* in bytes[] after the key */
    char bytes[];
} sw_seen;

typedef struct {
    PyObject_HEAD
    PyObject *config;
    PyObject *numbers;
    /* LabelerConfig, read when config is set */
    long long ext_scan_users, max_sources, max_requests;
    double idle_reset_s;
    /* LabelerStats */
    long long labelled[SW_NSTAGES + 1], unlabelled, fuzz, tools, responses_matched,
        responses_inferred, source_evictions, request_evictions;
    /* state */
    sw_lru sources, requests;
    sw_ua_cache ua;
    /* what the last sw_label's label slices may point into; released by the next call */
    sw_pykeep keep;
    sw_fp_buf fp;
    sw_seen *dead; /* evicted request entries */
    PyObject *number; /* borrowed: the NumberClass the number fields came from, or NULL */
    int busy; /* inside sw_label: no re-entry */
    /* scratch for transaction keys */
    char *kbuf;
    size_t kcap;
} sw_labeller;

static inline int sw_str_eq(sw_str a, sw_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, (size_t)a.n) == 0);
}

static inline char sw_ascii_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* labeller_consts.c: read sw_lc from the Python modules (once; 0 or -1), seed the tables */
int sw_lconst_load(void);
int sw_lconst_seed(void);

/* labeller_tables.c: the state */
int sw_tkey_has(const sw_msg *m); /* msg has a Call-ID and a CSeq number */
/* _request_key(client, msg) / _invite_key(record, msg) into self->kbuf: the key's length, 0
 * for None, -1 on error (cseq_up: msg.cseq_method.upper()) */
Py_ssize_t sw_tkey_request(sw_labeller *self, const sw_msg *m, sw_str client, sw_str cseq_up);
Py_ssize_t sw_tkey_invite(sw_labeller *self, const sw_msg *m);
/* the request entry under the key in self->kbuf (no change of use order), or NULL */
sw_seen *sw_seen_find(sw_labeller *self, Py_ssize_t klen, uint64_t *hash);
/* requests[key] = seen (or move_to_end when there); 0 or -1 */
int sw_seen_put(sw_labeller *self, Py_ssize_t klen, const sw_msg *m, int stage, PyObject *number,
                const sw_str *num);
/* _note_user: 1 when the source is scanning, 0, -1 on error */
int sw_source_note_user(sw_labeller *self, const sw_msg *m, sw_str user, int count,
                        const sw_str *ntype);
void sw_labeller_release_call(sw_labeller *self);
void sw_labeller_free_state(sw_labeller *self);

/* labeller.c: the labelling itself */
int sw_label_impl(sw_labeller *self, sw_msg *m);

/* labeller_type.c */
extern PyTypeObject sw_labeller_type;

#endif
