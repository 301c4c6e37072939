/* hf_load.c - reads a HF tokenizer.json (BPE models) into an hf_model.
 *
 * The file is untrusted: every field's type is checked, ids are bounded,
 * and whatever tokenizers can do that we cannot reproduce exactly is
 * refused by name rather than approximated. */
#include "text/hf.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "text/utf8.h"

/* Ids index dense tables; a hostile "id": 4000000000 must not allocate. */
#define HF_MAX_ID (1 << 24)

/* ------------------------------------------------------- JSON access -- */

static int want_string(json_t *v, const char *what, const char **s, size_t *n, evo_err *e)
{
    *s = "";
    *n = 0;
    if (!json_is_string(v))
        return evo_errf(e, "tokenizer.json: %s must be a string", what);
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

/* A missing or null field takes its default, as serde's would. */
static int opt_bool(json_t *obj, const char *key, int dflt, int *out, const char *what, evo_err *e)
{
    json_t *v = json_object_get(obj, key);
    *out = dflt;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return evo_errf(e, "tokenizer.json: %s.%s must be true or false", what, key);
    *out = json_is_true(v);
    return 0;
}

static int opt_string(json_t *obj, const char *key, const char **s, size_t *n, const char *what, evo_err *e)
{
    json_t *v = json_object_get(obj, key);
    *s = NULL;
    *n = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return evo_errf(e, "tokenizer.json: %s.%s must be a string", what, key);
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

static const char *type_of(json_t *obj)
{
    json_t *t = json_object_get(obj, "type");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *d = evo_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* A {"String": "..."} or {"Regex": "..."} pattern. */
static int read_pattern(json_t *obj, const char *what, int allow_regex, evo_pattern **out, const char **lit,
                        size_t *lit_len, evo_err *e)
{
    json_t *pat = json_object_get(obj, "pattern");
    json_t *str = json_is_object(pat) ? json_object_get(pat, "String") : NULL;
    json_t *re = json_is_object(pat) ? json_object_get(pat, "Regex") : NULL;
    const char *s;
    size_t n;
    if (str) {
        if (want_string(str, what, &s, &n, e) < 0)
            return -1;
        if (!n)
            return evo_errf(e, "tokenizer.json: %s has an empty pattern", what);
        if (lit) {
            *lit = s;
            *lit_len = n;
        }
        if (out)
            *out = evo_pattern_literal(s, n);
        return 0;
    }
    if (re && allow_regex) {
        if (want_string(re, what, &s, &n, e) < 0)
            return -1;
        *out = evo_pattern_regex(s, n, e);
        if (!*out)
            return evo_err_prefix(e, "tokenizer.json: %s", what);
        return 0;
    }
    return evo_errf(e, "tokenizer.json: %s needs a pattern {\"String\": ...}%s", what,
                    allow_regex ? " or {\"Regex\": ...}" : "");
}

/* -------------------------------------------------------- normalizer -- */

/* What normalizers, pre-tokenizers and decoders share: null adds nothing,
 * a "Sequence" adds each item of its list in turn. Returns 1 when that
 * handled c, 0 with *type set when the caller adds one component of that
 * type, -1 on error. */
typedef int (*add_component_fn)(hf_model *m, json_t *c, evo_err *e);

static int expand_component(hf_model *m, json_t *c, const char *kind, const char *list_key, add_component_fn add,
                            const char **type, evo_err *e)
{
    if (json_is_null(c))
        return 1;
    *type = json_is_object(c) ? type_of(c) : NULL;
    if (!*type)
        return evo_errf(e, "tokenizer.json: %s must be an object with a \"type\"", kind);
    if (strcmp(*type, "Sequence"))
        return 0;
    json_t *list = json_object_get(c, list_key);
    if (!json_is_array(list))
        return evo_errf(e, "tokenizer.json: %s Sequence needs a \"%s\" array", kind, list_key);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) if (add(m, v, e) < 0) return -1;
    return 1;
}


static int add_normalizer(hf_model *m, json_t *n, evo_err *e)
{
    const char *t;
    int rc = expand_component(m, n, "normalizer", "normalizers", add_normalizer, &t, e);
    if (rc)
        return rc < 0 ? -1 : 0;
    hf_norm nm = {0};
    static const struct {
        const char *name;
        enum hf_norm_type type;
    } simple[] = {{"NFC", HF_NFC}, {"NFD", HF_NFD}, {"NFKC", HF_NFKC}, {"NFKD", HF_NFKD}, {"Lowercase", HF_LOWERCASE}};
    int found = 0;
    for (size_t i = 0; i < sizeof simple / sizeof *simple; i++)
        if (!strcmp(t, simple[i].name)) {
            nm.type = simple[i].type;
            found = 1;
        }
    if (found) {
    } else if (!strcmp(t, "Strip")) {
        nm.type = HF_STRIP;
        if (opt_bool(n, "strip_left", 1, &nm.left, "Strip", e) < 0 ||
            opt_bool(n, "strip_right", 1, &nm.right, "Strip", e) < 0)
            return -1;
    } else if (!strcmp(t, "Prepend")) {
        const char *s;
        size_t len;
        if (want_string(json_object_get(n, "prepend"), "normalizer Prepend.prepend", &s, &len, e) < 0)
            return -1;
        nm.type = HF_PREPEND;
        nm.str = dup_bytes(s, len);
        nm.str_len = len;
    } else if (!strcmp(t, "Replace")) {
        const char *s;
        size_t len;
        if (want_string(json_object_get(n, "content"), "normalizer Replace.content", &s, &len, e) < 0)
            return -1;
        nm.type = HF_REPLACE;
        if (read_pattern(n, "normalizer Replace", 1, &nm.pat, NULL, NULL, e) < 0)
            return -1;
        nm.str = dup_bytes(s, len);
        nm.str_len = len;
    } else {
        /* Precompiled among them: tokenizers applies it per grapheme
         * cluster (shortest trie match), which is not reproduced yet. */
        return evo_errf(e, "tokenizer.json: normalizer type '%s' is not supported", t);
    }
    m->norms = evo_realloc(m->norms, (m->nnorm + 1) * sizeof *m->norms);
    m->norms[m->nnorm++] = nm;
    return 0;
}

/* ----------------------------------------------------- pre-tokenizer -- */

/* The regexes of GPT-2, LLaMA-3 and Qwen2/3. None can match across, or
 * look across, an alphanumeric followed by a space: what safe_cut needs. */
static const char *const known_regexes[] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+",
};

static int is_known_regex(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof known_regexes / sizeof *known_regexes; i++)
        if (strlen(known_regexes[i]) == n && !memcmp(known_regexes[i], s, n))
            return 1;
    return 0;
}

