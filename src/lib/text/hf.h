/* hf.h - the HF tokenizer.json BPE family, internal to its four files,
 * each using only those before it:
 *   hf_map.c        the string -> id hash map;
 *   hf_normalize.c  the normalizer chain;
 *   hf_load.c       reads tokenizer.json into an hf_model;
 *   hf_encode.c     encodes and decodes, and evo_hf_open, the entry point
 *                   the tokenizer layer (tokenizer_impl.h) calls.
 *
 * The pipeline is tokenizers' (tokenizer/mod.rs):
 *   1. split the raw text on added tokens that are not normalized;
 *   2. normalize each remaining segment (the normalizer chain);
 *   3. split the normalized segments on the normalized added tokens;
 *   4. pre-tokenize each piece (Split / ByteLevel / Metaspace steps);
 *   5. run BPE on each pre-token ("word").
 * Byte-level models never build GPT-2's byte-to-character strings: the
 * words stay raw bytes, and the vocabulary is indexed by the bytes each
 * token stands for (hf_model.raw), which is the same mapping inverted. */
#ifndef EVO_HF_H
#define EVO_HF_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"
#include "text/bpe.h"
#include "text/pretok.h"
#include "text/utf8.h"

/* A string -> id hash map; keys live in one arena. */
typedef struct {
    uint32_t *slots; /* entry index + 1; 0 = empty */
    size_t mask;
    struct hf_entry {
        uint64_t hash;
        uint32_t off, len;
        int32_t val;
    } *ent;
    size_t n, cap;
    evo_buf keys;
    size_t max_len; /* the longest key: longer lookups miss without hashing */
} hf_map;

int32_t hf_map_get(const hf_map *m, const char *s, size_t len); /* -1 if absent */
void hf_map_put(hf_map *m, const char *s, size_t len, int32_t val);
void hf_map_free(hf_map *m);

enum hf_norm_type { HF_NFC, HF_NFD, HF_NFKC, HF_NFKD, HF_LOWERCASE, HF_STRIP, HF_PREPEND, HF_REPLACE };

typedef struct {
    enum hf_norm_type type;
    char *str; /* Prepend's text, Replace's content */
    size_t str_len;
    evo_pattern *pat; /* Replace's pattern */
    int left, right;  /* Strip */
} hf_norm;

enum hf_pre_type { HF_PRE_SPLIT, HF_PRE_BYTELEVEL, HF_PRE_METASPACE };
enum hf_prepend { HF_PREPEND_NEVER, HF_PREPEND_FIRST, HF_PREPEND_ALWAYS };

typedef struct {
    enum hf_pre_type type;
    evo_pattern *pat; /* Split's; ByteLevel's GPT-2 regex (use_regex); Metaspace's replacement */
    enum evo_split_behavior behavior;
    int invert;
    int add_prefix_space;     /* ByteLevel */
    int known_regex;          /* Split/ByteLevel: a regex safe_cut understands */
    char rep[4];              /* Metaspace's replacement character */
    size_t rep_len;
    enum hf_prepend prepend;  /* Metaspace */
    int split;                /* Metaspace */
} hf_pre;

enum hf_dec_type { HF_DEC_BYTELEVEL, HF_DEC_METASPACE, HF_DEC_REPLACE, HF_DEC_BYTEFALLBACK, HF_DEC_FUSE, HF_DEC_STRIP };

typedef struct {
    enum hf_dec_type type;
    char *from, *to; /* Replace (literal pattern); Metaspace: from = replacement */
    size_t from_len, to_len;
    int prepend_never; /* Metaspace */
    uint32_t strip_char;
    size_t strip_start, strip_stop;
} hf_dec;

typedef struct {
    uint32_t off, len; /* content in hf_model.added_text */
    int32_t id;
    uint8_t special, normalized, lstrip, rstrip, single_word;
} hf_added;

/* Byte trie over added-token contents, for leftmost-longest matching. */
typedef struct {
    struct hf_trie_node {
        int32_t child, sibling; /* node indices, -1 = none */
        int32_t token;          /* index into hf_model.added, -1 = none */
        uint8_t byte;
    } *node;
    size_t n, cap;
    uint8_t can_start[256];
} hf_trie;

