/* tokenizer.h - text <-> token ids, for SentencePiece .model files and
 * HuggingFace tokenizer.json files (BPE), detected from the file's content.
 *
 * A loaded evo_tokenizer is immutable and shared by all threads; each thread
 * encodes through its own evo_encoder, which holds that thread's scratch
 * memory. Encoding never adds BOS/EOS: callers decide (evo-tokenize adds
 * both by default, as InternEvo's tools/tokenizer.py does). */
#ifndef EVO_TOKENIZER_H
#define EVO_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"

typedef struct evo_tokenizer evo_tokenizer;
typedef struct evo_encoder evo_encoder;

/* Loads a tokenizer file. On failure returns NULL with e->msg saying what
 * is wrong (unsupported features are named). */
evo_tokenizer *evo_tokenizer_open(const char *path, evo_err *e);
void evo_tokenizer_free(evo_tokenizer *t);

/* "sentencepiece-bpe", "hf-bpe-bytelevel" or "hf-bpe-metaspace". */
const char *evo_tokenizer_kind(const evo_tokenizer *t);
uint32_t evo_tokenizer_vocab_size(const evo_tokenizer *t);
/* The model's own BOS/EOS ids, or -1 where it has none. */
int32_t evo_tokenizer_bos(const evo_tokenizer *t);
int32_t evo_tokenizer_eos(const evo_tokenizer *t);
/* XXH3-128 of the tokenizer file's bytes: two token files with the same
 * fingerprint were made by the same tokenizer. */
void evo_tokenizer_fingerprint(const evo_tokenizer *t, uint8_t out[16]);
/* The id of a piece/token given by its exact text (e.g. "<|im_end|>"), or -1. */
int32_t evo_tokenizer_piece_id(const evo_tokenizer *t, const char *piece, size_t len);

/* Flags for evo_encode: whether the text given begins and/or ends a
 * document. A document may be encoded in several consecutive chunks cut at
 * evo_tokenizer_safe_cut() positions; the flags tell the model where
 * document-level rules apply (SentencePiece's dummy prefix and whitespace
 * trimming, HF's Prepend normalizer). */
enum { EVO_ENC_DOC_START = 1, EVO_ENC_DOC_END = 2, EVO_ENC_WHOLE = 3 };

evo_encoder *evo_encoder_new(const evo_tokenizer *t);
void evo_encoder_free(evo_encoder *enc);

/* Appends the ids of text[0..len) to out. Returns 0, or -1 with e set. */
int evo_encode(evo_encoder *enc, const char *text, size_t len, unsigned flags, evo_ids *out, evo_err *e);

/* The largest p <= len (or 0) such that encoding text[0..p) and then
 * text[p..len) as two chunks gives exactly the ids of encoding them as one.
 * Lets a 1 GB single-line document stream through bounded memory. */
size_t evo_tokenizer_safe_cut(const evo_tokenizer *t, const char *text, size_t len);

/* Appends the text of ids[0..n) to out, as the reference decoders do.
 * Returns 0, or -1 with e set (an id outside the vocabulary). */
int evo_decode(const evo_tokenizer *t, const int32_t *ids, size_t n, evo_buf *out, evo_err *e);

#endif
