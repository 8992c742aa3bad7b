/* sw_lru: a hash table of byte-string keys that remembers use order, like an OrderedDict
 * used as an LRU (move_to_end on a hit, popitem(last=False) when over the bound).
 *
 * Intrusive: an entry embeds an sw_lru_node (first member or anywhere; container_of style)
 * and owns its key bytes. The table never allocates or frees entries; it only links them.
 * Keys are hashed with SipHash-1-3 under a per-process random key, so attacker-chosen keys
 * cannot be made to collide on purpose. The slot array grows with the entry count (load
 * factor at most 1/2) and is bounded by the caller's bound on the entries.
 */
#ifndef SIPWATCH_NATIVE_LRU_H
#define SIPWATCH_NATIVE_LRU_H

#include <stddef.h>
#include <stdint.h>

typedef struct sw_lru_node {
    struct sw_lru_node *older, *newer; /* use order: the table's oldest has older == NULL */
    uint64_t hash;
    const char *key; /* owned by the entry */
    size_t klen;
} sw_lru_node;

/* open addressing, linear probing; the hash is in the slot so probing and growing do not
 * touch the entries */
typedef struct {
    uint64_t hash;
    sw_lru_node *node; /* NULL: empty */
} sw_lru_slot;

typedef struct {
    sw_lru_slot *slots;
    size_t cap; /* a power of two, or 0 before the first insert; at least twice count */
    size_t count;
    sw_lru_node *oldest, *newest;
} sw_lru;

/* SipHash-1-3 of the bytes under the process key (set once by sw_lru_seed). */
uint64_t sw_lru_hash(const void *data, size_t n);

/* Set the process key (16 random bytes) before any table is used; later calls are ignored. */
void sw_lru_seed(const unsigned char key[16]);

void sw_lru_init(sw_lru *t);

/* Make room for n entries without growing (a hint: 0, or -1 when out of memory). */
int sw_lru_reserve(sw_lru *t, size_t n);

/* The node with this key, or NULL. Does not change the use order. */
sw_lru_node *sw_lru_find(const sw_lru *t, uint64_t hash, const char *key, size_t klen);

/* Make node the newest (OrderedDict.move_to_end). */
void sw_lru_touch(sw_lru *t, sw_lru_node *node);

/* Link a node whose hash/key/klen are set, as the newest; its key must not be in the table.
 * 0, or -1 when the slot array could not grow (out of memory; the node is not linked). */
int sw_lru_insert(sw_lru *t, sw_lru_node *node);

/* Unlink and return the oldest node (popitem(last=False)), or NULL when empty. */
sw_lru_node *sw_lru_pop_oldest(sw_lru *t);

/* Unlink a node of the table (del d[key]); the caller frees it. */
void sw_lru_remove(sw_lru *t, sw_lru_node *node);

/* Unlink every node, calling free_node on each (oldest first); keeps the slot array. */
void sw_lru_clear(sw_lru *t, void (*free_node)(sw_lru_node *, void *), void *arg);

/* sw_lru_clear, then release the slot array. */
void sw_lru_free(sw_lru *t, void (*free_node)(sw_lru_node *, void *), void *arg);

#endif
