/* MD5, written from RFC 1321 (section 3: the four rounds, the table T[i] =
 * floor(2^32 * abs(sin(i + 1))), little-endian words and length). */
#include "md5.h"
#include "mdbuf.h"

#include <string.h>

static const uint32_t T[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a,
    0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8,
    0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

#define ROTL(x, s) (((x) << (s)) | ((x) >> (32 - (s))))
#define F(x, y, z) (((x) & (y)) | (~(x) & (z)))
#define G(x, y, z) (((x) & (z)) | ((y) & ~(z)))
#define H(x, y, z) ((x) ^ (y) ^ (z))
#define I(x, y, z) ((y) ^ ((x) | ~(z)))
/* a = b + ((a + f(b, c, d) + X[k] + T[i]) <<< s) */
#define STEP(f, a, b, c, d, k, s, i) (a) = (b) + ROTL((a) + f((b), (c), (d)) + X[k] + T[i], s)

static void block(void *state, const unsigned char *p)
{
    uint32_t *h = state;
    uint32_t X[16];
    for (int j = 0; j < 16; j++)
        X[j] = (uint32_t)p[4 * j] | (uint32_t)p[4 * j + 1] << 8 | (uint32_t)p[4 * j + 2] << 16 |
               (uint32_t)p[4 * j + 3] << 24;
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    /* round 1 */
    for (int i = 0; i < 16; i += 4) {
        STEP(F, a, b, c, d, i, 7, i);
        STEP(F, d, a, b, c, i + 1, 12, i + 1);
        STEP(F, c, d, a, b, i + 2, 17, i + 2);
        STEP(F, b, c, d, a, i + 3, 22, i + 3);
    }
    /* round 2: X[(1 + 5i) mod 16] */
    for (int i = 16; i < 32; i += 4) {
        STEP(G, a, b, c, d, (5 * i + 1) & 15, 5, i);
        STEP(G, d, a, b, c, (5 * i + 6) & 15, 9, i + 1);
        STEP(G, c, d, a, b, (5 * i + 11) & 15, 14, i + 2);
        STEP(G, b, c, d, a, (5 * i + 16) & 15, 20, i + 3);
    }
    /* round 3: X[(5 + 3i) mod 16] */
    for (int i = 32; i < 48; i += 4) {
        STEP(H, a, b, c, d, (3 * i + 5) & 15, 4, i);
        STEP(H, d, a, b, c, (3 * i + 8) & 15, 11, i + 1);
        STEP(H, c, d, a, b, (3 * i + 11) & 15, 16, i + 2);
        STEP(H, b, c, d, a, (3 * i + 14) & 15, 23, i + 3);
    }
    /* round 4: X[7i mod 16] */
    for (int i = 48; i < 64; i += 4) {
        STEP(I, a, b, c, d, (7 * i) & 15, 6, i);
        STEP(I, d, a, b, c, (7 * i + 7) & 15, 10, i + 1);
        STEP(I, c, d, a, b, (7 * i + 14) & 15, 15, i + 2);
        STEP(I, b, c, d, a, (7 * i + 21) & 15, 21, i + 3);
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

void sw_md5_init(sw_md5_ctx *c)
{
    c->h[0] = 0x67452301;
    c->h[1] = 0xefcdab89;
    c->h[2] = 0x98badcfe;
    c->h[3] = 0x10325476;
    c->len = 0;
    c->fill = 0;
}

void sw_md5_update(sw_md5_ctx *c, const void *data, size_t n)
{
    sw_md_feed(c->h, block, c->buf, 64, &c->fill, &c->len, data, n);
}

void sw_md5_final(sw_md5_ctx *c, unsigned char out[SW_MD5_SIZE])
{
    uint64_t bits = c->len * 8;
    unsigned char pad[72] = {0x80};
    size_t padn = (c->fill < 56 ? 56 : 120) - c->fill;
    for (int j = 0; j < 8; j++)
        pad[padn + j] = (unsigned char)(bits >> (8 * j));
    sw_md5_update(c, pad, padn + 8);
    for (int j = 0; j < 4; j++) {
        out[4 * j] = (unsigned char)c->h[j];
        out[4 * j + 1] = (unsigned char)(c->h[j] >> 8);
        out[4 * j + 2] = (unsigned char)(c->h[j] >> 16);
        out[4 * j + 3] = (unsigned char)(c->h[j] >> 24);
    }
}
