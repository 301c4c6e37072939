#include "text/tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/fileio.h"

struct evo_tokenizer {
    evo_tokenizer_model m;
    uint8_t fingerprint[16];
};

struct evo_encoder {
    const evo_tokenizer *t;
    void *scratch;
};

evo_tokenizer *evo_tokenizer_open(const char *path, evo_err *e)
{
    evo_buf file = {0};
    if (evo_read_file(path, &file, e) < 0)
        return NULL;
    evo_buf_push(&file, '\0'); /* the JSON parser wants a terminated string */
    file.len--;

    /* A tokenizer.json is JSON text (anything else than an object is refused
     * by the JSON loader with a clear message); a SentencePiece model is a
     * protobuf, which never starts with '{' or '[' (tag 0x0a, pieces). */
    size_t i = 0;
    while (i < file.len && strchr(" \t\r\n", file.data[i]))
        i++;
    int is_json = i < file.len && (file.data[i] == '{' || file.data[i] == '[');

    evo_tokenizer *t = evo_calloc(1, sizeof *t);
    int rc = is_json ? evo_hf_open((const uint8_t *)file.data, file.len, &t->m, e)
                     : evo_spm_open((const uint8_t *)file.data, file.len, &t->m, e);
    if (rc == 0) {
        XXH128_hash_t h = XXH3_128bits(file.data, file.len);
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, h);
        memcpy(t->fingerprint, c.digest, 16);
    }
    evo_buf_free(&file);
    if (rc < 0) {
        free(t);
        evo_err_prefix(e, "%s", path);
        return NULL;
    }
    return t;
}

void evo_tokenizer_free(evo_tokenizer *t)
{
    if (t) {
        t->m.ops->free(t->m.model);
        free(t);
    }
}

const char *evo_tokenizer_kind(const evo_tokenizer *t) { return t->m.ops->kind; }
uint32_t evo_tokenizer_vocab_size(const evo_tokenizer *t) { return t->m.vocab_size; }
int32_t evo_tokenizer_bos(const evo_tokenizer *t) { return t->m.bos; }
int32_t evo_tokenizer_eos(const evo_tokenizer *t) { return t->m.eos; }
void evo_tokenizer_fingerprint(const evo_tokenizer *t, uint8_t out[16]) { memcpy(out, t->fingerprint, 16); }

int32_t evo_tokenizer_piece_id(const evo_tokenizer *t, const char *piece, size_t len)
{
    return t->m.ops->piece_id(t->m.model, piece, len);
}

evo_encoder *evo_encoder_new(const evo_tokenizer *t)
{
    evo_encoder *enc = evo_calloc(1, sizeof *enc);
    enc->t = t;
    enc->scratch = t->m.ops->encoder_new(t->m.model);
    return enc;
}

void evo_encoder_free(evo_encoder *enc)
{
    if (enc) {
        enc->t->m.ops->encoder_free(enc->scratch);
        free(enc);
    }
}

int evo_encode(evo_encoder *enc, const char *text, size_t len, unsigned flags, evo_ids *out, evo_err *e)
{
    const evo_tokenizer *t = enc->t;
    return t->m.ops->encode(t->m.model, enc->scratch, text, len, flags, out, e);
}

size_t evo_tokenizer_safe_cut(const evo_tokenizer *t, const char *text, size_t len)
{
    return t->m.ops->safe_cut(t->m.model, text, len);
}

int evo_decode(const evo_tokenizer *t, const int32_t *ids, size_t n, evo_buf *out, evo_err *e)
{
    return t->m.ops->decode(t->m.model, ids, n, out, e);
}
