/* spm.c - SentencePiece BPE models (.model files), bit-exact with
 * SentencePiece 0.1.97's encoder (spm_encode --output_format=id).
 *
 * Encoding runs SentencePiece's three stages:
 *   1. normalize: user-defined symbols copied as they are, else the
 *      precompiled charsmap's longest rule, else the character itself (an
 *      invalid UTF-8 byte becomes U+FFFD); extra spaces removed, the dummy
 *      prefix added, spaces escaped as U+2581;
 *   2. BPE over the normalized characters (a user-defined symbol is one
 *      frozen symbol): SentencePiece merges the adjacent pair whose
 *      concatenation is the vocabulary piece with the HIGHEST score, leftmost
 *      on ties. That is the shared engine's rule with rank = dense rank of
 *      the piece score, descending, and one rule (a, b) -> a+b for every way
 *      of cutting every piece into two pieces;
 *   3. output: a symbol not in the vocabulary becomes <0xXX> byte pieces
 *      (byte_fallback) or <unk>, a run of them one <unk>.
 *
 * Models with UNUSED pieces are refused: SentencePiece merges into them and
 * then splits them back by the last candidate pair its heap saw for that
 * text anywhere in the line, a history the shared engine does not keep. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "text/bpe.h"
#include "text/charsmap.h"
#include "text/protobuf.h"
#include "text/tokenizer_impl.h"
#include "text/utf8.h"

/* ModelProto.SentencePiece.Type and TrainerSpec.ModelType. */
enum { T_NORMAL = 1, T_UNKNOWN = 2, T_CONTROL = 3, T_USER_DEFINED = 4, T_UNUSED = 5, T_BYTE = 6 };
enum { MT_UNIGRAM = 1, MT_BPE = 2, MT_WORD = 3, MT_CHAR = 4 };

/* SentencePiece rejects longer pieces. */
#define MAX_PIECE_LEN 8000

static const char WS[] = "\xE2\x96\x81"; /* U+2581, the escaped space */

typedef struct {
    uint32_t off, len; /* text in spm_model.pool */
    float score;
    uint8_t type;
    uint8_t byte; /* the byte a T_BYTE piece stands for */
} piece;

typedef struct {
    piece *pieces;
    uint32_t n;
    size_t cap;
    char *pool;
    int32_t *slots; /* hash of piece text -> id, -1 = empty */
    size_t slot_mask;
    int32_t *bmp_id;   /* single-character pieces U+0000..U+FFFF -> id, or -1 */
    evo_bpe *rules;
    int32_t unk, bos, eos;
    int32_t byte_id[256];
    /* User-defined symbols grouped by first byte, longest first in a group:
     * ud[ud_start[c] .. ud_start[c+1]) begin with byte c. */
    int32_t *ud;
    uint32_t ud_start[257];
    /* plain[c]: ASCII byte c normalizes to itself and starts no user symbol */
    uint8_t plain[256];
    int has_charsmap;
    evo_charsmap cm;
    int add_dummy_prefix, remove_extra_ws, escape_ws, ws_suffix, byte_fallback;
    int cut_ok; /* safe_cut may cut in front of " " between alnum and letter */
    char *unk_surface;
} spm_model;

typedef struct {
    evo_buf norm;
    int32_t *ids;
    uint32_t *starts;
    size_t cap;
    evo_bpe_scratch bpe;
} spm_scratch;

static inline const char *piece_text(const spm_model *m, int32_t id) { return m->pool + m->pieces[id].off; }

static inline size_t text_hash(const char *s, size_t len) { return (size_t)XXH3_64bits(s, len); }

static int32_t lookup(const spm_model *m, const char *s, size_t len)
{
    for (size_t j = text_hash(s, len) & m->slot_mask;; j = (j + 1) & m->slot_mask) {
        int32_t id = m->slots[j];
        if (id < 0)
            return -1;
        if (m->pieces[id].len == len && memcmp(piece_text(m, id), s, len) == 0)
            return id;
    }
}

