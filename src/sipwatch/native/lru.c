/* sw_lru: hash table + use order (see lru.h). */
#include "lru.h"

#include <stdlib.h>
#include <string.h>

/* ---- SipHash-1-3 (Aumasson & Bernstein), 64-bit output ------------------------------- */
static uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                               \
    do {                                                                                       \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                              \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                 \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                 \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                              \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

uint64_t sw_lru_hash(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t whole = n & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    switch (n & 7) {
    case 7: b |= (uint64_t)p[whole + 6] << 48; /* fall through */
    case 6: b |= (uint64_t)p[whole + 5] << 40; /* fall through */
    case 5: b |= (uint64_t)p[whole + 4] << 32; /* fall through */
    case 4: b |= (uint64_t)p[whole + 3] << 24; /* fall through */
    case 3: b |= (uint64_t)p[whole + 2] << 16; /* fall through */
    case 2: b |= (uint64_t)p[whole + 1] << 8;  /* fall through */
    case 1: b |= (uint64_t)p[whole];           /* fall through */
    default: break;
    }
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void sw_lru_seed(const unsigned char key[16])
{
    static int seeded;
    if (seeded)
        return; /* tables may already hold hashes under the first key */
    seeded = 1;
    k0 = load_le64(key);
    k1 = load_le64(key + 8);
}

/* ---- table ----------------------------------------------------------------------------- */
void sw_lru_init(sw_lru *t)
{
    memset(t, 0, sizeof(*t));
}

sw_lru_node *sw_lru_find(const sw_lru *t, uint64_t hash, const char *key, size_t klen)
{
    if (t->cap == 0)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const sw_lru_slot *s = &t->slots[i];
        if (s->node == NULL)
            return NULL;
        if (s->hash == hash && s->node->klen == klen && memcmp(s->node->key, key, klen) == 0)
            return s->node;
    }
}

static void unlink_order(sw_lru *t, sw_lru_node *n)
{
    if (n->older)
        n->older->newer = n->newer;
    else
        t->oldest = n->newer;
    if (n->newer)
        n->newer->older = n->older;
    else
        t->newest = n->older;
    n->older = n->newer = NULL;
}

static void append_order(sw_lru *t, sw_lru_node *n)
{
    n->older = t->newest;
    n->newer = NULL;
    if (t->newest)
        t->newest->newer = n;
    else
        t->oldest = n;
    t->newest = n;
}

void sw_lru_touch(sw_lru *t, sw_lru_node *node)
{
    if (t->newest == node)
        return;
    unlink_order(t, node);
    append_order(t, node);
}

static void place(sw_lru_slot *slots, size_t mask, uint64_t hash, sw_lru_node *node)
{
    size_t i = hash & mask;
    while (slots[i].node != NULL)
        i = (i + 1) & mask;
    slots[i].hash = hash;
    slots[i].node = node;
}

static int resize(sw_lru *t, size_t cap)
{
    if (cap > SIZE_MAX / 2 / sizeof(sw_lru_slot))
        return -1;
    sw_lru_slot *s = calloc(cap, sizeof(*s));
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].node != NULL)
            place(s, cap - 1, t->slots[i].hash, t->slots[i].node);
    }
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

static int grow(sw_lru *t)
{
    return resize(t, t->cap ? t->cap * 2 : 16);
}

int sw_lru_reserve(sw_lru *t, size_t n)
{
    size_t cap = t->cap ? t->cap : 16;
    while (cap / 2 < n) {
        if (cap > SIZE_MAX / 4)
            return -1;
        cap *= 2;
    }
    return cap == t->cap ? 0 : resize(t, cap);
}

int sw_lru_insert(sw_lru *t, sw_lru_node *node)
{
    if ((t->count + 1) * 2 > t->cap && grow(t) < 0)
        return -1;
    place(t->slots, t->cap - 1, node->hash, node);
    append_order(t, node);
    t->count++;
    return 0;
}

/* Empty the node's slot; move later slots of its probe run back (no tombstones). */
static void unslot(sw_lru *t, sw_lru_node *node)
{
    size_t mask = t->cap - 1, i = node->hash & mask;
    while (t->slots[i].node != node)
        i = (i + 1) & mask;
    for (size_t j = (i + 1) & mask; t->slots[j].node != NULL; j = (j + 1) & mask) {
        size_t home = t->slots[j].hash & mask;
        /* slot j may move to the hole i unless its home lies cyclically in (i, j] */
        int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].node = NULL;
    t->slots[i].hash = 0;
}

sw_lru_node *sw_lru_pop_oldest(sw_lru *t)
{
    sw_lru_node *n = t->oldest;
    if (n == NULL)
        return NULL;
    unslot(t, n);
    unlink_order(t, n);
    t->count--;
    return n;
}

void sw_lru_remove(sw_lru *t, sw_lru_node *node)
{
    unslot(t, node);
    unlink_order(t, node);
    t->count--;
}

void sw_lru_clear(sw_lru *t, void (*free_node)(sw_lru_node *, void *), void *arg)
{
    sw_lru_node *n = t->oldest;
    t->oldest = t->newest = NULL;
    t->count = 0;
    if (t->cap)
        memset(t->slots, 0, t->cap * sizeof(*t->slots));
    while (n != NULL) {
        sw_lru_node *next = n->newer;
        n->older = n->newer = NULL;
        if (free_node)
            free_node(n, arg);
        n = next;
    }
}

void sw_lru_free(sw_lru *t, void (*free_node)(sw_lru_node *, void *), void *arg)
{
    sw_lru_clear(t, free_node, arg);
    free(t->slots);
    t->slots = NULL;
    t->cap = 0;
}