static int read_behavior(json_t *p, enum evo_split_behavior *b, evo_err *e)
{
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    json_t *v = json_object_get(p, "behavior");
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    for (size_t i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) {
            *b = (enum evo_split_behavior)i;
            return 0;
        }
    return evo_errf(e, "tokenizer.json: pre_tokenizer Split has an unknown behavior '%s'", s);
}

/* Metaspace's prepend_scheme, or the older add_prefix_space flag. */
static int read_prepend_scheme(json_t *p, const char *what, enum hf_prepend *out, evo_err *e)
{
    json_t *v = json_object_get(p, "prepend_scheme");
    int aps;
    if (opt_bool(p, "add_prefix_space", 1, &aps, what, e) < 0)
        return -1;
    if (!v || json_is_null(v)) {
        *out = aps ? HF_PREPEND_ALWAYS : HF_PREPEND_NEVER;
        return 0;
    }
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    if (!strcmp(s, "always"))
        *out = HF_PREPEND_ALWAYS;
    else if (!strcmp(s, "first"))
        *out = HF_PREPEND_FIRST;
    else if (!strcmp(s, "never"))
        *out = HF_PREPEND_NEVER;
    else
        return evo_errf(e, "tokenizer.json: %s has an unknown prepend_scheme '%s'", what, s);
    if (!aps && *out != HF_PREPEND_NEVER)
        return evo_errf(e, "tokenizer.json: %s: add_prefix_space does not match prepend_scheme", what);
    return 0;
}

static int read_replacement(json_t *p, const char *what, char rep[4], size_t *rep_len, evo_err *e)
{
    const char *s;
    size_t n;
    uint32_t cp;
    if (want_string(json_object_get(p, "replacement"), what, &s, &n, e) < 0)
        return -1;
    if (!n || n > 4 || evo_utf8_decode((const unsigned char *)s, n, &cp) != n)
        return evo_errf(e, "tokenizer.json: %s.replacement must be one character", what);
    memcpy(rep, s, n);
    *rep_len = n;
    return 0;
}