/* Bytes of the UTF-8 character led by c, as SentencePiece's OneCharLen
 * counts them (by the lead byte alone; the text is valid UTF-8 by then). */
static inline size_t one_char_len(unsigned char c) { return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

static inline int32_t char_id(const spm_model *m, const char *s, size_t k)
{
    uint32_t cp;
    if (k < 4 && evo_utf8_decode((const unsigned char *)s, k, &cp) == k)
        return m->bmp_id[cp];
    return lookup(m, s, k);
}

/* The longest user-defined symbol that s[0..n) begins with: its length and
 * id, or 0. */
static inline size_t ud_match(const spm_model *m, const char *s, size_t n, int32_t *id)
{
    unsigned char c = (unsigned char)s[0];
    for (uint32_t i = m->ud_start[c]; i < m->ud_start[c + 1]; i++) {
        const piece *p = &m->pieces[m->ud[i]];
        if (p->len <= n && memcmp(m->pool + p->off, s, p->len) == 0) {
            *id = m->ud[i];
            return p->len;
        }
    }
    return 0;
}

/* ---- loading ---------------------------------------------------------- */

typedef struct {
    int32_t model_type;
    int byte_fallback, ws_suffix;
    const uint8_t *unk_surface, *bos_piece, *eos_piece;
    size_t unk_surface_len, bos_piece_len, eos_piece_len;
    const uint8_t *charsmap;
    size_t charsmap_len;
    size_t charsmap_at;
} proto_fields;

static void free_model(void *mp)
{
    spm_model *m = mp;
    if (!m)
        return;
    free(m->pieces);
    free(m->pool);
    free(m->slots);
    free(m->bmp_id);
    evo_bpe_free(m->rules);
    free(m->ud);
    if (m->has_charsmap)
        evo_charsmap_free(&m->cm);
    free(m->unk_surface);
    free(m);
}

static int parse_piece(spm_model *m, evo_buf *pool, const evo_pb *r, const evo_pb_field *f, evo_err *e)
{
    evo_pb sub;
    evo_pb_field g;
    int rc;
    if (evo_pb_bytes(f, e) < 0)
        return -1;
    evo_pb_sub(r, f, &sub);
    piece p = {0, 0, 0.0f, T_NORMAL, 0};
    const uint8_t *text = NULL;
    while ((rc = evo_pb_next(&sub, &g, e)) > 0) {
        int32_t type;
        if (g.number == 1) {
            if (evo_pb_bytes(&g, e) < 0)
                return -1;
            if (g.len >= MAX_PIECE_LEN)
                return evo_errf(e, "piece %u at byte %zu is %zu bytes long (at most %d)", m->n, f->offset, g.len,
                                MAX_PIECE_LEN - 1);
            text = g.data;
            p.len = (uint32_t)g.len;
        } else if (g.number == 2) {
            if (evo_pb_float(&g, &p.score, e) < 0)
                return -1;
            if (isnan(p.score))
                return evo_errf(e, "piece %u at byte %zu: score is NaN", m->n, f->offset);
        } else if (g.number == 3) {
            if (evo_pb_i32(&g, &type, e) < 0)
                return -1;
            if (type < T_NORMAL || type > T_BYTE)
                return evo_errf(e, "piece %u at byte %zu: unknown type %d", m->n, f->offset, type);
            p.type = (uint8_t)type;
        }
    }
    if (rc < 0)
        return -1;
    if (!text || p.len == 0)
        return evo_errf(e, "piece %u at byte %zu is empty", m->n, f->offset);
    p.off = (uint32_t)pool->len;
    evo_buf_append(pool, text, p.len);
    if (m->n == UINT32_MAX / 2)
        return evo_errf(e, "too many pieces at byte %zu", f->offset);
    m->pieces = evo_grow(m->pieces, &m->cap, (size_t)m->n + 1, sizeof *m->pieces, 1024);
    m->pieces[m->n++] = p;
    return 0;
}

static int take_bytes(const evo_pb_field *g, const uint8_t **data, size_t *len, evo_err *e)
{
    if (evo_pb_bytes(g, e) < 0)
        return -1;
    *data = g->data;
    *len = g->len;
    return 0;
}

static int parse_trainer_spec(proto_fields *pf, const evo_pb *r, const evo_pb_field *f, evo_err *e)
{
    evo_pb sub;
    evo_pb_field g;
    int rc;
    if (evo_pb_bytes(f, e) < 0)
        return -1;
    evo_pb_sub(r, f, &sub);
    while ((rc = evo_pb_next(&sub, &g, e)) > 0) {
        int ok = 0;
        switch (g.number) {
        case 3: ok = evo_pb_i32(&g, &pf->model_type, e); break;
        case 24: ok = evo_pb_bool(&g, &pf->ws_suffix, e); break;
        case 35: ok = evo_pb_bool(&g, &pf->byte_fallback, e); break;
        case 44: ok = take_bytes(&g, &pf->unk_surface, &pf->unk_surface_len, e); break;
        case 46: ok = take_bytes(&g, &pf->bos_piece, &pf->bos_piece_len, e); break;
        case 47: ok = take_bytes(&g, &pf->eos_piece, &pf->eos_piece_len, e); break;
        default: break; /* training-only options: they do not change encoding */
        }
        if (ok < 0)
            return -1;
    }
    return rc;
}

static int parse_normalizer_spec(spm_model *m, proto_fields *pf, const evo_pb *r, const evo_pb_field *f,
                                 evo_err *e)
{
    evo_pb sub;
    evo_pb_field g;
    int rc;
    if (evo_pb_bytes(f, e) < 0)
        return -1;
    evo_pb_sub(r, f, &sub);
    while ((rc = evo_pb_next(&sub, &g, e)) > 0) {
        int ok = 0;
        switch (g.number) {
        case 2:
            ok = take_bytes(&g, &pf->charsmap, &pf->charsmap_len, e);
            pf->charsmap_at = g.offset;
            break;
        case 3: ok = evo_pb_bool(&g, &m->add_dummy_prefix, e); break;
        case 4: ok = evo_pb_bool(&g, &m->remove_extra_ws, e); break;
        case 5: ok = evo_pb_bool(&g, &m->escape_ws, e); break;
        default: break; /* name, normalization_rule_tsv: compiled into the charsmap */
        }
        if (ok < 0)
            return -1;
    }
    return rc;
}

static int parse_model_proto(spm_model *m, proto_fields *pf, const uint8_t *data, size_t len, evo_err *e)
{
    evo_pb r;
    evo_pb_field f;
    evo_buf pool = {0};
    int rc;
    evo_pb_init(&r, data, data, len);
    while ((rc = evo_pb_next(&r, &f, e)) > 0) {
        int ok = 0;
        switch (f.number) {
        case 1: ok = parse_piece(m, &pool, &r, &f, e); break;
        case 2: ok = parse_trainer_spec(pf, &r, &f, e); break;
        case 3: ok = parse_normalizer_spec(m, pf, &r, &f, e); break;
        default: break; /* self_test_data; denormalizer_spec (decode-side only) */
        }
        if (ok < 0) {
            rc = -1;
            break;
        }
    }
    m->pool = pool.data;
    return rc;
}

/* The hash map; duplicates are an error (SentencePiece allows the same text
 * as a control and a normal piece, which no real model has and which would
 * make piece_id ambiguous). */
static int build_index(spm_model *m, evo_err *e)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)m->n)
        cap *= 2;
    m->slot_mask = cap - 1;
    m->slots = evo_malloc(cap * sizeof *m->slots);
    memset(m->slots, 0xFF, cap * sizeof *m->slots);
    m->bmp_id = evo_malloc(0x10000 * sizeof *m->bmp_id);
    memset(m->bmp_id, 0xFF, 0x10000 * sizeof *m->bmp_id);
    for (uint32_t id = 0; id < m->n; id++) {
        const char *s = piece_text(m, (int32_t)id);
        size_t len = m->pieces[id].len;
        if (lookup(m, s, len) >= 0)
            return evo_errf(e, "piece %u \"%.*s\" is defined twice", id, (int)(len > 64 ? 64 : len), s);
        size_t j = text_hash(s, len) & m->slot_mask;
        while (m->slots[j] >= 0)
            j = (j + 1) & m->slot_mask;
        m->slots[j] = (int32_t)id;
        uint32_t cp = 0;
        if (len < 4 && evo_utf8_decode((const unsigned char *)s, len, &cp) == len)
            m->bmp_id[cp] = (int32_t)id;
    }
    return 0;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int find_specials(spm_model *m, const proto_fields *pf, evo_err *e)
{
    m->unk = -1;
    for (int i = 0; i < 256; i++)
        m->byte_id[i] = -1;
    for (uint32_t id = 0; id < m->n; id++) {
        const piece *p = &m->pieces[id];
        if (p->type == T_UNKNOWN) {
            if (m->unk >= 0)
                return evo_errf(e, "pieces %d and %u are both the unknown piece", m->unk, id);
            m->unk = (int32_t)id;
        } else if (p->type == T_UNUSED) {
            return evo_errf(e, "piece %u is of type UNUSED, which evo-tokenize does not support", id);
        } else if (p->type == T_BYTE) {
            /* "<0xXX>" with upper-case hex, exactly as SentencePiece writes it */
            const char *s = piece_text(m, (int32_t)id);
            int hi = p->len == 6 ? hex_digit(s[3]) : -1, lo = p->len == 6 ? hex_digit(s[4]) : -1;
            if (!pf->byte_fallback)
                return evo_errf(e, "byte piece %u found although byte_fallback is false", id);
            if (hi < 0 || lo < 0 || memcmp(s, "<0x", 3) || s[5] != '>')
                return evo_errf(e, "byte piece %u \"%.*s\" is not <0xXX>", id, (int)(p->len > 64 ? 64 : p->len), s);
            m->pieces[id].byte = (uint8_t)(hi * 16 + lo);
            m->byte_id[hi * 16 + lo] = (int32_t)id;
        }
    }
    if (m->unk < 0)
        return evo_errf(e, "no unknown piece (<unk>) in the model");
    /* As SentencePieceProcessor::bos_id(): the piece named in trainer_spec,
     * if it is a control piece. */
    int32_t b = pf->bos_piece ? lookup(m, (const char *)pf->bos_piece, pf->bos_piece_len) : lookup(m, "<s>", 3);
    int32_t s = pf->eos_piece ? lookup(m, (const char *)pf->eos_piece, pf->eos_piece_len) : lookup(m, "</s>", 4);
    m->bos = b >= 0 && m->pieces[b].type == T_CONTROL ? b : -1;
    m->eos = s >= 0 && m->pieces[s].type == T_CONTROL ? s : -1;
    const char *us = pf->unk_surface ? (const char *)pf->unk_surface : " \xE2\x81\x87 ";
    size_t ul = pf->unk_surface ? pf->unk_surface_len : 5;
    m->unk_surface = evo_malloc(ul + 1);
    memcpy(m->unk_surface, us, ul);
    m->unk_surface[ul] = '\0';
    return 0;
}

