/* sip.digest.parse_digest in C, for the parameters the password recovery reads.
 *
 * The text is the UTF-8 form of the header value's str (pwtext.h); the rules are
 * parse_digest's to the letter: strip " \t", the scheme word, the comma split of _fast_params
 * and, when it gives up, the _PARAM regex with _unquote, names lower-cased, the first of a
 * name winning. Every ASCII delimiter the rules look at is a whole character in UTF-8, so
 * the byte rules here are the str rules there (tests/unit/test_native_passwords.py holds the
 * two to it, non-ASCII and broken quoting included).
 */
#ifndef SIPWATCH_NATIVE_DIGEST_PARSE_H
#define SIPWATCH_NATIVE_DIGEST_PARSE_H

#include "view.h"

enum {
    SW_D_USERNAME, SW_D_REALM, SW_D_NONCE, SW_D_URI, SW_D_RESPONSE, SW_D_ALGORITHM, SW_D_QOP,
    SW_D_CNONCE, SW_D_NC, SW_D_COUNT
};

/* The parameter names, in SW_D_* order. */
extern const char *const sw_digest_names[SW_D_COUNT];

/* Digest.params.get(name, "") for each SW_D_* name (texts). */
typedef struct {
    sw_str p[SW_D_COUNT];
} sw_digest;

/* parse_digest(value): 1 with d filled, 0 where it gives None (an empty value). The values
 * point into value or into scratch (caller-owned, room for value.n bytes: the values
 * _unquote rewrites). No Python API calls. */
int sw_parse_digest(sw_str value, sw_digest *d, char *scratch);

#endif
