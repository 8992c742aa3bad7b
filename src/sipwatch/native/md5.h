/* MD5 (RFC 1321), for the digest password recovery (passwords.c). Not for security: HTTP
 * Digest (RFC 2617) is defined over MD5, so the recovery must compute it. */
#ifndef SIPWATCH_NATIVE_MD5_H
#define SIPWATCH_NATIVE_MD5_H

#include <stddef.h>
#include <stdint.h>

#define SW_MD5_SIZE 16

typedef struct {
    uint32_t h[4];
    uint64_t len; /* bytes hashed so far */
    unsigned char buf[64];
    size_t fill;
} sw_md5_ctx;

void sw_md5_init(sw_md5_ctx *c);
void sw_md5_update(sw_md5_ctx *c, const void *data, size_t n);
void sw_md5_final(sw_md5_ctx *c, unsigned char out[SW_MD5_SIZE]);

#endif