static int add_pre_tokenizer(hf_model *m, json_t *p, evo_err *e)
{
    const char *t;
    int rc = expand_component(m, p, "pre_tokenizer", "pretokenizers", add_pre_tokenizer, &t, e);
    if (rc)
        return rc < 0 ? -1 : 0;
    if (m->byte_level)
        return evo_errf(e, "tokenizer.json: pre_tokenizer '%s' after ByteLevel is not supported", t);
    hf_pre pt = {0};
    if (!strcmp(t, "Split")) {
        pt.type = HF_PRE_SPLIT;
        const char *lit;
        size_t lit_len;
        json_t *re = json_object_get(json_object_get(p, "pattern"), "Regex");
        /* the pattern last: nothing can fail after it is compiled */
        if (read_behavior(p, &pt.behavior, e) < 0 || opt_bool(p, "invert", 0, &pt.invert, "Split", e) < 0 ||
            read_pattern(p, "pre_tokenizer Split", 1, &pt.pat, &lit, &lit_len, e) < 0)
            return -1;
        pt.known_regex = json_is_string(re) && is_known_regex(json_string_value(re), json_string_length(re)) &&
                         pt.behavior == EVO_SPLIT_ISOLATED && !pt.invert;
    } else if (!strcmp(t, "ByteLevel")) {
        int use_regex;
        pt.type = HF_PRE_BYTELEVEL;
        if (opt_bool(p, "add_prefix_space", 1, &pt.add_prefix_space, "ByteLevel", e) < 0 ||
            opt_bool(p, "use_regex", 1, &use_regex, "ByteLevel", e) < 0)
            return -1;
        if (use_regex) {
            pt.pat = evo_pattern_regex(known_regexes[0], strlen(known_regexes[0]), e);
            if (!pt.pat)
                return -1;
            pt.behavior = EVO_SPLIT_ISOLATED;
            pt.known_regex = 1;
        }
        m->byte_level = 1;
    } else if (!strcmp(t, "Metaspace")) {
        pt.type = HF_PRE_METASPACE;
        if (read_replacement(p, "pre_tokenizer Metaspace", pt.rep, &pt.rep_len, e) < 0 ||
            read_prepend_scheme(p, "pre_tokenizer Metaspace", &pt.prepend, e) < 0 ||
            opt_bool(p, "split", 1, &pt.split, "Metaspace", e) < 0)
            return -1;
        pt.pat = evo_pattern_literal(pt.rep, pt.rep_len);
        pt.behavior = EVO_SPLIT_MERGED_WITH_NEXT;
    } else {
        return evo_errf(e, "tokenizer.json: pre_tokenizer type '%s' is not supported", t);
    }
    m->pres = evo_realloc(m->pres, (m->npre + 1) * sizeof *m->pres);
    m->pres[m->npre++] = pt;
    return 0;
}

/* ----------------------------------------------------------- decoder -- */

static int add_decoder(hf_model *m, json_t *d, evo_err *e)
{
    const char *t;
    int rc = expand_component(m, d, "decoder", "decoders", add_decoder, &t, e);
    if (rc)
        return rc < 0 ? -1 : 0;
    hf_dec dc = {0};
    if (!strcmp(t, "ByteLevel")) {
        dc.type = HF_DEC_BYTELEVEL;
    } else if (!strcmp(t, "ByteFallback")) {
        dc.type = HF_DEC_BYTEFALLBACK;
    } else if (!strcmp(t, "Fuse")) {
        dc.type = HF_DEC_FUSE;
    } else if (!strcmp(t, "Metaspace")) {
        enum hf_prepend ps;
        char rep[4];
        dc.type = HF_DEC_METASPACE;
        if (read_replacement(d, "decoder Metaspace", rep, &dc.from_len, e) < 0 ||
            read_prepend_scheme(d, "decoder Metaspace", &ps, e) < 0)
            return -1;
        dc.from = dup_bytes(rep, dc.from_len);
        dc.prepend_never = ps == HF_PREPEND_NEVER;
    } else if (!strcmp(t, "Replace")) {
        const char *from, *to;
        size_t to_len;
        dc.type = HF_DEC_REPLACE;
        if (read_pattern(d, "decoder Replace", 0, NULL, &from, &dc.from_len, e) < 0 ||
            want_string(json_object_get(d, "content"), "decoder Replace.content", &to, &to_len, e) < 0)
            return -1;
        dc.from = dup_bytes(from, dc.from_len);
        dc.to = dup_bytes(to, to_len);
        dc.to_len = to_len;
    } else if (!strcmp(t, "Strip")) {
        const char *c;
        size_t n;
        json_t *start = json_object_get(d, "start"), *stop = json_object_get(d, "stop");
        dc.type = HF_DEC_STRIP;
        if (want_string(json_object_get(d, "content"), "decoder Strip.content", &c, &n, e) < 0)
            return -1;
        if (!n || evo_utf8_decode((const unsigned char *)c, n, &dc.strip_char) != n)
            return evo_errf(e, "tokenizer.json: decoder Strip.content must be one character");
        if (!json_is_integer(start) || !json_is_integer(stop) || json_integer_value(start) < 0 ||
            json_integer_value(stop) < 0)
            return evo_errf(e, "tokenizer.json: decoder Strip needs non-negative start and stop");
        dc.strip_start = (size_t)json_integer_value(start);
        dc.strip_stop = (size_t)json_integer_value(stop);
    } else {
        return evo_errf(e, "tokenizer.json: decoder type '%s' is not supported", t);
    }
    m->decs = evo_realloc(m->decs, (m->ndec + 1) * sizeof *m->decs);
    m->decs[m->ndec++] = dc;
    return 0;
}

