#include "formats/ckpt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/ckpt_layout.h"

/* Meta field offsets (evo-ckpt(5)). */
enum { M_KIND = 0, M_DTYPE = 4, M_RANKS = 8, M_STEP = 32, M_N_TENSORS = 40, M_N_ELEMENTS = 48, M_END = 56 };
/* Tensor entry field offsets. */
enum { T_NAME = 0, T_NDIM = 64, T_SHAPE = 72, T_OFFSET = 104, T_NUMEL = 112, T_END = 120 };

int evo_ckpt_add_tensors(evo_ckpt_writer *w, const char *name, const evo_ckpt_meta *meta,
                         const evo_ckpt_tensor *tensors, size_t n_tensors, const void *data, evo_err *e)
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

    const evo_section_data secs[2] = {{EVO_CKPT_SEC_TENSORS, table, n_tensors * EVO_CKPT_TENSOR_SIZE},
                                      {EVO_CKPT_SEC_DATA, data, n_elements * evo_dtype_size(meta->dtype)}};
    char *path = evo_ckpt_tmp_path(w, name);
    evo_file_sum sum;
    int rc = evo_binfile_write(path, EVO_CKPT_MAGIC, EVO_CKPT_VERSION, m, EVO_CKPT_META_SIZE, secs, 2, &sum, e);
    if (rc == 0)
        evo_ckpt_add_hashed(w, name, sum.hash, sum.size);
    free(path);
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

static int open_file(evo_ckpt_file *c, const char *path, unsigned flags, evo_err *e)
{
    *c = (evo_ckpt_file){0};
    if (evo_binfile_open(&c->f, path, EVO_CKPT_MAGIC, EVO_CKPT_VERSION, flags, e) < 0)
        return -1;
    const uint8_t *m = c->f.meta;
    evo_ckpt_meta *meta = &c->meta;
    if (c->f.meta_size != EVO_CKPT_META_SIZE) {
        evo_errf(e, "%s: offset 32: meta of %u bytes, want %d", path, c->f.meta_size, EVO_CKPT_META_SIZE);
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

int evo_ckpt_open(evo_ckpt_file *c, const char *path, evo_err *e)
{
    return open_file(c, path, EVO_VERIFY_CHECKSUMS, e);
}

int evo_ckpt_open_unchecked(evo_ckpt_file *c, const char *path, evo_err *e)
{
    return open_file(c, path, 0, e);
}

void evo_ckpt_close(evo_ckpt_file *c)
{
    free(c->tensors);
    evo_binfile_close(&c->f);
    *c = (evo_ckpt_file){0};
}

const char *evo_ckpt_dtype_name(evo_dtype dt)
{
    static const char *const names[] = {"f32", "bf16", "f16"};
    return dt <= EVO_F16 ? names[dt] : "?";
}

void evo_ckpt_format_shape(char *buf, size_t n, uint32_t ndim, const uint64_t *shape)
{
    int at = snprintf(buf, n, "[");
    for (uint32_t d = 0; d < ndim && at > 0 && (size_t)at < n; d++)
        at += snprintf(buf + at, n - (size_t)at, "%s%" PRIu64, d ? ", " : "", shape[d]);
    if (at > 0 && (size_t)at < n)
        snprintf(buf + at, n - (size_t)at, "]");
}

const evo_ckpt_tensor *evo_ckpt_find(const evo_ckpt_file *c, const char *name)
{
    for (uint64_t i = 0; i < c->meta.n_tensors; i++)
        if (!strcmp(c->tensors[i].name, name))
            return &c->tensors[i];
    return NULL;
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

int evo_ckpt_add_config(evo_ckpt_writer *w, const evo_config *c, evo_err *e)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return evo_errf(e, "%s: out of memory", EVO_CKPT_CONFIG_FILE);
    evo_config_print(c, f);
    fclose(f);
    int rc = evo_ckpt_add_bytes(w, EVO_CKPT_CONFIG_FILE, text, len, e);
    free(text);
    return rc;
}

int evo_ckpt_add_optimizer(evo_ckpt_writer *w, const evo_model *m, uint32_t z, uint32_t zero, const float *moments,
                           evo_err *e)
{
    uint32_t *owner = evo_malloc((m->n_tensors ? m->n_tensors : 1) * sizeof *owner);
    evo_ckpt_zero_owned(m, zero, z, owner);
    evo_ckpt_tensor *t = evo_calloc(2 * m->n_tensors + 1, sizeof *t), *all = evo_calloc(m->n_tensors + 1, sizeof *all);
    size_t n = 0;
    uint64_t at = 0;
    static const char *const prefix[2] = {"adam.m.", "adam.v."};
    for (int k = 0; k < 2; k++) {
        evo_ckpt_table(all, m, prefix[k], 0);
        for (size_t i = 0; i < m->n_tensors; i++)
            if (owner[i] == z) {
                t[n] = all[i];
                t[n++].offset = at;
                at += all[i].numel;
            }
    }
    evo_ckpt_meta meta = {.kind = EVO_CKPT_OPTIMIZER, .dtype = EVO_F32, .tp_rank = m->tp_rank, .tp_size = m->tp,
                          .pp_rank = m->pp_rank, .pp_size = m->pp, .zero_rank = z, .zero_size = zero,
                          .step = w->step};
    char name[64];
    snprintf(name, sizeof name, "optimizer_tp%u_pp%u_zo%u.evo", m->tp_rank, m->pp_rank, z);
    int rc = evo_ckpt_add_tensors(w, name, &meta, t, n, moments, e);
    free(all);
    free(t);
    free(owner);
    return rc;
}

int evo_ckpt_add_model(evo_ckpt_writer *w, const evo_model *m, const float *weights, evo_dtype dtype,
                       evo_err *e)
{
    evo_ckpt_tensor *t = evo_calloc(m->n_tensors, sizeof *t);
    evo_ckpt_table(t, m, "", 0);
    evo_ckpt_meta meta = {.kind = EVO_CKPT_MODEL, .dtype = dtype, .tp_rank = m->tp_rank, .tp_size = m->tp,
                          .pp_rank = m->pp_rank, .pp_size = m->pp, .zero_size = 1, .step = w->step};
    char name[64];
    snprintf(name, sizeof name, "model_tp%u_pp%u.evo", m->tp_rank, m->pp_rank);
    void *data = (void *)weights;
    if (dtype != EVO_F32) {
        data = evo_malloc_large(m->n_params * evo_dtype_size(dtype));
        evo_dtype_cast(data, dtype, weights, EVO_F32, m->n_params);
    }
    int rc = evo_ckpt_add_tensors(w, name, &meta, t, m->n_tensors, data, e);
    if (data != weights)
        free(data);
    free(t);
    return rc;
}
