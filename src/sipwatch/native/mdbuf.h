/* Merkle-Damgard input buffering shared by md5.c, sha256.c and sha512.c: whole blocks go to
 * the compression function straight from the input, a partial one waits in the context's
 * buffer. Inline, so each hash gets its own copy with its block function called directly. */
#ifndef SIPWATCH_NATIVE_MDBUF_H
#define SIPWATCH_NATIVE_MDBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef void (*sw_md_block)(void *state, const unsigned char *block);

static inline void sw_md_feed(void *state, sw_md_block block, unsigned char *buf, size_t size,
                              size_t *fill, uint64_t *len, const void *data, size_t n)
{
    const unsigned char *p = data;
    if (n == 0)
        return;
    *len += n;
    if (*fill) {
        size_t take = size - *fill < n ? size - *fill : n;
        memcpy(buf + *fill, p, take);
        *fill += take;
        p += take;
        n -= take;
        if (*fill < size)
            return;
        block(state, buf);
        *fill = 0;
    }
    for (; n >= size; p += size, n -= size)
        block(state, p);
    if (n) {
        memcpy(buf, p, n);
        *fill = n;
    }
}

#endif