static int cmp_ud(const void *a, const void *b, void *mp)
{
    const spm_model *m = mp;
    const piece *x = &m->pieces[*(const int32_t *)a], *y = &m->pieces[*(const int32_t *)b];
    unsigned char cx = (unsigned char)m->pool[x->off], cy = (unsigned char)m->pool[y->off];
    if (cx != cy)
        return cx < cy ? -1 : 1;
    return x->len > y->len ? -1 : x->len < y->len;
}

static void build_user_symbols(spm_model *m)
{
    uint32_t count[256] = {0}, nud = 0;
    m->ud = evo_malloc((m->n + 1) * sizeof *m->ud);
    for (uint32_t id = 0; id < m->n; id++)
        if (m->pieces[id].type == T_USER_DEFINED) {
            m->ud[nud++] = (int32_t)id;
            count[(unsigned char)m->pool[m->pieces[id].off]]++;
        }
    qsort_r(m->ud, nud, sizeof *m->ud, cmp_ud, m);
    m->ud_start[0] = 0;
    for (int c = 0; c < 256; c++)
        m->ud_start[c + 1] = m->ud_start[c] + count[c];
    for (int c = 0; c < 256; c++)
        m->plain[c] = c < 0x80 && !count[c] && !(m->has_charsmap && m->cm.ascii_starts_key[c]);
}

