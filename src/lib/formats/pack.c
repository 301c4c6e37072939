#include "formats/pack.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Byte layout of the 256-byte meta block. */
enum {
    M_SEQ_LEN = 0, M_MICRO_BSZ = 4, M_FLAGS = 8, M_N_SOURCES = 12, M_N_ROWS = 16, M_N_PIECES = 24,
    M_N_TOKENS = 32, M_N_PAD = 40, M_SEED = 48, M_MIN_LENGTH = 56, M_MAX_DOC_LEN = 60, M_EPOCHS = 64,
    M_VOCAB = 68, M_WIDTH = 72, M_BOS = 76, M_EOS = 80, M_FINGERPRINT = 88, M_NAME = 104, M_N_DOCS = 144,
    M_SOURCE_TOKENS = 152, M_SHORT_DOCS = 160, M_SHORT_TOKENS = 168, M_TAIL_TOKENS = 176, M_VALID_DOCS = 184,
    M_VALID_TOKENS = 192, M_VALID_FRACTION = 200, M_BUDGET = 208
};
/* Byte layout of a 64-byte source record. */
enum { S_N_DOCS = 0, S_N_TOKENS = 8, S_FILE_SIZE = 16, S_CONTENT_ID = 24, S_WEIGHT = 32, S_EMBEDDED = 40,
       S_PATH_OFF = 44, S_PATH_LEN = 48 };

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}
static double bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static void meta_encode(const evo_pack_meta *m, uint8_t *o)
{
    memset(o, 0, EVO_PACK_META_SIZE);
    evo_put32(o + M_SEQ_LEN, m->seq_len);
    evo_put32(o + M_MICRO_BSZ, m->micro_bsz);
    evo_put32(o + M_FLAGS, m->flags);
    evo_put32(o + M_N_SOURCES, m->n_sources);
    evo_put64(o + M_N_ROWS, m->n_rows);
    evo_put64(o + M_N_PIECES, m->n_pieces);
    evo_put64(o + M_N_TOKENS, m->n_tokens);
    evo_put64(o + M_N_PAD, m->n_pad);
    evo_put64(o + M_SEED, m->seed);
    evo_put32(o + M_MIN_LENGTH, m->min_length);
    evo_put32(o + M_MAX_DOC_LEN, m->max_doc_len);
    evo_put32(o + M_EPOCHS, m->epochs);
    evo_put32(o + M_VOCAB, m->vocab_size);
    evo_put32(o + M_WIDTH, m->token_width);
    evo_put32(o + M_BOS, (uint32_t)m->bos_id);
    evo_put32(o + M_EOS, (uint32_t)m->eos_id);
    memcpy(o + M_FINGERPRINT, m->fingerprint, 16);
    memcpy(o + M_NAME, m->tokenizer_name, sizeof m->tokenizer_name);
    evo_put64(o + M_N_DOCS, m->n_docs);
    evo_put64(o + M_SOURCE_TOKENS, m->source_tokens);
    evo_put64(o + M_SHORT_DOCS, m->short_docs);
    evo_put64(o + M_SHORT_TOKENS, m->short_tokens);
    evo_put64(o + M_TAIL_TOKENS, m->tail_tokens);
    evo_put64(o + M_VALID_DOCS, m->valid_docs);
    evo_put64(o + M_VALID_TOKENS, m->valid_tokens);
    evo_put64(o + M_VALID_FRACTION, double_bits(m->valid_fraction));
    evo_put64(o + M_BUDGET, m->budget);
}

