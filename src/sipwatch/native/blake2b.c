/* BLAKE2b as RFC 7693 specifies it (section 3), for Record ids computed without Python. */
#include "blake2b.h"
#include "module.h"

#include <string.h>

static const uint64_t IV[8] = {
    0x6A09E667F3BCC908ULL, 0xBB67AE8584CAA73BULL, 0x3C6EF372FE94F82BULL, 0xA54FF53A5F1D36F1ULL,
    0x510E527FADE682D1ULL, 0x9B05688C2B3E6C1FULL, 0x1F83D9ABFB41BD6BULL, 0x5BE0CD19137E2179ULL,
};

static const unsigned char SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t rotr(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v; /* little-endian host (checked at init): the bytes are the word */
    memcpy(&v, p, 8);
    return v;
}

#define G(a, b, c, d, x, y)                                                                   \
    do {                                                                                      \
        v[a] = v[a] + v[b] + (x);                                                             \
        v[d] = rotr(v[d] ^ v[a], 32);                                                         \
        v[c] = v[c] + v[d];                                                                   \
        v[b] = rotr(v[b] ^ v[c], 24);                                                         \
        v[a] = v[a] + v[b] + (y);                                                             \
        v[d] = rotr(v[d] ^ v[a], 16);                                                         \
        v[c] = v[c] + v[d];                                                                   \
        v[b] = rotr(v[b] ^ v[c], 63);                                                         \
    } while (0)

static void compress(sw_blake2b *s, const unsigned char *block, int last)
{
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++)
        m[i] = load64(block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = s->h[i];
        v[i + 8] = IV[i];
    }
    v[12] ^= s->t;
    /* v[13] ^= high word of the counter: always 0 here */
    if (last)
        v[14] = ~v[14];
    /* the 12 rounds written out: the message-word indices become constants */
#define ROUND(r)                                                                              \
    do {                                                                                      \
        G(0, 4, 8, 12, m[SIGMA[r][0]], m[SIGMA[r][1]]);                                       \
        G(1, 5, 9, 13, m[SIGMA[r][2]], m[SIGMA[r][3]]);                                       \
        G(2, 6, 10, 14, m[SIGMA[r][4]], m[SIGMA[r][5]]);                                      \
        G(3, 7, 11, 15, m[SIGMA[r][6]], m[SIGMA[r][7]]);                                      \
        G(0, 5, 10, 15, m[SIGMA[r][8]], m[SIGMA[r][9]]);                                      \
        G(1, 6, 11, 12, m[SIGMA[r][10]], m[SIGMA[r][11]]);                                    \
        G(2, 7, 8, 13, m[SIGMA[r][12]], m[SIGMA[r][13]]);                                     \
        G(3, 4, 9, 14, m[SIGMA[r][14]], m[SIGMA[r][15]]);                                     \
    } while (0)
    ROUND(0);
    ROUND(1);
    ROUND(2);
    ROUND(3);
    ROUND(4);
    ROUND(5);
    ROUND(6);
    ROUND(7);
    ROUND(8);
    ROUND(9);
    ROUND(10);
    ROUND(11);
#undef ROUND
    for (int i = 0; i < 8; i++)
        s->h[i] ^= v[i] ^ v[i + 8];
}

void sw_blake2b_init(sw_blake2b *s, size_t outlen)
{
    memcpy(s->h, IV, sizeof(IV));
    s->h[0] ^= 0x01010000ULL ^ (uint64_t)outlen; /* no key: key length 0 */
    s->t = 0;
    s->fill = 0;
    s->outlen = outlen;
}

void sw_blake2b_update(sw_blake2b *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        /* a full buffer is compressed only once more input follows: the last block is
         * compressed by final() with the last-block flag */
        if (s->fill == sizeof(s->buf)) {
            s->t += sizeof(s->buf);
            compress(s, s->buf, 0);
            s->fill = 0;
        }
        size_t take = sizeof(s->buf) - s->fill;
        if (take > n)
            take = n;
        memcpy(s->buf + s->fill, p, take);
        s->fill += take;
        p += take;
        n -= take;
    }
}

void sw_blake2b_final(sw_blake2b *s, unsigned char *out)
{
    s->t += s->fill;
    memset(s->buf + s->fill, 0, sizeof(s->buf) - s->fill);
    compress(s, s->buf, 1);
    for (size_t i = 0; i < s->outlen; i++)
        out[i] = (unsigned char)(s->h[i / 8] >> (8 * (i % 8)));
}

