#include "formats/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/binfmt.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[EVO_ST_N_DTYPES] = {
    [EVO_ST_BOOL] = {"BOOL", 1}, [EVO_ST_U8] = {"U8", 1},     [EVO_ST_I8] = {"I8", 1},
    [EVO_ST_F8_E5M2] = {"F8_E5M2", 1}, [EVO_ST_F8_E4M3] = {"F8_E4M3", 1}, [EVO_ST_I16] = {"I16", 2},
    [EVO_ST_U16] = {"U16", 2}, [EVO_ST_F16] = {"F16", 2},     [EVO_ST_BF16] = {"BF16", 2},
    [EVO_ST_I32] = {"I32", 4}, [EVO_ST_U32] = {"U32", 4},     [EVO_ST_F32] = {"F32", 4},
    [EVO_ST_F64] = {"F64", 8}, [EVO_ST_I64] = {"I64", 8},     [EVO_ST_U64] = {"U64", 8},
};

const char *evo_st_dtype_name(evo_st_dtype dt) { return dtypes[dt].name; }

uint64_t evo_st_numel(const evo_st_tensor *t)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const evo_st_tensor *)a)->name, ((const evo_st_tensor *)b)->name);
}

static int by_range(const void *a, const void *b)
{
    const evo_st_tensor *x = *(const evo_st_tensor *const *)a, *y = *(const evo_st_tensor *const *)b;
    return x->begin != y->begin ? (x->begin > y->begin) - (x->begin < y->begin) : (x->end > y->end) - (x->end < y->end);
}

/* --- reading ------------------------------------------------------------------ */

/* A JSON integer in [0, 2^63). */
static int count(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* One header entry: name -> {"dtype", "shape", "data_offsets"}. Everything
 * but the ranges against each other and the file (checked by the caller). */
static int read_entry(evo_st_tensor *t, const char *name, json_t *v, const evo_st_file *f, evo_err *e)
{
    const char *p = f->path;
    t->name = evo_strdup(name);
    for (const char *c = name; *c; c++) /* messages name tensors: one line each */
        if ((unsigned char)*c < 0x20)
            return evo_errf(e, "%s: offset 8: a tensor name holds a control character", p);
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *off = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(shape) || !json_is_array(off) ||
        json_object_size(v) != 3)
        return evo_errf(e, "%s: offset 8: tensor \"%s\": want {\"dtype\", \"shape\", \"data_offsets\"}", p, name);
    int k = 0;
    while (k < EVO_ST_N_DTYPES && strcmp(json_string_value(dt), dtypes[k].name))
        k++;
    if (k == EVO_ST_N_DTYPES)
        return evo_errf(e, "%s: offset 8: tensor \"%s\": unknown dtype \"%.32s\"", p, name, json_string_value(dt));
    t->dtype = (evo_st_dtype)k;
    if (json_array_size(shape) > EVO_ST_MAX_DIM)
        return evo_errf(e, "%s: offset 8: tensor \"%s\" has %zu dimensions (at most %d)", p, name,
                        json_array_size(shape), EVO_ST_MAX_DIM);
    t->ndim = (uint32_t)json_array_size(shape);
    uint64_t bytes = dtypes[k].size;
    for (uint32_t d = 0; d < t->ndim; d++) {
        if (count(json_array_get(shape, d), &t->shape[d]) < 0)
            return evo_errf(e, "%s: offset 8: tensor \"%s\": dimension %u is not a count", p, name, d);
        if (__builtin_mul_overflow(bytes, t->shape[d], &bytes))
            return evo_errf(e, "%s: offset 8: tensor \"%s\": its shape's size overflows 64 bits", p, name);
    }
    if (json_array_size(off) != 2 || count(json_array_get(off, 0), &t->begin) < 0 ||
        count(json_array_get(off, 1), &t->end) < 0 || t->end < t->begin)
        return evo_errf(e, "%s: offset 8: tensor \"%s\": data_offsets is not [begin, end] with begin <= end", p, name);
    if (t->end - t->begin != bytes)
        return evo_errf(e, "%s: offset %" PRIu64 ": tensor \"%s\": its shape of %s is %" PRIu64
                           " bytes, its data_offsets span %" PRIu64,
                        p, f->data_offset + t->begin, name, dtypes[k].name, bytes, t->end - t->begin);
    if (t->end > f->size - f->data_offset)
        return evo_errf(e, "%s: offset %" PRIu64 ": tensor \"%s\" ends %" PRIu64
                           " bytes past the end of the file (truncated?)",
                        p, f->data_offset + t->begin, name, t->end - (f->size - f->data_offset));
    return 0;
}

