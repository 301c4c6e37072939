/* tokens.h - the evo token file (evo-tokens(5)): written by evo-tokenize,
 * read by evo-pack.
 *
 * An evo binfmt container (binfmt.h) with magic "EVOTOKS\0", version 1:
 *   meta (128 bytes)
 *     u32 vocab_size       every token id is < vocab_size
 *     u32 token_width      bytes per token id: 2 (vocab <= 65536) or 4
 *     i32 bos_id, eos_id   the tokenizer's BOS/EOS, -1 if none
 *     u32 flags            EVO_TOK_HAS_MASK, EVO_TOK_ADDED_BOS, EVO_TOK_ADDED_EOS
 *     u16 shard, shards    part shard of shards (evo-tokenize --shard); 0, 0: all of the input
 *     u64 n_docs, n_tokens
 *     u8  fingerprint[16]  XXH3-128 of the tokenizer file
 *     char tokenizer_kind[32], tokenizer_name[40]  NUL-padded, for humans
 *   sections
 *     1 TOKENS   n_tokens ids, little-endian, token_width bytes each
 *     2 OFFSETS  n_docs + 1 u64: document d is tokens [off[d], off[d+1])
 *     3 MASK     (only with EVO_TOK_HAS_MASK) ceil(n_tokens / 8) bytes; bit
 *                i (LSB first) = 1 when token i is a loss target (SFT
 *                answers); 0 = context only, never a label. */
#ifndef EVO_TOKENS_H
#define EVO_TOKENS_H

#include <stdint.h>

#include "base/buf.h"
#include "formats/binfmt.h"

#define EVO_TOKENS_MAGIC "EVOTOKS"
#define EVO_TOKENS_VERSION 1
#define EVO_TOKENS_META_SIZE 128

enum { EVO_TOK_SEC_TOKENS = 1, EVO_TOK_SEC_OFFSETS = 2, EVO_TOK_SEC_MASK = 3 };
enum { EVO_TOK_HAS_MASK = 1, EVO_TOK_ADDED_BOS = 2, EVO_TOK_ADDED_EOS = 4 };

typedef struct {
    uint32_t vocab_size, token_width;
    int32_t bos_id, eos_id;
    uint32_t flags;
    uint16_t shard, shards;
    uint64_t n_docs, n_tokens;
    uint8_t fingerprint[16];
    char tokenizer_kind[32], tokenizer_name[40];
} evo_tokens_meta;

/* --- reading ------------------------------------------------------------ */

typedef struct {
    evo_binfile file;
    evo_tokens_meta meta;
    const uint8_t *tokens;    /* n_tokens * token_width bytes */
    const uint8_t *offsets;   /* (n_docs + 1) little-endian u64 */
    const uint8_t *mask;      /* NULL without EVO_TOK_HAS_MASK */
} evo_tokens_reader;

/* Opens and fully validates a token file: container, checksums, offsets
 * monotonic from 0 to n_tokens, every id < vocab_size. With
 * EVO_TOKENS_DEFER_VERIFY the tokens and mask sections (the bulk) are left
 * for evo_tokens_verify, so a caller that needs only the offsets first can
 * verify the rest on another thread meanwhile. */
enum { EVO_TOKENS_DEFER_VERIFY = 0x100 };
int evo_tokens_open(evo_tokens_reader *r, const char *path, unsigned flags, evo_err *e);
/* The same over a token file held in memory the caller keeps alive (one
 * embedded in a pack); flags may add EVO_FILE_BACKED (binfmt.h). */
int evo_tokens_open_mem(evo_tokens_reader *r, const char *name, const uint8_t *data, uint64_t size, unsigned flags,
                        evo_err *e);
/* Checksums of the tokens and mask, and every id < vocab_size, in one pass. */
int evo_tokens_verify(const evo_tokens_reader *r, evo_err *e);
void evo_tokens_close(evo_tokens_reader *r);

static inline uint32_t evo_tokens_id(const evo_tokens_reader *r, uint64_t i)
{
    return r->meta.token_width == 2 ? (uint32_t)r->tokens[2 * i] | (uint32_t)r->tokens[2 * i + 1] << 8
                                    : evo_le32(r->tokens + 4 * i);
}
static inline uint64_t evo_tokens_doc_start(const evo_tokens_reader *r, uint64_t d)
{
    return evo_le64(r->offsets + 8 * d);
}
static inline int evo_tokens_is_target(const evo_tokens_reader *r, uint64_t i)
{
    return !r->mask || (r->mask[i >> 3] >> (i & 7) & 1);
}

/* --- writing ------------------------------------------------------------ */

typedef struct {
    evo_binwriter w;
    evo_tokens_meta meta;
    evo_buf offsets; /* u64 per document, kept until the end (8 bytes/doc) */
    evo_buf mask;    /* 1 bit per token when meta.flags has EVO_TOK_HAS_MASK */
    uint8_t *staging;
    size_t staging_cap;
} evo_tokens_writer;

/* meta gives vocab_size, bos/eos, flags, fingerprint and names; widths and
 * counts are filled in by the writer. */
int evo_tokens_create(evo_tokens_writer *tw, const char *path, const evo_tokens_meta *meta, evo_err *e);
/* Appends one document. mask (NULL = all targets) has one byte per token,
 * nonzero = loss target; ignored unless the file has EVO_TOK_HAS_MASK. */
int evo_tokens_append(evo_tokens_writer *tw, const int32_t *ids, const uint8_t *mask, size_t n, evo_err *e);
/* Continues the document begun by the last append (a long document written
 * in chunks). */
int evo_tokens_extend(evo_tokens_writer *tw, const int32_t *ids, const uint8_t *mask, size_t n, evo_err *e);
int evo_tokens_finish(evo_tokens_writer *tw, evo_err *e);
void evo_tokens_abort(evo_tokens_writer *tw);

#endif