static int cmp_score_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x > y ? -1 : x < y;
}

static inline int mergeable_result(uint8_t type) { return type == T_NORMAL || type == T_USER_DEFINED; }

/* Rules (a, b) -> p for every cut of every piece p that merging may produce
 * (SentencePiece looks merged text up among NORMAL and USER_DEFINED pieces,
 * and UNUSED ones, refused at load). A user-defined symbol is frozen, so it
 * is never a rule's side. */
static void build_rules(spm_model *m)
{
    float *scores = evo_malloc((m->n + 1) * sizeof *scores);
    size_t ns = 0;
    for (uint32_t id = 0; id < m->n; id++)
        if (mergeable_result(m->pieces[id].type))
            scores[ns++] = m->pieces[id].score;
    qsort(scores, ns, sizeof *scores, cmp_score_desc);
    size_t nu = 0;
    for (size_t i = 0; i < ns; i++)
        if (nu == 0 || scores[nu - 1] != scores[i])
            scores[nu++] = scores[i];

    m->rules = evo_bpe_new(2 * (size_t)m->n); /* a piece has about two splits into pieces */
    for (uint32_t id = 0; id < m->n; id++) {
        const piece *p = &m->pieces[id];
        if (!mergeable_result(p->type))
            continue;
        size_t lo = 0, hi = nu; /* dense rank: index of the score among distinct scores */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (scores[mid] > p->score)
                lo = mid + 1;
            else
                hi = mid;
        }
        const char *s = piece_text(m, (int32_t)id);
        for (uint32_t k = 1; k < p->len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80)
                continue;
            int32_t a = lookup(m, s, k), b;
            if (a < 0 || m->pieces[a].type == T_USER_DEFINED)
                continue;
            b = lookup(m, s + k, p->len - k);
            if (b < 0 || m->pieces[b].type == T_USER_DEFINED)
                continue;
            evo_bpe_add(m->rules, a, b, (int32_t)id, (int32_t)lo);
        }
    }
    evo_bpe_finish(m->rules);
    free(scores);
}

