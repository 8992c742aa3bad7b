/* The stage labeller in C: sipwatch._native.Labeller, an exact mirror of
 * sipwatch.detect.stages.StageLabeler (same labels, same LRU state and evictions, same
 * stats), and sw_label, its entry for the bulk path.
 *
 * The Python class stays the definition; tests/unit/test_native_labeller.py holds this one
 * to it record by record.
 */
#ifndef SIPWATCH_NATIVE_LABELLER_H
#define SIPWATCH_NATIVE_LABELLER_H

#include "view.h"

/* Label one message: fill m's label fields (stage, tool, tool_data, fuzz, number,
 * number_type, number_country, request_id; not password) from its seen and parsed fields,
 * exactly as StageLabeler.label would fill a Record holding the same values, and update the
 * labeller's state and stats. m->id must be set (a request is remembered under it as the
 * request_id of its responses). Fields the Python labeller leaves alone keep m's values, so
 * m's label fields must be initialised (zeroed, or the Record's current labels).
 *
 * The label slices point into m, the labeller's tables and caches, or Python objects the
 * labeller holds: valid until the next sw_label call on the same labeller.
 * Needs the GIL (it calls NumberClassifier.classify and, for some inputs, Python's string
 * functions). 0, or -1 with an exception set (m's label fields then hold what was written
 * before the error, like the Record in Python). */
int sw_label(PyObject *labeller, sw_msg *m);

/* Adds the Labeller type to the module; 0 or -1. */
int sw_init_labeller(PyObject *module);

#endif
