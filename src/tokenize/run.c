/* run.c - the encoding pipeline: read a batch while the workers encode the
 * previous one, then write its results in input order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/workpool.h"
#include "formats/tokens.h"
#include "tokenize.h"

typedef struct {
    const batch *b;
    evo_encoder **enc; /* one per worker */
    int32_t bos, eos;  /* -1: not added */
    uint32_t ids_vocab; /* -f ids: the text is ids (checked by the reader) */
} encode_job;

/* Marks the ids added since the last call as loss targets or not. */
static void mark_targets(entry *en, uint8_t target)
{
    size_t n = en->ids.len - en->target.len;
    evo_buf_reserve(&en->target, n + 1);
    memset(en->target.data + en->target.len, target, n);
    en->target.len = en->ids.len;
}

/* Keeps the reason of a failed entry for the writer to report. */
static void entry_failed(entry *en, const evo_err *why)
{
    en->err = evo_malloc(sizeof *en->err);
    *en->err = *why;
}

static void encode_entry(void *ctx, size_t i, int worker)
{
    encode_job *job = ctx;
    entry *en = &job->b->entries[i];
    evo_err why;
    en->ids.len = 0;
    en->target.len = 0;
    if ((en->flags & ENTRY_STARTS_DOC) && job->bos >= 0)
        evo_ids_push(&en->ids, job->bos);
    mark_targets(en, 1);
    for (size_t s = en->first_seg; s < en->first_seg + en->n_segs; s++) {
        const segment *seg = &job->b->segs[s];
        if (job->ids_vocab) {
            if (parse_id_line(job->b->arena.data + seg->text_off, seg->len, job->ids_vocab, &en->ids, &en->target,
                              &why) < 0) {
                entry_failed(en, &why);
                return;
            }
            continue;
        }
        if (evo_encode(job->enc[worker], job->b->arena.data + seg->text_off, seg->len, seg->enc_flags, &en->ids,
                       &why) < 0) {
            entry_failed(en, &why);
            return;
        }
        mark_targets(en, seg->target);
    }
    if ((en->flags & ENTRY_ENDS_DOC) && job->eos >= 0)
        evo_ids_push(&en->ids, job->eos);
    mark_targets(en, 1); /* BOS and EOS are targets, as InternEvo keeps them positive */
}

/* Where results go: a token file, or text ids (--ids). */
typedef struct {
    int ids_text, has_mask;
    evo_tokens_writer tw;
    evo_out text_out; /* --ids to a file: atomic like everything else */
    int text_to_stdout;
    evo_buf line;
    uint64_t docs, tokens;
} sink;

static int sink_open(sink *s, const tokenize_options *opt, const evo_tokenizer *tok, int adds, evo_err *e)
{
    s->ids_text = opt->ids_text;
    s->has_mask = opt->in.format == FORMAT_CHAT || opt->in.format == FORMAT_IDS;
    if (s->ids_text) {
        s->text_to_stdout = strcmp(opt->output, "-") == 0;
        return s->text_to_stdout ? 0 : evo_out_open(&s->text_out, opt->output, e);
    }
    if (strcmp(opt->output, "-") == 0 && isatty(STDOUT_FILENO))
        return evo_errf(e, "refusing to write a binary token file to a terminal (use -o FILE, a pipe, or --ids)");
    evo_tokens_meta m = {0};
    m.vocab_size = evo_tokenizer_vocab_size(tok);
    m.bos_id = evo_tokenizer_bos(tok);
    m.eos_id = evo_tokenizer_eos(tok);
    m.flags = (s->has_mask ? EVO_TOK_HAS_MASK : 0) | adds;
    m.shard = (uint16_t)opt->in.shard;
    m.shards = (uint16_t)opt->in.shards;
    evo_tokenizer_fingerprint(tok, m.fingerprint);
    snprintf(m.tokenizer_kind, sizeof m.tokenizer_kind, "%s", evo_tokenizer_kind(tok));
    const char *base = strrchr(opt->tokenizer_path, '/');
    snprintf(m.tokenizer_name, sizeof m.tokenizer_name, "%s", base ? base + 1 : opt->tokenizer_path);
    return evo_tokens_create(&s->tw, opt->output, &m, e);
}

