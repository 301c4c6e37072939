/* hf_encode.c - encoding and decoding with a loaded HF tokenizer.json. */
#include "text/hf.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <xxhash.h>

#include "text/tokenizer_impl.h"
#include "text/utf8.h"

/* Rust regex's \w: letters, marks, decimal and letter numbers, connectors. */
static int is_word_char(uint32_t c)
{
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_NL) || k == UTF8PROC_CATEGORY_PC ||
           c == 0x200C || c == 0x200D;
}

/* ---------------------------------------------------------- encoder -- */

/* Words up to this many bytes are remembered with their ids; longer ones
 * are rare and cost little extra to merge again. The cache (6 MB a
 * thread) starts over at half load, 128k words: enough for the distinct
 * words of a large corpus, each then merged once. */
#define CACHE_MAX_KEY 64
#define CACHE_SLOTS (1u << 18)

typedef struct {
    uint64_t hash;
    uint32_t key_off, val_off;
    uint16_t key_len, val_len;
} cache_slot;

typedef struct {
    const hf_model *m;
    evo_buf clean, seg, tmp, arena;
    evo_spans pcs[2], mt;
    evo_pattern_scratch ps;
    evo_bpe_scratch bs;
    int32_t *sym;
    size_t sym_cap;
    cache_slot *cache;
    size_t cache_n;
    evo_buf cache_keys;
    evo_ids cache_vals;
} hf_enc;

static void *enc_new(const void *model)
{
    hf_enc *x = evo_calloc(1, sizeof *x);
    x->m = model;
    x->cache = evo_calloc(CACHE_SLOTS, sizeof *x->cache);
    return x;
}

static void enc_free(void *p)
{
    hf_enc *x = p;
    if (!x)
        return;
    evo_buf_free(&x->clean);
    evo_buf_free(&x->seg);
    evo_buf_free(&x->tmp);
    evo_buf_free(&x->arena);
    free(x->pcs[0].data);
    free(x->pcs[1].data);
    free(x->mt.data);
    evo_pattern_scratch_free(&x->ps);
    evo_bpe_scratch_free(&x->bs);
    free(x->sym);
    free(x->cache);
    evo_buf_free(&x->cache_keys);
    evo_ids_free(&x->cache_vals);
    free(x);
}

/* Room for the initial symbols of a word of len bytes: one per byte at
 * most, but byte fallback on a byte-level model's GPT-2 character, up to
 * two bytes long. */
static void reserve_syms(hf_enc *x, size_t len)
{
    size_t need = (x->m->byte_level && x->m->byte_fallback ? 2 : 1) * len;
    if (need > x->sym_cap) {
        x->sym_cap = need > 2 * x->sym_cap ? need : 2 * x->sym_cap;
        x->sym = evo_realloc(x->sym, x->sym_cap * sizeof *x->sym);
    }
}

static inline void push_sym(hf_enc *x, size_t *n, int32_t id)
{
    x->sym[(*n)++] = id;
}

/* tokenizers' BPE::merge_word, initial symbols: a character the vocabulary
 * lacks becomes its <0xXX> byte tokens (byte_fallback) or the unk token,
 * consecutive unks fused into one when fuse_unk; without either it is
 * dropped. A pending unk waits until the next known character, exactly as
 * there (byte-fallback tokens do not flush it). */
static int unknown_char(hf_enc *x, size_t *n, const char *text, size_t len, int *unk_pending, evo_err *e)
{
    const hf_model *m = x->m;
    if (m->byte_fallback) {
        size_t k = 0;
        while (k < len && m->fallback_id[(unsigned char)text[k]] >= 0)
            k++;
        if (k == len) {
            for (k = 0; k < len; k++)
                push_sym(x, n, m->fallback_id[(unsigned char)text[k]]);
            return 0;
        }
    }
    if (m->unk_missing)
        return evo_errf(e, "the unk_token of tokenizer.json is not in its vocabulary");
    if (m->unk_id < 0)
        return 0;
    if (*unk_pending && !m->fuse_unk)
        push_sym(x, n, m->unk_id);
    *unk_pending = 1;
    return 0;
}

