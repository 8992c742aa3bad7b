/* The hash functions of HTTP Digest by kind (RFC 7616: MD5, SHA-256, SHA-512-256), behind one
 * context type, for the password recovery (passwords.c). */
#ifndef SIPWATCH_NATIVE_HASHES_H
#define SIPWATCH_NATIVE_HASHES_H

#include "md5.h"
#include "sha256.h"
#include "sha512.h"

enum { SW_HASH_MD5, SW_HASH_SHA256, SW_HASH_SHA512_256, SW_HASH_KINDS };

#define SW_HASH_MAX 32 /* the largest digest size, in bytes */

typedef struct {
    int kind;
    union {
        sw_md5_ctx md5;
        sw_sha256_ctx sha256;
        sw_sha512_ctx sha512;
    } u;
} sw_hash_ctx;

/* digest size in bytes of a kind */
static inline int sw_hash_size(int kind)
{
    return kind == SW_HASH_MD5 ? SW_MD5_SIZE : SW_SHA256_SIZE;
}

void sw_hash_init(sw_hash_ctx *c, int kind);
void sw_hash_update(sw_hash_ctx *c, const void *data, size_t n);
void sw_hash_final(sw_hash_ctx *c, unsigned char *out);

/* H(a + b) into out (sw_hash_size(kind) bytes) */
void sw_hash2(int kind, const void *a, size_t an, const void *b, size_t bn, unsigned char *out);

/* n bytes as 2n lower-case hex digits (hashlib's hexdigest()) */
void sw_hex(const unsigned char *d, int n, char *out);

#endif