/* ------------------------------------------------------------- model -- */

/* The bytes a byte-level token stands for; 0 if some character of it is
 * outside GPT-2's table (such a token can never come out of BPE). */
static int token_bytes(const char *s, size_t n, evo_buf *out)
{
    out->len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = evo_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        int b = l ? hf_char_byte(cp) : -1;
        if (b < 0)
            return 0;
        evo_buf_push(out, (char)b);
        i += l;
    }
    return 1;
}

static int read_id(json_t *v, const char *what, const char *name, int32_t *id, evo_err *e)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= HF_MAX_ID)
        return evo_errf(e, "tokenizer.json: %s '%.100s' has an id that is not an integer in [0, %d)", what, name,
                        HF_MAX_ID);
    *id = (int32_t)json_integer_value(v);
    return 0;
}

static int read_merge(json_t *mv, size_t i, const char **a, size_t *al, const char **b, size_t *bl, evo_err *e)
{
    if (json_is_string(mv)) {
        /* "a b": exactly one space, as tokenizers' convert_merges_to_hashmap demands. */
        const char *s = json_string_value(mv), *sp = memchr(s, ' ', json_string_length(mv));
        size_t n = json_string_length(mv);
        if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)))
            return evo_errf(e, "tokenizer.json: merge %zu (\"%.100s\") is not two tokens separated by one space", i,
                            s);
        *a = s;
        *al = (size_t)(sp - s);
        *b = sp + 1;
        *bl = n - *al - 1;
        return 0;
    }
    if (json_is_array(mv) && json_array_size(mv) == 2 && json_is_string(json_array_get(mv, 0)) &&
        json_is_string(json_array_get(mv, 1))) {
        *a = json_string_value(json_array_get(mv, 0));
        *al = json_string_length(json_array_get(mv, 0));
        *b = json_string_value(json_array_get(mv, 1));
        *bl = json_string_length(json_array_get(mv, 1));
        return 0;
    }
    return evo_errf(e, "tokenizer.json: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", i);
}

/* The text every space becomes before BPE sees it: what a merge must
 * begin with to glue a space to the character before it. */
static void space_symbol(const hf_model *m, const char **s, size_t *n)
{
    *s = " ";
    *n = 1;
    if (m->byte_level)
        return;
    for (size_t i = 0; i < m->nnorm; i++)
        if (m->norms[i].type == HF_REPLACE && m->norms[i].str_len) {
            evo_pattern_scratch ps = {0};
            size_t a, b;
            if (evo_pattern_find(m->norms[i].pat, &ps, " ", 1, 0, &a, &b, NULL) == 1 && a == 0 && b == 1) {
                *s = m->norms[i].str;
                *n = m->norms[i].str_len;
            }
            evo_pattern_scratch_free(&ps);
        }
    for (size_t i = 0; i < m->npre; i++)
        if (m->pres[i].type == HF_PRE_METASPACE) {
            *s = m->pres[i].rep;
            *n = m->pres[i].rep_len;
        }
}