static int initial_symbols(hf_enc *x, const char *w, size_t len, size_t *count, evo_err *e)
{
    const hf_model *m = x->m;
    size_t n = 0;
    int unk = 0;
    reserve_syms(x, len);
    for (size_t i = 0; i < len;) {
        int32_t id;
        size_t l;
        if (m->byte_level) {
            l = 1;
            id = m->byte_id[(unsigned char)w[i]];
        } else {
            uint32_t cp;
            l = evo_utf8_decode((const unsigned char *)w + i, len - i, &cp);
            if (!l)
                return evo_errf(e, "internal error: invalid UTF-8 reached BPE");
            id = cp < 0x10000 ? m->bmp_id[cp] : hf_map_get(&m->vocab, w + i, l);
        }
        if (id >= 0) {
            if (unk)
                push_sym(x, &n, m->unk_id);
            unk = 0;
            push_sym(x, &n, id);
        } else {
            /* byte fallback sees the character: for a byte-level model the
             * byte's GPT-2 character */
            char mapped[4];
            size_t ml = m->byte_level ? evo_utf8_encode(hf_byte_char((unsigned char)w[i]), mapped) : 0;
            if (unknown_char(x, &n, ml ? mapped : w + i, ml ? ml : l, &unk, e) < 0)
                return -1;
        }
        i += l;
    }
    if (unk)
        push_sym(x, &n, m->unk_id);
    *count = n;
    return 0;
}

static int encode_word_uncached(hf_enc *x, const char *w, size_t len, evo_ids *out, evo_err *e)
{
    const hf_model *m = x->m;
    if (m->ignore_merges) {
        int32_t id = hf_map_get(m->byte_level ? &m->raw : &m->vocab, w, len);
        if (id >= 0) {
            evo_ids_push(out, id);
            return 0;
        }
    }
    size_t n = 0;
    if (initial_symbols(x, w, len, &n, e) < 0)
        return -1;
    if (!n) /* every character dropped: no unk token, no byte fallback */
        return 0;
    n = evo_bpe_merge(m->bpe, &x->bs, x->sym, NULL, n);
    evo_ids_reserve(out, n);
    memcpy(out->data + out->len, x->sym, n * sizeof *x->sym);
    out->len += n;
    return 0;
}

static int encode_cached(hf_enc *x, const char *w, size_t len, evo_ids *out, evo_err *e)
{
    if (len > CACHE_MAX_KEY)
        return encode_word_uncached(x, w, len, out, e);
    uint64_t h = XXH3_64bits(w, len);
    cache_slot *slot = NULL;
    for (size_t j = (size_t)h & (CACHE_SLOTS - 1);; j = (j + 1) & (CACHE_SLOTS - 1)) {
        cache_slot *c = &x->cache[j];
        if (!c->key_len) {
            slot = c;
            break;
        }
        if (c->hash == h && c->key_len == len && !memcmp(x->cache_keys.data + c->key_off, w, len)) {
            evo_ids_reserve(out, c->val_len);
            memcpy(out->data + out->len, x->cache_vals.data + c->val_off, c->val_len * sizeof(int32_t));
            out->len += c->val_len;
            return 0;
        }
    }
    size_t before = out->len;
    if (encode_word_uncached(x, w, len, out, e) < 0)
        return -1;
    /* Full at half load: start over rather than evict (words repeat, and
     * the hot ones come back within a few thousand words). */
    if (2 * (x->cache_n + 1) > CACHE_SLOTS) {
        memset(x->cache, 0, CACHE_SLOTS * sizeof *x->cache);
        x->cache_n = 0;
        x->cache_keys.len = 0;
        x->cache_vals.len = 0;
        for (size_t j = (size_t)h & (CACHE_SLOTS - 1);; j = (j + 1) & (CACHE_SLOTS - 1))
            if (!x->cache[j].key_len) {
                slot = &x->cache[j];
                break;
            }
    }
    size_t nv = out->len - before;
    if (nv > UINT16_MAX)
        return 0;
    *slot = (cache_slot){h, (uint32_t)x->cache_keys.len, (uint32_t)x->cache_vals.len, (uint16_t)len, (uint16_t)nv};
    evo_buf_append(&x->cache_keys, w, len);
    evo_ids_reserve(&x->cache_vals, nv);
    memcpy(x->cache_vals.data + x->cache_vals.len, out->data + before, nv * sizeof(int32_t));
    x->cache_vals.len += nv;
    x->cache_n++;
    return 0;
}

/* A word of a character-level model (without a pre-tokenizer: a whole
 * line) is cut before each space symbol that follows an ASCII character no
 * merge glues to it (hf.h): BPE on the parts gives the same ids, and the
 * parts are short enough to cache and to repeat, as whole lines rarely do. */
