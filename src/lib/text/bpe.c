#include "text/bpe.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* Open-addressing hash table keyed by the (left, right) id pair. */
typedef struct {
    uint64_t key; /* (left << 32 | right) + 1; 0 marks an empty slot */
    int32_t merged, rank;
} rule_slot;

struct evo_bpe {
    rule_slot *slots;
    size_t cap, count; /* cap is a power of two */
    int32_t max_rank;
    /* Pairs of leaves that rules may join (see cutting, below), NULL: any
     * pair may be; flags of the ids below nid (those rules name). */
    evo_bpe *glue;
    uint8_t *flags;
    int32_t nid;
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
        evo_bpe_free(b->glue);
        free(b->flags);
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
    if (rank > b->max_rank)
        b->max_rank = rank;
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

/* ------------------------------------------------------------- cutting --
 *
 * A merge joins two symbols into one that spans the boundary between
 * them. Call the symbols evo_bpe_merge starts from leaves: a symbol
 * spanning the boundary between leaves a and b was made, first, by a rule
 * (L, R) whose L ends with leaf a and whose R begins with leaf b. Where no
 * rule can, nothing ever spans that boundary: the two sides never share a
 * pair, each merge changes pairs on its own side only, and each side ends
 * up exactly as it would merged alone. evo_bpe_merge cuts long runs there,
 * so that every piece of work stays in the cache.
 *
 * Which leaf a rule's L can end with: last[L], the join over all rules
 * (X, Y) -> L of last[Y] (the same for first, on the left), where an id no
 * rule makes is its own first and last, and the join of two different
 * leaves is END_MANY. By induction along L's right edge, last[L] is then
 * a or END_MANY whenever L ends with leaf a, provided the leaf a is not an
 * id some rule makes; a boundary next to such a leaf is never cut, and
 * any END_MANY (or an id left without a value) turns cutting off. */

enum { END_NONE = -1, END_MANY = -2 };
enum { GLUE_RIGHT = 1, MADE_BY_RULE = 2 }; /* evo_bpe.flags */

static int32_t join_end(int32_t cur, int32_t v)
{
    return v == END_NONE || cur == v ? cur : cur == END_NONE ? v : END_MANY;
}

/* The rule in slot i, 0 if the slot is empty. */
static int slot_rule(const evo_bpe *b, size_t i, int32_t *l, int32_t *r, int32_t *m)
{
    uint64_t k = b->slots[i].key - 1;
    *l = (int32_t)(k >> 32);
    *r = (int32_t)(uint32_t)k;
    *m = b->slots[i].merged;
    return b->slots[i].key != 0;
}

/* first/last of every id below nid, to the fixed point (values only rise,
 * through three levels); 0 if one is END_MANY or never gets a value. */
static int leaf_ends(const evo_bpe *b, int32_t nid, int32_t *first, int32_t *last)
{
    int32_t l, r, m;
    for (int32_t t = 0; t < nid; t++)
        first[t] = last[t] = t;
    for (size_t i = 0; i < b->cap; i++)
        if (slot_rule(b, i, &l, &r, &m))
            first[m] = last[m] = END_NONE;
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < b->cap; i++) {
            if (!slot_rule(b, i, &l, &r, &m))
                continue;
            int32_t f = join_end(first[m], first[l]), e = join_end(last[m], last[r]);
            changed |= f != first[m] || e != last[m];
            first[m] = f;
            last[m] = e;
        }
    }
    for (int32_t t = 0; t < nid; t++)
        if (first[t] < 0 || last[t] < 0)
            return 0;
    return 1;
}

void evo_bpe_finish(evo_bpe *b)
{
    int32_t l, r, m, nid = 0;
    for (size_t i = 0; i < b->cap; i++)
        if (slot_rule(b, i, &l, &r, &m)) {
            int32_t top = l > r ? l : r;
            top = top > m ? top : m;
            nid = top >= nid ? top + 1 : nid;
        }
    int32_t *first = evo_malloc(((size_t)nid + 1) * sizeof *first);
    int32_t *last = evo_malloc(((size_t)nid + 1) * sizeof *last);
    if (leaf_ends(b, nid, first, last)) {
        b->glue = evo_bpe_new(b->count);
        b->flags = evo_calloc((size_t)nid + 1, 1);
        b->nid = nid;
        for (size_t i = 0; i < b->cap; i++)
            if (slot_rule(b, i, &l, &r, &m)) {
                evo_bpe_add(b->glue, last[l], first[r], 0, 0);
                b->flags[first[r]] |= GLUE_RIGHT;
                b->flags[m] |= MADE_BY_RULE;
            }
    }
    free(first);
    free(last);
}

