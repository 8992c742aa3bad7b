/* sw_msg from a Python Record: how the bulk path reads records made by the Python pipeline
 * (TCP streams, tunnels, messages the C scanner leaves to the Python parser). */
#ifndef SIPWATCH_NATIVE_RECORDVIEW_H
#define SIPWATCH_NATIVE_RECORDVIEW_H

#include "view.h"

#define SW_KEEP_MAX 4

/* New references a view needs while it is used (e.g. the joined anomalies). */
typedef struct {
    PyObject *obj[SW_KEEP_MAX];
    int n;
} sw_keep;

#define SW_KEEP_INIT {{NULL}, 0}

void sw_keep_clear(sw_keep *k);

/* Fill every block of m (seen, parsed, labels, id) from a sipwatch.record.Record, reading the
 * same attributes as store/rows.py message_row (and msg.body and the header text
 * msg.credentials parses, for the password recovery). The slices point into the record's objects
 * (and into keep): valid while the record is unchanged and keep is not cleared. 0, or -1 with
 * an exception set (an attribute of an unexpected type, a str that is not encodable as UTF-8):
 * the caller then takes the Python path for this record. */
int sw_msg_from_record(PyObject *record, sw_msg *m, sw_keep *keep);

/* sw_msg_from_record; compute_id 0 reads Record._id instead of Record.id, so m->id is 0 when
 * the id has not been computed yet (the stage labeller asks for it only when it needs it). */
int sw_msg_from_record_id(PyObject *record, sw_msg *m, sw_keep *keep, int compute_id);

/* Only the label fields (stage, tool, tool_data, fuzz, number*, request_id, password). */
int sw_labels_from_record(PyObject *record, sw_msg *m);

/* The interned attribute names; called once by the module init. 0 or -1. */
int sw_recordview_init(void);

#endif
