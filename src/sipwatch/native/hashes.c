/* The hash functions of HTTP Digest by kind (see hashes.h). */
#include "hashes.h"

void sw_hash_init(sw_hash_ctx *c, int kind)
{
    c->kind = kind;
    if (kind == SW_HASH_MD5)
        sw_md5_init(&c->u.md5);
    else if (kind == SW_HASH_SHA256)
        sw_sha256_init(&c->u.sha256);
    else
        sw_sha512_256_init(&c->u.sha512);
}

void sw_hash_update(sw_hash_ctx *c, const void *data, size_t n)
{
    if (c->kind == SW_HASH_MD5)
        sw_md5_update(&c->u.md5, data, n);
    else if (c->kind == SW_HASH_SHA256)
        sw_sha256_update(&c->u.sha256, data, n);
    else
        sw_sha512_update(&c->u.sha512, data, n);
}

void sw_hash_final(sw_hash_ctx *c, unsigned char *out)
{
    if (c->kind == SW_HASH_MD5)
        sw_md5_final(&c->u.md5, out);
    else if (c->kind == SW_HASH_SHA256)
        sw_sha256_final(&c->u.sha256, out);
    else
        sw_sha512_256_final(&c->u.sha512, out);
}

void sw_hash2(int kind, const void *a, size_t an, const void *b, size_t bn, unsigned char *out)
{
    sw_hash_ctx c;
    sw_hash_init(&c, kind);
    sw_hash_update(&c, a, an);
    if (bn)
        sw_hash_update(&c, b, bn);
    sw_hash_final(&c, out);
}

void sw_hex(const unsigned char *d, int n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
}