static void meta_decode(const uint8_t *in, evo_pack_meta *m)
{
    m->seq_len = evo_le32(in + M_SEQ_LEN);
    m->micro_bsz = evo_le32(in + M_MICRO_BSZ);
    m->flags = evo_le32(in + M_FLAGS);
    m->n_sources = evo_le32(in + M_N_SOURCES);
    m->n_rows = evo_le64(in + M_N_ROWS);
    m->n_pieces = evo_le64(in + M_N_PIECES);
    m->n_tokens = evo_le64(in + M_N_TOKENS);
    m->n_pad = evo_le64(in + M_N_PAD);
    m->seed = evo_le64(in + M_SEED);
    m->min_length = evo_le32(in + M_MIN_LENGTH);
    m->max_doc_len = evo_le32(in + M_MAX_DOC_LEN);
    m->epochs = evo_le32(in + M_EPOCHS);
    m->vocab_size = evo_le32(in + M_VOCAB);
    m->token_width = evo_le32(in + M_WIDTH);
    m->bos_id = (int32_t)evo_le32(in + M_BOS);
    m->eos_id = (int32_t)evo_le32(in + M_EOS);
    memcpy(m->fingerprint, in + M_FINGERPRINT, 16);
    memcpy(m->tokenizer_name, in + M_NAME, sizeof m->tokenizer_name);
    m->tokenizer_name[sizeof m->tokenizer_name - 1] = '\0';
    m->n_docs = evo_le64(in + M_N_DOCS);
    m->source_tokens = evo_le64(in + M_SOURCE_TOKENS);
    m->short_docs = evo_le64(in + M_SHORT_DOCS);
    m->short_tokens = evo_le64(in + M_SHORT_TOKENS);
    m->tail_tokens = evo_le64(in + M_TAIL_TOKENS);
    m->valid_docs = evo_le64(in + M_VALID_DOCS);
    m->valid_tokens = evo_le64(in + M_VALID_TOKENS);
    m->valid_fraction = bits_double(evo_le64(in + M_VALID_FRACTION));
    m->budget = evo_le64(in + M_BUDGET);
}

#define META_AT(field) (EVO_PREFIX_SIZE + (field))

evo_pack_piece evo_pack_get_piece(const evo_pack *p, uint64_t i)
{
    const uint8_t *q = p->pieces + i * EVO_PACK_PIECE_SIZE;
    return (evo_pack_piece){evo_le64(q), evo_le32(q + 8), (uint16_t)(q[12] | q[13] << 8),
                            (uint16_t)(q[14] | q[15] << 8)};
}

uint64_t evo_pack_row_first_piece(const evo_pack *p, uint64_t row) { return evo_le64(p->rows + 8 * row); }

/* --- reading ------------------------------------------------------------ */

static int check_meta(const evo_pack *p, evo_err *e)
{
    const evo_pack_meta *m = &p->meta;
    const char *path = p->file.path;
    if (m->flags & ~(uint32_t)EVO_PACK_FLAGS)
        return evo_errf(e, "%s: offset %d: unknown flags 0x%x", path, META_AT(M_FLAGS), m->flags);
    if (!m->seq_len || !m->micro_bsz || evo_pack_length(m) > EVO_PACK_MAX_LENGTH)
        return evo_errf(e, "%s: offset %d: seq_len %u x micro_bsz %u is not a valid row length", path,
                        META_AT(M_SEQ_LEN), m->seq_len, m->micro_bsz);
    if (m->token_width != 2 && m->token_width != 4)
        return evo_errf(e, "%s: offset %d: token width %u (must be 2 or 4)", path, META_AT(M_WIDTH), m->token_width);
    if (!m->n_sources || m->n_sources > 65536)
        return evo_errf(e, "%s: offset %d: %u sources (must be 1 to 65536)", path, META_AT(M_N_SOURCES),
                        m->n_sources);
    const evo_section *pc = evo_binfile_section(&p->file, EVO_PACK_SEC_PIECES);
    const evo_section *rw = evo_binfile_section(&p->file, EVO_PACK_SEC_ROWS);
    const evo_section *sr = evo_binfile_section(&p->file, EVO_PACK_SEC_SOURCES);
    const evo_section *st = evo_binfile_section(&p->file, EVO_PACK_SEC_STRINGS);
    if (!pc || !rw || !sr || !st)
        return evo_errf(e, "%s: offset 64: missing section (pieces, rows, sources, strings)", path);
    if (pc->size % EVO_PACK_PIECE_SIZE || pc->size / EVO_PACK_PIECE_SIZE != m->n_pieces)
        return evo_errf(e, "%s: offset %llu: pieces section holds %llu bytes, header says %llu pieces", path,
                        (unsigned long long)pc->offset, (unsigned long long)pc->size, (unsigned long long)m->n_pieces);
    if (rw->size % 8 || rw->size / 8 - 1 != m->n_rows || !rw->size)
        return evo_errf(e, "%s: offset %llu: rows section holds %llu bytes, header says %llu rows", path,
                        (unsigned long long)rw->offset, (unsigned long long)rw->size, (unsigned long long)m->n_rows);
    if (sr->size != (uint64_t)m->n_sources * EVO_PACK_SOURCE_SIZE)
        return evo_errf(e, "%s: offset %llu: sources section does not hold %u sources", path,
                        (unsigned long long)sr->offset, m->n_sources);
    return 0;
}

