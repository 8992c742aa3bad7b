/* BLAKE2b (RFC 7693), unkeyed, and Record.id computed with it. */
#ifndef SIPWATCH_NATIVE_BLAKE2B_H
#define SIPWATCH_NATIVE_BLAKE2B_H

#include <stddef.h>
#include <stdint.h>

#include "view.h"

typedef struct {
    uint64_t h[8];
    uint64_t t; /* bytes compressed so far (inputs here stay far below 2**64) */
    unsigned char buf[128];
    size_t fill;
    size_t outlen;
} sw_blake2b;

void sw_blake2b_init(sw_blake2b *s, size_t outlen); /* outlen 1..64 */
void sw_blake2b_update(sw_blake2b *s, const void *data, size_t n);
void sw_blake2b_final(sw_blake2b *s, unsigned char *out); /* outlen bytes */

/* record.py Record.id for the seen fields and raw bytes of m: the low 63 bits of the 8-byte
 * BLAKE2b of pack("<d", ts) + "transport|src|sport|dst|dport|sensor|" (UTF-8) + raw, or 1
 * when they are all zero. */
long long sw_record_id(const sw_msg *m);

#endif
