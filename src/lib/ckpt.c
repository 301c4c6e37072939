#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* Meta field offsets (evo-ckpt(5)). */
enum { M_KIND = 0, M_DTYPE = 4, M_RANKS = 8, M_STEP = 32, M_N_TENSORS = 40, M_N_ELEMENTS = 48, M_END = 56 };
/* Tensor entry field offsets. */
enum { T_NAME = 0, T_NDIM = 64, T_SHAPE = 72, T_OFFSET = 104, T_NUMEL = 112, T_END = 120 };

int evo_ckpt_write_file(const char *path, const evo_ckpt_meta *meta, const evo_ckpt_tensor *tensors,
                        size_t n_tensors, const void *data, evo_err *e)
{
    uint64_t n_elements = 0;
    uint8_t m[EVO_CKPT_META_SIZE] = {0};
    uint8_t *table = evo_calloc(n_tensors ? n_tensors : 1, EVO_CKPT_TENSOR_SIZE);
    for (size_t i = 0; i < n_tensors; i++) {
        uint8_t *t = table + i * EVO_CKPT_TENSOR_SIZE;
        memcpy(t + T_NAME, tensors[i].name, strnlen(tensors[i].name, EVO_CKPT_NAME_MAX - 1));
        evo_put32(t + T_NDIM, tensors[i].ndim);
        for (int d = 0; d < 4; d++)
            evo_put64(t + T_SHAPE + 8 * d, tensors[i].shape[d]);
        evo_put64(t + T_OFFSET, tensors[i].offset);
        evo_put64(t + T_NUMEL, tensors[i].numel);
        n_elements += tensors[i].numel;
    }
    const uint32_t u32[8] = {meta->kind,     (uint32_t)meta->dtype, meta->tp_rank,   meta->tp_size,
                             meta->pp_rank,  meta->pp_size,         meta->zero_rank, meta->zero_size};
    for (int i = 0; i < 8; i++)
        evo_put32(m + 4 * i, u32[i]);
    evo_put64(m + M_STEP, meta->step);
    evo_put64(m + M_N_TENSORS, n_tensors);
    evo_put64(m + M_N_ELEMENTS, n_elements);

    evo_binwriter w;
    int rc = -1;
    if (evo_binwriter_open(&w, path, EVO_CKPT_MAGIC, EVO_CKPT_VERSION, EVO_CKPT_META_SIZE, 2, e) < 0)
        goto out;
    if (evo_binwriter_begin(&w, EVO_CKPT_SEC_TENSORS, e) < 0 ||
        evo_binwriter_write(&w, table, n_tensors * EVO_CKPT_TENSOR_SIZE, e) < 0 || evo_binwriter_end(&w, e) < 0 ||
        evo_binwriter_begin(&w, EVO_CKPT_SEC_DATA, e) < 0 ||
        evo_binwriter_write(&w, data, n_elements * evo_dtype_size(meta->dtype), e) < 0 ||
        evo_binwriter_end(&w, e) < 0 || evo_binwriter_finish(&w, m, e) < 0) {
        evo_binwriter_abort(&w);
        goto out;
    }
    rc = 0;
out:
    free(table);
    return rc;
}

/* Validates one table entry at file offset `at`; *next is the element
 * offset the entry must start at (tensors tile DATA in order). */
