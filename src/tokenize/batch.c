#include "batch.h"

#include <stdlib.h>

void batch_clear(batch *b)
{
    b->arena.len = 0;
    b->n_segs = 0;
    b->n_entries = 0;
}

void batch_free(batch *b)
{
    for (size_t i = 0; i < b->cap_entries; i++) {
        evo_ids_free(&b->entries[i].ids);
        evo_buf_free(&b->entries[i].target);
        free(b->entries[i].err);
    }
    free(b->entries);
    free(b->segs);
    evo_buf_free(&b->arena);
    *b = (batch){0};
}

void batch_begin_entry(batch *b, unsigned flags)
{
    if (b->n_entries == b->cap_entries) {
        size_t cap = b->cap_entries ? 2 * b->cap_entries : 256;
        b->entries = evo_realloc(b->entries, cap * sizeof *b->entries);
        /* Entries keep their result buffers across batches: zero only new ones. */
        memset(b->entries + b->cap_entries, 0, (cap - b->cap_entries) * sizeof *b->entries);
        b->cap_entries = cap;
    }
    entry *en = &b->entries[b->n_entries++];
    en->first_seg = b->n_segs;
    en->n_segs = 0;
    en->flags = flags;
    free(en->err);
    en->err = NULL;
}

void batch_add_segment(batch *b, const char *text, size_t len, unsigned enc_flags, int target)
{
    b->segs = evo_grow(b->segs, &b->cap_segs, b->n_segs + 1, sizeof *b->segs, 1024);
    b->segs[b->n_segs++] = (segment){b->arena.len, len, enc_flags, (uint8_t)(target != 0)};
    evo_buf_append(&b->arena, text, len);
    b->entries[b->n_entries - 1].n_segs++;
}
