#include "text/pretok.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

struct evo_pattern {
    pcre2_code *re; /* NULL for a literal */
    int jit;        /* JIT compiled: call pcre2_jit_match directly */
    char *lit;
    size_t lit_len;
};

/* Oniguruma's \s is Unicode White_Space. PCRE2's (10.42, UCP) also takes
 * U+180E, which left White_Space in Unicode 6.3; spell the set out so both
 * engines cut "\u180e" the same way. */
#define WHITE_SPACE "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
/* Oniguruma's \h is a hex digit; PCRE2's is horizontal space. */
#define HEX_DIGIT "0-9a-fA-F"

/* Rewrites the escapes above, inside and outside character classes. A
 * negated one (\S, \H) inside a class cannot be spelled as ranges; \S is
 * kept (it differs only at U+180E), \H is refused. */
static int translate(const char *src, size_t n, evo_buf *out, evo_err *e)
{
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '\\' && i + 1 < n) {
            char x = src[++i];
            const char *set = x == 's' || x == 'S' ? WHITE_SPACE : x == 'h' || x == 'H' ? HEX_DIGIT : NULL;
            if (set && in_class && (x == 'h' || x == 's')) {
                evo_buf_append(out, set, strlen(set));
            } else if (set && !in_class) {
                evo_buf_append(out, x == 's' || x == 'h' ? "[" : "[^", x == 's' || x == 'h' ? 1 : 2);
                evo_buf_append(out, set, strlen(set));
                evo_buf_push(out, ']');
            } else if (x == 'H') {
                return evo_errf(e, "regex: \\H inside a character class is not supported");
            } else {
                evo_buf_push(out, '\\');
                evo_buf_push(out, x);
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            evo_buf_push(out, c);
            /* A ']' right after '[' or '[^' is a literal, not the end. */
            if (i + 1 < n && src[i + 1] == '^')
                evo_buf_push(out, src[++i]);
            if (i + 1 < n && src[i + 1] == ']')
                evo_buf_push(out, src[++i]);
            continue;
        }
        if (in_class && c == ']')
            in_class = 0;
        evo_buf_push(out, c);
    }
    evo_buf_push(out, '\0');
    return 0;
}

evo_pattern *evo_pattern_regex(const char *onig, size_t len, evo_err *e)
{
    evo_buf pat = {0};
    if (translate(onig, len, &pat, e) < 0) {
        evo_buf_free(&pat);
        return NULL;
    }
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat.data, pat.len - 1, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    evo_buf_free(&pat);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        evo_errf(e, "regex '%.*s': %s (at offset %zu)", (int)(len > 200 ? 200 : len), onig, (char *)msg,
                 (size_t)at);
        return NULL;
    }
    evo_pattern *p = evo_calloc(1, sizeof *p);
    p->re = re;
    p->jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    return p;
}

evo_pattern *evo_pattern_literal(const char *s, size_t len)
{
    evo_pattern *p = evo_calloc(1, sizeof *p);
    p->lit = evo_malloc(len);
    memcpy(p->lit, s, len);
    p->lit_len = len;
    return p;
}

void evo_pattern_free(evo_pattern *p)
{
    if (p) {
        pcre2_code_free(p->re);
        free(p->lit);
        free(p);
    }
}

/* What a thread needs to run any pattern: match data big enough for the
 * whole match, and a JIT stack larger than PCRE2's 32 KB default so that
 * lookarounds over long runs do not fail. */
typedef struct {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *stack;
} regex_scratch;

static regex_scratch *scratch_of(evo_pattern_scratch *s)
{
    if (!s->md) {
        regex_scratch *r = evo_calloc(1, sizeof *r);
        r->md = pcre2_match_data_create(1, NULL);
        r->mctx = pcre2_match_context_create(NULL);
        r->stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (!r->md || !r->mctx || !r->stack)
            evo_fatal("out of memory (PCRE2 match data)");
        pcre2_jit_stack_assign(r->mctx, NULL, r->stack);
        /* Oniguruma has no step limit; a long run of spaces legitimately
         * backtracks once per byte. */
        pcre2_set_match_limit(r->mctx, UINT32_MAX);
        s->md = r;
    }
    return s->md;
}

void evo_pattern_scratch_free(evo_pattern_scratch *s)
{
    regex_scratch *r = s->md;
    if (r) {
        pcre2_match_data_free(r->md);
        pcre2_match_context_free(r->mctx);
        pcre2_jit_stack_free(r->stack);
        free(r);
        s->md = NULL;
    }
}

