/* model-check - runs the transformer (src/lib/compute/transformer.c) forward and
 * backward over a fixed synthetic packed row and writes what it computed,
 * for tests/ref/torch-model.py to recompute with PyTorch (t0210-model.sh).
 *
 *   model-check [--set section.key=value]... [--seed N] DIR
 *
 * The model is InternEvo's default config with the --set overrides; the row
 * is seq_len x micro_bsz tokens in three segments (the last longer than
 * seq_len), positions restarting in each, the last token of every segment
 * and every 7th token unlabelled. Written into DIR, raw little-endian:
 *   index.json      dimensions, tensor table, row layout, loss, grad scale
 *   params.f32      the flat parameter buffer after init
 *   tokens.i32 labels.i32 positions.i32
 *   logits.f32      [T,V] of the row
 *   grads.f32       the gradient of SCALE x loss, accumulated from two
 *                   backward passes of SCALE/2 each (micro-batch accumulation)
 *   alone.f32       [T,V] the logits of each segment run as a row of its own
 * It also runs the row with the head and the loss in pieces of 7 tokens
 * (evo_transformer_opts.loss_rows) and fails unless the loss and the
 * gradients are those of the whole row (1e-6 and 1e-5 relative); and with
 * a gradient sink (ZeRO-2's windows), failing unless each unit is handed
 * over once a pass, the units cover every parameter once, and they add up
 * to the whole gradient (1e-6). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "compute/backend.h"
#include "compute/transformer.h"
#include "formats/config.h"
#include "formats/model.h"
#include "formats/pack.h"

static const float SCALE = 0.5f;

static void write_file(const char *dir, const char *name, const void *p, size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, bytes, f) != bytes || fclose(f) != 0)
        evo_fatal("cannot write %s", path);
}

/* Downloads n floats of device memory into DIR/name. */
static void save_dev(const evo_backend *be, const char *dir, const char *name, const void *dev,
                     size_t n)
{
    float *h = evo_malloc(n * sizeof *h);
    be->download(be, h, dev, n * sizeof *h);
    write_file(dir, name, h, n * sizeof *h);
    free(h);
}

/* The synthetic row: three segments [0,T/6), [T/6,T/3), [T/3,T). */
static void make_row(evo_pack_row *r, size_t T, uint32_t V)
{
    int32_t cu[] = {0, (int32_t)T / 6, (int32_t)T / 3, (int32_t)T};
    r->n_segments = 3;
    memcpy(r->cu_seqlens, cu, sizeof cu);
    uint32_t lcg = 12345;
    for (size_t t = 0; t < T; t++) {
        lcg = lcg * 1664525u + 1013904223u;
        r->tokens[t] = (int32_t)((lcg >> 8) % V);
    }
    for (int s = 0; s < 3; s++)
        for (int32_t t = cu[s]; t < cu[s + 1]; t++) {
            r->positions[t] = t - cu[s];
            r->labels[t] = t + 1 == cu[s + 1] || t % 7 == 3 ? EVO_IGNORE_LABEL : r->tokens[t + 1];
        }
}

/* |a - want| / |want| in the L2 norm, over n floats. */
static double rel_l2(const float *a, const float *want, size_t n)
{
    double diff = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        diff += ((double)a[i] - want[i]) * ((double)a[i] - want[i]);
        norm += (double)want[i] * want[i];
    }
    return sqrt(diff / norm);
}

/* The same row with the head and the loss in pieces of 7 tokens: the same
 * loss and gradients as whole (the gradient of the head sums its pieces'
 * parts, so not the same bits). */
static void check_pieces(const evo_model *m, const evo_backend *be, const evo_pack_row *row, size_t T, float eps,
                         uint64_t seed, double loss, const evo_transformer *whole)
{
    evo_transformer tf;
    evo_transformer_init(&tf, m, be, &(evo_transformer_opts){.T_max = T, .label_smoothing = eps, .loss_rows = 7});
    evo_transformer_init_params(&tf, seed);
    evo_transformer_zero_grad(&tf);
    double l = 0;
    for (int pass = 0; pass < 2; pass++) {
        l = evo_transformer_forward(&tf, 0, 0, row, T);
        evo_transformer_backward(&tf, 0, SCALE / 2);
    }
    float *g = evo_malloc(m->n_params * sizeof *g), *want = evo_malloc(m->n_params * sizeof *want);
    be->download(be, g, tf.grads, m->n_params * sizeof *g);
    be->download(be, want, whole->grads, m->n_params * sizeof *want);
    double gap = rel_l2(g, want, m->n_params);
    if (fabs(l - loss) > 1e-6 * fabs(loss) || gap > 1e-5)
        evo_fatal("the loss in pieces of 7 tokens: loss %.9g against %.9g whole, gradients %.3g relative L2 apart", l,
                  loss, gap);
    free(g);
    free(want);
    evo_transformer_free(&tf);
}

