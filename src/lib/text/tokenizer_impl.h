/* tokenizer_impl.h - what a tokenizer model family implements (internal).
 *
 * tokenizer.c owns the common part (file bytes, fingerprint, BOS/EOS) and
 * dispatches through evo_tokenizer_ops to one family: spm.c for
 * SentencePiece .model files, hf.c for HF tokenizer.json files. */
#ifndef EVO_TOKENIZER_IMPL_H
#define EVO_TOKENIZER_IMPL_H

#include "text/tokenizer.h"

struct evo_tokenizer_ops {
    const char *kind;
    void (*free)(void *model);
    /* Per-thread scratch; encode receives it back. */
    void *(*encoder_new)(const void *model);
    void (*encoder_free)(void *scratch);
    int (*encode)(const void *model, void *scratch, const char *text, size_t len, unsigned flags,
                  evo_ids *out, evo_err *e);
    size_t (*safe_cut)(const void *model, const char *text, size_t len);
    int (*decode)(const void *model, const int32_t *ids, size_t n, evo_buf *out, evo_err *e);
    int32_t (*piece_id)(const void *model, const char *piece, size_t len);
};

/* What a family's open function fills in. */
typedef struct {
    const struct evo_tokenizer_ops *ops;
    void *model;
    uint32_t vocab_size;
    int32_t bos, eos; /* -1 if none */
} evo_tokenizer_model;

/* Each takes the whole file in memory (data[0..len), NUL-terminated at
 * data[len] for the JSON reader) and returns 0, or -1 with e set. */
int evo_spm_open(const uint8_t *data, size_t len, evo_tokenizer_model *m, evo_err *e);
int evo_hf_open(const uint8_t *data, size_t len, evo_tokenizer_model *m, evo_err *e);

#endif
