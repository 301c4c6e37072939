/* input.h - evo-tokenize's input side: files, stdin, compressed streams and
 * archive members (all through libarchive, detected from content), split
 * into documents by the chosen format and appended to a batch. */
#ifndef EVO_TOKENIZE_INPUT_H
#define EVO_TOKENIZE_INPUT_H

#include <stdint.h>

#include "base/error.h"
#include "batch.h"
#include "text/tokenizer.h"

typedef enum {
    FORMAT_AUTO,  /* jsonl for *.jsonl (after any compression suffix), else text */
    FORMAT_TEXT,  /* one document per line */
    FORMAT_DOC,   /* one document per file or archive member */
    FORMAT_JSONL, /* one JSON object per line, text in --field */
    FORMAT_CHAT,  /* one JSON object per line with "messages": SFT with a loss mask */
    FORMAT_IDS    /* one document per line of decimal ids; -t = context-only token t */
} input_format;

typedef struct {
    input_format format;
    const char *field;           /* dotted path into each JSONL object */
    int skip_bad;                /* count malformed lines instead of failing */
    const evo_tokenizer *tok;    /* where long documents may be cut */
    uint32_t shard, shards;      /* --shard: this part of so many (shards 0: all of the input) */
} input_options;

typedef struct reader reader;

/* A reader of the inputs, or NULL with e set: with opt->shards, only the
 * documents of part shard (every input must then be a file, whose sizes
 * cut the parts: see input.c). */
reader *reader_new(char **paths, int n_paths, const input_options *opt, evo_err *e);
void reader_free(reader *r);

/* Appends entries to b until it is full or the input ends. Returns 1 while
 * input remains, 0 at the end, -1 on error (e names file and line). */
int reader_fill(reader *r, batch *b, evo_err *e);

/* Parses one line of -f ids: appends the ids and a target byte per id
 * (0 for a negative id, i.e. context only). Returns -1 with the reason in
 * e (no location) on a malformed number or an id >= vocab_size. */
int parse_id_line(const char *s, size_t n, uint32_t vocab_size, evo_ids *ids, evo_buf *target, evo_err *e);

uint64_t reader_bytes_read(const reader *r);  /* input bytes consumed (compressed) */
uint64_t reader_bytes_total(const reader *r); /* sum of input file sizes, 0 if unknown */
uint64_t reader_bad_lines(const reader *r);   /* skipped with --skip-bad */

#endif