typedef struct {
    int byte_level;
    hf_map vocab;           /* the model's tokens as the file spells them */
    hf_map raw;             /* byte-level: the bytes each token stands for */
    int32_t byte_id[256];   /* byte-level: the token of byte b alone, -1 if none */
    int32_t fallback_id[256]; /* <0xXX> tokens, -1 if absent */
    int32_t *bmp_id;        /* char-level: single-character tokens below U+10000, -1 if none */
    evo_bpe *bpe;
    int ignore_merges, byte_fallback, fuse_unk;
    int32_t unk_id;         /* -1: no unk token */
    int unk_missing;        /* unk_token names no vocabulary entry: an unknown character is an error */
    uint32_t vocab_size;
    uint32_t *tok_off, *tok_len; /* id -> text in tok_text; len UINT32_MAX = no such id */
    evo_buf tok_text;
    hf_norm *norms;
    size_t nnorm;
    hf_pre *pres;
    size_t npre;
    hf_dec *decs;
    size_t ndec;
    int has_decoder;
    hf_added *added;
    size_t nadded;
    evo_buf added_text;
    hf_trie raw_trie, norm_trie; /* non-normalized / normalized added tokens */
    /* safe_cut: 0 = never cut; else cut before " " between an ASCII
     * alphanumeric and an ASCII letter, and when words span whole
     * segments also require that no merge can glue that space to the
     * character before it (glue[c] == 0). */
    int cut_ok, cut_needs_glue;
    uint8_t glue[128];
    /* What a space is when BPE sees it (" ", or e.g. "\u2581" after a
     * Replace normalizer or Metaspace), and whether it has a token of its
     * own. A word of a character-level model may be cut before it wherever
     * glue[] says no merge can cross: long words (no pre-tokenizer: one
     * word per segment) then split into short cacheable ones. */
    char space_sym[8];
    size_t space_sym_len;
    int space_sym_known;
} hf_model;

/* GPT-2's byte-level alphabet: printable Latin-1 bytes stand for
 * themselves; the other 68 (0x00-0x20, 0x7F-0xA0, 0xAD), in byte order,
 * take U+0100 to U+0143. */
static inline uint32_t hf_byte_char(unsigned b)
{
    return b <= 0x20 ? 0x100 + b : b >= 0x7F && b <= 0xA0 ? 0x100 + b - 0x5E : b == 0xAD ? 0x143 : b;
}

/* The inverse: the byte a character stands for, or -1. */
static inline int hf_char_byte(uint32_t cp)
{
    if (cp < 0x100)
        return cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD ? -1 : (int)cp;
    if (cp > 0x143)
        return -1;
    unsigned n = cp - 0x100;
    return n <= 0x20 ? (int)n : n <= 0x42 ? (int)(n + 0x5E) : 0xAD;
}

/* ---- character classes as tokenizers (Rust) sees them ---------------- */

/* Unicode White_Space: Rust's char::is_whitespace and regex \s. */
static inline int hf_is_white_space(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The character that ends at s[end) (valid UTF-8 before it). */
static inline size_t hf_char_before(const char *s, size_t end, uint32_t *cp)
{
    size_t b = end - 1;
    while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80)
        b--;
    if (!evo_utf8_decode((const unsigned char *)s + b, end - b, cp))
        *cp = 0xFFFD;
    return end - b;
}

/* hf_normalize.c: applies the normalizer chain to s[0..n), into out (emptied first).
 * prepend: whether Prepend normalizers apply (not at a chunk's start
 * that is not a document's start). */
int hf_normalize(const hf_model *m, evo_pattern_scratch *ps, const char *s, size_t n, int prepend, evo_buf *out,
                 evo_buf *tmp, evo_err *e);

/* hf_load.c: the model a tokenizer.json describes, with the ids of its
 * bos and eos tokens (-1 if none); NULL on error. hf_model_free takes a
 * void * to serve as the tokenizer's free op. */
hf_model *hf_model_load(const uint8_t *data, size_t len, int32_t *bos, int32_t *eos, evo_err *e);
void hf_model_free(void *model);

#endif
