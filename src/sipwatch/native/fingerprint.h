/* Attack-tool fingerprints in C: a mirror of sipwatch/detect/fingerprints.py.
 *
 * The SIPVicious From-tag decoding, svmap's target and svcrack's fixed tag are done here for
 * ASCII data; data that is not ASCII (UTF-8 validity and str.isprintable), display names that
 * are not ASCII (Unicode strip/lower) and the User-Agent regex go to the Python functions, so
 * the results are exactly Python's. User-Agent -> tool answers are kept in a bounded LRU cache
 * (sw_ua_cache) keyed by the User-Agent bytes.
 *
 * All functions need the GIL. Slices they return point into the caller's buffers, into the
 * cache or into a Python str whose reference the caller receives (sw_pykeep).
 */
#ifndef SIPWATCH_NATIVE_FINGERPRINT_H
#define SIPWATCH_NATIVE_FINGERPRINT_H

#include "lru.h"
#include "view.h"

#define SW_FP_MAX_TAG 512  /* fingerprints._MAX_TAG: longer tags are not decoded */
#define SW_FP_DATA_MAX 256 /* decoded bytes of the longest tag */
#define SW_FP_TARGET_MAX 24 /* "255.255.255.255:65535" */
#define SW_UA_CACHE_MAX 4096
#define SW_UA_CACHE_KEY_MAX 1024 /* longer User-Agents are asked each time (not cached) */

/* References to Python objects that slices point into, released together later. */
#define SW_PYKEEP_MAX 8
typedef struct {
    PyObject *obj[SW_PYKEEP_MAX];
    int n;
} sw_pykeep;

void sw_pykeep_release(sw_pykeep *k);
/* Take ownership of a new reference o (may be NULL: returns -1 with the error kept). */
int sw_pykeep_add(sw_pykeep *k, PyObject *o);

/* The UTF-8 bytes of a str (cached in the object). */
int sw_utf8_of(PyObject *o, sw_str *out);

typedef struct {
    sw_lru t;
} sw_ua_cache;

/* Process-wide constants and functions from sipwatch.detect.fingerprints; 0 or -1. */
int sw_fp_init(void);

/* fingerprints.SIPVICIOUS as a str (borrowed) and its bytes. */
PyObject *sw_fp_sipvicious_obj(void);
sw_str sw_fp_sipvicious(void);

/* Per-decode scratch: the decoded tag data and svmap's target text. */
typedef struct {
    char data[SW_FP_DATA_MAX];
    char target[SW_FP_TARGET_MAX];
} sw_fp_buf;

/* decode_sipvicious_tag(tag): 1 and *out set, 0 for None, -1 with an exception. */
int sw_fp_decode_tag(sw_str tag, sw_fp_buf *buf, sw_pykeep *keep, sw_str *out);

/* fingerprint()'s data rule: data as it is when it equals to_user, else svmap_target(data)
 * when that applies, else data. */
sw_str sw_fp_tool_data(sw_str data, sw_str to_user, sw_fp_buf *buf);

/* from_tag == SVCRACK_FIXED_TAG */
int sw_fp_is_svcrack_tag(sw_str tag);

/* from_user_agent(ua) through the cache: 0 and *tool set ("" when none), -1 on error. */
int sw_ua_tool(sw_ua_cache *c, sw_str ua, sw_pykeep *keep, sw_str *tool);

/* from_display.strip().strip('"').lower() == SIPVICIOUS: 1, 0, or -1 on error. */
int sw_fp_display_is_sipvicious(sw_str display);

/* fingerprint(tag, ua, display, to_user): 1 with tool and data set, 0 for None, -1 on error. */
int sw_fingerprint(sw_ua_cache *c, sw_str tag, sw_str ua, sw_str display, sw_str to_user,
                   sw_fp_buf *buf, sw_pykeep *keep, sw_str *tool, sw_str *data);

void sw_ua_cache_init(sw_ua_cache *c);
void sw_ua_cache_free(sw_ua_cache *c);

#endif