/* Whether the boundary between leaves x and y may not be cut. */
static inline int glued(const evo_bpe *b, int32_t x, int32_t y)
{
    int32_t m, r;
    if (!b->glue)
        return 1;
    if (x < 0 || y < 0 || y >= b->nid)
        return 0; /* an unknown symbol never merges; nor does an id no rule names */
    if ((x < b->nid && (b->flags[x] & MADE_BY_RULE)) || (b->flags[y] & MADE_BY_RULE))
        return 1;
    return (b->flags[y] & GLUE_RIGHT) && evo_bpe_lookup(b->glue, x, y, &m, &r);
}

/* ------------------------------------------------------------ merging --
 *
 * Both references merge, at every step, the adjacent pair whose rule has
 * the lowest rank, the leftmost one on ties, skipping queued pairs that
 * have changed since (SentencePiece notices by the symbols' sizes, HF by
 * the merged id; a changed pair always covers more text). So each step
 * merges the current pair with the smallest key (rank, left position);
 * current pairs have distinct keys, as one pair starts at each symbol.
 *
 * The engine does the same with a priority queue on that key. sym[i].rank
 * is always the rank of the pair now starting at symbol i (-1: no rule, or
 * i is merged away): a merge changes exactly two pairs, the merged
 * symbol's and its left neighbour's, and both are recomputed and queued.
 * The queue thus holds the key of every current pair, and an entry
 * (rank, pos) is current exactly when sym[pos].rank == rank; popping the
 * smallest entries and skipping those that are not current yields the
 * smallest current key, whatever stale entries the queue also holds. Any
 * exact priority queue will do, and two are used (below). */

/* A symbol of the word being merged and the pair it starts. */
struct evo_bpe_sym {
    int32_t prev, next;
    int32_t rank, merged; /* the rule for (this symbol, next), rank -1 if none */
};

/* A queued pair: the one starting at symbol pos, with its rank then. */
struct evo_bpe_cand {
    int32_t rank;
    uint32_t pos;
};

/* The queued positions of one rank: appended at len, taken at head. */
struct evo_bpe_bucket {
    uint32_t *pos;
    uint32_t len, cap, head;
    uint8_t unsorted; /* an append went below the last position */
    uint8_t active;   /* taken from since it was last empty, so kept sorted */
};

void evo_bpe_scratch_free(evo_bpe_scratch *s)
{
    free(s->sym);
    free(s->heap.c);
    free(s->ranks.c);
    for (size_t r = 0; r < s->nbuckets; r++)
        free(s->bucket[r].pos);
    free(s->bucket);
    *s = (evo_bpe_scratch){0};
}

static inline int cand_before(struct evo_bpe_cand a, struct evo_bpe_cand b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(evo_bpe_heap *h, struct evo_bpe_cand c)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->c = evo_realloc(h->c, h->cap * sizeof *h->c);
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(c, h->c[p]))
            break;
        h->c[i] = h->c[p];
        i = p;
    }
    h->c[i] = c;
}

static struct evo_bpe_cand heap_pop(evo_bpe_heap *h)
{
    struct evo_bpe_cand top = h->c[0], last = h->c[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && cand_before(h->c[c + 1], h->c[c]))
            c++;
        if (!cand_before(h->c[c], last))
            break;
        h->c[i] = h->c[c];
        i = c;
    }
    if (h->n)
        h->c[i] = last;
    return top;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x > y ? 1 : -(x < y);
}

/* The bucket queue: a bucket per rank and a heap of the ranks whose bucket
 * is non-empty (entries with pos 0), so its smallest entry is the smallest
 * rank's smallest position. A bucket is sorted when first taken from (it
 * mostly is already: a word's initial pairs, and the pairs that a pass
 * over one rank creates, are queued left to right); from then until it is
 * empty, an append that would break the order goes to the binary heap
 * instead, and a pop takes the smaller of the two queues' tops. */
static void pq_push(evo_bpe_scratch *s, int32_t rank, uint32_t pos)
{
    struct evo_bpe_bucket *b = &s->bucket[rank];
    if (b->len == 0) {
        heap_push(&s->ranks, (struct evo_bpe_cand){rank, 0});
    } else if (pos < b->pos[b->len - 1]) {
        if (b->active) {
            heap_push(&s->heap, (struct evo_bpe_cand){rank, pos});
            return;
        }
        b->unsorted = 1;
    }
    if (b->len == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 16;
        b->pos = evo_realloc(b->pos, b->cap * sizeof *b->pos);
    }
    b->pos[b->len++] = pos;
}