static int decode_sources(evo_pack *p, evo_err *e)
{
    const evo_section *sr = evo_binfile_section(&p->file, EVO_PACK_SEC_SOURCES);
    const evo_section *st = evo_binfile_section(&p->file, EVO_PACK_SEC_STRINGS);
    uint32_t n = p->meta.n_sources, n_embedded = 0;
    p->sources = evo_calloc(n, sizeof *p->sources);
    p->tokens = evo_calloc(n, sizeof *p->tokens);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *q = p->file.data + sr->offset + (uint64_t)i * EVO_PACK_SOURCE_SIZE;
        evo_pack_source *s = &p->sources[i];
        uint64_t at = sr->offset + (uint64_t)i * EVO_PACK_SOURCE_SIZE;
        s->n_docs = evo_le64(q + S_N_DOCS);
        s->n_tokens = evo_le64(q + S_N_TOKENS);
        s->file_size = evo_le64(q + S_FILE_SIZE);
        s->content_id = evo_le64(q + S_CONTENT_ID);
        s->weight = bits_double(evo_le64(q + S_WEIGHT));
        s->embedded_section = evo_le32(q + S_EMBEDDED);
        uint32_t off = evo_le32(q + S_PATH_OFF), len = evo_le32(q + S_PATH_LEN);
        if (off > st->size || len > st->size - off || memchr(p->file.data + st->offset + off, 0, len))
            return evo_errf(e, "%s: offset %llu: source %u names a path outside the strings section",
                            p->file.path, (unsigned long long)at, i);
        s->path = evo_malloc(len + 1);
        memcpy(s->path, p->file.data + st->offset + off, len);
        s->path[len] = '\0';
        if (s->embedded_section) {
            const evo_section *es = evo_binfile_section(&p->file, s->embedded_section);
            if (s->embedded_section != EVO_PACK_SEC_EMBEDDED + i || !es || es->size != s->file_size)
                return evo_errf(e, "%s: offset %llu: source %u's embedded section %u is missing or of the wrong size",
                                p->file.path, (unsigned long long)at, i, s->embedded_section);
            n_embedded++;
        }
    }
    if (p->file.n_sections != 4 + n_embedded)
        return evo_errf(e, "%s: offset 64: %u sections, expected %u", p->file.path, p->file.n_sections,
                        4 + n_embedded);
    return 0;
}

/* Rows partition the pieces, each piece lies inside its source, and every
 * row holds packed_length tokens (a kept tail row at most that). */