static int read_tensor(evo_ckpt_tensor *t, const uint8_t *p, uint64_t at, uint64_t *next, uint64_t n_elements,
                       const char *path, evo_err *e)
{
    *t = (evo_ckpt_tensor){0};
    if (!memchr(p + T_NAME, 0, EVO_CKPT_NAME_MAX) || !p[T_NAME])
        return evo_errf(e, "%s: offset %" PRIu64 ": tensor name empty or not terminated", path, at);
    memcpy(t->name, p + T_NAME, EVO_CKPT_NAME_MAX);
    t->ndim = evo_le32(p + T_NDIM);
    if (t->ndim < 1 || t->ndim > 4 || evo_le32(p + T_NDIM + 4))
        return evo_errf(e, "%s: offset %" PRIu64 ": tensor %s has %u dimensions (1 to 4)", path, at + T_NDIM, t->name,
                        t->ndim);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < 4; d++) {
        t->shape[d] = evo_le64(p + T_SHAPE + 8 * d);
        if (d >= t->ndim ? t->shape[d] != 0 : t->shape[d] == 0 || numel > UINT64_MAX / t->shape[d])
            return evo_errf(e, "%s: offset %" PRIu64 ": tensor %s has a bad shape", path, at + T_SHAPE + 8 * d,
                            t->name);
        if (d < t->ndim)
            numel *= t->shape[d];
    }
    t->offset = evo_le64(p + T_OFFSET);
    t->numel = evo_le64(p + T_NUMEL);
    if (t->numel != numel)
        return evo_errf(e, "%s: offset %" PRIu64 ": tensor %s: numel %" PRIu64 " is not the product of its shape",
                        path, at + T_NUMEL, t->name, t->numel);
    if (t->offset != *next || t->numel > n_elements - t->offset)
        return evo_errf(e, "%s: offset %" PRIu64 ": tensor %s does not follow the previous one inside the data",
                        path, at + T_OFFSET, t->name);
    for (int i = T_END; i < EVO_CKPT_TENSOR_SIZE; i++)
        if (p[i])
            return evo_errf(e, "%s: offset %" PRIu64 ": reserved bytes of tensor %s are not zero", path, at + i,
                            t->name);
    *next += numel;
    return 0;
}

int evo_ckpt_open(evo_ckpt_file *c, const char *path, evo_err *e)
{
    *c = (evo_ckpt_file){0};
    if (evo_binfile_open(&c->f, path, EVO_CKPT_MAGIC, EVO_CKPT_VERSION, EVO_VERIFY_CHECKSUMS, e) < 0)
        return -1;
    const uint8_t *m = c->f.meta;
    evo_ckpt_meta *meta = &c->meta;
    if (c->f.meta_size < EVO_CKPT_META_SIZE) {
        evo_errf(e, "%s: offset 24: meta of %u bytes, want %d", path, c->f.meta_size, EVO_CKPT_META_SIZE);
        goto fail;
    }
    meta->kind = evo_le32(m + M_KIND);
    uint32_t dt = evo_le32(m + M_DTYPE);
    uint32_t *ranks[6] = {&meta->tp_rank, &meta->tp_size, &meta->pp_rank, &meta->pp_size, &meta->zero_rank, &meta->zero_size};
    for (int i = 0; i < 6; i++)
        *ranks[i] = evo_le32(m + M_RANKS + 4 * i);
    meta->step = evo_le64(m + M_STEP);
    meta->n_tensors = evo_le64(m + M_N_TENSORS);
    meta->n_elements = evo_le64(m + M_N_ELEMENTS);
    if (meta->kind != EVO_CKPT_MODEL && meta->kind != EVO_CKPT_OPTIMIZER) {
        evo_errf(e, "%s: offset %d: unknown kind %u (1 model, 2 optimizer)", path, EVO_PREFIX_SIZE + M_KIND, meta->kind);
        goto fail;
    }
    if (dt > EVO_F16) {
        evo_errf(e, "%s: offset %d: unknown dtype %u", path, EVO_PREFIX_SIZE + M_DTYPE, dt);
        goto fail;
    }
    meta->dtype = (evo_dtype)dt;
    for (int i = 0; i < 6; i += 2)
        if (*ranks[i + 1] == 0 || *ranks[i] >= *ranks[i + 1]) {
            evo_errf(e, "%s: offset %d: rank %u of %u", path, EVO_PREFIX_SIZE + M_RANKS + 4 * i, *ranks[i],
                     *ranks[i + 1]);
            goto fail;
        }
    for (int i = M_END; i < EVO_CKPT_META_SIZE; i++)
        if (m[i]) {
            evo_errf(e, "%s: offset %d: reserved meta bytes are not zero", path, EVO_PREFIX_SIZE + i);
            goto fail;
        }
    const evo_section *ts = evo_binfile_section(&c->f, EVO_CKPT_SEC_TENSORS);
    const evo_section *ds = evo_binfile_section(&c->f, EVO_CKPT_SEC_DATA);
    if (!ts || !ds) {
        evo_errf(e, "%s: offset 64: missing section (tensors, data)", path);
        goto fail;
    }
    size_t esize = evo_dtype_size(meta->dtype);
    if (meta->n_tensors > ts->size / EVO_CKPT_TENSOR_SIZE || ts->size != meta->n_tensors * EVO_CKPT_TENSOR_SIZE) {
        evo_errf(e, "%s: offset %" PRIu64 ": tensors section holds %" PRIu64 " bytes, meta says %" PRIu64 " tensors",
                 path, ts->offset, ts->size, meta->n_tensors);
        goto fail;
    }
    if (meta->n_elements > ds->size / esize || ds->size != meta->n_elements * esize) {
        evo_errf(e, "%s: offset %" PRIu64 ": data section holds %" PRIu64 " bytes, meta says %" PRIu64 " elements",
                 path, ds->offset, ds->size, meta->n_elements);
        goto fail;
    }
    c->tensors = evo_calloc(meta->n_tensors ? meta->n_tensors : 1, sizeof *c->tensors);
    uint64_t next = 0;
    for (uint64_t i = 0; i < meta->n_tensors; i++) {
        uint64_t at = ts->offset + i * EVO_CKPT_TENSOR_SIZE;
        if (read_tensor(&c->tensors[i], c->f.data + at, at, &next, meta->n_elements, path, e) < 0)
            goto fail;
    }
    if (next != meta->n_elements) {
        evo_errf(e, "%s: offset %" PRIu64 ": the tensors cover %" PRIu64 " of %" PRIu64 " elements", path, ts->offset,
                 next, meta->n_elements);
        goto fail;
    }
    c->data = c->f.data + ds->offset;
    return 0;
fail:
    evo_ckpt_close(c);
    return -1;
}