static int encode_word(hf_enc *x, const char *w, size_t len, evo_ids *out, evo_err *e)
{
    const hf_model *m = x->m;
    if (m->byte_level || m->ignore_merges || !m->space_sym_known)
        return encode_cached(x, w, len, out, e);
    const char *end = w + len, *start = w, *p = w + 1;
    while (p < end && (p = memmem(p, (size_t)(end - p), m->space_sym, m->space_sym_len))) {
        unsigned char c = (unsigned char)p[-1];
        if (c < 128 && !m->glue[c] && m->bmp_id[c] >= 0) {
            if (encode_cached(x, start, (size_t)(p - start), out, e) < 0)
                return -1;
            start = p;
        }
        p += m->space_sym_len;
    }
    return encode_cached(x, start, (size_t)(end - start), out, e);
}

/* ByteLevel's add_prefix_space: a copy of an arena piece with a space in
 * front (reserved first: the append may move the arena under the piece). */
static evo_span prefix_space(hf_enc *x, evo_span in)
{
    evo_buf_reserve(&x->arena, (size_t)in.len + 1);
    evo_span sp = {(uint32_t)x->arena.len, in.len + 1};
    x->arena.data[x->arena.len++] = ' ';
    memcpy(x->arena.data + x->arena.len, x->arena.data + in.off, in.len);
    x->arena.len += in.len;
    return sp;
}

/* Metaspace: every ' ' becomes the replacement; the replacement goes in
 * front per prepend_scheme ("first": only the piece at offset 0 of the
 * document). */
static evo_span metaspace_piece(hf_enc *x, const hf_pre *p, evo_span in, int at_doc_start)
{
    evo_span sp = {(uint32_t)x->arena.len, 0};
    evo_buf_reserve(&x->arena, (size_t)in.len * p->rep_len + p->rep_len);
    const char *s = x->arena.data + in.off; /* stable: reserved above */
    /* tokenizers tests for the replacement after replacing the spaces */
    int starts_with_rep = (in.len >= p->rep_len && !memcmp(s, p->rep, p->rep_len)) || (in.len && s[0] == ' ');
    if (!starts_with_rep && (p->prepend == HF_PREPEND_ALWAYS || (p->prepend == HF_PREPEND_FIRST && at_doc_start)))
        evo_buf_append(&x->arena, p->rep, p->rep_len);
    for (uint32_t i = 0; i < in.len; i++) {
        if (s[i] == ' ')
            evo_buf_append(&x->arena, p->rep, p->rep_len);
        else
            evo_buf_push(&x->arena, s[i]);
    }
    sp.len = (uint32_t)(x->arena.len - sp.off);
    return sp;
}

/* Pre-tokenizes one piece of normalized text and encodes its words. */
static int encode_piece(hf_enc *x, const char *s, size_t n, int at_doc_start, evo_ids *out, evo_err *e)
{
    const hf_model *m = x->m;
    if (n > UINT32_MAX / 4)
        return evo_errf(e, "a text segment of %zu bytes is too long", n);
    x->arena.len = 0;
    evo_spans *cur = &x->pcs[0], *next = &x->pcs[1];
    cur->len = 0;
    evo_spans_push(cur, 0, (uint32_t)n);
    evo_buf_append(&x->arena, s, n);
    for (size_t k = 0; k < m->npre; k++) {
        const hf_pre *p = &m->pres[k];
        if (p->type == HF_PRE_BYTELEVEL && !p->add_prefix_space && !p->pat)
            continue; /* the byte mapping itself is implicit: words stay raw bytes */
        next->len = 0;
        for (size_t i = 0; i < cur->len; i++) {
            evo_span in = cur->data[i];
            int first = at_doc_start && i == 0;
            size_t before = next->len;
            if (p->type == HF_PRE_METASPACE)
                in = metaspace_piece(x, p, in, first);
            else if (p->type == HF_PRE_BYTELEVEL && p->add_prefix_space && x->arena.data[in.off] != ' ')
                in = prefix_space(x, in);
            if (p->pat && (p->type != HF_PRE_METASPACE || p->split)) {
                if (evo_pattern_split(p->pat, &x->ps, x->arena.data + in.off, in.len, in.off, p->behavior, p->invert,
                                      &x->mt, next, e) < 0)
                    return -1;
            } else {
                evo_spans_push(next, in.off, in.len);
            }
            /* Only a piece that still begins where the document does is
             * "first" for a later Metaspace. */
            if (first && (next->len == before || next->data[before].off != in.off))
                at_doc_start = 0;
        }
        evo_spans *t = cur;
        cur = next;
        next = t;
    }
    for (size_t i = 0; i < cur->len; i++)
        if (encode_word(x, x->arena.data + cur->data[i].off, cur->data[i].len, out, e) < 0)
            return -1;
    return 0;
}