/* Writes v in decimal at p and returns the end (snprintf per id took a
 * sixth of an --ids run). */
static char *put_int(char *p, int32_t v)
{
    char digits[10];
    int n = 0;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    do
        digits[n++] = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *p++ = '-';
    while (n)
        *p++ = digits[--n];
    return p;
}

static void format_ids(sink *s, const entry *en)
{
    evo_buf_reserve(&s->line, 12 * en->ids.len + 1); /* " -2147483648" at most, and '\n' */
    char *p = s->line.data + s->line.len;
    int sep = s->line.len && p[-1] != '\n';
    for (size_t i = 0; i < en->ids.len; i++) {
        /* Context tokens of chat data print negated: InternEvo's own convention. */
        int32_t v = s->has_mask && !en->target.data[i] ? -en->ids.data[i] : en->ids.data[i];
        if (sep)
            *p++ = ' ';
        sep = 1;
        p = put_int(p, v);
    }
    s->line.len = (size_t)(p - s->line.data);
    if (en->flags & ENTRY_ENDS_DOC)
        evo_buf_push(&s->line, '\n');
}

static int sink_write(sink *s, const batch *b, evo_err *e)
{
    for (size_t i = 0; i < b->n_entries; i++) {
        const entry *en = &b->entries[i];
        if (en->err) {
            *e = *en->err;
            return -1;
        }
        s->docs += (en->flags & ENTRY_STARTS_DOC) != 0;
        s->tokens += en->ids.len;
        if (s->ids_text) {
            format_ids(s, en);
            continue;
        }
        const uint8_t *mask = (const uint8_t *)en->target.data;
        int rc = (en->flags & ENTRY_STARTS_DOC) ? evo_tokens_append(&s->tw, en->ids.data, mask, en->ids.len, e)
                                                : evo_tokens_extend(&s->tw, en->ids.data, mask, en->ids.len, e);
        if (rc < 0)
            return -1;
    }
    if (!s->ids_text || !s->line.len)
        return 0;
    /* Keep a document's partial line until it ends, so lines stay whole. */
    char *nl = memrchr(s->line.data, '\n', s->line.len);
    size_t n = nl ? (size_t)(nl - s->line.data) + 1 : 0;
    if (n == 0)
        return 0;
    int rc = 0;
    if (s->text_to_stdout) {
        if (fwrite(s->line.data, 1, n, stdout) != n)
            rc = evo_errf(e, "stdout: write failed");
    } else {
        rc = evo_out_write(&s->text_out, s->line.data, n, e);
    }
    memmove(s->line.data, s->line.data + n, s->line.len - n);
    s->line.len -= n;
    return rc;
}

static int sink_finish(sink *s, evo_err *e)
{
    int rc;
    if (!s->ids_text)
        rc = evo_tokens_finish(&s->tw, e);
    else if (s->text_to_stdout)
        rc = fflush(stdout) == 0 ? 0 : evo_errf(e, "stdout: write failed");
    else
        rc = evo_out_commit(&s->text_out, e);
    evo_buf_free(&s->line);
    return rc;
}

static void sink_abort(sink *s)
{
    if (!s->ids_text)
        evo_tokens_abort(&s->tw);
    else if (!s->text_to_stdout)
        evo_out_abort(&s->text_out);
    evo_buf_free(&s->line);
}

