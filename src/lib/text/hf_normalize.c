/* hf_normalize.c - tokenizer.json's normalizer chain (hf.h), which the
 * loader applies to normalized added tokens and the encoder to the text. */
#include "text/hf.h"

#include <string.h>
#include <utf8proc.h>

#include "text/utf8.h"

/* Characters no normalization form changes, and which never compose with
 * a neighbour: lets ASCII and CJK text skip utf8proc. Below U+0300 nothing
 * decomposes canonically and nothing is a second in a composition pair;
 * the compatibility forms have exceptions (U+00A0, U+00B2, ...), so they
 * only trust ASCII. */
static int normalization_inert(const char *s, size_t n, int compat)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = evo_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (!l || compat)
            return 0;
        /* Also general punctuation (but U+2000/1, canonical singletons),
         * CJK punctuation and kana (but the combining sound marks U+302A-F
         * and U+3099/A), CJK ideographs, Hangul syllables (a following
         * trailing jamo is not inert) and the fullwidth forms. */
        if (!(cp < 0x300 || (cp >= 0x2002 && cp <= 0x206F) || (cp >= 0x3000 && cp <= 0x3029) ||
              (cp >= 0x3030 && cp <= 0x3098) || (cp >= 0x309B && cp <= 0x30FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
              (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xFF01 && cp <= 0xFFEF)))
            return 0;
        i += l;
    }
    return 1;
}

static int unicode_form(enum hf_norm_type t, const char *s, size_t n, evo_buf *out, evo_err *e)
{
    int compat = t == HF_NFKC || t == HF_NFKD;
    int compose = t == HF_NFC || t == HF_NFKC;
    /* NFD and NFKD decompose Latin-1 too: only ASCII is inert for them. */
    if (compose ? normalization_inert(s, n, compat) : normalization_inert(s, n, 1)) {
        evo_buf_append(out, s, n);
        return 0;
    }
    utf8proc_uint8_t *dst = NULL;
    int flags = UTF8PROC_STABLE | (compose ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) | (compat ? UTF8PROC_COMPAT : 0);
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, flags);
    if (r < 0)
        return evo_errf(e, "normalization failed: %s", utf8proc_errmsg(r));
    evo_buf_append(out, dst, (size_t)r);
    free(dst);
    return 0;
}

static void lowercase(const char *s, size_t n, evo_buf *out)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            evo_buf_push(out, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
            i++;
            continue;
        }
        uint32_t cp = 0xFFFD;
        size_t l = evo_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        l = l ? l : 1; /* the text is valid UTF-8; never loop */
        char u[8];
        if (cp == 0x130) { /* the one full lowercase mapping of two characters: i + U+0307 */
            evo_buf_append(out, "i\xcc\x87", 3);
        } else {
            evo_buf_append(out, u, evo_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), u));
        }
        i += l;
    }
}

static void strip(const char *s, size_t n, int left, int right, evo_buf *out)
{
    size_t a = 0, b = n;
    uint32_t cp;
    size_t l;
    while (left && a < b && (l = evo_utf8_decode((const unsigned char *)s + a, b - a, &cp)) &&
           hf_is_white_space(cp))
        a += l;
    while (right && b > a && (l = hf_char_before(s, b, &cp)) && hf_is_white_space(cp))
        b -= l;
    evo_buf_append(out, s + a, b - a);
}

static int replace(const hf_norm *nm, evo_pattern_scratch *ps, const char *s, size_t n, evo_buf *out, evo_err *e)
{
    size_t pos = 0, from = 0, a, b;
    int rc;
    while (from <= n && (rc = evo_pattern_find(nm->pat, ps, s, n, from, &a, &b, e)) == 1) {
        evo_buf_append(out, s + pos, a - pos);
        evo_buf_append(out, nm->str, nm->str_len);
        pos = from = b;
        if (a == b) { /* an empty match: step over one character */
            if (b >= n)
                break;
            from = b + 1;
            while (from < n && ((unsigned char)s[from] & 0xC0) == 0x80)
                from++;
        }
    }
    if (rc < 0)
        return -1;
    evo_buf_append(out, s + pos, n - pos);
    return 0;
}

int hf_normalize(const hf_model *m, evo_pattern_scratch *ps, const char *s, size_t n, int prepend, evo_buf *out,
                 evo_buf *tmp, evo_err *e)
{
    /* Each step reads one buffer and writes the other. */
    evo_buf *src = tmp, *dst = out;
    src->len = 0;
    evo_buf_reserve(src, n + 1);
    if (n)
        memcpy(src->data, s, n);
    src->len = n;
    for (size_t i = 0; i < m->nnorm; i++) {
        const hf_norm *nm = &m->norms[i];
        dst->len = 0;
        evo_buf_reserve(dst, src->len + 16);
        switch (nm->type) {
        case HF_NFC:
        case HF_NFD:
        case HF_NFKC:
        case HF_NFKD:
            if (unicode_form(nm->type, src->data, src->len, dst, e) < 0)
                return -1;
            break;
        case HF_LOWERCASE:
            lowercase(src->data, src->len, dst);
            break;
        case HF_STRIP:
            strip(src->data, src->len, nm->left, nm->right, dst);
            break;
        case HF_PREPEND:
            if (prepend && src->len)
                evo_buf_append(dst, nm->str, nm->str_len);
            evo_buf_append(dst, src->data, src->len);
            break;
        case HF_REPLACE:
            if (replace(nm, ps, src->data, src->len, dst, e) < 0)
                return -1;
            break;
        }
        evo_buf *t = src;
        src = dst;
        dst = t;
    }
    if (src != out) {
        out->len = 0;
        evo_buf_append(out, src->data, src->len);
    }
    return 0;
}
