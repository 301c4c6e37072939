/* inspect.c - looking inside packs: --info and --dump. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/histogram.h"
#include "evopack.h"
#include "text/tokenizer.h"

static const char *yes_no(int b) { return b ? "yes" : "no"; }

static double percent(uint64_t part, uint64_t whole) { return whole ? 100.0 * (double)part / (double)whole : 0.0; }

static void print_sources(const evo_pack *p, int opened)
{
    for (uint32_t i = 0; i < p->meta.n_sources; i++) {
        const evo_pack_source *s = &p->sources[i];
        char *where = evo_pack_source_path(p, i);
        printf("source %-7u %s, %s", i, s->path, s->embedded_section ? "embedded" : "external");
        if (!s->embedded_section && strcmp(where, s->path))
            printf(" (at %s)", where);
        printf(", %" PRIu64 " documents, %" PRIu64 " tokens", s->n_docs, s->n_tokens);
        if (s->weight > 0)
            printf(", weight %g", s->weight);
        printf("%s\n", opened ? ", verified" : "");
        free(where);
    }
}

/* Lengths of the sources' documents that --min-length kept. */
static void print_lengths(const evo_pack *p)
{
    evo_histogram h = {0};
    for (uint32_t i = 0; i < p->meta.n_sources; i++) {
        const evo_tokens_reader *r = p->tokens[i];
        for (uint64_t d = 0; d < r->meta.n_docs; d++) {
            uint64_t len = evo_tokens_doc_start(r, d + 1) - evo_tokens_doc_start(r, d);
            if (len >= p->meta.min_length)
                evo_histogram_add(&h, len);
        }
    }
    evo_histogram_print(&h, "document length histogram (tokens):");
}

int pack_info(const char *path)
{
    evo_pack p;
    evo_err e, src_err;
    int opened = evo_pack_open(&p, path, 0, &src_err) == 0;
    if (!opened && evo_pack_open(&p, path, EVO_PACK_INDEX_ONLY, &e) < 0)
        evo_fatal("%s", e.msg);
    const evo_pack_meta *m = &p.meta;
    uint64_t length = evo_pack_length(m), space = m->n_rows * length;
    uint64_t lost = m->tail_tokens + m->short_tokens;
    printf("file:          %s\n", path);
    printf("format:        evo-pack version %u, %" PRIu64 " bytes, checksums ok\n", p.file.version, p.file.size);
    printf("kind:          %s%s\n", m->flags & EVO_PACK_VALID ? "validation" : "training",
           m->flags & EVO_PACK_MIXED ? ", inputs mixed by weight" : "");
    printf("tokenizer:     %s, fingerprint ", m->tokenizer_name);
    for (int i = 0; i < 16; i++)
        printf("%02x", m->fingerprint[i]);
    printf(", vocab %u (%u-byte ids), bos %d, eos %d\n", m->vocab_size, m->token_width, m->bos_id, m->eos_id);
    printf("rows:          %" PRIu64 " of %" PRIu64 " tokens (seq_len %u x micro_bsz %u)\n", m->n_rows, length,
           m->seq_len, m->micro_bsz);
    printf("tokens:        %" PRIu64 " in rows, %" PRIu64 " padding (%.2f%% of row space)\n", m->n_tokens, m->n_pad,
           percent(m->n_pad, space));
    printf("documents:     %" PRIu64 " begun in rows, %" PRIu64 " pieces\n", m->n_docs, m->n_pieces);
    printf("not packed:    %" PRIu64 " tokens past the last full row, %" PRIu64 " tokens in %" PRIu64
           " documents under --min-length, %" PRIu64 " tokens in %" PRIu64 " documents held out for validation\n",
           m->tail_tokens, m->short_tokens, m->short_docs, m->valid_tokens, m->valid_docs);
    printf("waste:         %.2f%% (padding and tokens not packed, of source tokens %" PRIu64 ")\n",
           percent(m->n_pad + lost, m->source_tokens), m->source_tokens);
    printf("options:       seed %" PRIu64 ", pack-into-one %s, min-length %u, max-doc-len %u, keep-tail %s, epochs %u",
           m->seed, yes_no(m->flags & EVO_PACK_INTO_ONE), m->min_length, m->max_doc_len,
           yes_no(m->flags & EVO_PACK_KEEP_TAIL), m->epochs);
    if (m->valid_fraction > 0)
        printf(", valid %g", m->valid_fraction);
    if (m->budget)
        printf(", tokens %" PRIu64, m->budget);
    printf("\n");
    print_sources(&p, opened);
    if (opened)
        print_lengths(&p);
    else
        printf("sources:       not available: %s\n", src_err.msg);
    evo_pack_close(&p);
    return opened ? EVO_EXIT_OK : EVO_EXIT_FAIL;
}