int tokenize_run(const tokenize_options *opt, char **inputs, int n_inputs)
{
    evo_err e;
    evo_tokenizer *tok = evo_tokenizer_open(opt->tokenizer_path, &e);
    if (!tok)
        evo_fatal("%s", e.msg);
    int32_t bos = evo_tokenizer_bos(tok), eos = evo_tokenizer_eos(tok);
    if (opt->add_bos == 1 && bos < 0)
        evo_fatal("%s: the tokenizer has no BOS token (use --no-bos)", opt->tokenizer_path);
    if (opt->add_eos == 1 && eos < 0)
        evo_fatal("%s: the tokenizer has no EOS token (use --no-eos)", opt->tokenizer_path);

    input_options in = opt->in;
    in.tok = tok;
    static char *stdin_only[] = {"-"};
    reader *rd = n_inputs ? reader_new(inputs, n_inputs, &in, &e) : reader_new(stdin_only, 1, &in, &e);
    if (!rd)
        evo_fatal("%s", e.msg);
    evo_pool *pool = evo_pool_new(opt->threads);
    /* Ids are taken as they are: BOS/EOS only when asked for. */
    int ids = opt->in.format == FORMAT_IDS;
    encode_job job = {.bos = opt->add_bos == 1 || (opt->add_bos < 0 && !ids) ? bos : -1,
                      .eos = opt->add_eos == 1 || (opt->add_eos < 0 && !ids) ? eos : -1,
                      .ids_vocab = ids ? evo_tokenizer_vocab_size(tok) : 0};
    int adds = (job.bos >= 0 ? EVO_TOK_ADDED_BOS : 0) | (job.eos >= 0 ? EVO_TOK_ADDED_EOS : 0);
    job.enc = evo_calloc((size_t)opt->threads, sizeof *job.enc);
    for (int i = 0; i < opt->threads; i++)
        job.enc[i] = evo_encoder_new(tok);

    sink out = {0};
    if (sink_open(&out, opt, tok, adds, &e) < 0)
        evo_fatal("%s", e.msg);

    evo_progress prog;
    evo_progress_start(&prog, opt->progress, reader_bytes_total(rd));
    double t0 = evo_now();
    /* Two batches in flight: the workers encode one while this thread
     * reads the next and then writes the previous, so the workers never
     * wait for a write. */
    batch bufs[2];
    memset(bufs, 0, sizeof bufs);
    int cur = 0, more = reader_fill(rd, &bufs[0], &e), failed = more < 0;
    int pending = !failed && bufs[0].n_entries;
    if (pending) {
        job.b = &bufs[0];
        evo_pool_submit(pool, bufs[0].n_entries, encode_entry, &job);
    }
    while (pending) {
        batch *next = &bufs[cur ^ 1];
        batch_clear(next);
        evo_err read_err;
        int next_more = more ? reader_fill(rd, next, &read_err) : 0;
        evo_pool_wait(pool);
        pending = next_more >= 0 && next->n_entries;
        if (pending) {
            job.b = next;
            evo_pool_submit(pool, next->n_entries, encode_entry, &job);
        }
        if (sink_write(&out, &bufs[cur], &e) < 0 || next_more < 0) {
            if (next_more < 0)
                e = read_err;
            evo_pool_wait(pool);
            failed = 1;
            break;
        }
        evo_progress_update(&prog, reader_bytes_read(rd), out.docs, "documents");
        cur ^= 1;
        more = next_more;
    }
    evo_progress_end(&prog);
    uint64_t bytes = reader_bytes_read(rd), bad = reader_bad_lines(rd);
    if (failed) {
        sink_abort(&out);
    } else if (sink_finish(&out, &e) < 0) {
        failed = 1;
    }
    double secs = evo_now() - t0;
    for (int i = 0; i < 2; i++)
        batch_free(&bufs[i]);
    for (int i = 0; i < opt->threads; i++)
        evo_encoder_free(job.enc[i]);
    free(job.enc);
    evo_pool_free(pool);
    reader_free(rd);
    evo_tokenizer_free(tok);
    if (failed)
        evo_fatal("%s", e.msg);
    if (bad)
        evo_warn("skipped %llu malformed line%s (--skip-bad)", (unsigned long long)bad, bad == 1 ? "" : "s");
    evo_info("%llu documents, %llu tokens from %.1f MB in %.2f s (%.1f MB/s, %d thread%s)",
             (unsigned long long)out.docs, (unsigned long long)out.tokens, (double)bytes / 1e6, secs,
             secs > 0 ? (double)bytes / 1e6 / secs : 0.0, opt->threads, opt->threads == 1 ? "" : "s");
    return EVO_EXIT_OK;
}