/* A gradient sink that puts each unit back in place on the host, counting
 * the times each parameter came. */
typedef struct {
    const evo_backend *be;
    float *sum, *window;
    uint32_t *seen;
} gather_sink;

static void gather(void *ctx, float *grad, evo_grad_unit u)
{
    gather_sink *s = ctx;
    s->be->download(s->be, s->window, grad, u.numel * sizeof *s->window);
    for (uint64_t i = 0; i < u.numel; i++) {
        s->sum[u.offset + i] += s->window[i];
        s->seen[u.offset + i]++;
    }
}

/* The same two passes with the gradients handed over unit by unit from a
 * window (evo_grad_sink): every parameter once a pass, in a window of the
 * largest unit, adding up to the whole gradient (not the same bits: the
 * ops no longer add into the first pass's sums). */
static void check_sink(const evo_model *m, const evo_backend *be, const evo_pack_row *row, size_t T, float eps,
                       uint64_t seed, const evo_transformer *whole)
{
    gather_sink s = {.be = be,
                     .sum = evo_calloc(m->n_params, sizeof *s.sum),
                     .window = evo_malloc(evo_transformer_grad_window(m) * sizeof *s.window),
                     .seen = evo_calloc(m->n_params, sizeof *s.seen)};
    evo_grad_sink sink = {.ctx = &s, .flush = gather};
    evo_transformer tf;
    evo_transformer_init(&tf, m, be,
                         &(evo_transformer_opts){.T_max = T, .label_smoothing = eps, .loss_rows = T, .grad_sink = &sink});
    evo_transformer_init_params(&tf, seed);
    evo_transformer_zero_grad(&tf);
    for (int pass = 0; pass < 2; pass++) {
        evo_transformer_forward(&tf, 0, 0, row, T);
        evo_transformer_backward(&tf, 0, SCALE / 2);
    }
    size_t twice = 0;
    for (size_t i = 0; i < m->n_params; i++)
        twice += s.seen[i] == 2;
    float *want = evo_malloc(m->n_params * sizeof *want);
    be->download(be, want, whole->grads, m->n_params * sizeof *want);
    double gap = rel_l2(s.sum, want, m->n_params);
    if (twice != m->n_params || tf.n_grads >= m->n_params || gap > 1e-6)
        evo_fatal("a gradient sink: %zu of %" PRIu64 " parameters handed over once a pass, a window of %" PRIu64
                  ", gradients %.3g relative L2 from the whole buffer's",
                  twice, m->n_params, tf.n_grads, gap);
    free(s.sum);
    free(s.window);
    free(s.seen);
    free(want);
    evo_transformer_free(&tf);
}

