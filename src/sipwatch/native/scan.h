/* sw_scan: one SIP message's bytes -> the parsed fields of its trace-store row (sipwatch._native).
 *
 * The C twin of `msg = sipwatch.sip.message.parse(raw)` followed by what
 * store/rows.py message_row reads from msg (plus msg.from_display and msg.has_credentials),
 * for the clean, common shape of a message only: CRLF line ends, a CRLFCRLF, no folding,
 * token header names, a head (start line and headers) of printable ASCII and HT (so the
 * latin-1 text the parser builds is the UTF-8 the store writes), the start line, header loop
 * and field shapes that sip/sipcore.h reads. For anything else sw_scan answers 0 and the
 * Python parser decides; when it answers 1 every field equals the Python pipeline's
 * (tests/unit/test_native_scan.py holds it to that, differentially).
 */
#ifndef SIPWATCH_NATIVE_SCAN_H
#define SIPWATCH_NATIVE_SCAN_H

#include "view.h"

#define SW_SCAN_SCRATCH 1024

/* 1: m's parsed fields are filled; 0: not handled here (the Python parser decides) and m is
 * left untouched. Never reads outside d[0:n]. No Python API calls, no allocation; needs about
 * 9 KiB of stack; safe without the GIL once sw_init_scan has run. Slices point into d, into
 * static strings, or into scratch (caller-owned, SW_SCAN_SCRATCH bytes: the joined
 * anomalies). */
int sw_scan(const unsigned char *d, Py_ssize_t n, sw_msg *m, char *scratch);

/* Module init part: fills the tables (names.COMPACT included) and adds the hooks
 * scan(raw: bytes) -> dict | None (the sw_msg fields sw_scan fills, as Python values; None
 * when it answers 0) and scan_count(payloads: list[bytes]) -> int (how many sw_scan
 * handles: a benchmark hook that builds no objects). 0, or -1 with an exception set. */
int sw_init_scan(PyObject *module);

#endif