/* Whether the text w[0..len) holds the space symbol after a character that
 * is not one. */
static int space_after_other(const char *w, size_t len, const char *sym, size_t symlen)
{
    for (size_t i = 1; i + symlen <= len; i++)
        if (memcmp(w + i, sym, symlen) == 0 && !(i >= symlen && memcmp(w + i - symlen, sym, symlen) == 0))
            return 1;
    return 0;
}

/* safe_cut cuts in front of a single ASCII space between an ASCII letter or
 * digit and an ASCII letter. That splits the encoding exactly when (a) the
 * space starts a fresh normalization step and the text before it does not
 * normalize to a trailing space (checked on the charsmap; user symbols hold
 * no space), and (b) no piece or user symbol could span the cut, i.e. none
 * holds the space symbol after another character, and the space symbol is
 * itself a piece (else two <unk> on either side would merge into one). */
static int compute_cut_ok(const spm_model *m)
{
    if (m->ws_suffix)
        return 0;
    const char *sym = m->escape_ws ? WS : " ";
    size_t symlen = m->escape_ws ? 3 : 1;
    if (lookup(m, sym, symlen) < 0)
        return 0;
    for (uint32_t id = 0; id < m->n; id++) {
        const piece *p = &m->pieces[id];
        const char *s = piece_text(m, (int32_t)id);
        if (p->type == T_USER_DEFINED && memchr(s, ' ', p->len))
            return 0;
        if (space_after_other(s, p->len, sym, symlen))
            return 0;
    }
    return !m->has_charsmap || evo_charsmap_space_after_alnum_splits(&m->cm);
}

