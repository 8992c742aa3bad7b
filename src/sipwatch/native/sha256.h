/* SHA-256 (FIPS 180-4), for the digest password recovery (passwords.c: RFC 7616 SHA-256). */
#ifndef SIPWATCH_NATIVE_SHA256_H
#define SIPWATCH_NATIVE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SW_SHA256_SIZE 32

typedef struct {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    unsigned char buf[64];
    size_t fill;
} sw_sha256_ctx;

void sw_sha256_init(sw_sha256_ctx *c);
void sw_sha256_update(sw_sha256_ctx *c, const void *data, size_t n);
void sw_sha256_final(sw_sha256_ctx *c, unsigned char out[SW_SHA256_SIZE]);

#endif
