#include "formats/tokens.h"

#include <stdlib.h>
#include <string.h>

#include "base/simd.h"

/* Byte layout of the 128-byte meta block (see tokens.h). */
enum {
    M_VOCAB = 0, M_WIDTH = 4, M_BOS = 8, M_EOS = 12, M_FLAGS = 16, M_SHARD = 20, M_SHARDS = 22, M_NDOCS = 24,
    M_NTOKENS = 32,
    M_FINGERPRINT = 40, M_KIND = 56, M_NAME = 88
};

static void meta_encode(const evo_tokens_meta *m, uint8_t out[EVO_TOKENS_META_SIZE])
{
    memset(out, 0, EVO_TOKENS_META_SIZE);
    evo_put32(out + M_VOCAB, m->vocab_size);
    evo_put32(out + M_WIDTH, m->token_width);
    evo_put32(out + M_BOS, (uint32_t)m->bos_id);
    evo_put32(out + M_EOS, (uint32_t)m->eos_id);
    evo_put32(out + M_FLAGS, m->flags);
    evo_put16(out + M_SHARD, m->shard);
    evo_put16(out + M_SHARDS, m->shards);
    evo_put64(out + M_NDOCS, m->n_docs);
    evo_put64(out + M_NTOKENS, m->n_tokens);
    memcpy(out + M_FINGERPRINT, m->fingerprint, 16);
    memcpy(out + M_KIND, m->tokenizer_kind, sizeof m->tokenizer_kind);
    memcpy(out + M_NAME, m->tokenizer_name, sizeof m->tokenizer_name);
}

static void meta_decode(const uint8_t *in, evo_tokens_meta *m)
{
    m->vocab_size = evo_le32(in + M_VOCAB);
    m->token_width = evo_le32(in + M_WIDTH);
    m->bos_id = (int32_t)evo_le32(in + M_BOS);
    m->eos_id = (int32_t)evo_le32(in + M_EOS);
    m->flags = evo_le32(in + M_FLAGS);
    m->shard = evo_le16(in + M_SHARD);
    m->shards = evo_le16(in + M_SHARDS);
    m->n_docs = evo_le64(in + M_NDOCS);
    m->n_tokens = evo_le64(in + M_NTOKENS);
    memcpy(m->fingerprint, in + M_FINGERPRINT, 16);
    memcpy(m->tokenizer_kind, in + M_KIND, sizeof m->tokenizer_kind);
    memcpy(m->tokenizer_name, in + M_NAME, sizeof m->tokenizer_name);
    m->tokenizer_kind[sizeof m->tokenizer_kind - 1] = '\0';
    m->tokenizer_name[sizeof m->tokenizer_name - 1] = '\0';
}

/* Offset of a meta field inside the file, for error messages. */
#define META_AT(field) (EVO_PREFIX_SIZE + (field))

/* Every id < vocab_size, checked chunk by chunk while the tokens section is
 * hashed (one pass over memory). Branch-free max first, which vectorizes;
 * the culprit is located only on failure. */
typedef struct {
    const evo_tokens_reader *r;
    uint64_t section_offset;
} ids_check;

/* The largest id in n bytes of tokens of the given width. */
EVO_VECTOR_CLONES static uint32_t max_id(const uint8_t *p, uint64_t n, uint32_t width)
{
    if (width == 2) {
        uint16_t m16 = 0; /* a 16-bit max vectorizes twice as wide */
        for (uint64_t i = 0; i + 1 < n; i += 2) {
            uint16_t v = (uint16_t)(p[i] | p[i + 1] << 8);
            m16 = v > m16 ? v : m16;
        }
        return m16;
    }
    uint32_t vmax = 0;
    for (uint64_t i = 0; i + 3 < n; i += 4) {
        uint32_t v = evo_le32(p + i);
        vmax = v > vmax ? v : vmax;
    }
    return vmax;
}

static int check_ids(void *ctx, const uint8_t *p, uint64_t n, uint64_t at, evo_err *e)
{
    const ids_check *c = ctx;
    const evo_tokens_meta *m = &c->r->meta;
    uint32_t vmax = max_id(p, n, m->token_width), width = m->token_width;
    if (vmax < m->vocab_size)
        return 0;
    uint64_t i = 0;
    while (evo_tokens_id(c->r, at / width + i) < m->vocab_size)
        i++;
    uint64_t t = at / width + i;
    return evo_errf(e, "%s: offset %llu: token %llu has id %u, outside the vocabulary (size %u)", c->r->file.path,
                    (unsigned long long)(c->section_offset + t * width), (unsigned long long)t,
                    evo_tokens_id(c->r, t), m->vocab_size);
}

/* Everything after the container is open but the bulk data: meta, section
 * sizes, the offsets (checksum and order). */