void evo_ckpt_close(evo_ckpt_file *c)
{
    free(c->tensors);
    evo_binfile_close(&c->f);
    *c = (evo_ckpt_file){0};
}

const evo_ckpt_tensor *evo_ckpt_find(const evo_ckpt_file *c, const char *name)
{
    for (uint64_t i = 0; i < c->meta.n_tensors; i++)
        if (!strcmp(c->tensors[i].name, name))
            return &c->tensors[i];
    return NULL;
}

int evo_ckpt_match(const evo_ckpt_file *c, const evo_model *m, const char *prefix, size_t n_copies,
                   const evo_ckpt_tensor **found, evo_err *e)
{
    if (c->meta.n_tensors != m->n_tensors * n_copies)
        return evo_errf(e, "%s: %" PRIu64 " tensors, the configured model has %zu", c->f.path,
                        c->meta.n_tensors / n_copies, m->n_tensors);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const evo_tensor_info *want = &m->tensors[i];
        char name[EVO_CKPT_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s%s", prefix, want->name);
        const evo_ckpt_tensor *t = evo_ckpt_find(c, name);
        if (!t)
            return evo_errf(e, "%s: no tensor %s (was the model changed in the config?)", c->f.path, name);
        int same = t->ndim == want->ndim;
        for (uint32_t d = 0; same && d < want->ndim; d++)
            same = t->shape[d] == want->shape[d];
        if (!same)
            return evo_errf(e,
                            "%s: tensor %s has another shape than the configured model's [%" PRIu64 ", %" PRIu64
                            "] (was the model changed in the config?)",
                            c->f.path, name, want->shape[0], want->shape[1]);
        found[i] = t;
    }
    return 0;
}

void evo_ckpt_table(evo_ckpt_tensor *t, const evo_model *m, const char *prefix, uint64_t base)
{
    for (size_t i = 0; i < m->n_tensors; i++) {
        const evo_tensor_info *s = &m->tensors[i];
        t[i] = (evo_ckpt_tensor){.ndim = s->ndim, .offset = base + s->offset, .numel = s->numel};
        snprintf(t[i].name, sizeof t[i].name, "%s%s", prefix, s->name);
        for (uint32_t d = 0; d < s->ndim; d++)
            t[i].shape[d] = s->shape[d];
    }
}

int evo_ckpt_write_config(const char *path, const evo_config *c, evo_err *e)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return evo_errf(e, "%s: out of memory", path);
    evo_config_print(c, f);
    fclose(f);
    evo_out o;
    int rc = evo_out_open(&o, path, e);
    if (rc == 0 && (rc = evo_out_write(&o, text, len, e)) == 0)
        rc = evo_out_commit(&o, e);
    else if (rc == 0)
        evo_out_abort(&o);
    free(text);
    return rc;
}

