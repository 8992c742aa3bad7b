/* The str operations of detect/passwords.py, done on the text's UTF-8 form.
 *
 * A "text" here is the UTF-8 form of a Python str, lone surrogates included as their
 * three-byte forms: str.encode("utf-8", "surrogatepass"). That form is one-to-one, so two
 * texts are equal exactly when the two str are, and for a str without surrogates (every str
 * the bulk path sees) it is the UTF-8 SQLite stores. The functions below give what the
 * Python expressions named in their comments give for the str.
 */
#ifndef SIPWATCH_NATIVE_PWTEXT_H
#define SIPWATCH_NATIVE_PWTEXT_H

#include "view.h"

/* str.encode("utf-8", "surrogateescape"): the bytes the digest hashes, into out (room for
 * t.n bytes: never longer than the text). Their length, or -1 when the str cannot be
 * encoded (a lone surrogate outside U+DC80..U+DCFF). */
Py_ssize_t sw_text_encode(sw_str t, char *out);

/* 1 when sw_text_encode gives the text itself (no surrogate at all), else 0 */
int sw_text_plain(sw_str t);

/* 1 when the str can be encoded (surrogateescape), else 0 */
int sw_text_encodable(sw_str t);

/* len(str) */
Py_ssize_t sw_text_len(sw_str t);

/* str[::-1] into out (t.n bytes) */
void sw_text_reverse(sw_str t, char *out);

/* str.strip() (Unicode whitespace, Py_UNICODE_ISSPACE) */
sw_str sw_text_strip(sw_str t);

/* (str or "MD5").upper(): which of passwords._HASHES, with "-SESS" or not. 1 with *kind
 * (SW_HASH_*) and *sess set, or 0 when it names none of them. */
int sw_text_algorithm(sw_str t, int *kind, int *sess);

/* str.lower() == "auth-int" */
int sw_text_is_auth_int(sw_str t);

#endif