/* decimal text of a port number (0..2**31) */
static size_t put_int(char *dst, long v)
{
    char tmp[24];
    size_t n = 0;
    int neg = v < 0;
    unsigned long u = neg ? 0UL - (unsigned long)v : (unsigned long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t k = 0;
    if (neg)
        dst[k++] = '-';
    while (n)
        dst[k++] = tmp[--n];
    return k;
}

long long sw_record_id(const sw_msg *m)
{
    sw_blake2b s;
    sw_blake2b_init(&s, 8);
    unsigned char ts[8];
    double d = m->ts;
    memcpy(ts, &d, 8); /* pack("<d"): this file assumes a little-endian host (checked at init) */
    sw_blake2b_update(&s, ts, 8);
    char num[24];
    const sw_str *parts[4] = {&m->transport, &m->src, &m->dst, &m->sensor};
    /* transport|src|sport|dst|dport|sensor| */
    sw_blake2b_update(&s, parts[0]->p, (size_t)parts[0]->n);
    sw_blake2b_update(&s, "|", 1);
    sw_blake2b_update(&s, parts[1]->p, (size_t)parts[1]->n);
    sw_blake2b_update(&s, "|", 1);
    sw_blake2b_update(&s, num, put_int(num, m->sport));
    sw_blake2b_update(&s, "|", 1);
    sw_blake2b_update(&s, parts[2]->p, (size_t)parts[2]->n);
    sw_blake2b_update(&s, "|", 1);
    sw_blake2b_update(&s, num, put_int(num, m->dport));
    sw_blake2b_update(&s, "|", 1);
    sw_blake2b_update(&s, parts[3]->p, (size_t)parts[3]->n);
    sw_blake2b_update(&s, "|", 1);
    sw_blake2b_update(&s, m->raw.p, (size_t)m->raw.n);
    unsigned char out[8];
    sw_blake2b_final(&s, out);
    uint64_t h = load64(out) & 0x7FFFFFFFFFFFFFFFULL;
    return h ? (long long)h : 1;
}

/* ---------------------------------------------------------------- test hooks */
static PyObject *py_blake2b(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer data;
    int outlen = 64;
    if (!PyArg_ParseTuple(args, "y*|i", &data, &outlen))
        return NULL;
    if (outlen < 1 || outlen > 64) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "outlen must be 1..64");
        return NULL;
    }
    sw_blake2b s;
    unsigned char out[64];
    sw_blake2b_init(&s, (size_t)outlen);
    sw_blake2b_update(&s, data.buf, (size_t)data.len);
    sw_blake2b_final(&s, out);
    PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)out, outlen);
}

static PyObject *py_record_id(PyObject *self, PyObject *args)
{
    (void)self;
    sw_msg m;
    memset(&m, 0, sizeof(m));
    const char *t, *src, *dst, *sensor, *raw;
    Py_ssize_t tn, sn, dn, sen, rn;
    if (!PyArg_ParseTuple(args, "ds#s#is#is#y#", &m.ts, &t, &tn, &src, &sn, &m.sport, &dst, &dn,
                          &m.dport, &sensor, &sen, &raw, &rn))
        return NULL;
    m.transport = (sw_str){t, tn};
    m.src = (sw_str){src, sn};
    m.dst = (sw_str){dst, dn};
    m.sensor = (sw_str){sensor, sen};
    m.raw = (sw_str){raw, rn};
    return PyLong_FromLongLong(sw_record_id(&m));
}

static PyMethodDef methods[] = {
    {"blake2b", py_blake2b, METH_VARARGS, "blake2b(data, outlen=64) -> digest (test hook)"},
    {"record_id", py_record_id, METH_VARARGS,
     "record_id(ts, transport, src, sport, dst, dport, sensor, raw) -> Record.id (test hook)"},
    {NULL, NULL, 0, NULL},
};

int sw_init_blake2b(PyObject *m)
{
    const uint16_t one = 1;
    if (*(const unsigned char *)&one != 1) {
        PyErr_SetString(PyExc_ImportError, "sipwatch._native needs a little-endian host");
        return -1;
    }
    return PyModule_AddFunctions(m, methods);
}