int evo_ckpt_write_model(const char *path, const evo_model *m, const float *weights, evo_dtype dtype,
                         uint64_t step, evo_err *e)
{
    evo_ckpt_tensor *t = evo_calloc(m->n_tensors, sizeof *t);
    evo_ckpt_table(t, m, "", 0);
    evo_ckpt_meta meta = {.kind = EVO_CKPT_MODEL, .dtype = dtype, .tp_size = 1, .pp_size = 1, .zero_size = 1,
                          .step = step};
    void *data = (void *)weights;
    if (dtype != EVO_F32) {
        const evo_backend *cpu = evo_backend_cpu(); /* its memory is host memory */
        data = evo_malloc_large(m->n_params * evo_dtype_size(dtype));
        cpu->cast(cpu, data, dtype, weights, EVO_F32, m->n_params);
    }
    int rc = evo_ckpt_write_file(path, &meta, t, m->n_tensors, data, e);
    if (data != weights)
        free(data);
    free(t);
    return rc;
}

/* --- directories ------------------------------------------------------------ */

static int fsync_path(const char *path, int flags, evo_err *e)
{
    int fd = open(path, flags | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return evo_errf(e, "%s: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    return rc < 0 ? evo_errf(e, "%s: fsync failed: %s", path, strerror(errno)) : 0;
}

/* XXH3-64 and size of a file, read in 1 MB pieces. */
static int hash_file(const char *path, uint64_t *hash, uint64_t *size, evo_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return evo_errf(e, "%s: %s", path, strerror(errno));
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = evo_malloc(CHUNK);
    int rc = 0;
    *size = 0;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = evo_errf(e, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        XXH3_64bits_update(st, buf, (size_t)n);
        *size += (uint64_t)n;
    }
    *hash = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    free(buf);
    close(fd);
    return rc;
}

static void remove_dir(const char *dir);

/* Temporary directories (.tmp-STEP-PID, .old-STEP-PID) of saves whose
 * process died (kill -9, a node failure): never complete, safe to drop. */
static void remove_stale(const char *folder)
{
    DIR *d = opendir(folder);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        unsigned long long step;
        long pid;
        char kind[8];
        if (sscanf(de->d_name, ".%3[tmpold]-%llu-%ld", kind, &step, &pid) != 3 || pid <= 0 ||
            (strcmp(kind, "tmp") && strcmp(kind, "old")) || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue;
        char *p = evo_path_join(folder, de->d_name);
        remove_dir(p);
        free(p);
    }
    closedir(d);
}

int evo_ckpt_begin(evo_ckpt_writer *w, const char *folder, uint64_t step, evo_err *e)
{
    *w = (evo_ckpt_writer){.folder = evo_strdup(folder), .step = step};
    char name[64];
    snprintf(name, sizeof name, ".tmp-%" PRIu64 "-%ld", step, (long)getpid());
    w->tmp = evo_path_join(folder, name);
    if (evo_make_dirs(folder, e) < 0) {
        evo_ckpt_abort(w);
        return -1;
    }
    remove_stale(folder);
    if (evo_make_dirs(w->tmp, e) < 0) {
        evo_ckpt_abort(w);
        return -1;
    }
    return 0;
}

char *evo_ckpt_tmp_path(const evo_ckpt_writer *w, const char *name) { return evo_path_join(w->tmp, name); }

int evo_ckpt_add(evo_ckpt_writer *w, const char *name, evo_err *e)
{
    char *path = evo_path_join(w->tmp, name);
    uint64_t hash, size;
    int rc = hash_file(path, &hash, &size, e);
    free(path);
    if (rc < 0)
        return -1;
    char line[EVO_CKPT_NAME_MAX + 64];
    int n = snprintf(line, sizeof line, "%016" PRIx64 "  %" PRIu64 "  %s\n", hash, size, name);
    evo_buf_append(&w->manifest, line, (size_t)n);
    return 0;
}

/* Removes a directory and the plain files in it (checkpoints hold no
 * subdirectories). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *p = evo_path_join(dir, de->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

static char *marker_name(uint64_t step)
{
    char name[32];
    snprintf(name, sizeof name, "%" PRIu64 ".step", step);
    return evo_strdup(name);
}

int evo_ckpt_commit(evo_ckpt_writer *w, evo_err *e)
{
    char name[32];
    snprintf(name, sizeof name, "%" PRIu64, w->step);
    char *final = evo_path_join(w->folder, name), *marker = marker_name(w->step), *old = NULL;
    int rc = -1;
    if (fsync_path(w->tmp, O_DIRECTORY, e) < 0)
        goto out;
    /* A checkpoint of the same step (a run resumed from it that saves it
     * again) is moved aside first and removed once the new one is whole. */
    struct stat st;
    if (stat(final, &st) == 0) {
        snprintf(name, sizeof name, ".old-%" PRIu64 "-%ld", w->step, (long)getpid());
        old = evo_path_join(w->folder, name);
        if (rename(final, old) < 0) {
            evo_errf(e, "%s: cannot move the old checkpoint aside: %s", final, strerror(errno));
            goto out;
        }
    }
    if (rename(w->tmp, final) < 0) {
        evo_errf(e, "%s: %s", final, strerror(errno));
        goto out;
    }
    if (fsync_path(w->folder, O_DIRECTORY, e) < 0)
        goto out;
    /* The marker last: its presence says every file above is complete. */
    char *mpath = evo_path_join(final, marker);
    evo_out o;
    rc = evo_out_open(&o, mpath, e);
    if (rc == 0 && (rc = evo_out_write(&o, w->manifest.data, w->manifest.len, e)) == 0)
        rc = evo_out_commit(&o, e);
    else if (rc == 0)
        evo_out_abort(&o);
    free(mpath);
    if (rc == 0 && old)
        remove_dir(old);
out:
    free(final);
    free(marker);
    free(old);
    if (rc == 0) {
        free(w->tmp);
        w->tmp = NULL;
    }
    return rc;
}

void evo_ckpt_abort(evo_ckpt_writer *w)
{
    if (w->tmp)
        remove_dir(w->tmp);
    free(w->tmp);
    free(w->folder);
    evo_buf_free(&w->manifest);
    *w = (evo_ckpt_writer){0};
}

/* A checkpoint directory name: decimal digits only. */
static int parse_step(const char *name, uint64_t *step)
{
    if (!*name || strspn(name, "0123456789") != strlen(name) || strlen(name) > 19)
        return 0;
    *step = strtoull(name, NULL, 10);
    return 1;
}

/* Whether folder/name is a complete checkpoint (its marker exists). */
static int is_complete(const char *folder, const char *name, uint64_t step)
{
    char *dir = evo_path_join(folder, name), *m = marker_name(step), *path = evo_path_join(dir, m);
    struct stat st;
    int ok = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(dir);
    free(m);
    free(path);
    return ok;
}

/* The steps of folder's complete checkpoints, ascending. */
static int list_steps(const char *folder, uint64_t **steps, size_t *n, evo_err *e)
{
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(folder);
    if (!d)
        return errno == ENOENT ? 0 : evo_errf(e, "%s: %s", folder, strerror(errno));
    size_t cap = 0;
    struct dirent *de;
    uint64_t step;
    while ((de = readdir(d)))
        if (parse_step(de->d_name, &step) && is_complete(folder, de->d_name, step)) {
            *steps = evo_grow(*steps, &cap, *n + 1, sizeof **steps, 16);
            size_t i = (*n)++;
            for (; i > 0 && (*steps)[i - 1] > step; i--)
                (*steps)[i] = (*steps)[i - 1];
            (*steps)[i] = step;
        }
    closedir(d);
    return 0;
}

int evo_ckpt_latest(const char *folder, uint64_t *step, char **dir, evo_err *e)
{
    uint64_t *steps;
    size_t n;
    if (list_steps(folder, &steps, &n, e) < 0)
        return -1;
    if (n) {
        char name[32];
        *step = steps[n - 1];
        snprintf(name, sizeof name, "%" PRIu64, *step);
        *dir = evo_path_join(folder, name);
    }
    free(steps);
    return n > 0;
}

int evo_ckpt_verify_dir(const char *dir, evo_err *e)
{
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    uint64_t step;
    if (!parse_step(base, &step))
        return evo_errf(e, "%s: not a checkpoint directory (its name is not a step number)", dir);
    char *m = marker_name(step), *mpath = evo_path_join(dir, m);
    free(m);
    evo_buf text = {0};
    int rc = evo_read_file(mpath, &text, e);
    if (rc < 0) {
        evo_err_prefix(e, "%s: incomplete checkpoint (no completion marker)", dir);
        goto out;
    }
    evo_buf_push(&text, '\0');
    size_t line = 0;
    for (char *p = text.data, *nl; *p; p = nl + 1) {
        line++;
        nl = strchr(p, '\n');
        if (!nl) {
            rc = evo_errf(e, "%s:%zu: unterminated line", mpath, line);
            goto out;
        }
        *nl = 0;
        uint64_t want_hash, want_size, hash, size;
        int name_at = 0;
        if (sscanf(p, "%16" SCNx64 "  %" SCNu64 "  %n", &want_hash, &want_size, &name_at) != 2 || !name_at ||
            !p[name_at] || strchr(p + name_at, '/')) {
            rc = evo_errf(e, "%s:%zu: want \"<xxh3 hex>  <bytes>  <file>\"", mpath, line);
            goto out;
        }
        char *path = evo_path_join(dir, p + name_at);
        rc = hash_file(path, &hash, &size, e);
        if (rc == 0 && size != want_size)
            rc = evo_errf(e, "%s: %" PRIu64 " bytes, the marker says %" PRIu64, path, size, want_size);
        else if (rc == 0 && hash != want_hash)
            rc = evo_errf(e, "%s: checksum %016" PRIx64 ", the marker says %016" PRIx64, path, hash, want_hash);
        free(path);
        if (rc < 0)
            goto out;
    }
    if (!line)
        rc = evo_errf(e, "%s: empty completion marker", mpath);
out:
    free(mpath);
    evo_buf_free(&text);
    return rc;
}

int evo_ckpt_prune(const char *folder, uint32_t keep, evo_err *e)
{
    uint64_t *steps;
    size_t n;
    if (list_steps(folder, &steps, &n, e) < 0)
        return -1;
    for (size_t i = 0; keep && i + keep < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "%" PRIu64, steps[i]);
        char *dir = evo_path_join(folder, name), *m = marker_name(steps[i]), *mpath = evo_path_join(dir, m);
        unlink(mpath); /* first: a half-removed checkpoint must not look complete */
        remove_dir(dir);
        free(dir);
        free(m);
        free(mpath);
    }
    free(steps);
    return 0;
}