static int read_metadata(json_t *m, const evo_st_file *f, evo_err *e)
{
    const char *key;
    json_t *v;
    if (!json_is_object(m))
        return evo_errf(e, "%s: offset 8: __metadata__ is not an object", f->path);
    json_object_foreach(m, key, v)
    {
        if (!json_is_string(v))
            return evo_errf(e, "%s: offset 8: __metadata__ \"%s\" is not a string", f->path, key);
    }
    return 0;
}

static int read_header(evo_st_file *f, evo_err *e)
{
    uint64_t n = evo_le64(f->map);
    if (n > f->size - 8)
        return evo_errf(e, "%s: offset 0: header length %" PRIu64 " runs past the end of the file (%" PRIu64 " bytes)",
                        f->path, n, f->size);
    if (n > EVO_ST_MAX_HEADER)
        return evo_errf(e, "%s: offset 0: header length %" PRIu64 " is over the %u-byte limit", f->path, n,
                        EVO_ST_MAX_HEADER);
    f->data_offset = 8 + n;
    json_error_t je;
    json_t *root = json_loadb((const char *)f->map + 8, n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return evo_errf(e, "%s: offset %" PRIu64 ": header: %s", f->path, 8 + (uint64_t)je.position, je.text);
    int rc = -1;
    if (!json_is_object(root)) {
        evo_errf(e, "%s: offset 8: the header is not a JSON object", f->path);
        goto out;
    }
    f->tensors = evo_calloc(json_object_size(root) + 1, sizeof *f->tensors);
    const char *name;
    json_t *v;
    json_object_foreach(root, name, v)
    {
        if (!strcmp(name, "__metadata__")) {
            if (read_metadata(v, f, e) < 0)
                goto out;
        } else if (read_entry(&f->tensors[f->n_tensors++], name, v, f, e) < 0) {
            goto out;
        }
    }
    /* No two ranges may share a byte: sorted by start, each non-empty range
     * begins at or after the end of the one before (empty ones hold none). */
    evo_st_tensor **ranked = evo_calloc(f->n_tensors + 1, sizeof *ranked);
    for (size_t i = 0; i < f->n_tensors; i++)
        ranked[i] = &f->tensors[i];
    qsort(ranked, f->n_tensors, sizeof *ranked, by_range);
    const evo_st_tensor *prev = NULL;
    rc = 0;
    for (size_t i = 0; i < f->n_tensors && rc == 0; i++) {
        const evo_st_tensor *t = ranked[i];
        if (t->begin == t->end)
            continue;
        if (prev && t->begin < prev->end)
            rc = evo_errf(e, "%s: offset %" PRIu64 ": tensors \"%s\" and \"%s\" overlap", f->path,
                          f->data_offset + t->begin, prev->name, t->name);
        prev = t;
    }
    free(ranked);
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, by_name);
out:
    json_decref(root);
    return rc;
}

