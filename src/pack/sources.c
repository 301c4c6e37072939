/* sources.c - evo-pack's inputs: token files verified and recorded as the
 * pack's sources, by reference or embedded. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/workpool.h"
#include "evopack.h"

void parse_input_arg(const char *arg, pack_input *in)
{
    *in = (pack_input){.arg = evo_strdup(arg)};
    char *colon = strrchr(in->arg, ':');
    struct stat st;
    if (!colon || colon == in->arg || stat(arg, &st) == 0)
        return;
    char *end;
    double w = strtod(colon + 1, &end);
    if (*end || end == colon + 1)
        return;
    if (!(w > 0) || w > 1e12)
        evo_usage_error("%s: a weight must be a positive number", arg);
    in->weight = w;
    *colon = '\0';
}

/* "../data/a.tok": file (absolute) seen from directory dir (absolute). */
static char *relative_to(const char *dir, const char *file)
{
    size_t common = 0;
    for (size_t i = 0; dir[i] && dir[i] == file[i]; i++)
        if (dir[i] == '/')
            common = i + 1;
    size_t dl = strlen(dir);
    if (strncmp(dir, file, dl) == 0 && (file[dl] == '/' || dl == 1))
        common = dl == 1 ? 1 : dl + 1; /* dir is a prefix of file */
    size_t ups = 0;
    for (size_t i = common; i < dl; i++)
        ups += dir[i] == '/';
    if (common < dl)
        ups++; /* the last component of dir */
    size_t n = strlen(file + common);
    char *out = evo_malloc(3 * ups + n + 1), *p = out;
    for (size_t i = 0; i < ups; i++, p += 3)
        memcpy(p, "../", 3);
    memcpy(p, file + common, n + 1);
    return out;
}

/* How a pack at output finds path later: relative to the pack's
 * directory, so the two can move together; absolute for stdout. */
static char *stored_path(const char *path, const char *output)
{
    char *abs = realpath(path, NULL);
    if (!abs)
        return evo_strdup(path);
    if (!strcmp(output, "-"))
        return abs;
    char *tmp = evo_strdup(output), *dir = realpath(dirname(tmp), NULL);
    free(tmp);
    if (!dir)
        return abs;
    char *rel = relative_to(dir, abs);
    free(dir);
    free(abs);
    return rel;
}

static void record_source(pack_input *in)
{
    in->src.n_docs = in->tok.meta.n_docs;
    in->src.n_tokens = in->tok.meta.n_tokens;
    in->src.file_size = in->tok.file.size;
    in->src.content_id = evo_le64(in->tok.file.data + 24);
    in->src.weight = in->weight;
}

struct verify_job {
    pack_input *in;
    evo_err *errs;
    int *rcs;
    evo_pool *pool;
    int n;
};

static void verify_one(void *ctx, size_t i, int worker)
{
    (void)worker;
    verify_job *j = ctx;
    j->rcs[i] = evo_tokens_verify(&j->in[i].tok, &j->errs[i]);
}

verify_job *verify_start(pack_input *in, int n, int threads)
{
    verify_job *j = evo_calloc(1, sizeof *j);
    *j = (verify_job){in, evo_calloc((size_t)n, sizeof(evo_err)), evo_calloc((size_t)n, sizeof(int)), NULL, n};
    j->pool = evo_pool_new(threads);
    evo_pool_submit(j->pool, (size_t)n, verify_one, j);
    return j;
}

int verify_finish(verify_job *j, evo_err *e)
{
    evo_pool_wait(j->pool);
    evo_pool_free(j->pool);
    int rc = 0;
    for (int i = 0; i < j->n && rc == 0; i++)
        if (j->rcs[i] < 0) {
            *e = j->errs[i];
            rc = -1;
        }
    free(j->errs);
    free(j->rcs);
    free(j);
    return rc;
}

static int copy_fd(int fd, const char *name, evo_pack_writer *w, evo_err *e)
{
    char *buf = evo_malloc(1 << 20);
    int rc = 0;
    for (;;) {
        ssize_t got = read(fd, buf, 1 << 20);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            rc = evo_errf(e, "%s: read failed: %s", name, strerror(errno));
        if (got <= 0 || (rc = evo_pack_embed_write(w, buf, (size_t)got, e)) < 0)
            break;
    }
    free(buf);
    return rc;
}

