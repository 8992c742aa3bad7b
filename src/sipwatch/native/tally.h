/* RunTally: the summary tables of one bulk run, counted as its rows are made.
 *
 * `sipwatch analyze` prints the store's stages, top sources and tools tables after a run.
 * Read from the store they are full scans of the messages table (about a second per million
 * rows, more than the rest of the run's tail); when the store was empty before the run and
 * every message was stored, the run's own counts are those tables, so it keeps them here:
 * per stage the messages, requests and responses; per source address its requests, first and
 * last time, and which stages and tools its requests had. Bounded: past max_sources
 * addresses or 64 tools (or a stage label it does not know) it stops and says it is
 * incomplete, and the summary reads the store as before (summary.py).
 */
#ifndef SIPWATCH_NATIVE_TALLY_H
#define SIPWATCH_NATIVE_TALLY_H

#include "view.h"

/* Count one message (its stored row's stage, is_request, error, src, ts, tool).
 * 0, or -1 with an exception set (out of memory). */
int sw_tally_add(PyObject *tally, const sw_msg *m);

/* 1 when o is a sipwatch._native.RunTally. */
int sw_tally_check(PyObject *o);

#endif