int evo_st_open(evo_st_file *f, const char *path, evo_err *e)
{
    *f = (evo_st_file){.path = evo_strdup(path)};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        evo_errf(e, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 8) {
        evo_errf(e, "%s: offset 0: not a safetensors file (%s)", path,
                 S_ISREG(st.st_mode) ? "shorter than its 8-byte header length" : "not a regular file");
        goto fail;
    }
    f->size = (uint64_t)st.st_size;
    void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        evo_errf(e, "%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    f->map = p;
    close(fd);
    fd = -1;
    if (read_header(f, e) < 0)
        goto fail;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    evo_st_close(f);
    return -1;
}

void evo_st_close(evo_st_file *f)
{
    if (f->map)
        munmap((void *)f->map, f->size);
    for (size_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    *f = (evo_st_file){0};
}

const evo_st_tensor *evo_st_find(const evo_st_file *f, const char *name)
{
    evo_st_tensor key = {.name = (char *)name};
    return f->n_tensors ? bsearch(&key, f->tensors, f->n_tensors, sizeof key, by_name) : NULL;
}

/* --- writing ------------------------------------------------------------------ */

/* The library's order: dtype descending (in its enum order), then name. */
static int file_order(const void *a, const void *b, void *tensors)
{
    const evo_st_tensor *x = (const evo_st_tensor *)tensors + *(const size_t *)a;
    const evo_st_tensor *y = (const evo_st_tensor *)tensors + *(const size_t *)b;
    return x->dtype != y->dtype ? (int)y->dtype - (int)x->dtype : strcmp(x->name, y->name);
}

static json_t *header_json(const evo_st_writer *w, const char *const *metadata)
{
    json_t *root = json_object();
    if (metadata) {
        json_t *m = json_object();
        for (size_t i = 0; metadata[i]; i += 2)
            json_object_set_new(m, metadata[i], json_string(metadata[i + 1]));
        json_object_set_new(root, "__metadata__", m);
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        const evo_st_tensor *t = &w->tensors[i];
        json_t *shape = json_array();
        for (uint32_t d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
        json_t *v = json_object();
        json_object_set_new(v, "dtype", json_string(dtypes[t->dtype].name));
        json_object_set_new(v, "shape", shape);
        json_object_set_new(v, "data_offsets", json_pack("[II]", (json_int_t)t->begin, (json_int_t)t->end));
        json_object_set_new(root, t->name, v);
    }
    return root;
}

int evo_st_writer_open(evo_st_writer *w, const char *path, const evo_st_tensor *tensors, size_t n,
                       const char *const *metadata, evo_err *e)
{
    *w = (evo_st_writer){.n_tensors = n};
    w->tensors = evo_calloc(n + 1, sizeof *w->tensors);
    w->order = evo_calloc(n + 1, sizeof *w->order);
    for (size_t i = 0; i < n; i++)
        w->order[i] = i;
    qsort_r(w->order, n, sizeof *w->order, file_order, (void *)tensors);
    for (size_t i = 0; i < n; i++) {
        evo_st_tensor *t = &w->tensors[i];
        *t = tensors[w->order[i]];
        t->name = evo_strdup(t->name);
        t->begin = w->data_size;
        t->end = w->data_size += evo_st_numel(t) * dtypes[t->dtype].size;
    }
    json_t *root = header_json(w, metadata);
    /* JSON_COMPACT: serde_json's separators; insertion order is kept. */
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    uint8_t *head = evo_malloc(8 + padded);
    evo_put64(head, padded);
    memcpy(head + 8, text, len);
    memset(head + 8 + len, ' ', padded - len);
    free(text);
    int rc = evo_out_open(&w->out, path, e);
    if (rc == 0 && (rc = evo_out_write(&w->out, head, 8 + padded, e)) < 0)
        evo_out_abort(&w->out);
    free(head);
    if (rc < 0)
        evo_st_writer_abort(w);
    return rc;
}

static int check_room(const evo_st_writer *w, uint64_t n, evo_err *e)
{
    uint64_t room = w->data_size - w->written;
    return n > room ? evo_errf(e, "%s: %" PRIu64 " bytes more than its tensors hold", w->out.path, n - room) : 0;
}

/* Starts the disk write of what was just appended, in the background: a
 * big file then streams to the disk while the rest of it is produced, and
 * the fsync at commit (a file is durable before it is renamed into place)
 * finds little left to wait for. */
static void start_writeback(const evo_st_writer *w, uint64_t from)
{
    sync_file_range(w->out.fd, (off64_t)from, (off64_t)(w->out.pos - from), SYNC_FILE_RANGE_WRITE);
}

int evo_st_writer_write(evo_st_writer *w, const void *p, size_t n, evo_err *e)
{
    uint64_t from = w->out.pos;
    if (check_room(w, n, e) < 0 || evo_out_write(&w->out, p, n, e) < 0)
        return -1;
    w->written += n;
    start_writeback(w, from);
    return 0;
}

int evo_st_writer_copy(evo_st_writer *w, int fd, uint64_t offset, uint64_t n, evo_err *e)
{
    if (check_room(w, n, e) < 0)
        return -1;
    uint64_t done = 0, from = w->out.pos;
    while (done < n) {
        loff_t in = (loff_t)(offset + done);
        ssize_t k = copy_file_range(fd, &in, w->out.fd, NULL, n - done, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break; /* not supported here (or a short source): copied by hand below */
        done += (uint64_t)k;
        w->out.pos += (uint64_t)k; /* the kernel wrote at the output's offset */
    }
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = done < n ? evo_malloc(CHUNK) : NULL;
    while (done < n) {
        size_t want = n - done < CHUNK ? (size_t)(n - done) : CHUNK;
        ssize_t k = pread(fd, buf, want, (off_t)(offset + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0 || evo_out_write(&w->out, buf, (size_t)k, e) < 0) {
            if (k <= 0)
                evo_errf(e, "%s: copying from offset %" PRIu64 ": %s", w->out.path, offset + done,
                         k < 0 ? strerror(errno) : "the source ends early");
            free(buf);
            return -1;
        }
        done += (uint64_t)k;
    }
    free(buf);
    w->written += n;
    start_writeback(w, from);
    return 0;
}

static void writer_free(evo_st_writer *w)
{
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    free(w->order);
    *w = (evo_st_writer){0};
}

int evo_st_writer_finish(evo_st_writer *w, evo_err *e)
{
    int rc = 0;
    if (w->written != w->data_size) {
        rc = evo_errf(e, "%s: %" PRIu64 " of %" PRIu64 " data bytes written", w->out.path, w->written, w->data_size);
        evo_out_abort(&w->out);
    } else {
        rc = evo_out_commit(&w->out, e);
    }
    writer_free(w);
    return rc;
}

void evo_st_writer_abort(evo_st_writer *w)
{
    if (w->out.path)
        evo_out_abort(&w->out);
    writer_free(w);
}