static int check_rows(const evo_pack *p, evo_err *e)
{
    const evo_pack_meta *m = &p->meta;
    const evo_section *rw = evo_binfile_section(&p->file, EVO_PACK_SEC_ROWS);
    const evo_section *pc = evo_binfile_section(&p->file, EVO_PACK_SEC_PIECES);
    uint64_t length = evo_pack_length(m), tokens = 0, pad = 0;
    if (evo_pack_row_first_piece(p, 0) != 0 || evo_pack_row_first_piece(p, m->n_rows) != m->n_pieces)
        return evo_errf(e, "%s: offset %llu: rows do not cover the pieces", p->file.path,
                        (unsigned long long)rw->offset);
    for (uint64_t r = 0; r < m->n_rows; r++) {
        uint64_t a = evo_pack_row_first_piece(p, r), b = evo_pack_row_first_piece(p, r + 1), fill = 0;
        if (b < a || b > m->n_pieces)
            return evo_errf(e, "%s: offset %llu: row %llu's pieces are out of order", p->file.path,
                            (unsigned long long)(rw->offset + 8 * (r + 1)), (unsigned long long)r);
        for (uint64_t i = a; i < b; i++) {
            evo_pack_piece pc_i = evo_pack_get_piece(p, i);
            uint64_t at = pc->offset + i * EVO_PACK_PIECE_SIZE;
            if (pc_i.source >= m->n_sources || !pc_i.len || pc_i.flags & ~(unsigned)EVO_PIECE_LAST_UNLABELLED ||
                pc_i.start > p->sources[pc_i.source].n_tokens ||
                pc_i.len > p->sources[pc_i.source].n_tokens - pc_i.start)
                return evo_errf(e, "%s: offset %llu: piece %llu lies outside its source", p->file.path,
                                (unsigned long long)at, (unsigned long long)i);
            fill += pc_i.len;
        }
        /* Each input's tail row may be short when tails are kept. */
        int short_ok = (m->flags & EVO_PACK_KEEP_TAIL) && fill > 0;
        if (fill > length || (fill < length && !short_ok))
            return evo_errf(e, "%s: offset %llu: row %llu holds %llu tokens, not %llu", p->file.path,
                            (unsigned long long)(rw->offset + 8 * r), (unsigned long long)r,
                            (unsigned long long)fill, (unsigned long long)length);
        tokens += fill;
        pad += length - fill;
    }
    if (tokens != m->n_tokens || pad != m->n_pad)
        return evo_errf(e, "%s: offset %d: header counts %llu tokens and %llu padding, the rows hold %llu and %llu",
                        p->file.path, META_AT(M_N_TOKENS), (unsigned long long)m->n_tokens,
                        (unsigned long long)m->n_pad, (unsigned long long)tokens, (unsigned long long)pad);
    return 0;
}

char *evo_pack_source_path(const evo_pack *p, uint32_t i)
{
    const char *sp = p->sources[i].path, *slash = strrchr(p->file.path, '/');
    if (sp[0] == '/' || !slash)
        return evo_strdup(sp);
    size_t dir = (size_t)(slash - p->file.path) + 1, n = strlen(sp);
    char *out = evo_malloc(dir + n + 1);
    memcpy(out, p->file.path, dir);
    memcpy(out + dir, sp, n + 1);
    return out;
}