static int read_model(hf_model *m, json_t *model, evo_err *e)
{
    if (!json_is_object(model))
        return evo_errf(e, "tokenizer.json: no \"model\" object");
    const char *t = type_of(model);
    if (t && strcmp(t, "BPE"))
        return evo_errf(e, "tokenizer.json: model type '%s' is not supported (only BPE)", t);
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab))
        return evo_errf(e, "tokenizer.json: model.vocab must be an object");
    if (!json_is_array(merges))
        return evo_errf(e, "tokenizer.json: model.merges must be an array");
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && !(json_is_number(dropout) && json_number_value(dropout) == 0))
        return evo_errf(e, "tokenizer.json: BPE dropout is not supported (it makes encoding random)");
    const char *prefix, *suffix, *unk;
    size_t prefix_len, suffix_len, unk_len;
    if (opt_string(model, "continuing_subword_prefix", &prefix, &prefix_len, "model", e) < 0 ||
        opt_string(model, "end_of_word_suffix", &suffix, &suffix_len, "model", e) < 0 ||
        opt_string(model, "unk_token", &unk, &unk_len, "model", e) < 0 ||
        opt_bool(model, "fuse_unk", 0, &m->fuse_unk, "model", e) < 0 ||
        opt_bool(model, "byte_fallback", 0, &m->byte_fallback, "model", e) < 0 ||
        opt_bool(model, "ignore_merges", 0, &m->ignore_merges, "model", e) < 0)
        return -1;
    if (prefix_len || suffix_len)
        return evo_errf(e, "tokenizer.json: BPE continuing_subword_prefix/end_of_word_suffix are not supported");

    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach(vocab, key, key_len, v)
    {
        int32_t id;
        if (read_id(v, "vocab token", key, &id, e) < 0)
            return -1;
        hf_map_put(&m->vocab, key, key_len, id);
        if ((uint32_t)id + 1 > m->vocab_size)
            m->vocab_size = (uint32_t)id + 1;
    }
    m->unk_id = -1;
    if (unk) {
        m->unk_id = hf_map_get(&m->vocab, unk, unk_len);
        m->unk_missing = m->unk_id < 0;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->fallback_id[b] = hf_map_get(&m->vocab, name, 6);
    }

    /* tokenizers collects merges into a HashMap: for a pair listed twice
     * the later line wins. Adding from the end and skipping pairs already
     * present keeps exactly that rule, with its own rank. */
    size_t nmerges = json_array_size(merges);
    m->bpe = evo_bpe_new(nmerges);
    if (nmerges >= INT32_MAX)
        return evo_errf(e, "tokenizer.json: too many merges");
    for (size_t i = nmerges; i-- > 0;) {
        const char *a, *b;
        size_t al, bl;
        if (read_merge(json_array_get(merges, i), i, &a, &al, &b, &bl, e) < 0)
            return -1;
        int32_t ia = hf_map_get(&m->vocab, a, al), ib = hf_map_get(&m->vocab, b, bl);
        if (ia < 0 || ib < 0)
            return evo_errf(e, "tokenizer.json: merge %zu names '%.*s', which is not in the vocabulary", i,
                            (int)(ia < 0 ? (al > 100 ? 100 : al) : (bl > 100 ? 100 : bl)), ia < 0 ? a : b);
        char *ab = evo_malloc(al + bl + 1);
        memcpy(ab, a, al);
        memcpy(ab + al, b, bl);
        int32_t iab = hf_map_get(&m->vocab, ab, al + bl);
        free(ab);
        if (iab < 0)
            return evo_errf(e, "tokenizer.json: merge %zu makes '%.*s%.*s', which is not in the vocabulary", i,
                            (int)(al > 100 ? 100 : al), a, (int)(bl > 100 ? 100 : bl), b);
        int32_t merged, rank;
        if (!evo_bpe_lookup(m->bpe, ia, ib, &merged, &rank))
            evo_bpe_add(m->bpe, ia, ib, iab, (int32_t)i);
    }
    evo_bpe_finish(m->bpe);
    return 0;
}

/* Tables the encoder indexes instead of hashing: the per-byte tokens of a
 * byte-level model, or the single-character tokens of a character-level
 * one; and the glue table of safe_cut. */
static void build_symbol_tables(hf_model *m, json_t *merges)
{
    evo_buf raw = {0};
    if (m->byte_level) {
        for (unsigned b = 0; b < 256; b++) {
            char u[4];
            size_t n = evo_utf8_encode(hf_byte_char(b), u);
            m->byte_id[b] = hf_map_get(&m->vocab, u, n);
        }
        for (size_t i = 0; i < m->vocab.n; i++) {
            const struct hf_entry *en = &m->vocab.ent[i];
            if (token_bytes(m->vocab.keys.data + en->off, en->len, &raw))
                hf_map_put(&m->raw, raw.data, raw.len, en->val);
        }
    } else {
        m->bmp_id = evo_malloc(0x10000 * sizeof *m->bmp_id);
        memset(m->bmp_id, 0xFF, 0x10000 * sizeof *m->bmp_id);
        for (size_t i = 0; i < m->vocab.n; i++) {
            const struct hf_entry *en = &m->vocab.ent[i];
            uint32_t cp;
            if (en->len && evo_utf8_decode((const unsigned char *)m->vocab.keys.data + en->off, en->len, &cp) ==
                               en->len && cp < 0x10000)
                m->bmp_id[cp] = en->val;
        }
    }

    const char *sp;
    size_t sp_len;
    space_symbol(m, &sp, &sp_len);
    if (sp_len <= sizeof m->space_sym) {
        memcpy(m->space_sym, sp, sp_len);
        m->space_sym_len = sp_len;
        m->space_sym_known = m->byte_level ? m->byte_id[' '] >= 0 : hf_map_get(&m->vocab, sp, sp_len) >= 0;
    }
    for (size_t i = 0; i < json_array_size(merges); i++) {
        const char *a, *b;
        size_t al, bl;
        if (read_merge(json_array_get(merges, i), i, &a, &al, &b, &bl, NULL) < 0 || !al)
            continue;
        int last;
        if (m->byte_level) {
            /* right side begins with the space byte's character 'Ġ' */
            if (!token_bytes(b, bl, &raw) || !raw.len || raw.data[0] != ' ' ||
                !token_bytes(a, al, &raw) || !raw.len)
                continue;
            last = (unsigned char)raw.data[raw.len - 1];
        } else {
            if (bl < sp_len || memcmp(b, sp, sp_len))
                continue;
            last = (unsigned char)a[al - 1];
        }
        if (last < 128)
            m->glue[last] = 1;
    }
    evo_buf_free(&raw);
}