static const char *model_type_name(int32_t t)
{
    switch (t) {
    case MT_UNIGRAM: return "unigram";
    case MT_WORD: return "word";
    case MT_CHAR: return "char";
    default: return "unknown";
    }
}

static const struct evo_tokenizer_ops spm_ops;

int evo_spm_open(const uint8_t *data, size_t len, evo_tokenizer_model *out, evo_err *e)
{
    spm_model *m = evo_calloc(1, sizeof *m);
    proto_fields pf = {.model_type = MT_UNIGRAM}; /* the proto2 defaults */
    m->add_dummy_prefix = m->remove_extra_ws = m->escape_ws = 1;
    if (parse_model_proto(m, &pf, data, len, e) < 0)
        goto fail;
    if (m->n == 0) {
        evo_errf(e, "no pieces: not a SentencePiece model");
        goto fail;
    }
    if (pf.model_type != MT_BPE) {
        evo_errf(e, "unsupported SentencePiece model type: %s (evo-tokenize supports BPE models)",
                 model_type_name(pf.model_type));
        goto fail;
    }
    m->byte_fallback = pf.byte_fallback;
    m->ws_suffix = pf.ws_suffix;
    if (pf.charsmap_len) {
        if (evo_charsmap_init(&m->cm, pf.charsmap, pf.charsmap_len, e) < 0) {
            evo_err_prefix(e, "normalizer_spec.precompiled_charsmap at byte %zu", pf.charsmap_at);
            goto fail;
        }
        m->has_charsmap = 1;
    }
    if (build_index(m, e) < 0 || find_specials(m, &pf, e) < 0)
        goto fail;
    build_user_symbols(m);
    build_rules(m);
    m->cut_ok = compute_cut_ok(m);

    out->ops = &spm_ops;
    out->model = m;
    out->vocab_size = m->n;
    out->bos = m->bos;
    out->eos = m->eos;
    return 0;
fail:
    free_model(m);
    return -1;
}

/* ---- encoding --------------------------------------------------------- */

/* One step of SentencePiece's normalizer at s[0..n), n > 0: what the text
 * there becomes (*r, *rl) and how many bytes it consumes. */
static inline size_t norm_step(const spm_model *m, const char *s, size_t n, const char **r, size_t *rl)
{
    int32_t id;
    size_t k = ud_match(m, s, n, &id);
    if (k) {
        *r = s;
        *rl = k;
        return k;
    }
    if (m->has_charsmap && evo_charsmap_may_start(&m->cm, (unsigned char)s[0])) {
        evo_charsmap_hit h;
        if (evo_charsmap_prefixes(&m->cm, s, n, NULL, &h)) {
            *r = h.repl;
            *rl = h.repl_len;
            return h.len;
        }
    }
    uint32_t cp;
    k = evo_utf8_decode((const unsigned char *)s, n, &cp);
    if (!k) { /* one invalid byte becomes U+FFFD, as SentencePiece does */
        *r = "\xEF\xBF\xBD";
        *rl = 3;
        return 1;
    }
    *r = s;
    *rl = k;
    return k;
}

static inline void put_space(const spm_model *m, evo_buf *out)
{
    if (m->escape_ws)
        evo_buf_append(out, WS, 3);
    else
        evo_buf_push(out, ' ');
}

/* SentencePiece's Normalizer::Normalize, with the document-level steps
 * (leading-space removal, dummy prefix / suffix, trailing-space removal)
 * applied only where flags say this text starts / ends the document. */