/* The document holding token t of a source (binary search on offsets). */
static uint64_t doc_of(const evo_tokens_reader *r, uint64_t t)
{
    uint64_t lo = 0, hi = r->meta.n_docs; /* doc_start(lo) <= t < doc_start(hi) */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (evo_tokens_doc_start(r, mid) <= t)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static int open_source(evo_pack *p, uint32_t i, evo_err *e)
{
    const evo_pack_source *s = &p->sources[i];
    evo_tokens_reader *r = evo_calloc(1, sizeof *r);
    int rc;
    if (s->embedded_section) {
        const evo_section *es = evo_binfile_section(&p->file, s->embedded_section);
        char name[4200];
        snprintf(name, sizeof name, "%s: embedded source %u (%s)", p->file.path, i, s->path);
        rc = evo_tokens_open_mem(r, name, p->file.data + es->offset, es->size, p->file.mapped ? EVO_FILE_BACKED : 0, e);
    } else {
        char *path = evo_pack_source_path(p, i);
        rc = evo_tokens_open(r, path, 0, e);
        if (rc < 0)
            evo_err_prefix(e, "%s: source %u", p->file.path, i);
        free(path);
    }
    if (rc < 0) {
        free(r);
        return -1;
    }
    p->tokens[i] = r;
    if (r->file.size != s->file_size || evo_le64(r->file.data + 24) != s->content_id ||
        r->meta.n_tokens != s->n_tokens || r->meta.n_docs != s->n_docs)
        return evo_errf(e, "%s: source %u: %s is not the file that was packed (it changed since)", p->file.path, i,
                        r->file.path);
    if (memcmp(r->meta.fingerprint, p->meta.fingerprint, 16) || r->meta.vocab_size != p->meta.vocab_size)
        return evo_errf(e, "%s: source %u: %s was made with another tokenizer", p->file.path, i, r->file.path);
    return 0;
}

/* A piece stays inside one document, and one that is labelled at its end
 * has the document's next token to take the label from. */
static int check_pieces_in_docs(const evo_pack *p, evo_err *e)
{
    const evo_section *pc = evo_binfile_section(&p->file, EVO_PACK_SEC_PIECES);
    for (uint64_t i = 0; i < p->meta.n_pieces; i++) {
        evo_pack_piece q = evo_pack_get_piece(p, i);
        const evo_tokens_reader *r = p->tokens[q.source];
        uint64_t end = evo_tokens_doc_start(r, doc_of(r, q.start) + 1);
        if (q.start + q.len > end || (q.start + q.len == end && !(q.flags & EVO_PIECE_LAST_UNLABELLED)))
            return evo_errf(e, "%s: offset %llu: piece %llu crosses the end of its document", p->file.path,
                            (unsigned long long)(pc->offset + i * EVO_PACK_PIECE_SIZE), (unsigned long long)i);
    }
    return 0;
}

int evo_pack_open(evo_pack *p, const char *path, unsigned flags, evo_err *e)
{
    *p = (evo_pack){0};
    if (evo_binfile_open(&p->file, path, EVO_PACK_MAGIC, EVO_PACK_VERSION, 0, e) < 0)
        return -1;
    if (p->file.meta_size != EVO_PACK_META_SIZE) {
        evo_errf(e, "%s: offset 32: pack meta is %u bytes, expected %d", path, p->file.meta_size, EVO_PACK_META_SIZE);
        goto fail;
    }
    meta_decode(p->file.meta, &p->meta);
    if (check_meta(p, e) < 0)
        goto fail;
    /* The index sections are verified here; embedded sources when opened. */
    for (uint32_t id = EVO_PACK_SEC_PIECES; id <= EVO_PACK_SEC_STRINGS; id++)
        if (evo_binfile_verify_section(&p->file, evo_binfile_section(&p->file, id), NULL, NULL, e) < 0)
            goto fail;
    p->pieces = p->file.data + evo_binfile_section(&p->file, EVO_PACK_SEC_PIECES)->offset;
    p->rows = p->file.data + evo_binfile_section(&p->file, EVO_PACK_SEC_ROWS)->offset;
    if (decode_sources(p, e) < 0 || check_rows(p, e) < 0)
        goto fail;
    if (flags & EVO_PACK_INDEX_ONLY)
        return 0;
    for (uint32_t i = 0; i < p->meta.n_sources; i++)
        if (open_source(p, i, e) < 0)
            goto fail;
    if (check_pieces_in_docs(p, e) < 0)
        goto fail;
    return 0;
fail:
    evo_pack_close(p);
    return -1;
}

void evo_pack_close(evo_pack *p)
{
    for (uint32_t i = 0; p->sources && i < p->meta.n_sources; i++) {
        free(p->sources[i].path);
        if (p->tokens[i]) {
            evo_tokens_close(p->tokens[i]);
            free(p->tokens[i]);
        }
    }
    free(p->sources);
    free(p->tokens);
    evo_binfile_close(&p->file);
    *p = (evo_pack){0};
}

void evo_pack_row_init(evo_pack_row *r, const evo_pack_meta *m)
{
    size_t n = (size_t)evo_pack_length(m);
    r->tokens = evo_malloc(n * sizeof *r->tokens);
    r->labels = evo_malloc(n * sizeof *r->labels);
    r->positions = evo_malloc(n * sizeof *r->positions);
    r->cu_seqlens = evo_malloc((n + 1) * sizeof *r->cu_seqlens);
    r->n_segments = r->n_pad = 0;
}

void evo_pack_row_free(evo_pack_row *r)
{
    free(r->tokens);
    free(r->labels);
    free(r->positions);
    free(r->cu_seqlens);
    *r = (evo_pack_row){0};
}

static inline void add_segment(evo_pack_row *r, uint32_t len)
{
    int32_t start = r->cu_seqlens[r->n_segments];
    for (uint32_t j = 0; j < len; j++)
        r->positions[start + (int32_t)j] = (int32_t)j;
    r->cu_seqlens[++r->n_segments] = start + (int32_t)len;
}

static inline int32_t label_of(const evo_tokens_reader *src, uint64_t t)
{
    return evo_tokens_is_target(src, t) ? (int32_t)evo_tokens_id(src, t) : EVO_LABEL_IGNORE;
}

void evo_pack_read_row(const evo_pack *p, uint64_t row, evo_pack_row *r)
{
    const evo_pack_meta *m = &p->meta;
    uint32_t length = (uint32_t)evo_pack_length(m), pos = 0;
    int into_one = (m->flags & EVO_PACK_INTO_ONE) != 0;
    r->n_segments = 0;
    r->cu_seqlens[0] = 0;
    for (uint64_t i = evo_pack_row_first_piece(p, row); i < evo_pack_row_first_piece(p, row + 1); i++) {
        evo_pack_piece q = evo_pack_get_piece(p, i);
        const evo_tokens_reader *src = p->tokens[q.source];
        for (uint32_t j = 0; j < q.len; j++)
            r->tokens[pos + j] = (int32_t)evo_tokens_id(src, q.start + j);
        for (uint32_t j = 0; j + 1 < q.len; j++)
            r->labels[pos + j] = label_of(src, q.start + j + 1);
        r->labels[pos + q.len - 1] =
            (q.flags & EVO_PIECE_LAST_UNLABELLED) ? EVO_LABEL_IGNORE : label_of(src, q.start + q.len);
        if (!into_one) { /* attention windows of seq_len counted from the piece's start */
            uint32_t left = q.len;
            for (; left > m->seq_len; left -= m->seq_len)
                add_segment(r, m->seq_len);
            add_segment(r, left);
        }
        pos += q.len;
    }
    r->n_pad = length - pos;
    for (uint32_t j = pos; j < length; j++) {
        r->tokens[j] = 0;
        r->labels[j] = EVO_LABEL_IGNORE;
    }
    if (into_one) {
        r->n_segments = 0;
        for (uint32_t k = 0; k < m->micro_bsz; k++)
            add_segment(r, m->seq_len);
    } else if (r->n_pad) {
        add_segment(r, r->n_pad);
    }
}

/* --- writing ------------------------------------------------------------ */

static int flush_pieces(evo_pack_writer *w, evo_err *e)
{
    int rc = evo_binwriter_write(&w->w, w->piece_buf, w->piece_fill, e);
    w->piece_fill = 0;
    return rc;
}

int evo_pack_create(evo_pack_writer *w, const char *path, uint32_t n_embedded, uint64_t packed_length, evo_err *e)
{
    *w = (evo_pack_writer){0};
    w->packed_length = packed_length;
    uint8_t zero[8] = {0};
    evo_buf_append(&w->rows, zero, 8);
    if (evo_binwriter_open(&w->w, path, EVO_PACK_MAGIC, EVO_PACK_VERSION, EVO_PACK_META_SIZE, 4 + n_embedded, e) < 0) {
        w->finished = 1; /* nothing to abort */
        return -1;
    }
    return 0;
}

int evo_pack_embed_begin(evo_pack_writer *w, uint32_t i, evo_err *e)
{
    return evo_binwriter_begin(&w->w, EVO_PACK_SEC_EMBEDDED + i, e);
}
int evo_pack_embed_write(evo_pack_writer *w, const void *p, size_t n, evo_err *e)
{
    return evo_binwriter_write(&w->w, p, n, e);
}
int evo_pack_embed_end(evo_pack_writer *w, evo_err *e) { return evo_binwriter_end(&w->w, e); }
int evo_pack_writer_fd(const evo_pack_writer *w) { return w->w.out.fd; }
uint64_t evo_pack_writer_pos(const evo_pack_writer *w) { return w->w.out.pos; }

int evo_pack_add_piece(evo_pack_writer *w, evo_pack_piece q, evo_err *e)
{
    if (!w->pieces_begun) {
        if (evo_binwriter_begin(&w->w, EVO_PACK_SEC_PIECES, e) < 0)
            return -1;
        w->pieces_begun = 1;
    }
    if (w->piece_fill + EVO_PACK_PIECE_SIZE > sizeof w->piece_buf && flush_pieces(w, e) < 0)
        return -1;
    uint8_t *o = w->piece_buf + w->piece_fill;
    evo_put64(o, q.start);
    evo_put32(o + 8, q.len);
    o[12] = (uint8_t)q.source;
    o[13] = (uint8_t)(q.source >> 8);
    o[14] = (uint8_t)q.flags;
    o[15] = (uint8_t)(q.flags >> 8);
    w->piece_fill += EVO_PACK_PIECE_SIZE;
    w->n_pieces++;
    w->row_fill += q.len;
    w->n_tokens += q.len;
    return 0;
}

int evo_pack_end_row(evo_pack_writer *w, evo_err *e)
{
    if (w->row_fill > w->packed_length || !w->row_fill)
        return evo_errf(e, "internal error: a row of %llu tokens", (unsigned long long)w->row_fill);
    w->n_pad += w->packed_length - w->row_fill;
    w->row_fill = 0;
    uint8_t b[8];
    evo_put64(b, w->n_pieces);
    evo_buf_append(&w->rows, b, 8);
    return 0;
}

static int write_section(evo_pack_writer *w, uint32_t id, const void *p, size_t n, evo_err *e)
{
    if (evo_binwriter_begin(&w->w, id, e) < 0 || evo_binwriter_write(&w->w, p, n, e) < 0)
        return -1;
    return evo_binwriter_end(&w->w, e);
}

int evo_pack_finish(evo_pack_writer *w, evo_pack_meta *m, const evo_pack_source *sources, evo_err *e)
{
    int rc = -1;
    evo_buf src = {0}, strings = {0};
    if (!w->pieces_begun && evo_binwriter_begin(&w->w, EVO_PACK_SEC_PIECES, e) < 0)
        goto out;
    w->pieces_begun = 1;
    if (flush_pieces(w, e) < 0 || evo_binwriter_end(&w->w, e) < 0)
        goto out;
    if (w->row_fill)
        rc = evo_errf(e, "internal error: an unfinished row");
    if (w->row_fill || write_section(w, EVO_PACK_SEC_ROWS, w->rows.data, w->rows.len, e) < 0)
        goto out;
    for (uint32_t i = 0; i < m->n_sources; i++) {
        const evo_pack_source *s = &sources[i];
        uint8_t rec[EVO_PACK_SOURCE_SIZE] = {0};
        evo_put64(rec + S_N_DOCS, s->n_docs);
        evo_put64(rec + S_N_TOKENS, s->n_tokens);
        evo_put64(rec + S_FILE_SIZE, s->file_size);
        evo_put64(rec + S_CONTENT_ID, s->content_id);
        evo_put64(rec + S_WEIGHT, double_bits(s->weight));
        evo_put32(rec + S_EMBEDDED, s->embedded_section);
        evo_put32(rec + S_PATH_OFF, (uint32_t)strings.len);
        evo_put32(rec + S_PATH_LEN, (uint32_t)strlen(s->path));
        evo_buf_append(&strings, s->path, strlen(s->path));
        evo_buf_append(&src, rec, sizeof rec);
    }
    if (write_section(w, EVO_PACK_SEC_SOURCES, src.data, src.len, e) < 0 ||
        write_section(w, EVO_PACK_SEC_STRINGS, strings.data, strings.len, e) < 0)
        goto out;
    m->n_rows = w->rows.len / 8 - 1;
    m->n_pieces = w->n_pieces;
    m->n_tokens = w->n_tokens;
    m->n_pad = w->n_pad;
    uint8_t meta[EVO_PACK_META_SIZE];
    meta_encode(m, meta);
    rc = evo_binwriter_finish(&w->w, meta, e);
    w->finished = 1;
out:
    evo_buf_free(&src);
    evo_buf_free(&strings);
    if (rc < 0)
        evo_pack_abort(w);
    evo_buf_free(&w->rows);
    return rc;
}

evo_out *evo_pack_output(evo_pack_writer *w) { return &w->w.out; }

void evo_pack_abort(evo_pack_writer *w)
{
    if (!w->finished)
        evo_binwriter_abort(&w->w);
    w->finished = 1;
    evo_buf_free(&w->rows);
}