/* ------------------------------------------------------ added tokens -- */

static void trie_add(hf_trie *t, const char *s, size_t n, int32_t token)
{
    if (!t->node) {
        t->cap = 64;
        t->node = evo_malloc(t->cap * sizeof *t->node);
        t->node[0] = (struct hf_trie_node){-1, -1, -1, 0};
        t->n = 1;
    }
    int32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        int32_t k = t->node[cur].child;
        while (k >= 0 && t->node[k].byte != c)
            k = t->node[k].sibling;
        if (k < 0) {
            if (t->n == t->cap) {
                t->cap *= 2;
                t->node = evo_realloc(t->node, t->cap * sizeof *t->node);
            }
            k = (int32_t)t->n++;
            t->node[k] = (struct hf_trie_node){-1, t->node[cur].child, -1, c};
            t->node[cur].child = k;
        }
        cur = k;
    }
    if (t->node[cur].token < 0) /* the first token with this text keeps it */
        t->node[cur].token = token;
    t->can_start[(uint8_t)s[0]] = 1;
}

static int read_added_tokens(hf_model *m, json_t *list, evo_err *e)
{
    if (!list || json_is_null(list))
        return 0;
    if (!json_is_array(list))
        return evo_errf(e, "tokenizer.json: added_tokens must be an array");
    size_t i;
    json_t *v;
    m->added = evo_calloc(json_array_size(list) + 1, sizeof *m->added);
    json_array_foreach(list, i, v)
    {
        const char *s;
        size_t n;
        int special, normalized, lstrip, rstrip, single_word;
        if (!json_is_object(v) || want_string(json_object_get(v, "content"), "added_tokens[].content", &s, &n, e) < 0)
            return evo_errf(e, "tokenizer.json: added_tokens[%zu] needs a string \"content\"", i);
        hf_added a = {0};
        if (read_id(json_object_get(v, "id"), "added token", s, &a.id, e) < 0 ||
            opt_bool(v, "special", 0, &special, "added_tokens[]", e) < 0 ||
            opt_bool(v, "normalized", !special, &normalized, "added_tokens[]", e) < 0 ||
            opt_bool(v, "lstrip", 0, &lstrip, "added_tokens[]", e) < 0 ||
            opt_bool(v, "rstrip", 0, &rstrip, "added_tokens[]", e) < 0 ||
            opt_bool(v, "single_word", 0, &single_word, "added_tokens[]", e) < 0)
            return -1;
        if (!n) /* tokenizers ignores empty added tokens */
            continue;
        /* A token the model already has keeps the model's id. */
        int32_t model_id = hf_map_get(&m->vocab, s, n);
        if (model_id >= 0)
            a.id = model_id;
        a.special = (uint8_t)special;
        a.normalized = (uint8_t)normalized;
        a.lstrip = (uint8_t)lstrip;
        a.rstrip = (uint8_t)rstrip;
        a.single_word = (uint8_t)single_word;
        a.off = (uint32_t)m->added_text.len;
        a.len = (uint32_t)n;
        evo_buf_append(&m->added_text, s, n);
        if ((uint32_t)a.id + 1 > m->vocab_size)
            m->vocab_size = (uint32_t)a.id + 1;
        m->added[m->nadded++] = a;
    }
    return 0;
}

/* Tries are built after the normalizers are known: normalized tokens are
 * matched in normalized text, so their patterns are normalized too. */