static void normalize(const spm_model *m, const char *s, size_t n, unsigned flags, evo_buf *out)
{
    const char *r;
    size_t rl;
    int start = (flags & EVO_ENC_DOC_START) != 0, end = (flags & EVO_ENC_DOC_END) != 0;
    out->len = 0;
    if (n == 0)
        return;
    if (m->remove_extra_ws && start) {
        while (n) {
            size_t k = norm_step(m, s, n, &r, &rl);
            if (rl != 1 || r[0] != ' ')
                break;
            s += k;
            n -= k;
        }
        if (n == 0)
            return;
    }
    evo_buf_reserve(out, n + n / 2 + 8);
    if (start && m->add_dummy_prefix && !m->ws_suffix)
        put_space(m, out);
    /* A space is dropped when the normalized text so far ends in one. */
    int prev_space = start && m->remove_extra_ws;
    while (n) {
        unsigned char c = (unsigned char)*s;
        if (m->plain[c]) {
            s++;
            n--;
            if (c != ' ') {
                evo_buf_push(out, (char)c);
                prev_space = 0;
            } else if (!prev_space) {
                put_space(m, out);
                prev_space = m->remove_extra_ws;
            }
            continue;
        }
        size_t k = norm_step(m, s, n, &r, &rl);
        s += k;
        n -= k;
        if (prev_space)
            while (rl && *r == ' ')
                r++, rl--;
        if (rl) {
            evo_buf_reserve(out, 3 * rl);
            for (size_t i = 0; i < rl; i++)
                if (r[i] == ' ')
                    put_space(m, out);
                else
                    out->data[out->len++] = r[i];
            prev_space = m->remove_extra_ws && r[rl - 1] == ' ';
        }
    }
    if (m->remove_extra_ws && end) {
        const char *sym = m->escape_ws ? WS : " ";
        size_t symlen = m->escape_ws ? 3 : 1;
        while (out->len >= symlen && memcmp(out->data + out->len - symlen, sym, symlen) == 0)
            out->len -= symlen;
    }
    if (end && m->add_dummy_prefix && m->ws_suffix)
        put_space(m, out);
}

static void *encoder_new(const void *model)
{
    (void)model;
    return evo_calloc(1, sizeof(spm_scratch));
}

static void encoder_free(void *sp)
{
    spm_scratch *s = sp;
    if (!s)
        return;
    evo_buf_free(&s->norm);
    free(s->ids);
    free(s->starts);
    evo_bpe_scratch_free(&s->bpe);
    free(s);
}

static int encode(const void *model, void *sp, const char *text, size_t len, unsigned flags, evo_ids *out,
                  evo_err *e)
{
    const spm_model *m = model;
    spm_scratch *s = sp;
    normalize(m, text, len, flags, &s->norm);
    const char *t = s->norm.data;
    size_t nt = s->norm.len;
    if (nt == 0)
        return 0;
    if (nt >= UINT32_MAX)
        return evo_errf(e, "text of %zu bytes is too long for one piece of work (cut it with safe_cut)", len);
    if (nt + 1 > s->cap) {
        s->cap = nt + 1;
        s->ids = evo_realloc(s->ids, s->cap * sizeof *s->ids);
        s->starts = evo_realloc(s->starts, s->cap * sizeof *s->starts);
    }

    /* Symbols: user-defined symbols whole, else one character each. A
     * character that is not a piece gets id -1, which never merges. */
    size_t n = 0;
    for (size_t i = 0; i < nt;) {
        unsigned char c = (unsigned char)t[i];
        int32_t id;
        size_t k = m->ud_start[c] != m->ud_start[c + 1] ? ud_match(m, t + i, nt - i, &id) : 0;
        if (!k) {
            k = one_char_len(c);
            if (k > nt - i)
                k = nt - i;
            id = c < 0x80 ? m->bmp_id[c] : char_id(m, t + i, k);
        }
        s->ids[n] = id;
        s->starts[n++] = (uint32_t)i;
        i += k;
    }
    s->starts[n] = (uint32_t)nt;
    n = evo_bpe_merge(m->rules, &s->bpe, s->ids, s->starts, n);

    int prev_unk = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = s->ids[i];
        int is_unk = id < 0 || m->pieces[id].type == T_UNKNOWN;
        if (!is_unk) {
            evo_ids_push(out, id);
        } else if (m->byte_fallback) {
            for (uint32_t b = s->starts[i]; b < s->starts[i + 1]; b++) {
                int32_t bid = m->byte_id[(unsigned char)t[b]];
                evo_ids_push(out, bid >= 0 ? bid : m->unk);
            }
        } else if (!prev_unk) { /* a run of unknown symbols is one <unk> */
            evo_ids_push(out, m->unk);
        }
        prev_unk = is_unk;
    }
    return 0;
}