static void parse_rows(const char *spec, uint64_t n_rows, uint64_t *first, uint64_t *last)
{
    if (!strcmp(spec, "all")) {
        if (!n_rows)
            evo_fatal("the pack has no rows");
        *first = 0;
        *last = n_rows - 1;
        return;
    }
    char *end;
    *first = *last = strtoull(spec, &end, 10);
    if (*end == '-')
        *last = strtoull(end + 1, &end, 10);
    if (*end || end == spec || *last < *first || spec[0] == '-')
        evo_usage_error("--dump wants a row N, a range N-M or all, not '%s'", spec);
    if (*last >= n_rows)
        evo_fatal("row %" PRIu64 " does not exist (the pack has %" PRIu64 " rows)", *last, n_rows);
}

static void print_ints(const char *name, const int32_t *v, size_t n)
{
    fputs(name, stdout);
    for (size_t i = 0; i < n; i++)
        printf(" %d", v[i]);
    putchar('\n');
}

static void print_c_escaped(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
}

int pack_dump(const char *path, const char *rows, const char *tokenizer)
{
    evo_err e;
    evo_pack p;
    if (evo_pack_open(&p, path, 0, &e) < 0)
        evo_fatal("%s", e.msg);
    uint64_t first, last;
    parse_rows(rows, p.meta.n_rows, &first, &last);
    evo_tokenizer *tok = NULL;
    if (tokenizer) {
        if (!(tok = evo_tokenizer_open(tokenizer, &e)))
            evo_fatal("%s", e.msg);
        uint8_t fp[16];
        evo_tokenizer_fingerprint(tok, fp);
        if (memcmp(fp, p.meta.fingerprint, 16))
            evo_warn("%s: not the tokenizer the pack was made with (%s); decoding anyway", tokenizer,
                     p.meta.tokenizer_name);
    }
    evo_pack_row r;
    evo_pack_row_init(&r, &p.meta);
    evo_buf text = {0};
    size_t length = (size_t)evo_pack_length(&p.meta);
    for (uint64_t i = first; i <= last; i++) {
        evo_pack_read_row(&p, i, &r);
        size_t labelled = 0;
        for (size_t j = 0; j < length; j++)
            labelled += r.labels[j] != EVO_LABEL_IGNORE;
        printf("%srow %" PRIu64 ": %zu tokens, %u segments, %zu labels, %u pad\n", i > first ? "\n" : "", i, length,
               r.n_segments, labelled, r.n_pad);
        print_ints("cu_seqlens", r.cu_seqlens, r.n_segments + 1);
        print_ints("tokens", r.tokens, length);
        print_ints("labels", r.labels, length);
        print_ints("positions", r.positions, length);
        for (uint32_t s = 0; tok && s < r.n_segments; s++) {
            text.len = 0;
            if (evo_decode(tok, r.tokens + r.cu_seqlens[s], (size_t)(r.cu_seqlens[s + 1] - r.cu_seqlens[s]), &text,
                           &e) < 0)
                evo_fatal("%s: %s", tokenizer, e.msg);
            printf("text %u: ", s);
            print_c_escaped(text.data, text.len);
            putchar('\n');
        }
    }
    evo_buf_free(&text);
    evo_pack_row_free(&r);
    evo_tokenizer_free(tok);
    evo_pack_close(&p);
    if (fflush(stdout) != 0)
        evo_fatal("stdout: write failed");
    return EVO_EXIT_OK;
}
