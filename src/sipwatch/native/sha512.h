/* SHA-512/256 (FIPS 180-4: SHA-512 with its own initial value, truncated to 256 bits), for the
 * digest password recovery (passwords.c: RFC 7616 / RFC 8760 SHA-512-256). */
#ifndef SIPWATCH_NATIVE_SHA512_H
#define SIPWATCH_NATIVE_SHA512_H

#include <stddef.h>
#include <stdint.h>

#define SW_SHA512_256_SIZE 32

typedef struct {
    uint64_t h[8];
    uint64_t len; /* bytes hashed so far (inputs here are far below 2^61 bytes) */
    unsigned char buf[128];
    size_t fill;
} sw_sha512_ctx;

void sw_sha512_256_init(sw_sha512_ctx *c);
void sw_sha512_update(sw_sha512_ctx *c, const void *data, size_t n);
void sw_sha512_256_final(sw_sha512_ctx *c, unsigned char out[SW_SHA512_256_SIZE]);

#endif