static inline int is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static inline int is_alpha(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

static size_t safe_cut(const void *model, const char *text, size_t len)
{
    const spm_model *m = model;
    if (!m->cut_ok || len < 3)
        return 0;
    const unsigned char *u = (const unsigned char *)text;
    for (size_t p = len - 2; p > 0; p--)
        if (u[p] == ' ' && is_alnum(u[p - 1]) && is_alpha(u[p + 1]))
            return p;
    return 0;
}

/* ---- decoding --------------------------------------------------------- */

/* A run of byte pieces decodes to its bytes, each invalid UTF-8 byte
 * replaced by U+FFFD (SentencePiece's ProcessBytePieces). */
static void flush_bytes(evo_buf *bytes, evo_buf *out)
{
    for (size_t i = 0; i < bytes->len;) {
        uint32_t cp = 0;
        size_t k = evo_utf8_decode((const unsigned char *)bytes->data + i, bytes->len - i, &cp);
        if (k) {
            evo_buf_append(out, bytes->data + i, k);
            i += k;
        } else {
            evo_buf_append(out, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    bytes->len = 0;
}

static int decode(const void *model, const int32_t *ids, size_t n, evo_buf *out, evo_err *e)
{
    const spm_model *m = model;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= m->n)
            return evo_errf(e, "token id %d is outside the vocabulary (%u pieces)", ids[i], m->n);
    evo_buf bytes = {0};
    size_t start = out->len;
    /* The dummy prefix: SentencePiece drops the space symbol that starts
     * the first piece, and keeps dropping while the text is still empty
     * only when extra spaces were removed at encoding. */
    int strip = m->add_dummy_prefix || m->remove_extra_ws, stripped = 0;
    for (size_t i = 0; i < n; i++) {
        const piece *p = &m->pieces[ids[i]];
        if (p->type == T_BYTE) {
            evo_buf_push(&bytes, (char)p->byte);
            continue;
        }
        flush_bytes(&bytes, out);
        if (p->type == T_CONTROL)
            continue;
        if (p->type == T_UNKNOWN) {
            evo_buf_append(out, m->unk_surface, strlen(m->unk_surface));
            continue;
        }
        const char *s = piece_text(m, ids[i]);
        size_t len = p->len;
        if (strip && !stripped && out->len == start && len >= 3 && memcmp(s, WS, 3) == 0) {
            s += 3, len -= 3;
            stripped = !m->remove_extra_ws;
        }
        for (size_t j = 0; j < len;)
            if (j + 3 <= len && memcmp(s + j, WS, 3) == 0) {
                evo_buf_push(out, ' ');
                j += 3;
            } else {
                evo_buf_push(out, s[j++]);
            }
    }
    flush_bytes(&bytes, out);
    evo_buf_free(&bytes);
    return 0;
}

static int32_t piece_id(const void *model, const char *text, size_t len) { return lookup(model, text, len); }

static const struct evo_tokenizer_ops spm_ops = {
    .kind = "sentencepiece-bpe",
    .free = free_model,
    .encoder_new = encoder_new,
    .encoder_free = encoder_free,
    .encode = encode,
    .safe_cut = safe_cut,
    .decode = decode,
    .piece_id = piece_id,
};
