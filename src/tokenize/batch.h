/* batch.h - a batch of text read by the reader and encoded by the workers.
 *
 * evo-tokenize reads input into one batch while the workers encode the
 * previous one; results are stored per entry and written in input order,
 * so the output does not depend on the number of threads. An entry is a
 * whole document or one piece of a long document (cut where the tokenizer
 * says cutting is exact); a piece is made of segments, which differ only
 * in being loss targets or not (chat turns). */
#ifndef EVO_TOKENIZE_BATCH_H
#define EVO_TOKENIZE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

typedef struct {
    size_t text_off, len; /* bytes in batch.arena */
    unsigned enc_flags;   /* EVO_ENC_DOC_START / EVO_ENC_DOC_END for the tokenizer */
    uint8_t target;       /* its tokens are loss targets */
} segment;

enum { ENTRY_STARTS_DOC = 1, ENTRY_ENDS_DOC = 2 };

typedef struct {
    size_t first_seg, n_segs;
    unsigned flags;  /* ENTRY_STARTS_DOC: BOS and a new document; ENTRY_ENDS_DOC: EOS */
    evo_ids ids;     /* the result */
    evo_buf target;  /* one byte per id: 1 = loss target */
    evo_err *err;    /* why encoding failed (allocated then), else NULL: entries stay small */
} entry;

typedef struct {
    evo_buf arena;
    segment *segs;
    size_t n_segs, cap_segs;
    entry *entries;
    size_t n_entries, cap_entries;
} batch;

/* A batch is full at this much text: big enough to amortize thread
 * hand-offs, small enough to keep memory flat. */
#define BATCH_TEXT_BYTES (2u << 20)
#define BATCH_MAX_ENTRIES 8192

static inline int batch_full(const batch *b)
{
    return b->arena.len >= BATCH_TEXT_BYTES || b->n_entries >= BATCH_MAX_ENTRIES;
}

void batch_clear(batch *b);
void batch_free(batch *b);
/* Starts a new entry; segments added next belong to it. */
void batch_begin_entry(batch *b, unsigned flags);
void batch_add_segment(batch *b, const char *text, size_t len, unsigned enc_flags, int target);

#endif
