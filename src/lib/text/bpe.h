/* bpe.h - the byte-pair-encoding merge engine shared by every tokenizer.
 *
 * SentencePiece BPE and HF tokenizers' BPE differ in where merge rules come
 * from (piece scores vs. an ordered merges list) but not in how they are
 * applied: repeatedly merge the adjacent pair with the best (lowest) rank,
 * the leftmost one on ties, until no adjacent pair has a rule. Both loaders
 * turn their model into (left id, right id) -> (merged id, rank) rules and
 * call evo_bpe_merge(), which runs in O(n log n) over a doubly linked
 * symbol list with a priority queue of candidate pairs kept in per-rank
 * buckets, and cuts long runs where no rule can ever join the two sides,
 * so a 10 MB line without spaces costs about the same per byte as ordinary
 * text (bpe.c says why both are exact). */
#ifndef EVO_BPE_H
#define EVO_BPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct evo_bpe evo_bpe;

/* expected_rules sizes the table once, so loading a 280k-merge vocabulary
 * does not rehash its way up (0 if unknown). */
evo_bpe *evo_bpe_new(size_t expected_rules);
void evo_bpe_free(evo_bpe *b);

/* Adds the rule left+right -> merged at priority rank (lower merges first).
 * If the pair already has a rule, the one with the lower rank is kept (HF
 * and SentencePiece both let the first/best rule win). */
void evo_bpe_add(evo_bpe *b, int32_t left, int32_t right, int32_t merged, int32_t rank);

/* Call once all rules are added, before merging: finds where long runs
 * of symbols can be cut into independent pieces. */
void evo_bpe_finish(evo_bpe *b);

/* Looks a pair up: returns 1 and fills merged/rank if a rule exists. */
int evo_bpe_lookup(const evo_bpe *b, int32_t left, int32_t right, int32_t *merged, int32_t *rank);

/* Per-thread working memory for evo_bpe_merge (zero-initialize, then reuse). */
typedef struct {
    struct evo_bpe_cand *c;
    size_t n, cap;
} evo_bpe_heap;

typedef struct {
    struct evo_bpe_sym *sym;
    size_t cap;
    evo_bpe_heap heap, ranks;
    struct evo_bpe_bucket *bucket; /* one per rank */
    size_t nbuckets;
} evo_bpe_scratch;

void evo_bpe_scratch_free(evo_bpe_scratch *s);

/* Merges the n symbols ids[0..n) in place. A symbol with id < 0 never
 * merges (an unknown character kept for byte fallback). starts[i] is the
 * byte offset of symbol i in the caller's text and starts[n] its end; both
 * arrays are compacted along with the ids so the caller still knows which
 * bytes every final symbol covers (starts may be NULL if it need not).
 * Returns the new symbol count. */
size_t evo_bpe_merge(const evo_bpe *b, evo_bpe_scratch *s, int32_t *ids, uint32_t *starts, size_t n);

#endif