static int build_added_tries(hf_model *m, evo_err *e)
{
    evo_buf norm = {0}, tmp = {0};
    evo_pattern_scratch ps = {0};
    int rc = 0;
    for (size_t i = 0; i < m->nadded && rc == 0; i++) {
        const hf_added *a = &m->added[i];
        const char *s = m->added_text.data + a->off;
        if (!a->normalized) {
            trie_add(&m->raw_trie, s, a->len, (int32_t)i);
        } else if ((rc = hf_normalize(m, &ps, s, a->len, 1, &norm, &tmp, e)) == 0 && norm.len) {
            trie_add(&m->norm_trie, norm.data, norm.len, (int32_t)i);
        }
        /* A token that could span the cut's space, or eat it. */
        if (a->normalized || a->single_word || a->lstrip || a->rstrip || memchr(s, ' ', a->len))
            m->cut_ok = 0;
    }
    evo_buf_free(&norm);
    evo_buf_free(&tmp);
    evo_pattern_scratch_free(&ps);
    return rc;
}

/* ---------------------------------------------------- post-processor -- */

/* The single id a TemplateProcessing special token stands for, or -1. */
static int32_t template_special(json_t *pp, json_t *item)
{
    json_t *name = json_object_get(json_object_get(item, "SpecialToken"), "id");
    if (!json_is_string(name))
        return -1;
    json_t *ids = json_object_get(json_object_get(json_object_get(pp, "special_tokens"), json_string_value(name)), "ids");
    if (!json_is_array(ids) || json_array_size(ids) != 1 || !json_is_integer(json_array_get(ids, 0)))
        return -1;
    json_int_t id = json_integer_value(json_array_get(ids, 0));
    return id >= 0 && id < HF_MAX_ID ? (int32_t)id : -1;
}

static void read_post_processor(json_t *pp, int32_t *bos, int32_t *eos)
{
    const char *t = json_is_object(pp) ? type_of(pp) : NULL;
    if (!t)
        return;
    if (!strcmp(t, "Sequence")) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(pp, "processors"), i, v) read_post_processor(v, bos, eos);
    } else if (!strcmp(t, "TemplateProcessing")) {
        json_t *single = json_object_get(pp, "single");
        size_t i, a = SIZE_MAX;
        json_t *v;
        json_array_foreach(single, i, v) if (json_object_get(v, "Sequence") && a == SIZE_MAX) a = i;
        if (a == SIZE_MAX)
            return;
        if (a > 0)
            *bos = template_special(pp, json_array_get(single, a - 1));
        if (a + 1 < json_array_size(single))
            *eos = template_special(pp, json_array_get(single, a + 1));
    } else if (!strcmp(t, "RobertaProcessing") || !strcmp(t, "BertProcessing")) {
        json_t *cls = json_array_get(json_object_get(pp, "cls"), 1), *sep = json_array_get(json_object_get(pp, "sep"), 1);
        if (json_is_integer(cls) && json_integer_value(cls) >= 0 && json_integer_value(cls) < HF_MAX_ID)
            *bos = (int32_t)json_integer_value(cls);
        if (json_is_integer(sep) && json_integer_value(sep) >= 0 && json_integer_value(sep) < HF_MAX_ID)
            *eos = (int32_t)json_integer_value(sep);
    }
}

/* ------------------------------------------------------------ open -- */

static void fill_id_table(hf_model *m)
{
    m->tok_off = evo_malloc(m->vocab_size * sizeof *m->tok_off);
    m->tok_len = evo_malloc(m->vocab_size * sizeof *m->tok_len);
    memset(m->tok_len, 0xFF, m->vocab_size * sizeof *m->tok_len);
    for (size_t i = 0; i < m->vocab.n; i++) {
        const struct hf_entry *en = &m->vocab.ent[i];
        m->tok_off[en->val] = (uint32_t)m->tok_text.len;
        m->tok_len[en->val] = en->len;
        if (en->len)
            evo_buf_append(&m->tok_text, m->vocab.keys.data + en->off, en->len);
    }
    /* Added tokens decode as their content (tokenizers looks them up first). */
    for (size_t i = 0; i < m->nadded; i++) {
        const hf_added *a = &m->added[i];
        m->tok_off[a->id] = (uint32_t)m->tok_text.len;
        m->tok_len[a->id] = a->len;
        evo_buf_append(&m->tok_text, m->added_text.data + a->off, a->len);
    }
}