/* Leftmost-longest added token in s[from..n): returns its index or -1. */
static int32_t find_added(const hf_trie *t, const char *s, size_t n, size_t from, size_t *start, size_t *end)
{
    if (!t->node)
        return -1;
    for (size_t p = from; p < n; p++) {
        if (!t->can_start[(unsigned char)s[p]])
            continue;
        int32_t cur = 0, best = -1;
        for (size_t q = p; q < n; q++) {
            int32_t k = t->node[cur].child;
            while (k >= 0 && t->node[k].byte != (unsigned char)s[q])
                k = t->node[k].sibling;
            if (k < 0)
                break;
            cur = k;
            if (t->node[k].token >= 0) {
                best = t->node[k].token;
                *end = q + 1;
            }
        }
        if (best >= 0) {
            *start = p;
            return best;
        }
    }
    return -1;
}

typedef int (*segment_fn)(hf_enc *x, const char *s, size_t n, int at_doc_start, int chunk_first, evo_ids *out,
                          evo_err *e);

/* tokenizers' AddedVocabulary::find_matches + split_with_indices: emits the
 * tokens found in s[0..n) and hands the text between them to fn. */
static int split_added(hf_enc *x, const hf_trie *t, const char *s, size_t n, int at_doc_start, segment_fn fn,
                       evo_ids *out, evo_err *e)
{
    const hf_model *m = x->m;
    size_t done = 0, from = 0, a = 0, b = 0;
    int32_t k;
    while ((k = find_added(t, s, n, from, &a, &b)) >= 0) {
        const hf_added *tok = &m->added[k];
        from = b;
        uint32_t cp;
        if (tok->single_word && ((a > 0 && (hf_char_before(s, a, &cp), is_word_char(cp))) ||
                                 (b < n && evo_utf8_decode((const unsigned char *)s + b, n - b, &cp) &&
                                  is_word_char(cp))))
            continue;
        if (tok->lstrip) {
            size_t l;
            while (a > done && (l = hf_char_before(s, a, &cp)) && hf_is_white_space(cp))
                a -= l;
        }
        if (tok->rstrip) {
            size_t l;
            while (b < n && (l = evo_utf8_decode((const unsigned char *)s + b, n - b, &cp)) &&
                   hf_is_white_space(cp))
                b += l;
            from = b;
        }
        if (a > done && fn(x, s + done, a - done, at_doc_start && done == 0, done == 0, out, e) < 0)
            return -1;
        evo_ids_push(out, tok->id);
        done = b;
    }
    if (done < n && fn(x, s + done, n - done, at_doc_start && done == 0, done == 0, out, e) < 0)
        return -1;
    return 0;
}

static int normalized_gap(hf_enc *x, const char *s, size_t n, int at_doc_start, int chunk_first, evo_ids *out,
                          evo_err *e)
{
    (void)chunk_first;
    return encode_piece(x, s, n, at_doc_start, out, e);
}

static int raw_segment(hf_enc *x, const char *s, size_t n, int at_doc_start, int chunk_first, evo_ids *out,
                       evo_err *e)
{
    const hf_model *m = x->m;
    if (!m->nnorm)
        return split_added(x, &m->norm_trie, s, n, at_doc_start, normalized_gap, out, e);
    /* Prepend applies to every segment except the first of a chunk that
     * continues a document (its text was cut there, not begun). */
    int prepend = !chunk_first || at_doc_start;
    if (hf_normalize(m, &x->ps, s, n, prepend, &x->seg, &x->tmp, e) < 0)
        return -1;
    /* seg is reused by the next segment only after this one is done; the
     * pieces below are copied into the arena first. */
    return split_added(x, &m->norm_trie, x->seg.data, x->seg.len, at_doc_start, normalized_gap, out, e);
}