/* Maps bytes [start, end) of the output being written back in, read-only. */
static int map_back(evo_pack_writer *w, uint64_t start, pack_input *in, const uint8_t **data, evo_err *e)
{
    uint64_t end = evo_pack_writer_pos(w), page = (uint64_t)sysconf(_SC_PAGESIZE), base = start & ~(page - 1);
    in->map_len = end - base;
    in->map = in->map_len ? mmap(NULL, in->map_len, PROT_READ, MAP_SHARED, evo_pack_writer_fd(w), (off_t)base) : NULL;
    if (in->map == MAP_FAILED) {
        in->map = NULL;
        return evo_errf(e, "%s: mmap: %s", in->arg, strerror(errno));
    }
    *data = in->map ? (const uint8_t *)in->map + (start - base) : (const uint8_t *)"";
    return 0;
}

static int embed_input(pack_input *in, uint32_t i, evo_pack_writer *w, evo_err *e)
{
    int is_stdin = !strcmp(in->arg, "-");
    const char *name = is_stdin ? "stdin" : in->arg;
    int fd = is_stdin ? STDIN_FILENO : open(in->arg, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return evo_errf(e, "%s: %s", in->arg, strerror(errno));
    if (evo_pack_embed_begin(w, i, e) < 0)
        goto fail;
    uint64_t start = evo_pack_writer_pos(w);
    if (copy_fd(fd, name, w, e) < 0 || evo_pack_embed_end(w, e) < 0)
        goto fail;
    if (!is_stdin)
        close(fd);
    const uint8_t *data = NULL;
    if (map_back(w, start, in, &data, e) < 0 ||
        evo_tokens_open_mem(&in->tok, name, data, evo_pack_writer_pos(w) - start,
                            EVO_FILE_BACKED | EVO_TOKENS_DEFER_VERIFY, e) < 0)
        return -1;
    in->src.embedded_section = EVO_PACK_SEC_EMBEDDED + i;
    return 0;
fail:
    if (!is_stdin)
        close(fd);
    return -1;
}

static void hex(const uint8_t *p, char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

int open_inputs(pack_input *in, int n, const pack_options *opt, evo_pack_writer *w, evo_err *e)
{
    for (int i = 0; i < n; i++) {
        in[i].embedded = opt->embed || !strcmp(in[i].arg, "-");
        if (in[i].embedded) {
            if (embed_input(&in[i], (uint32_t)i, w, e) < 0)
                return -1;
            in[i].src.path = evo_strdup(strcmp(in[i].arg, "-") ? in[i].arg : "(stdin)");
        } else {
            if (evo_tokens_open(&in[i].tok, in[i].arg, EVO_TOKENS_DEFER_VERIFY, e) < 0)
                return -1;
            in[i].src.path = stored_path(in[i].arg, opt->output);
        }
        record_source(&in[i]);
    }
    for (int i = 1; i < n; i++) {
        const evo_tokens_meta *a = &in[0].tok.meta, *b = &in[i].tok.meta;
        if (memcmp(a->fingerprint, b->fingerprint, 16) || a->vocab_size != b->vocab_size) {
            char fa[33], fb[33];
            hex(a->fingerprint, fa);
            hex(b->fingerprint, fb);
            return evo_errf(e, "%s: tokenized with another tokenizer than %s (%s %s vs %s %s); packs mix one tokenizer only",
                            in[i].src.path, in[0].src.path, b->tokenizer_name, fb, a->tokenizer_name, fa);
        }
    }
    return 0;
}

int embed_again(pack_input *in, int n, evo_pack_writer *w, evo_err *e)
{
    for (int i = 0; i < n; i++) {
        if (!in[i].embedded)
            continue;
        if (evo_pack_embed_begin(w, (uint32_t)i, e) < 0 ||
            evo_pack_embed_write(w, in[i].tok.file.data, in[i].tok.file.size, e) < 0 || evo_pack_embed_end(w, e) < 0)
            return -1;
    }
    return 0;
}

void close_inputs(pack_input *in, int n)
{
    for (int i = 0; i < n; i++) {
        if (in[i].tok.file.path)
            evo_tokens_close(&in[i].tok);
        if (in[i].map)
            munmap(in[i].map, in[i].map_len);
        free(in[i].src.path);
        free(in[i].arg);
    }
}