static int validate_tokens(evo_tokens_reader *r, evo_err *e)
{
    const evo_binfile *f = &r->file;
    const char *path = f->path;
    evo_tokens_meta *m = &r->meta;
    if (f->meta_size != EVO_TOKENS_META_SIZE)
        return evo_errf(e, "%s: offset 32: token file meta is %u bytes, expected %d", path, f->meta_size,
                        EVO_TOKENS_META_SIZE);
    meta_decode(f->meta, m);
    if (m->token_width != 2 && m->token_width != 4)
        return evo_errf(e, "%s: offset %d: token width %u (must be 2 or 4)", path, META_AT(M_WIDTH), m->token_width);
    if (m->vocab_size == 0 || (m->token_width == 2 && m->vocab_size > 65536))
        return evo_errf(e, "%s: offset %d: vocabulary size %u does not fit token width %u", path, META_AT(M_VOCAB),
                        m->vocab_size, m->token_width);
    if (m->flags & ~(uint32_t)(EVO_TOK_HAS_MASK | EVO_TOK_ADDED_BOS | EVO_TOK_ADDED_EOS))
        return evo_errf(e, "%s: offset %d: unknown flags 0x%x", path, META_AT(M_FLAGS), m->flags);
    if (m->shards ? m->shard >= m->shards : m->shard != 0)
        return evo_errf(e, "%s: offset %d: shard %u of %u", path, META_AT(M_SHARD), m->shard, m->shards);
    const evo_section *tok = evo_binfile_section(f, EVO_TOK_SEC_TOKENS);
    const evo_section *off = evo_binfile_section(f, EVO_TOK_SEC_OFFSETS);
    const evo_section *msk = evo_binfile_section(f, EVO_TOK_SEC_MASK);
    int want_mask = (m->flags & EVO_TOK_HAS_MASK) != 0;
    if (!tok || !off || want_mask != (msk != NULL) || f->n_sections != 2u + (msk != NULL))
        return evo_errf(e, "%s: offset 64: missing or unexpected section (tokens, offsets, mask)", path);
    /* Sizes are checked by division so hostile counts cannot overflow. */
    if (tok->size % m->token_width || tok->size / m->token_width != m->n_tokens)
        return evo_errf(e, "%s: offset %llu: tokens section holds %llu bytes, header says %llu tokens", path,
                        (unsigned long long)tok->offset, (unsigned long long)tok->size,
                        (unsigned long long)m->n_tokens);
    if (off->size % 8 || off->size / 8 != m->n_docs + 1 || m->n_docs == UINT64_MAX)
        return evo_errf(e, "%s: offset %llu: offsets section holds %llu bytes, header says %llu documents", path,
                        (unsigned long long)off->offset, (unsigned long long)off->size,
                        (unsigned long long)m->n_docs);
    if (msk && msk->size != (m->n_tokens + 7) / 8)
        return evo_errf(e, "%s: offset %llu: mask section size does not match %llu tokens", path,
                        (unsigned long long)msk->offset, (unsigned long long)m->n_tokens);
    r->tokens = f->data + tok->offset;
    r->offsets = f->data + off->offset;
    r->mask = msk ? f->data + msk->offset : NULL;
    if (evo_binfile_verify_section(f, off, NULL, NULL, e) < 0)
        return -1;
    uint64_t prev = 0;
    for (uint64_t d = 0; d <= m->n_docs; d++) {
        uint64_t o = evo_tokens_doc_start(r, d);
        if ((d == 0 && o != 0) || o < prev || o > m->n_tokens || (d == m->n_docs && o != m->n_tokens))
            return evo_errf(e, "%s: offset %llu: document offset %llu of document %llu is out of order or range",
                            path, (unsigned long long)(off->offset + 8 * d), (unsigned long long)o,
                            (unsigned long long)d);
        prev = o;
    }
    return 0;
}

int evo_tokens_verify(const evo_tokens_reader *r, evo_err *e)
{
    const evo_section *tok = evo_binfile_section(&r->file, EVO_TOK_SEC_TOKENS);
    const evo_section *msk = evo_binfile_section(&r->file, EVO_TOK_SEC_MASK);
    ids_check ic = {r, tok->offset};
    if (evo_binfile_verify_section(&r->file, tok, check_ids, &ic, e) < 0)
        return -1;
    return msk ? evo_binfile_verify_section(&r->file, msk, NULL, NULL, e) : 0;
}

static int finish_open(evo_tokens_reader *r, unsigned flags, evo_err *e)
{
    if (validate_tokens(r, e) < 0 || (!(flags & EVO_TOKENS_DEFER_VERIFY) && evo_tokens_verify(r, e) < 0)) {
        evo_binfile_close(&r->file);
        return -1;
    }
    return 0;
}

int evo_tokens_open(evo_tokens_reader *r, const char *path, unsigned flags, evo_err *e)
{
    *r = (evo_tokens_reader){0};
    if (evo_binfile_open(&r->file, path, EVO_TOKENS_MAGIC, EVO_TOKENS_VERSION, 0, e) < 0)
        return -1;
    return finish_open(r, flags, e);
}

int evo_tokens_open_mem(evo_tokens_reader *r, const char *name, const uint8_t *data, uint64_t size, unsigned flags,
                        evo_err *e)
{
    *r = (evo_tokens_reader){0};
    if (evo_binfile_open_mem(&r->file, name, data, size, EVO_TOKENS_MAGIC, EVO_TOKENS_VERSION, flags, e) < 0)
        return -1;
    return finish_open(r, flags, e);
}