static int hf_encode(const void *model, void *scratch, const char *text, size_t len, unsigned flags, evo_ids *out,
                     evo_err *e)
{
    (void)model;
    hf_enc *x = scratch;
    if (evo_utf8_valid_prefix(text, len) != len) {
        x->clean.len = 0;
        evo_utf8_replace_invalid(text, len, &x->clean);
        text = x->clean.data;
        len = x->clean.len;
    }
    return split_added(x, &x->m->raw_trie, text, len, (flags & EVO_ENC_DOC_START) != 0, raw_segment, out, e);
}

static int is_ascii_alnum(unsigned char c) { return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z'); }

static size_t hf_safe_cut(const void *model, const char *text, size_t len)
{
    const hf_model *m = model;
    if (!m->cut_ok)
        return 0;
    for (size_t p = len >= 2 ? len - 2 : 0; p > 0; p--) {
        unsigned char c = (unsigned char)text[p - 1], nx = (unsigned char)text[p + 1];
        if (text[p] != ' ' || !is_ascii_alnum(c) || !((nx | 32) >= 'a' && (nx | 32) <= 'z'))
            continue;
        if (m->cut_needs_glue && (m->glue[c] || (m->byte_level ? m->byte_id[c] : m->bmp_id[c]) < 0))
            continue;
        return p;
    }
    return 0;
}

static int32_t hf_piece_id(const void *model, const char *piece, size_t len)
{
    const hf_model *m = model;
    for (size_t i = 0; i < m->nadded; i++)
        if (m->added[i].len == len && !memcmp(m->added_text.data + m->added[i].off, piece, len))
            return m->added[i].id;
    return hf_map_get(&m->vocab, piece, len);
}

/* ---------------------------------------------------------- decoder -- */

/* A list of strings, as tokenizers' decoders pass along: spans in text. */
typedef struct {
    evo_buf text;
    evo_spans s;
} str_list;

static void list_add(str_list *l, const char *p, size_t n)
{
    evo_spans_push(&l->s, (uint32_t)l->text.len, (uint32_t)n);
    if (n)
        evo_buf_append(&l->text, p, n);
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10 : -1;
}

/* "<0xAB>" -> 0xAB, as Rust's u8::from_str_radix(&t[3..5], 16) (which
 * also takes "+A"); -1 otherwise. */
static int byte_token(const char *t, size_t n)
{
    if (n != 6 || memcmp(t, "<0x", 3) || t[5] != '>')
        return -1;
    if (t[3] == '+')
        return hex_digit(t[4]);
    int h = hex_digit(t[3]), l = hex_digit(t[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

static void apply_decoder(const hf_dec *d, str_list *in, str_list *out)
{
    out->text.len = 0;
    out->s.len = 0;
    evo_buf bytes = {0};
    if (d->type == HF_DEC_BYTELEVEL || d->type == HF_DEC_FUSE) {
        for (size_t i = 0; i < in->s.len; i++) {
            const char *t = in->text.data + in->s.data[i].off;
            size_t n = in->s.data[i].len, start = bytes.len, k = 0;
            while (d->type == HF_DEC_BYTELEVEL && k < n) {
                uint32_t cp;
                size_t l = evo_utf8_decode((const unsigned char *)t + k, n - k, &cp);
                int b = l ? hf_char_byte(cp) : -1;
                if (b < 0)
                    break;
                evo_buf_push(&bytes, (char)b);
                k += l;
            }
            if (d->type == HF_DEC_FUSE || k < n) { /* a character outside the table: the token as is */
                bytes.len = start;
                if (n)
                    evo_buf_append(&bytes, t, n);
            }
        }
        evo_buf fixed = {0};
        evo_utf8_replace_invalid(bytes.data ? bytes.data : "", bytes.len, &fixed);
        list_add(out, fixed.data, fixed.len);
        evo_buf_free(&fixed);
        evo_buf_free(&bytes);
        return;
    }
    for (size_t i = 0; i <= in->s.len; i++) {
        const char *t = i < in->s.len ? in->text.data + in->s.data[i].off : NULL;
        size_t n = i < in->s.len ? in->s.data[i].len : 0;
        if (d->type == HF_DEC_BYTEFALLBACK) {
            int b = t ? byte_token(t, n) : -1;
            if (b >= 0) {
                evo_buf_push(&bytes, (char)b);
                continue;
            }
            if (bytes.len) { /* valid UTF-8 as one string, else one U+FFFD per byte */
                if (evo_utf8_valid_prefix(bytes.data, bytes.len) == bytes.len)
                    list_add(out, bytes.data, bytes.len);
                else
                    for (size_t k = 0; k < bytes.len; k++)
                        list_add(out, "\xEF\xBF\xBD", 3);
                bytes.len = 0;
            }
            if (t)
                list_add(out, t, n);
            continue;
        }
        if (!t)
            break;
        size_t start = out->text.len;
        if (d->type == HF_DEC_REPLACE || d->type == HF_DEC_METASPACE) {
            for (size_t k = 0; k < n;) {
                if (n - k >= d->from_len && !memcmp(t + k, d->from, d->from_len)) {
                    if (d->type == HF_DEC_REPLACE)
                        evo_buf_append(&out->text, d->to, d->to_len);
                    else if (i > 0 || d->prepend_never)
                        evo_buf_push(&out->text, ' ');
                    k += d->from_len;
                } else {
                    evo_buf_push(&out->text, t[k++]);
                }
            }
        } else { /* HF_DEC_STRIP: up to start leading / stop trailing copies of one character */
            size_t a = 0, b = n, l;
            uint32_t cp;
            for (size_t c = 0; c < d->strip_start && a < b; c++) {
                l = evo_utf8_decode((const unsigned char *)t + a, b - a, &cp);
                if (!l || cp != d->strip_char)
                    break;
                a += l;
            }
            for (size_t c = 0; c < d->strip_stop && b > a; c++) {
                l = hf_char_before(t, b, &cp);
                if (cp != d->strip_char)
                    break;
                b -= l;
            }
            if (b > a)
                evo_buf_append(&out->text, t + a, b - a);
        }
        evo_spans_push(&out->s, (uint32_t)start, (uint32_t)(out->text.len - start));
    }
    evo_buf_free(&bytes);
}

static int hf_decode(const void *model, const int32_t *ids, size_t n, evo_buf *out, evo_err *e)
{
    const hf_model *m = model;
    str_list a = {0}, b = {0};
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= m->vocab_size || m->tok_len[ids[i]] == UINT32_MAX) {
            evo_buf_free(&a.text);
            free(a.s.data);
            return evo_errf(e, "token id %d is not in the vocabulary", ids[i]);
        }
        list_add(&a, m->tok_text.data + m->tok_off[ids[i]], m->tok_len[ids[i]]);
    }
    str_list *cur = &a, *nx = &b;
    for (size_t k = 0; k < m->ndec; k++) {
        apply_decoder(&m->decs[k], cur, nx);
        str_list *t = cur;
        cur = nx;
        nx = t;
    }
    for (size_t i = 0; i < cur->s.len; i++) {
        if (!m->has_decoder && i > 0) /* tokenizers joins undecoded tokens with spaces */
            evo_buf_push(out, ' ');
        if (cur->s.data[i].len)
            evo_buf_append(out, cur->text.data + cur->s.data[i].off, cur->s.data[i].len);
    }
    evo_buf_free(&a.text);
    evo_buf_free(&b.text);
    free(a.s.data);
    free(b.s.data);
    return 0;
}

#define HF_OPS(name, kind_string)                                                                                   \
    static const struct evo_tokenizer_ops name = {                                                                         \
        .kind = kind_string,                                                                                        \
        .free = hf_model_free,                                                                                      \
        .encoder_new = enc_new,                                                                                     \
        .encoder_free = enc_free,                                                                                   \
        .encode = hf_encode,                                                                                        \
        .safe_cut = hf_safe_cut,                                                                                    \
        .decode = hf_decode,                                                                                        \
        .piece_id = hf_piece_id,                                                                                    \
    }
HF_OPS(hf_bytelevel_ops, "hf-bpe-bytelevel");
HF_OPS(hf_metaspace_ops, "hf-bpe-metaspace");

int evo_hf_open(const uint8_t *data, size_t len, evo_tokenizer_model *out, evo_err *e)
{
    int32_t bos, eos;
    hf_model *m = hf_model_load(data, len, &bos, &eos, e);
    if (!m)
        return -1;
    out->ops = m->byte_level ? &hf_bytelevel_ops : &hf_metaspace_ops;
    out->model = m;
    out->vocab_size = m->vocab_size;
    out->bos = bos;
    out->eos = eos;
    return 0;
}
