/* tensors.c - tensor values: cat one out, diff two checkpoints, average
 * several. Tensors are read merged across shards, so checkpoints of any
 * layouts compare and combine. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "evockpt.h"

/* --- cat ------------------------------------------------------------------------ */

/* A .npy version 1.0 header for fp32 values of a shape (numpy's format:
 * magic, version, header length, a Python dict padded with spaces so the
 * data starts on a 64-byte boundary, ending in a newline). */
static size_t npy_header(char *buf, size_t cap, uint32_t ndim, const uint64_t *shape)
{
    char dims[64];
    if (ndim == 1)
        snprintf(dims, sizeof dims, "%" PRIu64 ",", shape[0]);
    else
        snprintf(dims, sizeof dims, "%" PRIu64 ", %" PRIu64, shape[0], shape[1]);
    int n = snprintf(buf + 10, cap - 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    size_t total = (10 + (size_t)n + 1 + 63) / 64 * 64;
    memset(buf + 10 + n, ' ', total - 10 - (size_t)n);
    buf[total - 1] = '\n';
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    return total;
}

int cmd_cat(const ckpt_opts *o, char **args, int n)
{
    (void)n;
    const char *output = o->output ? o->output : "-";
    refuse_terminal(output, "tensor data");
    evo_ckpt_shards s;
    open_or_die(&s, args[0], 0); /* one tensor: verify checks the rest */
    int kind;
    size_t i;
    if (!evo_ckpt_shards_lookup(&s, args[1], &kind, &i))
        evo_fatal("%s: no tensor %s (evo-ckpt info lists them)", args[0], args[1]);
    const evo_tensor_info *ti = &s.model.tensors[i];
    size_t esize = o->npy ? sizeof(float) : evo_dtype_size(evo_ckpt_shards_dtype(&s, kind));
    char header[256];
    size_t hlen = o->npy ? npy_header(header, sizeof header, ti->ndim, ti->shape) : 0;
    void *data = evo_malloc_large(ti->numel * esize);
    if (o->npy)
        evo_ckpt_shards_read_f32(&s, kind, i, data);
    else
        evo_ckpt_shards_read(&s, kind, i, data);
    evo_out out;
    evo_err e;
    if (evo_out_open(&out, output, &e) < 0 || evo_out_write(&out, header, hlen, &e) < 0 ||
        evo_out_write(&out, data, ti->numel * esize, &e) < 0) {
        evo_out_abort(&out);
        evo_fatal("%s", e.msg);
    }
    if (evo_out_commit(&out, &e) < 0)
        evo_fatal("%s", e.msg);
    free(data);
    evo_ckpt_shards_close(&s);
    return EVO_EXIT_OK;
}

/* --- diff ------------------------------------------------------------------------ */

static int same_shape(const evo_tensor_info *a, const evo_tensor_info *b)
{
    return a->ndim == b->ndim && a->shape[0] == b->shape[0] && a->shape[1] == b->shape[1];
}

/* Max |a - b| and max |a - b| / max(|a|, |b|) over the elements (NaN if
 * any element is NaN in one and not the other). */
static void differences(const float *a, const float *b, uint64_t n, double *abs_diff, double *rel_diff)
{
    *abs_diff = *rel_diff = 0;
    for (uint64_t k = 0; k < n; k++) {
        double x = a[k], y = b[k], d = fabs(x - y), m = fmax(fabs(x), fabs(y));
        if (x == y || (isnan(x) && isnan(y)))
            continue;
        if (isnan(d)) {
            *abs_diff = *rel_diff = NAN;
            return;
        }
        *abs_diff = fmax(*abs_diff, d);
        *rel_diff = fmax(*rel_diff, m > 0 ? d / m : 0);
    }
}

/* Compares the tensors of one kind; returns how many differ. */
static size_t diff_tensors(const evo_ckpt_shards *a, const evo_ckpt_shards *b, int kind, size_t *n_same)
{
    static const char *const prefixes[] = {"", "adam.m.", "adam.v."};
    size_t n_diff = 0;
    for (size_t i = 0; i < a->model.n_tensors; i++) {
        const evo_tensor_info *ta = &a->model.tensors[i];
        int kb;
        size_t j;
        if (!evo_ckpt_shards_lookup(b, ta->name, &kb, &j)) {
            printf("tensor %s%s: only in %s\n", prefixes[kind], ta->name, a->dir);
            n_diff++;
            continue;
        }
        const evo_tensor_info *tb = &b->model.tensors[j];
        if (!same_shape(ta, tb)) {
            char sa[64], sb[64];
            evo_ckpt_format_shape(sa, sizeof sa, ta->ndim, ta->shape);
            evo_ckpt_format_shape(sb, sizeof sb, tb->ndim, tb->shape);
            printf("tensor %s%s: shape %s -> %s\n", prefixes[kind], ta->name, sa, sb);
            n_diff++;
            continue;
        }
        float *va = evo_malloc_large(ta->numel * sizeof *va), *vb = evo_malloc_large(ta->numel * sizeof *vb);
        evo_ckpt_shards_read_f32(a, kind, i, va);
        evo_ckpt_shards_read_f32(b, kind, j, vb);
        double abs_diff, rel_diff;
        differences(va, vb, ta->numel, &abs_diff, &rel_diff);
        if (memcmp(va, vb, ta->numel * sizeof *va)) {
            printf("tensor %s%s: max abs %.6g, max rel %.6g\n", prefixes[kind], ta->name, abs_diff, rel_diff);
            n_diff++;
        } else {
            ++*n_same;
        }
        free(va);
        free(vb);
    }
    for (size_t j = 0; j < b->model.n_tensors; j++) {
        int ka;
        size_t i;
        if (!evo_ckpt_shards_lookup(a, b->model.tensors[j].name, &ka, &i)) {
            printf("tensor %s%s: only in %s\n", prefixes[kind], b->model.tensors[j].name, b->dir);
            n_diff++;
        }
    }
    return n_diff;
}

int cmd_diff(const ckpt_opts *o, char **args, int n)
{
    (void)o;
    (void)n;
    evo_ckpt_shards a, b;
    open_or_die(&a, args[0], EVO_CKPT_CHECKSUMS);
    open_or_die(&b, args[1], EVO_CKPT_CHECKSUMS);
    size_t n_diff = 0, n_same = 0;
    evo_config_pair *ca, *cb;
    size_t n_ca = evo_config_pairs(&a.cfg, &ca), n_cb = evo_config_pairs(&b.cfg, &cb);
    for (size_t k = 0; k < n_ca && k < n_cb; k++) /* one printer: the same keys in the same order */
        if (strcmp(ca[k].value, cb[k].value)) {
            printf("config %s: %s -> %s\n", ca[k].key, ca[k].value, cb[k].value);
            n_diff++;
        }
    evo_config_pairs_free(ca, n_ca);
    evo_config_pairs_free(cb, n_cb);
    if (a.step != b.step) {
        printf("step: %" PRIu64 " -> %" PRIu64 "\n", a.step, b.step);
        n_diff++;
    }
    n_diff += diff_tensors(&a, &b, EVO_CKPT_WEIGHTS, &n_same);
    if (a.layout.zero && b.layout.zero) {
        n_diff += diff_tensors(&a, &b, EVO_CKPT_ADAM_M, &n_same);
        n_diff += diff_tensors(&a, &b, EVO_CKPT_ADAM_V, &n_same);
    } else if (a.layout.zero || b.layout.zero) {
        printf("optimizer state: only in %s\n", a.layout.zero ? a.dir : b.dir);
        n_diff++;
    }
    printf("%zu tensors identical, %zu differences\n", n_same, n_diff);
    evo_ckpt_shards_close(&a);
    evo_ckpt_shards_close(&b);
    return n_diff ? EVO_EXIT_FAIL : EVO_EXIT_OK;
}

/* --- average ------------------------------------------------------------------ */

int cmd_average(const ckpt_opts *o, char **args, int n)
{
    uint64_t step = output_step(o->output);
    evo_ckpt_shards *in = evo_calloc((size_t)n, sizeof *in);
    for (int k = 0; k < n; k++) {
        open_or_die(&in[k], args[k], EVO_CKPT_CHECKSUMS);
        const evo_model *m0 = &in[0].model, *m = &in[k].model;
        if (m->n_tensors != m0->n_tensors)
            evo_fatal("%s: %zu tensors, %s has %zu: not the same model", args[k], m->n_tensors, args[0],
                      m0->n_tensors);
        for (size_t i = 0; i < m->n_tensors; i++)
            if (strcmp(m->tensors[i].name, m0->tensors[i].name) || !same_shape(&m->tensors[i], &m0->tensors[i]))
                evo_fatal("%s: tensor %s is not %s's tensor %zu (%s): not the same model", args[k],
                          m->tensors[i].name, args[0], i, m0->tensors[i].name);
    }
    const evo_model *m = &in[0].model;
    float *avg = evo_malloc_large(m->n_params * sizeof *avg), *v = NULL;
    double *sum = NULL;
    size_t cap = 0, cap2 = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        uint64_t numel = m->tensors[i].numel;
        v = evo_grow(v, &cap, numel, sizeof *v, 1024);
        sum = evo_grow(sum, &cap2, numel, sizeof *sum, 1024);
        memset(sum, 0, numel * sizeof *sum);
        for (int k = 0; k < n; k++) { /* in double: the order of the inputs does not matter */
            evo_ckpt_shards_read_f32(&in[k], EVO_CKPT_WEIGHTS, i, v);
            for (uint64_t j = 0; j < numel; j++)
                sum[j] += v[j];
        }
        for (uint64_t j = 0; j < numel; j++)
            avg[m->tensors[i].offset + j] = (float)(sum[j] / n);
    }
    free(v);
    free(sum);
    evo_ckpt_writer w;
    evo_err e;
    int rc = evo_ckpt_begin_at(&w, o->output, step, &e);
    if (rc == 0) {
        if (evo_ckpt_add_config(&w, &in[0].cfg, &e) < 0 || evo_ckpt_add_model(&w, m, avg, EVO_F32, &e) < 0 ||
            evo_ckpt_commit(&w, &e) < 0)
            rc = -1;
        evo_ckpt_abort(&w);
    }
    if (rc < 0)
        evo_fatal("%s", e.msg);
    evo_info("%s: the average of %d checkpoints' weights (a model-only checkpoint of step %" PRIu64 ")", o->output,
             n, step);
    free(avg);
    for (int k = 0; k < n; k++)
        evo_ckpt_shards_close(&in[k]);
    free(in);
    return EVO_EXIT_OK;
}