int main(int argc, char **argv)
{
    evo_set_progname("model-check");
    evo_config c;
    evo_err e = {0};
    evo_config_defaults(&c);
    uint64_t seed = 1;
    int a = 1;
    for (; a + 1 < argc; a += 2) {
        if (strcmp(argv[a], "--set") == 0) {
            if (evo_config_set(&c, argv[a + 1], &e))
                evo_usage_error("%s", e.msg);
        } else if (strcmp(argv[a], "--seed") == 0) {
            seed = strtoull(argv[a + 1], NULL, 10);
        } else {
            break;
        }
    }
    if (a + 1 != argc)
        evo_usage_error("usage: model-check [--set section.key=value]... [--seed N] DIR");
    const char *dir = argv[a];
    evo_model m;
    if (evo_config_resolve(&c, &e) || evo_model_describe(&m, &c, &e))
        evo_fatal("%s", e.msg);

    const evo_backend *be = evo_backend_cpu();
    size_t T = (size_t)c.data.seq_len * c.data.micro_bsz, V = m.vocab;
    evo_pack_meta meta = {.seq_len = c.data.seq_len, .micro_bsz = c.data.micro_bsz};
    evo_pack_row row;
    evo_pack_row_init(&row, &meta);
    make_row(&row, T, m.vocab);

    evo_transformer tf;
    /* the head and the loss in one piece, so that tf.logits holds the row */
    evo_transformer_init(&tf, &m, be,
                         &(evo_transformer_opts){.T_max = T, .label_smoothing = (float)c.loss.label_smoothing,
                                                 .loss_rows = T});
    evo_transformer_init_params(&tf, seed);
    evo_transformer_zero_grad(&tf);
    double loss = evo_transformer_forward(&tf, 0, 0, &row, T);
    save_dev(be, dir, "logits.f32", tf.logits, T * V);
    evo_transformer_backward(&tf, 0, SCALE / 2);
    double loss2 = evo_transformer_forward(&tf, 0, 0, &row, T);
    evo_transformer_backward(&tf, 0, SCALE / 2);
    if (loss2 != loss)
        evo_fatal("the same row gave loss %.9g, then %.9g", loss, loss2);
    save_dev(be, dir, "params.f32", tf.params, m.n_params);
    save_dev(be, dir, "grads.f32", tf.grads, m.n_params);
    write_file(dir, "tokens.i32", row.tokens, T * sizeof(int32_t));
    write_file(dir, "labels.i32", row.labels, T * sizeof(int32_t));
    write_file(dir, "positions.i32", row.positions, T * sizeof(int32_t));

    /* Each segment as a row of its own: the slices of the row, one segment. */
    float *alone = evo_malloc(T * V * sizeof *alone);
    for (uint32_t s = 0; s < row.n_segments; s++) {
        int32_t s0 = row.cu_seqlens[s], len = row.cu_seqlens[s + 1] - s0, cu[2] = {0, len};
        evo_pack_row seg = {.tokens = row.tokens + s0, .labels = row.labels + s0,
                            .positions = row.positions + s0, .cu_seqlens = cu, .n_segments = 1};
        evo_transformer_forward(&tf, 0, 0, &seg, (size_t)len);
        be->download(be, alone + (size_t)s0 * V, tf.logits, (size_t)len * V * sizeof *alone);
    }
    write_file(dir, "alone.f32", alone, T * V * sizeof *alone);
    free(alone);

    check_pieces(&m, be, &row, T, (float)c.loss.label_smoothing, seed, loss, &tf);
    check_sink(&m, be, &row, T, (float)c.loss.label_smoothing, seed, &tf);

    char path[4096];
    snprintf(path, sizeof path, "%s/index.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        evo_fatal("cannot write %s", path);
    fprintf(f,
            "{\"vocab\": %u, \"dim\": %u, \"heads\": %u, \"kv_heads\": %u, \"head_dim\": %u, "
            "\"layers\": %u, \"ffn\": %u, \"bias\": %d, \"eps\": %.17g, \"rope_base\": %.17g,\n"
            " \"label_smoothing\": %.17g, \"T\": %zu, \"scale\": %.9g, \"loss\": %.17g,\n"
            " \"cu_seqlens\": [%d, %d, %d, %d],\n \"tensors\": [\n",
            m.vocab, m.dim, m.heads, m.kv_heads, m.head_dim, m.layers, m.ffn, m.bias, m.eps,
            m.rope_base, (double)(float)c.loss.label_smoothing, T, (double)SCALE, loss,
            row.cu_seqlens[0], row.cu_seqlens[1], row.cu_seqlens[2], row.cu_seqlens[3]);
    for (size_t i = 0; i < m.n_tensors; i++) {
        const evo_tensor_info *t = &m.tensors[i];
        fprintf(f, "  {\"name\": \"%s\", \"shape\": [%llu", t->name, (unsigned long long)t->shape[0]);
        if (t->ndim == 2)
            fprintf(f, ", %llu", (unsigned long long)t->shape[1]);
        fprintf(f, "], \"offset\": %llu}%s\n", (unsigned long long)t->offset,
                i + 1 < m.n_tensors ? "," : "");
    }
    fputs(" ]}\n", f);
    if (fclose(f) != 0)
        evo_fatal("cannot write %s", path);

    evo_transformer_free(&tf);
    evo_pack_row_free(&row);
    evo_model_free(&m);
    return 0;
}