int evo_ckpt_load_model(evo_ckpt_model *out, const char *dir, evo_err *e)
{
    *out = (evo_ckpt_model){0};
    char *cpath = evo_path_join(dir, EVO_CKPT_CONFIG_FILE), *mpath = evo_path_join(dir, EVO_CKPT_MODEL_FILE);
    evo_ckpt_file c = {0};
    const evo_ckpt_tensor **found = NULL;
    int rc = -1;
    evo_config_defaults(&out->cfg);
    if (evo_ckpt_verify_dir(dir, e) < 0 || evo_config_load(&out->cfg, cpath, e) < 0 ||
        evo_config_resolve(&out->cfg, e) < 0 || evo_model_describe(&out->model, &out->cfg, e) < 0 ||
        evo_ckpt_open(&c, mpath, e) < 0)
        goto out;
    if (c.meta.kind != EVO_CKPT_MODEL) {
        evo_errf(e, "%s: not a model file (kind %u)", mpath, c.meta.kind);
        goto out;
    }
    found = evo_calloc(out->model.n_tensors, sizeof *found);
    if (evo_ckpt_match(&c, &out->model, "", 1, found, e) < 0)
        goto out;
    const evo_backend *cpu = evo_backend_cpu();
    size_t esize = evo_dtype_size(c.meta.dtype);
    out->weights = evo_malloc_large(out->model.n_params * sizeof *out->weights);
    for (size_t i = 0; i < out->model.n_tensors; i++)
        cpu->cast(cpu, out->weights + out->model.tensors[i].offset, EVO_F32, c.data + found[i]->offset * esize,
                  c.meta.dtype, found[i]->numel);
    out->step = c.meta.step;
    out->dtype = c.meta.dtype;
    rc = 0;
out:
    if (c.tensors)
        evo_ckpt_close(&c);
    free(found);
    free(cpath);
    free(mpath);
    if (rc < 0)
        evo_ckpt_model_free(out);
    return rc;
}

void evo_ckpt_model_free(evo_ckpt_model *m)
{
    free(m->weights);
    evo_model_free(&m->model);
    *m = (evo_ckpt_model){0};
}