void evo_tokens_close(evo_tokens_reader *r) { evo_binfile_close(&r->file); }

int evo_tokens_create(evo_tokens_writer *tw, const char *path, const evo_tokens_meta *meta, evo_err *e)
{
    *tw = (evo_tokens_writer){0};
    tw->meta = *meta;
    tw->meta.token_width = meta->vocab_size <= 65536 ? 2 : 4;
    tw->meta.n_docs = tw->meta.n_tokens = 0;
    uint32_t n_sections = (meta->flags & EVO_TOK_HAS_MASK) ? 3 : 2;
    if (evo_binwriter_open(&tw->w, path, EVO_TOKENS_MAGIC, EVO_TOKENS_VERSION, EVO_TOKENS_META_SIZE, n_sections,
                           e) < 0)
        return -1;
    return evo_binwriter_begin(&tw->w, EVO_TOK_SEC_TOKENS, e);
}

static int write_ids(evo_tokens_writer *tw, const int32_t *ids, const uint8_t *mask, size_t n, evo_err *e)
{
    size_t width = tw->meta.token_width;
    if (n * width > tw->staging_cap) {
        tw->staging_cap = n * width;
        tw->staging = evo_realloc(tw->staging, tw->staging_cap);
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= tw->meta.vocab_size)
            return evo_errf(e, "internal error: token id %d outside the vocabulary", ids[i]);
        if (width == 2) {
            tw->staging[2 * i] = (uint8_t)ids[i];
            tw->staging[2 * i + 1] = (uint8_t)(ids[i] >> 8);
        } else {
            evo_put32(tw->staging + 4 * i, (uint32_t)ids[i]);
        }
    }
    if (tw->meta.flags & EVO_TOK_HAS_MASK) {
        uint64_t t = tw->meta.n_tokens;
        for (size_t i = 0; i < n; i++, t++) {
            if ((t & 7) == 0)
                evo_buf_push(&tw->mask, 0);
            if (!mask || mask[i])
                tw->mask.data[t >> 3] |= (char)(1u << (t & 7));
        }
    }
    tw->meta.n_tokens += n;
    return evo_binwriter_write(&tw->w, tw->staging, n * width, e);
}

static void push_offset(evo_tokens_writer *tw, uint64_t v)
{
    uint8_t b[8];
    evo_put64(b, v);
    evo_buf_append(&tw->offsets, b, 8);
}

int evo_tokens_append(evo_tokens_writer *tw, const int32_t *ids, const uint8_t *mask, size_t n, evo_err *e)
{
    if (tw->meta.n_docs == 0)
        push_offset(tw, 0);
    tw->meta.n_docs++;
    push_offset(tw, tw->meta.n_tokens); /* fixed up as the document grows */
    return evo_tokens_extend(tw, ids, mask, n, e);
}

int evo_tokens_extend(evo_tokens_writer *tw, const int32_t *ids, const uint8_t *mask, size_t n, evo_err *e)
{
    if (write_ids(tw, ids, mask, n, e) < 0)
        return -1;
    evo_put64((uint8_t *)tw->offsets.data + tw->offsets.len - 8, tw->meta.n_tokens);
    return 0;
}

int evo_tokens_finish(evo_tokens_writer *tw, evo_err *e)
{
    int rc = -1;
    if (tw->meta.n_docs == 0)
        push_offset(tw, 0);
    uint8_t meta[EVO_TOKENS_META_SIZE];
    meta_encode(&tw->meta, meta);
    if (evo_binwriter_end(&tw->w, e) < 0 || evo_binwriter_begin(&tw->w, EVO_TOK_SEC_OFFSETS, e) < 0 ||
        evo_binwriter_write(&tw->w, tw->offsets.data, tw->offsets.len, e) < 0 || evo_binwriter_end(&tw->w, e) < 0)
        goto out;
    if (tw->meta.flags & EVO_TOK_HAS_MASK) {
        if (evo_binwriter_begin(&tw->w, EVO_TOK_SEC_MASK, e) < 0 ||
            evo_binwriter_write(&tw->w, tw->mask.data, tw->mask.len, e) < 0 || evo_binwriter_end(&tw->w, e) < 0)
            goto out;
    }
    rc = evo_binwriter_finish(&tw->w, meta, e);
    tw->w.hash = NULL; /* finish released the writer either way */
out:
    if (rc < 0 && tw->w.hash)
        evo_binwriter_abort(&tw->w);
    evo_buf_free(&tw->offsets);
    evo_buf_free(&tw->mask);
    free(tw->staging);
    tw->staging = NULL;
    return rc;
}

void evo_tokens_abort(evo_tokens_writer *tw)
{
    if (tw->w.hash)
        evo_binwriter_abort(&tw->w);
    evo_buf_free(&tw->offsets);
    evo_buf_free(&tw->mask);
    free(tw->staging);
    tw->staging = NULL;
}