static int pq_pop(evo_bpe_scratch *s, struct evo_bpe_cand *out)
{
    struct evo_bpe_bucket *b = NULL;
    struct evo_bpe_cand top = {0, 0};
    if (s->ranks.n) {
        top.rank = s->ranks.c[0].rank;
        b = &s->bucket[top.rank];
        if (!b->active) {
            if (b->unsorted)
                qsort(b->pos, b->len, sizeof *b->pos, cmp_u32);
            b->unsorted = 0;
            b->active = 1;
        }
        top.pos = b->pos[b->head];
    }
    if (s->heap.n && (!b || cand_before(s->heap.c[0], top))) {
        *out = heap_pop(&s->heap);
        return 1;
    }
    if (!b)
        return 0;
    if (++b->head == b->len) {
        b->len = b->head = 0;
        b->active = 0;
        heap_pop(&s->ranks);
    }
    *out = top;
    return 1;
}

/* Buckets for every rank of b's rules, the new ones empty. */
static void reserve_buckets(const evo_bpe *b, evo_bpe_scratch *s)
{
    size_t need = (size_t)b->max_rank + 1;
    if (s->nbuckets >= need)
        return;
    s->bucket = evo_realloc(s->bucket, need * sizeof *s->bucket);
    memset(s->bucket + s->nbuckets, 0, (need - s->nbuckets) * sizeof *s->bucket);
    s->nbuckets = need;
}

/* Looks up the pair starting at the live symbol l and queues it. */
static inline void set_pair(const evo_bpe *b, evo_bpe_scratch *s, const int32_t *ids, int32_t l)
{
    struct evo_bpe_sym *y = &s->sym[l];
    int32_t r = y->next;
    if (r >= 0 && ids[l] >= 0 && ids[r] >= 0 && evo_bpe_lookup(b, ids[l], ids[r], &y->merged, &y->rank))
        pq_push(s, y->rank, (uint32_t)l);
    else
        y->rank = -1;
}

/* Merges one run of symbols; the result is compacted to its front. */
static size_t merge_run(const evo_bpe *b, evo_bpe_scratch *s, int32_t *ids, uint32_t *starts, size_t n)
{
    if (n < 2)
        return n;
    if (n > s->cap) {
        s->cap = n;
        s->sym = evo_realloc(s->sym, n * sizeof *s->sym);
    }
    reserve_buckets(b, s);
    for (size_t i = 0; i < n; i++) {
        s->sym[i].prev = (int32_t)i - 1;
        s->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i < n; i++)
        set_pair(b, s, ids, (int32_t)i);

    struct evo_bpe_cand c;
    while (pq_pop(s, &c)) {
        struct evo_bpe_sym *y = &s->sym[c.pos];
        if (y->rank != c.rank)
            continue; /* not current: the pair changed since it was queued */
        struct evo_bpe_sym *right = &s->sym[y->next];
        ids[c.pos] = y->merged;
        right->rank = -1; /* merged away: its queued pair is gone */
        y->next = right->next;
        if (y->next >= 0)
            s->sym[y->next].prev = (int32_t)c.pos;
        if (y->prev >= 0)
            set_pair(b, s, ids, y->prev);
        set_pair(b, s, ids, (int32_t)c.pos);
    }

    /* Compact the surviving symbols (the list is still in text order). */
    size_t out = 0;
    for (int32_t i = 0; i >= 0; i = s->sym[i].next) {
        ids[out] = ids[i];
        if (starts)
            starts[out] = starts[i];
        out++;
    }
    return out;
}

/* Runs are cut at the first boundary no rule crosses (see cutting, above)
 * once they are this many symbols long: short enough to stay in the L2
 * cache, long enough that ordinary lines stay whole (a run queues each of
 * its ranks afresh, so short runs cost more). */
#define RUN_MIN 4096

size_t evo_bpe_merge(const evo_bpe *b, evo_bpe_scratch *s, int32_t *ids, uint32_t *starts, size_t n)
{
    size_t out = 0, from = 0;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && (i - from < RUN_MIN || glued(b, ids[i - 1], ids[i])))
            continue;
        size_t m = merge_run(b, s, ids + from, starts ? starts + from : NULL, i - from);
        memmove(ids + out, ids + from, m * sizeof *ids);
        if (starts)
            memmove(starts + out, starts + from, m * sizeof *starts);
        out += m;
        from = i;
    }
    if (starts)
        starts[out] = starts[n];
    return out;
}
