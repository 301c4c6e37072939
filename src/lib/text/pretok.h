/* pretok.h - pattern splitting for HF tokenizer.json pre-tokenizers.
 *
 * HF's Split pre-tokenizer, its ByteLevel regex, Metaspace and the Replace
 * normalizer all cut a string at the matches of a pattern: a literal string
 * or an Oniguruma regex. We run the regexes with PCRE2 (JIT, UTF + UCP, so
 * \p{L}, \p{N}, \s mean the Unicode properties, as in Oniguruma) after
 * translating the one construct whose meaning differs (see pretok.c). The
 * split behaviours reproduce tokenizers' NormalizedString::split. */
#ifndef EVO_PRETOK_H
#define EVO_PRETOK_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct evo_pattern evo_pattern;

/* An Oniguruma regex as written in tokenizer.json. */
evo_pattern *evo_pattern_regex(const char *onig, size_t len, evo_err *e);
/* A literal string (len >= 1). */
evo_pattern *evo_pattern_literal(const char *s, size_t len);
void evo_pattern_free(evo_pattern *p);

/* Per-thread matching memory (PCRE2 match data); zero-initialize. */
typedef struct {
    void *md;
} evo_pattern_scratch;
void evo_pattern_scratch_free(evo_pattern_scratch *s);

/* Finds the leftmost match in text[from..n) (text is valid UTF-8, from on a
 * character boundary). Returns 1 with [*start, *end), 0 if none, -1 with e
 * set if the regex engine gave up. */
int evo_pattern_find(const evo_pattern *p, evo_pattern_scratch *s, const char *text, size_t n, size_t from,
                     size_t *start, size_t *end, evo_err *e);

/* A piece of text: offset and length in bytes. */
typedef struct {
    uint32_t off, len;
} evo_span;

typedef struct {
    evo_span *data;
    size_t len, cap;
} evo_spans;

static inline void evo_spans_push(evo_spans *v, uint32_t off, uint32_t len)
{
    if (v->len == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 64;
        v->data = evo_realloc(v->data, v->cap * sizeof *v->data);
    }
    v->data[v->len++] = (evo_span){off, len};
}

/* tokenizers' SplitDelimiterBehavior, for "the-final--countdown" split on
 * "-": Removed [the, final, countdown], Isolated [the, -, final, -, -,
 * countdown], MergedWithPrevious [the-, final-, -, countdown],
 * MergedWithNext [the, -final, -, -countdown], Contiguous [the, -, final,
 * --, countdown]. */
enum evo_split_behavior {
    EVO_SPLIT_REMOVED,
    EVO_SPLIT_ISOLATED,
    EVO_SPLIT_MERGED_WITH_PREVIOUS,
    EVO_SPLIT_MERGED_WITH_NEXT,
    EVO_SPLIT_CONTIGUOUS,
};

/* Splits text[0..n) at the matches of p (the non-matches when invert) and
 * appends the non-empty pieces, offsets shifted by base, to out. tmp is
 * caller scratch. Returns 0, or -1 with e set. */
int evo_pattern_split(const evo_pattern *p, evo_pattern_scratch *s, const char *text, size_t n, uint32_t base,
                      enum evo_split_behavior behavior, int invert, evo_spans *tmp, evo_spans *out, evo_err *e);

#endif