/* Whether safe_cut's rule holds for this pipeline (see hf.h). */
static void decide_cuts(hf_model *m)
{
    m->cut_ok = 1;
    for (size_t i = 0; i < m->nnorm; i++) {
        const hf_norm *n = &m->norms[i];
        int space_literal = 0;
        if (n->type == HF_REPLACE) {
            evo_pattern_scratch ps = {0};
            size_t a, b;
            /* only Replace(" " -> x): a longer pattern could span the cut */
            space_literal = evo_pattern_find(n->pat, &ps, " ", 1, 0, &a, &b, NULL) == 1 && a == 0 && b == 1 &&
                            evo_pattern_find(n->pat, &ps, "a a", 3, 0, &a, &b, NULL) == 1 && a == 1 && b == 2;
            evo_pattern_scratch_free(&ps);
        }
        if (n->type == HF_STRIP || (n->type == HF_REPLACE && !space_literal))
            m->cut_ok = 0;
    }
    int splits = 0;
    for (size_t i = 0; i < m->npre; i++) {
        const hf_pre *p = &m->pres[i];
        if (p->type == HF_PRE_SPLIT && !p->known_regex)
            m->cut_ok = 0;
        splits |= p->known_regex || (p->type == HF_PRE_METASPACE && p->split);
    }
    /* Without a split at the space, a whole segment is one BPE word. */
    m->cut_needs_glue = !splits;
    if (m->cut_needs_glue && (m->ignore_merges || !m->space_sym_known))
        m->cut_ok = 0;
}

static int hf_load(hf_model *m, json_t *root, evo_err *e)
{
    if (!json_is_object(root))
        return evo_errf(e, "tokenizer.json: the top level is not an object");
    json_t *trunc = json_object_get(root, "truncation"), *pad = json_object_get(root, "padding");
    if ((trunc && !json_is_null(trunc)) || (pad && !json_is_null(pad)))
        return evo_errf(e, "tokenizer.json: truncation/padding settings are not supported");
    if (read_model(m, json_object_get(root, "model"), e) < 0)
        return -1;
    json_t *norm = json_object_get(root, "normalizer"), *pre = json_object_get(root, "pre_tokenizer");
    json_t *dec = json_object_get(root, "decoder");
    if ((norm && add_normalizer(m, norm, e) < 0) || (pre && add_pre_tokenizer(m, pre, e) < 0))
        return -1;
    if (dec && !json_is_null(dec)) {
        m->has_decoder = 1;
        if (add_decoder(m, dec, e) < 0)
            return -1;
    }
    build_symbol_tables(m, json_object_get(json_object_get(root, "model"), "merges"));
    decide_cuts(m);
    if (read_added_tokens(m, json_object_get(root, "added_tokens"), e) < 0 || build_added_tries(m, e) < 0)
        return -1;
    if (m->vocab_size == 0)
        return evo_errf(e, "tokenizer.json: the vocabulary is empty");
    fill_id_table(m);
    return 0;
}

hf_model *hf_model_load(const uint8_t *data, size_t len, int32_t *bos, int32_t *eos, evo_err *e)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, len, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        evo_errf(e, "tokenizer.json: invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    hf_model *m = evo_calloc(1, sizeof *m);
    int rc = hf_load(m, root, e);
    *bos = *eos = -1;
    if (rc == 0) {
        read_post_processor(json_object_get(root, "post_processor"), bos, eos);
        static const char *eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>"};
        for (size_t k = 0; k < 3 && *eos < 0; k++)
            for (size_t i = 0; i < m->nadded && *eos < 0; i++)
                if (m->added[i].special && m->added[i].len == strlen(eos_names[k]) &&
                    !memcmp(m->added_text.data + m->added[i].off, eos_names[k], m->added[i].len))
                    *eos = m->added[i].id;
        if ((*bos >= 0 && (uint32_t)*bos >= m->vocab_size) || (*eos >= 0 && (uint32_t)*eos >= m->vocab_size))
            rc = evo_errf(e, "tokenizer.json: post_processor names a token id outside the vocabulary");
    }
    json_decref(root);
    if (rc < 0) {
        hf_model_free(m);
        return NULL;
    }
    return m;
}

void hf_model_free(void *model)
{
    hf_model *m = model;
    if (!m)
        return;
    hf_map_free(&m->vocab);
    hf_map_free(&m->raw);
    free(m->bmp_id);
    evo_bpe_free(m->bpe);
    free(m->tok_off);
    free(m->tok_len);
    evo_buf_free(&m->tok_text);
    for (size_t i = 0; i < m->nnorm; i++) {
        free(m->norms[i].str);
        evo_pattern_free(m->norms[i].pat);
    }
    free(m->norms);
    for (size_t i = 0; i < m->npre; i++)
        evo_pattern_free(m->pres[i].pat);
    free(m->pres);
    for (size_t i = 0; i < m->ndec; i++) {
        free(m->decs[i].from);
        free(m->decs[i].to);
    }
    free(m->decs);
    free(m->added);
    evo_buf_free(&m->added_text);
    free(m->raw_trie.node);
    free(m->norm_trie.node);
    free(m);
}