int evo_pattern_find(const evo_pattern *p, evo_pattern_scratch *s, const char *text, size_t n, size_t from,
                     size_t *start, size_t *end, evo_err *e)
{
    if (!p->re) {
        const char *hit = from < n ? memmem(text + from, n - from, p->lit, p->lit_len) : NULL;
        if (!hit)
            return 0;
        *start = (size_t)(hit - text);
        *end = *start + p->lit_len;
        return 1;
    }
    regex_scratch *r = scratch_of(s);
    int rc = p->jit ? pcre2_jit_match(p->re, (PCRE2_SPTR)text, n, from, 0, r->md, r->mctx)
                    : pcre2_match(p->re, (PCRE2_SPTR)text, n, from, PCRE2_NO_UTF_CHECK, r->md, r->mctx);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return evo_errf(e, "regex match failed: %s", (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
    *start = ov[0];
    *end = ov[1];
    return 1;
}

/* tokenizers' Pattern::find_matches: the whole text as alternating
 * (span, is_match) pieces; an empty text is one empty non-match. Like
 * Oniguruma's iterator, an empty match moves the search one character on. */
static int find_matches(const evo_pattern *p, evo_pattern_scratch *s, const char *text, size_t n, int invert,
                        evo_spans *m, evo_err *e)
{
    m->len = 0;
    size_t prev = 0, from = 0;
    while (from <= n) {
        size_t a, b;
        int rc = evo_pattern_find(p, s, text, n, from, &a, &b, e);
        if (rc < 0)
            return -1;
        if (!rc)
            break;
        if (a != prev)
            evo_spans_push(m, (uint32_t)prev, (uint32_t)((a - prev) << 1 | (invert ? 1 : 0)));
        evo_spans_push(m, (uint32_t)a, (uint32_t)((b - a) << 1 | (invert ? 0 : 1)));
        prev = b;
        if (b > a) {
            from = b;
        } else {
            if (b >= n)
                break;
            from = b + 1;
            while (from < n && ((unsigned char)text[from] & 0xC0) == 0x80)
                from++;
        }
    }
    if (prev != n || n == 0)
        evo_spans_push(m, (uint32_t)prev, (uint32_t)((n - prev) << 1 | (invert ? 1 : 0)));
    return 0;
}

int evo_pattern_split(const evo_pattern *p, evo_pattern_scratch *s, const char *text, size_t n, uint32_t base,
                      enum evo_split_behavior behavior, int invert, evo_spans *tmp, evo_spans *out, evo_err *e)
{
    if (n > UINT32_MAX / 2)
        return evo_errf(e, "text piece of %zu bytes is too long to split", n);
    /* tmp holds the matches, len = bytes << 1 | is_match. */
    if (find_matches(p, s, text, n, invert, tmp, e) < 0)
        return -1;
    size_t first = out->len;
    int prev_match = 0;
    for (size_t i = 0; i < tmp->len; i++) {
        size_t k = behavior == EVO_SPLIT_MERGED_WITH_NEXT ? tmp->len - 1 - i : i;
        uint32_t off = tmp->data[k].off, len = tmp->data[k].len >> 1;
        int is_match = tmp->data[k].len & 1;
        int have = out->len > first;
        evo_span *last = have ? &out->data[out->len - 1] : NULL;
        switch (behavior) {
        case EVO_SPLIT_REMOVED:
            if (!is_match)
                evo_spans_push(out, off, len);
            break;
        case EVO_SPLIT_ISOLATED:
            evo_spans_push(out, off, len);
            break;
        case EVO_SPLIT_MERGED_WITH_PREVIOUS:
            if (is_match && !prev_match && have)
                last->len = off + len - last->off;
            else
                evo_spans_push(out, off, len);
            break;
        case EVO_SPLIT_MERGED_WITH_NEXT: /* walking backwards: merge into the piece after */
            if (is_match && !prev_match && have) {
                last->len += last->off - off;
                last->off = off;
            } else {
                evo_spans_push(out, off, len);
            }
            break;
        case EVO_SPLIT_CONTIGUOUS:
            if (is_match == prev_match && have)
                last->len = off + len - last->off;
            else
                evo_spans_push(out, off, len);
            break;
        }
        prev_match = is_match;
    }
    if (behavior == EVO_SPLIT_MERGED_WITH_NEXT) {
        for (size_t i = first, j = out->len; i + 1 < j; i++, j--) {
            evo_span t = out->data[i];
            out->data[i] = out->data[j - 1];
            out->data[j - 1] = t;
        }
    }
    /* Drop empty pieces (tokenizers filters them after splitting), rebase. */
    size_t w = first;
    for (size_t i = first; i < out->len; i++)
        if (out->data[i].len)
            out->data[w++] = (evo_span){out->data[i].off + base, out->data[i].len};
    out->len = w;
    return 0;
}
