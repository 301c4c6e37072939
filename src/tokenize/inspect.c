/* inspect.c - looking inside token files: --info and --decode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/histogram.h"
#include "formats/tokens.h"
#include "tokenize.h"

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

static void print_histogram(const evo_tokens_reader *r)
{
    evo_histogram h = {0};
    for (uint64_t d = 0; d < r->meta.n_docs; d++)
        evo_histogram_add(&h, evo_tokens_doc_start(r, d + 1) - evo_tokens_doc_start(r, d));
    evo_histogram_print(&h, "document length histogram (tokens):");
}

int tokens_info(char **files, int n)
{
    int rc = EVO_EXIT_OK;
    for (int i = 0; i < n; i++) {
        evo_tokens_reader r;
        evo_err e;
        if (evo_tokens_open(&r, files[i], 0, &e) < 0) {
            evo_warn("%s", e.msg);
            rc = EVO_EXIT_FAIL;
            continue;
        }
        const evo_tokens_meta *m = &r.meta;
        uint64_t min = UINT64_MAX, max = 0, targets = 0;
        for (uint64_t d = 0; d < m->n_docs; d++) {
            uint64_t len = evo_tokens_doc_start(&r, d + 1) - evo_tokens_doc_start(&r, d);
            min = len < min ? len : min;
            max = len > max ? len : max;
        }
        if (r.mask)
            for (uint64_t t = 0; t < m->n_tokens; t++)
                targets += evo_tokens_is_target(&r, t);
        printf("file:          %s\n", files[i]);
        printf("format:        evo-tokens version %u, %llu bytes, checksums ok\n", r.file.version,
               (unsigned long long)r.file.size);
        printf("tokenizer:     %s (%s)\n", m->tokenizer_name, m->tokenizer_kind);
        printf("fingerprint:   ");
        print_hex(m->fingerprint, 16);
        printf("\nvocab size:    %u (%u-byte ids)\n", m->vocab_size, m->token_width);
        static const char *const added[] = {"none", "bos", "eos", "bos and eos"};
        printf("bos / eos:     %d / %d (added to every document: %s)\n", m->bos_id, m->eos_id,
               added[(m->flags & EVO_TOK_ADDED_BOS ? 1 : 0) | (m->flags & EVO_TOK_ADDED_EOS ? 2 : 0)]);
        if (m->shards)
            printf("shard:         %u of %u (--shard %u/%u)\n", m->shard, m->shards, m->shard, m->shards);
        printf("documents:     %llu\n", (unsigned long long)m->n_docs);
        printf("tokens:        %llu", (unsigned long long)m->n_tokens);
        if (m->n_docs)
            printf(" (per document: mean %.1f, min %llu, max %llu)", (double)m->n_tokens / (double)m->n_docs,
                   (unsigned long long)min, (unsigned long long)max);
        printf("\nloss mask:     ");
        if (r.mask)
            printf("yes, %llu targets (%.1f%%)\n", (unsigned long long)targets,
                   m->n_tokens ? 100.0 * (double)targets / (double)m->n_tokens : 0.0);
        else
            printf("no (every token is a target)\n");
        print_histogram(&r);
        if (i + 1 < n)
            printf("\n");
        evo_tokens_close(&r);
    }
    return rc;
}

int tokens_decode(const char *tokenizer_path, char **files, int n, const char *output)
{
    evo_err e;
    evo_tokenizer *tok = evo_tokenizer_open(tokenizer_path, &e);
    if (!tok)
        evo_fatal("%s", e.msg);
    uint8_t fp[16];
    evo_tokenizer_fingerprint(tok, fp);
    int to_stdout = strcmp(output, "-") == 0;
    evo_out out;
    if (!to_stdout && evo_out_open(&out, output, &e) < 0)
        evo_fatal("%s", e.msg);
    evo_ids ids = {0};
    evo_buf text = {0};
    for (int i = 0; i < n; i++) {
        evo_tokens_reader r;
        if (evo_tokens_open(&r, files[i], 0, &e) < 0)
            goto fail;
        if (memcmp(fp, r.meta.fingerprint, 16) != 0)
            evo_warn("%s: made by another tokenizer (%s) than %s; decoding anyway", files[i],
                     r.meta.tokenizer_name, tokenizer_path);
        for (uint64_t d = 0; d < r.meta.n_docs; d++) {
            uint64_t a = evo_tokens_doc_start(&r, d), b = evo_tokens_doc_start(&r, d + 1);
            ids.len = 0;
            for (uint64_t t = a; t < b; t++) {
                int32_t id = (int32_t)evo_tokens_id(&r, t);
                /* The BOS/EOS the tokenizer added are framing, not text. */
                if (((r.meta.flags & EVO_TOK_ADDED_BOS) && t == a && id == r.meta.bos_id) ||
                    ((r.meta.flags & EVO_TOK_ADDED_EOS) && t + 1 == b && id == r.meta.eos_id))
                    continue;
                evo_ids_push(&ids, id);
            }
            text.len = 0;
            if (evo_decode(tok, ids.data, ids.len, &text, &e) < 0) {
                evo_err_prefix(&e, "%s: document %llu", files[i], (unsigned long long)d);
                evo_tokens_close(&r);
                goto fail;
            }
            evo_buf_push(&text, '\n');
            if (to_stdout ? fwrite(text.data, 1, text.len, stdout) != text.len
                          : evo_out_write(&out, text.data, text.len, &e) < 0) {
                if (to_stdout)
                    evo_errf(&e, "stdout: write failed");
                evo_tokens_close(&r);
                goto fail;
            }
        }
        evo_tokens_close(&r);
    }
    if (!to_stdout && evo_out_commit(&out, &e) < 0)
        evo_fatal("%s", e.msg);
    if (to_stdout && fflush(stdout) != 0)
        evo_fatal("stdout: write failed");
    evo_ids_free(&ids);
    evo_buf_free(&text);
    evo_tokenizer_free(tok);
    return EVO_EXIT_OK;
fail:
    if (!to_stdout)
        evo_out_abort(&out);
    evo_fatal("%s", e.msg);
}
