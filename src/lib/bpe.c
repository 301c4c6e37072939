#include "bpe.h"

#include <stdlib.h>

#include "error.h"

/* Open-addressing hash table keyed by the (left, right) id pair. */
typedef struct {
    uint64_t key; /* (left << 32 | right) + 1; 0 marks an empty slot */
    int32_t merged, rank;
} rule_slot;

struct evo_bpe {
    rule_slot *slots;
    size_t cap, count; /* cap is a power of two */
};

/* A candidate merge of the symbol at index left with its right neighbour.
 * Stale candidates are detected on pop by re-checking the neighbours' ids. */
struct evo_bpe_cand {
    int32_t rank;
    uint32_t left, right;
    int32_t left_id, right_id;
};

static inline uint64_t pair_key(int32_t l, int32_t r)
{
    return (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
}

static inline size_t slot_of(uint64_t key, size_t cap)
{
    key ^= key >> 33; /* murmur3 finalizer: spreads clustered ids */
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    key *= 0xc4ceb9fe1a85ec53ULL;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

evo_bpe *evo_bpe_new(size_t expected_rules)
{
    evo_bpe *b = evo_calloc(1, sizeof *b);
    b->cap = 1024;
    while (b->cap < 2 * expected_rules && b->cap < ((size_t)1 << 40))
        b->cap *= 2;
    b->slots = evo_calloc(b->cap, sizeof *b->slots);
    return b;
}

void evo_bpe_free(evo_bpe *b)
{
    if (b) {
        free(b->slots);
        free(b);
    }
}

static void grow(evo_bpe *b)
{
    rule_slot *old = b->slots;
    size_t oldcap = b->cap;
    b->cap *= 2;
    b->slots = evo_calloc(b->cap, sizeof *b->slots);
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].key)
            continue;
        size_t j = slot_of(old[i].key, b->cap);
        while (b->slots[j].key)
            j = (j + 1) & (b->cap - 1);
        b->slots[j] = old[i];
    }
    free(old);
}

void evo_bpe_add(evo_bpe *b, int32_t left, int32_t right, int32_t merged, int32_t rank)
{
    if ((b->count + 1) * 2 > b->cap)
        grow(b);
    uint64_t key = pair_key(left, right);
    size_t j = slot_of(key, b->cap);
    while (b->slots[j].key && b->slots[j].key != key)
        j = (j + 1) & (b->cap - 1);
    if (b->slots[j].key) {
        if (rank < b->slots[j].rank) {
            b->slots[j].rank = rank;
            b->slots[j].merged = merged;
        }
        return;
    }
    b->slots[j] = (rule_slot){key, merged, rank};
    b->count++;
}

int evo_bpe_lookup(const evo_bpe *b, int32_t left, int32_t right, int32_t *merged, int32_t *rank)
{
    uint64_t key = pair_key(left, right);
    for (size_t j = slot_of(key, b->cap);; j = (j + 1) & (b->cap - 1)) {
        if (b->slots[j].key == key) {
            *merged = b->slots[j].merged;
            *rank = b->slots[j].rank;
            return 1;
        }
        if (!b->slots[j].key)
            return 0;
    }
}

void evo_bpe_scratch_free(evo_bpe_scratch *s)
{
    free(s->prev);
    free(s->next);
    free(s->heap);
    *s = (evo_bpe_scratch){0};
}

/* Heap order: lower rank first, then the leftmost pair. Symbol indices
 * never reorder (a merge keeps the left index), so index order is text
 * order. */
static inline int cand_before(const struct evo_bpe_cand *a, const struct evo_bpe_cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(evo_bpe_scratch *s, size_t *n, struct evo_bpe_cand c)
{
    if (*n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? 2 * s->heap_cap : 64;
        s->heap = evo_realloc(s->heap, s->heap_cap * sizeof *s->heap);
    }
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(&c, &s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = c;
}

static struct evo_bpe_cand heap_pop(evo_bpe_scratch *s, size_t *n)
{
    struct evo_bpe_cand top = s->heap[0], last = s->heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && cand_before(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!cand_before(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (*n)
        s->heap[i] = last;
    return top;
}

static inline void try_pair(const evo_bpe *b, evo_bpe_scratch *s, size_t *hn, const int32_t *ids,
                            uint32_t l, uint32_t r)
{
    int32_t merged, rank;
    if (ids[l] >= 0 && ids[r] >= 0 && evo_bpe_lookup(b, ids[l], ids[r], &merged, &rank))
        heap_push(s, hn, (struct evo_bpe_cand){rank, l, r, ids[l], ids[r]});
}

size_t evo_bpe_merge(const evo_bpe *b, evo_bpe_scratch *s, int32_t *ids, uint32_t *starts, size_t n)
{
    if (n < 2)
        return n;
    if (n > s->cap) {
        s->cap = n;
        s->prev = evo_realloc(s->prev, n * sizeof *s->prev);
        s->next = evo_realloc(s->next, n * sizeof *s->next);
    }
    for (size_t i = 0; i < n; i++) {
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++)
        try_pair(b, s, &hn, ids, (uint32_t)i, (uint32_t)i + 1);

    while (hn) {
        struct evo_bpe_cand c = heap_pop(s, &hn);
        /* Stale if either side was merged away or changed id since push.
         * A dead right symbol is unlinked, so next[left] != right. */
        if (s->next[c.left] != (int32_t)c.right || ids[c.left] != c.left_id || ids[c.right] != c.right_id)
            continue;
        int32_t merged, rank;
        evo_bpe_lookup(b, c.left_id, c.right_id, &merged, &rank);
        ids[c.left] = merged;
        ids[c.right] = -2; /* dead: never matches a candidate's id */
        int32_t nx = s->next[c.right];
        s->next[c.left] = nx;
        if (nx >= 0)
            s->prev[nx] = (int32_t)c.left;
        s->next[c.right] = -1;
        if (s->prev[c.left] >= 0)
            try_pair(b, s, &hn, ids, (uint32_t)s->prev[c.left], c.left);
        if (nx >= 0)
            try_pair(b, s, &hn, ids, c.left, (uint32_t)nx);
    }

    /* Compact the surviving symbols (the list is still in text order). */
    size_t out = 0;
    for (int32_t i = 0; i >= 0; i = s->next[i]) {
        ids[out] = ids[i];
        starts[out] = starts[i];
        out++;
    }
    starts[out] = starts[n];
    return out;
}
