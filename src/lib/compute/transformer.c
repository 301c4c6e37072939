/* transformer.c - forward and backward of the LLaMA / InternLM v1 block
 * stack (model.h) over one packed row, as a sequence of backend ops. */
#include "compute/transformer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* ---- arena ----------------------------------------------------------------
 * Laid out twice by the same code: once with base NULL to add up the size,
 * once over the allocation. Every piece starts on 64 bytes (a cache line,
 * a whole AVX-512 vector, and more than any GPU load needs). */
typedef struct {
    char *base;
    size_t used;
    size_t dsize; /* bytes of the backend's dtype */
} carve;

static void *take(carve *c, size_t n, size_t elem)
{
    size_t off = c->used;
    c->used += (n * elem + 63) / 64 * 64;
    return c->base ? c->base + off : NULL;
}
#define TAKE_F(c, n) ((float *)take(c, n, sizeof(float)))
#define TAKE_D(c, n) ((evo_dval *)take(c, n, (c)->dsize))
#define TAKE_I(c, n) ((int32_t *)take(c, n, sizeof(int32_t)))

/* The layers of the stage's chunk c. */
static uint32_t chunk_len(const evo_transformer *tf, uint32_t c) { return tf->end[c] - tf->first[c]; }

/* Whether layer j of the stage's chunk c is recomputed in the backward
 * (model.checkpoint: the model's first n_recompute layers). */
static int recomputed(const evo_transformer *tf, uint32_t c, uint32_t j)
{
    return tf->first[c] + j < tf->n_recompute;
}

/* What the forward of one layer keeps for its backward, for T rows. */
static void carve_acts(const evo_transformer *tf, carve *c, evo_layer_acts *a)
{
    const evo_widths *w = &tf->w;
    size_t T = tf->T_max, Ts = evo_transformer_rows(tf, T), d = w->d;
    a->n1 = TAKE_D(c, Ts * d);
    a->rstd1 = TAKE_F(c, Ts);
    a->q = TAKE_D(c, T * w->q);
    a->k = TAKE_D(c, T * w->kv);
    a->v = TAKE_D(c, T * w->kv);
    a->att = TAKE_D(c, T * w->q);
    a->lse = TAKE_F(c, T * (size_t)w->heads);
    a->h = TAKE_D(c, Ts * d);
    a->n2 = TAKE_D(c, Ts * d);
    a->rstd2 = TAKE_F(c, Ts);
    a->gate = TAKE_D(c, T * w->ffn);
    a->up = TAKE_D(c, T * w->ffn);
    a->act = TAKE_D(c, T * w->ffn);
}

static void layout(evo_transformer *tf, carve *c)
{
    const evo_model *m = tf->m;
    const evo_widths *w = &tf->w;
    size_t T = tf->T_max, Ts = evo_transformer_rows(tf, T), d = w->d;
    /* in fp32 the layers read the master weights themselves; in another
     * dtype the masters are the optimizer's (transformer.h) */
    tf->params = tf->be->dtype == EVO_F32 ? TAKE_F(c, m->n_params) : NULL;
    tf->weights = tf->be->dtype == EVO_F32 ? (evo_dval *)tf->params : TAKE_D(c, m->n_params);
    tf->grads = TAKE_F(c, tf->n_grads);
    if (tf->n_recompute)
        carve_acts(tf, c, &tf->recompute);
    for (int s = 0; s < tf->n_slots; s++) {
        evo_microbatch *mb = &tf->slots[s];
        mb->tokens = TAKE_I(c, T);
        mb->labels = TAKE_I(c, T);
        mb->positions = TAKE_I(c, T);
        mb->cu_seqlens = TAKE_I(c, T + 1);
        for (uint32_t j = 0; j <= tf->max_chunk; j++)
            mb->x[j] = TAKE_D(c, Ts * d);
        /* layer j of a slot keeps its own activations unless it is
         * recomputed in every chunk the slot may hold */
        for (uint32_t j = 0; j < tf->max_chunk; j++) {
            int own = 0;
            for (uint32_t k = 0; k < tf->chunks; k++)
                own |= j < chunk_len(tf, k) && !recomputed(tf, k, j);
            if (own)
                carve_acts(tf, c, &mb->own[j]);
        }
        if (tf->last_stage) {
            mb->nf = TAKE_D(c, Ts * d);
            mb->rstdf = TAKE_F(c, Ts);
            mb->losses = TAKE_F(c, T);
            mb->ce_lse = TAKE_F(c, T);
        }
    }
    if (tf->last_stage)
        tf->logits = TAKE_D(c, tf->loss_rows * w->vocab);
    tf->dx = TAKE_D(c, Ts * d);
    tf->dn = TAKE_D(c, T * d);
    tf->dq = TAKE_D(c, T * w->q);
    tf->dk = TAKE_D(c, T * w->kv);
    tf->dv = TAKE_D(c, T * w->kv);
    tf->dgate = TAKE_D(c, T * w->ffn);
    tf->dup = TAKE_D(c, T * w->ffn);
    tf->dact = TAKE_D(c, T * w->ffn);
    tf->scratch = TAKE_F(c, T * (size_t)w->heads);
    tf->dloss = TAKE_F(c, T);
    if (m->tp > 1) {
        tf->emb_mine = TAKE_D(c, T * d / m->tp);
        tf->emb_all = TAKE_D(c, T * d);
        tf->ce_parts = TAKE_F(c, 3 * T);
        tf->ce_all = TAKE_F(c, 3 * T * m->tp);
    }
    if (tf->tensors.sequence_parallel) {
        tf->row_a = TAKE_D(c, T * d);
        tf->row_b = TAKE_D(c, T * d);
        tf->dn_mine = TAKE_D(c, Ts * d);
    }
}

/* The offset of the tensor named by fmt (with the layer number), or
 * EVO_NO_TENSOR when it is optional and absent. */
static uint64_t offset_of(const evo_model *m, const char *fmt, uint32_t layer, int optional)
{
    char name[sizeof m->tensors[0].name];
    snprintf(name, sizeof name, fmt, (int)layer);
    for (size_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return m->tensors[i].offset;
    if (!optional)
        evo_fatal("model has no tensor %s", name);
    return EVO_NO_TENSOR;
}

/* Whether tensor t of m is in unit u (evo_transformer_grad_unit). */
static int in_unit(const evo_model *m, const evo_tensor_info *t, uint32_t u)
{
    unsigned layer;
    int prefix = 0;
    if (sscanf(t->name, "blocks.%u.%n", &layer, &prefix) == 1 && prefix)
        return layer == u;
    if (u == m->layers)
        return strcmp(t->name, "embedding.weight") == 0;
    return u == m->layers + 1 && (strcmp(t->name, "norm.weight") == 0 || strcmp(t->name, "head.weight") == 0);
}

evo_grad_unit evo_transformer_grad_unit(const evo_model *m, uint32_t u)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const evo_tensor_info *t = &m->tensors[i];
        if (!in_unit(m, t, u))
            continue;
        lo = t->offset < lo ? t->offset : lo;
        hi = t->offset + t->numel > hi ? t->offset + t->numel : hi;
    }
    return hi ? (evo_grad_unit){.offset = lo, .numel = hi - lo} : (evo_grad_unit){0};
}

uint64_t evo_transformer_grad_window(const evo_model *m)
{
    uint64_t most = 0;
    for (uint32_t u = 0; u < m->layers + 2; u++) {
        uint64_t n = evo_transformer_grad_unit(m, u).numel;
        most = n > most ? n : most;
    }
    return most;
}

void evo_transformer_init(evo_transformer *tf, const evo_model *m, const evo_backend *be,
                          const evo_transformer_opts *o)
{
    const evo_tensor_group *tg = o->tensors;
    if (m->tp > 1 && (!tg || (tg->sequence_parallel && o->T_max % m->tp)))
        evo_fatal("transformer: tensor parallel without its group's sums, or rows of %zu tokens cut %u ways",
                  o->T_max, m->tp);
    int n_slots = o->n_slots ? o->n_slots : 1;
    *tf = (evo_transformer){.m = m,
                            .be = be,
                            .T_max = o->T_max,
                            .label_smoothing = o->label_smoothing,
                            .n_layers = evo_model_part_layers(m),
                            .n_recompute = (uint32_t)(m->layers * o->recompute),
                            .first_stage = m->pp_rank == 0,
                            .last_stage = m->pp_rank + 1 == m->pp,
                            .n_slots = n_slots,
                            .n_grads = o->grad_sink ? evo_transformer_grad_window(m) : m->n_params};
    if (m->tp > 1)
        tf->tensors = *tg;
    if (o->grad_sink)
        tf->sink = *o->grad_sink;
    /* the heads, kv heads, MLP and vocabulary split tp ways (ckpt_layout.h) */
    tf->w = (evo_widths){.d = m->dim,
                         .q = (size_t)m->heads / m->tp * m->head_dim,
                         .kv = (size_t)m->kv_heads / m->tp * m->head_dim,
                         .ffn = m->ffn / m->tp,
                         .vocab = m->vocab / m->tp,
                         .heads = (int)(m->heads / m->tp),
                         .kv_heads = (int)(m->kv_heads / m->tp)};
    /* one stage runs its chunks as one: they follow each other */
    tf->chunks = m->pp > 1 ? m->chunks : 1;
    for (uint32_t k = 0; k < tf->chunks; k++) {
        tf->first[k] = m->first[k];
        tf->end[k] = tf->chunks > 1 ? m->end[k] : m->end[m->chunks - 1];
    }
    for (uint32_t k = 0; k < tf->chunks; k++) {
        tf->chunk_at[k + 1] = tf->chunk_at[k] + chunk_len(tf, k);
        tf->max_chunk = chunk_len(tf, k) > tf->max_chunk ? chunk_len(tf, k) : tf->max_chunk;
    }
    tf->loss_rows = o->loss_rows ? o->loss_rows : evo_transformer_loss_rows(tf->w.vocab, m->tp);
    if (tf->loss_rows > tf->T_max || m->tp > 1) /* the vocabulary-parallel loss takes whole rows */
        tf->loss_rows = tf->T_max;
    tf->slots = evo_calloc((size_t)n_slots, sizeof *tf->slots);
    for (int s = 0; s < n_slots; s++) {
        tf->slots[s].x = evo_malloc((tf->max_chunk + 1) * sizeof *tf->slots[s].x);
        tf->slots[s].acts = evo_malloc((tf->max_chunk + 1) * sizeof *tf->slots[s].acts);
        tf->slots[s].own = evo_calloc(tf->max_chunk + 1, sizeof *tf->slots[s].own);
    }
    tf->layer = evo_malloc((tf->n_layers + 1) * sizeof *tf->layer);
    tf->layer_unit = evo_malloc((tf->n_layers + 1) * sizeof *tf->layer_unit);
    tf->embedding_unit = evo_transformer_grad_unit(m, m->layers);
    tf->head_unit = evo_transformer_grad_unit(m, m->layers + 1);
    tf->embedding = offset_of(m, "embedding.weight", 0, !tf->first_stage);
    tf->norm = offset_of(m, "norm.weight", 0, !tf->last_stage);
    tf->head = offset_of(m, "head.weight", 0, !tf->last_stage);
    for (uint32_t i = 0, k = 0; i < tf->n_layers; i++) {
        while (i >= tf->chunk_at[k + 1]) /* the chunks' layers one after the other */
            k++;
        uint32_t l = tf->first[k] + i - tf->chunk_at[k];
        tf->layer_unit[i] = evo_transformer_grad_unit(m, l);
        tf->layer[i] = (evo_layer_offsets){
            .attn_norm = offset_of(m, "blocks.%d.attn_norm.weight", l, 0),
            .q = offset_of(m, "blocks.%d.attn.q.weight", l, 0),
            .q_bias = offset_of(m, "blocks.%d.attn.q.bias", l, 1),
            .k = offset_of(m, "blocks.%d.attn.k.weight", l, 0),
            .k_bias = offset_of(m, "blocks.%d.attn.k.bias", l, 1),
            .v = offset_of(m, "blocks.%d.attn.v.weight", l, 0),
            .v_bias = offset_of(m, "blocks.%d.attn.v.bias", l, 1),
            .o = offset_of(m, "blocks.%d.attn.o.weight", l, 0),
            .o_bias = offset_of(m, "blocks.%d.attn.o.bias", l, 1),
            .mlp_norm = offset_of(m, "blocks.%d.mlp_norm.weight", l, 0),
            .gate = offset_of(m, "blocks.%d.mlp.gate.weight", l, 0),
            .up = offset_of(m, "blocks.%d.mlp.up.weight", l, 0),
            .down = offset_of(m, "blocks.%d.mlp.down.weight", l, 0),
        };
    }
    carve c = {.dsize = evo_dtype_size(be->dtype)};
    layout(tf, &c);
    tf->arena = be->alloc(be, c.used);
    c = (carve){.base = tf->arena, .dsize = c.dsize};
    layout(tf, &c);
}

void evo_transformer_free(evo_transformer *tf)
{
    tf->be->free(tf->be, tf->arena);
    for (int s = 0; s < tf->n_slots; s++) {
        free(tf->slots[s].x);
        free(tf->slots[s].acts);
        free(tf->slots[s].own);
    }
    free(tf->slots);
    free(tf->layer);
    free(tf->layer_unit);
    *tf = (evo_transformer){0};
}

/* splitmix64's finaliser: a bijective mix of 64 bits, so distinct counters
 * give distinct, well-spread outputs. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A standard normal for flat element i: Box-Muller on two uniforms drawn
 * from the counters 2i and 2i+1 of the stream keyed by seed. u1 is in
 * (0, 1] so the log is finite. */
static double normal_at(uint64_t key, uint64_t i)
{
    double u1 = (double)((mix64(key + 0x9e3779b97f4a7c15ull * (2 * i + 1)) >> 11) + 1) * 0x1p-53;
    double u2 = (double)(mix64(key + 0x9e3779b97f4a7c15ull * (2 * i + 2)) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void evo_transformer_init_tensor(const evo_model *m, uint64_t seed, size_t i, float *host)
{
    uint64_t key = mix64(seed ^ 0x65766f2d696e6974ull); /* "evo-init" */
    const evo_tensor_info *t = &m->tensors[i];
#pragma omp parallel for schedule(static)
    for (size_t j = 0; j < t->numel; j++)
        host[j] = t->init == EVO_INIT_ONES    ? 1.0f
                  : t->init == EVO_INIT_ZEROS ? 0.0f
                                              : (float)(t->std * normal_at(key, evo_tensor_src(t, j)));
}

void evo_transformer_set_weights(evo_transformer *tf, uint64_t offset, const float *host, size_t n)
{
    const evo_backend *be = tf->be;
    if (be->dtype == EVO_F32) {
        be->upload(be, tf->params + offset, host, n * sizeof *host);
        return;
    }
    void *rounded = evo_malloc_large(evo_dval_bytes(be, n));
    evo_dtype_cast(rounded, be->dtype, host, EVO_F32, n);
    be->upload(be, evo_dval_at(be, tf->weights, offset), rounded, evo_dval_bytes(be, n));
    free(rounded);
}

void evo_transformer_init_params(evo_transformer *tf, uint64_t seed)
{
    const evo_model *m = tf->m;
    float *h = evo_malloc_large(evo_model_largest_tensor(m) * sizeof *h);
    for (size_t i = 0; i < m->n_tensors; i++) {
        evo_transformer_init_tensor(m, seed, i, h);
        evo_transformer_set_weights(tf, m->tensors[i].offset, h, m->tensors[i].numel);
    }
    free(h);
}

void evo_transformer_zero_grad(evo_transformer *tf)
{
    if (!tf->sink.flush) /* a sink's window starts from zero at every unit */
        tf->be->fill(tf->be, tf->grads, 0.0f, tf->n_grads);
}

/* The working weight of the tensor at off (a weight the layers read), and
 * the gradient of the tensor at off; NULL for an absent bias. */
static const evo_dval *weight(const evo_transformer *tf, uint64_t off)
{
    return off == EVO_NO_TENSOR ? NULL : evo_dval_at(tf->be, tf->weights, off);
}

static float *grad(const evo_transformer *tf, uint64_t off)
{
    return off == EVO_NO_TENSOR ? NULL : tf->grads + (off - tf->grad_base);
}

/* With a sink, the window holds unit u's gradient from here on, starting
 * from zero; it goes to the sink when the unit is done. */
static void unit_begin(evo_transformer *tf, evo_grad_unit u)
{
    if (!tf->sink.flush)
        return;
    tf->grad_base = u.offset;
    tf->be->fill(tf->be, tf->grads, 0.0f, u.numel);
}

static void unit_end(const evo_transformer *tf, evo_grad_unit u)
{
    if (tf->sink.flush)
        tf->sink.flush(tf->sink.ctx, tf->grads, u);
}

static void unit_empty(evo_transformer *tf, evo_grad_unit u)
{
    unit_begin(tf, u);
    unit_end(tf, u);
}

/* Element i of an activation buffer. */
static evo_dval *act_at(const evo_transformer *tf, const evo_dval *x, size_t i)
{
    return evo_dval_at(tf->be, x, i);
}

/* dst[t,:] += src[t,:] over T rows of C: residual adds and summed gradients. */
static void add_rows(const evo_transformer *tf, evo_dval *dst, const evo_dval *src, size_t T, size_t C)
{
    tf->be->add(tf->be, dst, src, T * C);
}

/* The whole row [T, d] of a tensor x holding this rank's tokens of it:
 * gathered into `whole` with sequence parallelism, else x itself. */
static const evo_dval *whole_row(const evo_transformer *tf, evo_dval *whole, const evo_dval *x, size_t T)
{
    if (!tf->tensors.sequence_parallel)
        return x;
    tf->tensors.allgather(tf->tensors.ctx, tf->be->dtype, whole, x, evo_transformer_rows(tf, T) * tf->w.d);
    return whole;
}

/* Where a column-cut layer writes its partial sum [T, d]: straight into
 * out (summed there in place), or a whole row to be scattered. */
static evo_dval *partial_of(const evo_transformer *tf, evo_dval *out)
{
    return tf->tensors.sequence_parallel ? tf->row_a : out;
}

/* The sum over the tensor ranks of a partial result (nothing with tp 1),
 * into out: this rank's tokens of it with sequence parallelism (the
 * partial was written where partial_of said), else the whole in place. */
static void tensor_sum(const evo_transformer *tf, evo_dval *out, const evo_dval *partial, size_t T)
{
    if (tf->tensors.sequence_parallel)
        tf->tensors.reduce_scatter(tf->tensors.ctx, tf->be->dtype, out, partial,
                                   evo_transformer_rows(tf, T) * tf->w.d);
    else if (tf->m->tp > 1)
        tf->tensors.allreduce(tf->tensors.ctx, tf->be->dtype, out, T * tf->w.d);
}

/* The input gradient of a row-cut layer, a partial sum [T, d] in tf->dn,
 * summed: where it is, or this rank's tokens of it in tf->dn_mine. */
static const evo_dval *input_grad(const evo_transformer *tf, size_t T)
{
    evo_dval *out = tf->tensors.sequence_parallel ? tf->dn_mine : tf->dn;
    tensor_sum(tf, out, tf->dn, T);
    return out;
}

/* x[T,d] = the embedding of the tokens. A tensor rank holds d/tp columns
 * of the table: it looks up its columns, and every rank's are gathered
 * and put side by side. */
static void embed(evo_transformer *tf, evo_microbatch *mb, const evo_dval *table)
{
    const evo_backend *be = tf->be;
    size_t T = mb->T, d = tf->w.d, tp = tf->m->tp, dl = d / tp, Ts = evo_transformer_rows(tf, T);
    if (tp == 1) {
        be->embedding_fwd(be, mb->x[0], mb->tokens, table, T, d);
        return;
    }
    evo_dval *x = tf->tensors.sequence_parallel ? tf->row_a : mb->x[0];
    be->embedding_fwd(be, tf->emb_mine, mb->tokens, table, T, dl);
    tf->tensors.allgather(tf->tensors.ctx, be->dtype, tf->emb_all, tf->emb_mine, T * dl);
    for (size_t r = 0; r < tp; r++)
        be->copy2d(be, act_at(tf, x, r * dl), d, act_at(tf, tf->emb_all, r * T * dl), dl, T, dl);
    if (x != mb->x[0]) /* this rank's tokens */
        be->copy(be, mb->x[0], act_at(tf, x, tf->m->tp_rank * Ts * d), evo_dval_bytes(be, Ts * d));
}

static void embed_backward(evo_transformer *tf, const evo_microbatch *mb, float *dtable)
{
    const evo_backend *be = tf->be;
    size_t T = mb->T, d = tf->w.d, tp = tf->m->tp, dl = d / tp;
    if (tp == 1) {
        be->embedding_bwd(be, dtable, mb->tokens, tf->dx, T, d);
        return;
    }
    const evo_dval *dx = whole_row(tf, tf->row_a, tf->dx, T);
    be->copy2d(be, tf->emb_mine, dl, act_at(tf, dx, tf->m->tp_rank * dl), d, T, dl);
    be->embedding_bwd(be, dtable, mb->tokens, tf->emb_mine, T, dl);
}

size_t evo_transformer_loss_rows(size_t vocab, uint32_t tp)
{
    size_t rows = EVO_LOSS_PIECE_BYTES / (vocab * sizeof(float));
    return tp > 1 ? SIZE_MAX : rows ? rows : 1;
}

/* The head's logits of rows [t0, t0+n) of the row, into tf->logits: the
 * forward makes them for the loss and the backward again for its gradient,
 * the same op on the same inputs, so the same bits. */
static void head_logits(evo_transformer *tf, const evo_dval *nf_whole, size_t t0, size_t n)
{
    tf->be->matmul_fwd(tf->be, tf->logits, act_at(tf, nf_whole, t0 * tf->w.d), weight(tf, tf->head), NULL, n,
                       tf->w.d, tf->w.vocab);
}

/* The losses [T] of the row, and the log-sum-exp its backward needs, from
 * the final norm's output: the head and the cross-entropy over pieces of
 * loss_rows tokens (one piece with tp > 1). A tensor rank holds vocab/tp
 * columns of the logits (Megatron's vocab-parallel cross-entropy): each
 * computes its parts, every rank's are gathered and combined on the host,
 * in rank order. */
static void loss(evo_transformer *tf, evo_microbatch *mb, const evo_dval *nf_whole, const int32_t *labels,
                 float *losses)
{
    const evo_backend *be = tf->be;
    const evo_model *m = tf->m;
    size_t T = mb->T, tp = m->tp;
    double eps = tf->label_smoothing;
    if (tp == 1) {
        for (size_t t0 = 0; t0 < T; t0 += tf->loss_rows) {
            size_t n = T - t0 < tf->loss_rows ? T - t0 : tf->loss_rows;
            head_logits(tf, nf_whole, t0, n);
            be->crossentropy_fwd(be, mb->losses + t0, mb->ce_lse + t0, tf->logits, mb->labels + t0,
                                 tf->label_smoothing, n, m->vocab);
        }
        be->download(be, losses, mb->losses, T * sizeof *losses);
        return;
    }
    head_logits(tf, nf_whole, 0, T);
    be->crossentropy_shard_fwd(be, tf->ce_parts, tf->logits, mb->labels, T, m->tp_rank * tf->w.vocab, tf->w.vocab);
    tf->tensors.allgather(tf->tensors.ctx, EVO_F32, tf->ce_all, tf->ce_parts, 3 * T);
    float *parts = evo_malloc(3 * T * tp * sizeof *parts), *lse = evo_malloc(T * sizeof *lse);
    be->download(be, parts, tf->ce_all, 3 * T * tp * sizeof *parts);
    for (size_t t = 0; t < T; t++) {
        losses[t] = lse[t] = 0;
        if (labels[t] == EVO_IGNORE_LABEL)
            continue;
        double top = parts[t], sum = 0, zy = 0, zsum = 0;
        for (size_t r = 1; r < tp; r++)
            top = parts[r * 3 * T + t] > top ? parts[r * 3 * T + t] : top;
        for (size_t r = 0; r < tp; r++) {
            const float *p = parts + r * 3 * T;
            sum += exp(p[t] - top);
            zy += p[T + t];
            zsum += p[2 * T + t];
        }
        double L = top + log(sum);
        lse[t] = (float)L;
        losses[t] = (float)(L - (1.0 - eps) * zy - eps * zsum / (double)m->vocab);
    }
    be->upload(be, mb->ce_lse, lse, T * sizeof *lse);
    free(parts);
    free(lse);
}

/* Layer i of the stage on the slot's row: x[i+1] from x[i], keeping in
 * acts[i] what the backward needs (in the shared set, for a recomputed
 * layer, which its backward runs this again to fill). */
static void layer_forward(evo_transformer *tf, evo_microbatch *mb, uint32_t i)
{
    mb->acts[i] = recomputed(tf, mb->chunk, i) ? tf->recompute : mb->own[i];
    const evo_model *m = tf->m;
    const evo_backend *be = tf->be;
    const evo_widths *w = &tf->w;
    size_t T = mb->T, d = w->d, Ts = evo_transformer_rows(tf, T);
    int hd = (int)m->head_dim;
    float eps = (float)m->eps, base = (float)m->rope_base;
    const evo_layer_offsets *o = &tf->layer[tf->chunk_at[mb->chunk] + i];
    evo_layer_acts *a = &mb->acts[i];
    /* h = x + o(attn(rope(q(n1)), rope(k(n1)), v(n1))) */
    be->rmsnorm_fwd(be, a->n1, a->rstd1, mb->x[i], weight(tf, o->attn_norm), eps, Ts, d);
    const evo_dval *n1 = whole_row(tf, tf->row_b, a->n1, T);
    be->matmul_fwd(be, a->q, n1, weight(tf, o->q), weight(tf, o->q_bias), T, d, w->q);
    be->matmul_fwd(be, a->k, n1, weight(tf, o->k), weight(tf, o->k_bias), T, d, w->kv);
    be->matmul_fwd(be, a->v, n1, weight(tf, o->v), weight(tf, o->v_bias), T, d, w->kv);
    be->rope_fwd(be, a->q, a->q, mb->positions, T, w->heads, hd, base);
    be->rope_fwd(be, a->k, a->k, mb->positions, T, w->kv_heads, hd, base);
    be->attention_fwd(be, a->att, a->lse, a->q, a->k, a->v, mb->cu_seqlens, mb->n_seg, T, w->heads, w->kv_heads,
                      hd);
    be->matmul_fwd(be, partial_of(tf, a->h), a->att, weight(tf, o->o), weight(tf, o->o_bias), T, w->q, d);
    tensor_sum(tf, a->h, partial_of(tf, a->h), T);
    add_rows(tf, a->h, mb->x[i], Ts, d);
    /* y = h + down(silu(gate(n2)) up(n2)) */
    be->rmsnorm_fwd(be, a->n2, a->rstd2, a->h, weight(tf, o->mlp_norm), eps, Ts, d);
    const evo_dval *n2 = whole_row(tf, tf->row_b, a->n2, T);
    be->matmul_fwd(be, a->gate, n2, weight(tf, o->gate), NULL, T, d, w->ffn);
    be->matmul_fwd(be, a->up, n2, weight(tf, o->up), NULL, T, d, w->ffn);
    be->swiglu_fwd(be, a->act, a->gate, a->up, T * w->ffn);
    be->matmul_fwd(be, partial_of(tf, mb->x[i + 1]), a->act, weight(tf, o->down), NULL, T, w->ffn, d);
    tensor_sum(tf, mb->x[i + 1], partial_of(tf, mb->x[i + 1]), T);
    add_rows(tf, mb->x[i + 1], a->h, Ts, d);
}

double evo_transformer_forward(evo_transformer *tf, int slot, uint32_t chunk, const evo_pack_row *row, size_t T)
{
    const evo_model *m = tf->m;
    const evo_backend *be = tf->be;
    const evo_widths *w = &tf->w;
    evo_microbatch *mb = &tf->slots[slot];
    if (T > tf->T_max || row->cu_seqlens[row->n_segments] != (int32_t)T)
        evo_fatal("transformer: a row of %zu tokens (cu_seqlens end %d) for an arena of %zu", T,
                  row->cu_seqlens[row->n_segments], tf->T_max);
    size_t d = w->d, Ts = evo_transformer_rows(tf, T);
    float eps = (float)m->eps;
    mb->T = T;
    mb->chunk = chunk;
    mb->n_seg = (int)row->n_segments;
    /* every stage knows whether the row has a loss, so all of them skip
     * the backward of a row without one */
    mb->n_labelled = 0;
    for (size_t t = 0; t < T; t++)
        mb->n_labelled += row->labels[t] != EVO_IGNORE_LABEL;
    be->upload(be, mb->tokens, row->tokens, T * sizeof(int32_t));
    be->upload(be, mb->labels, row->labels, T * sizeof(int32_t));
    be->upload(be, mb->positions, row->positions, T * sizeof(int32_t));
    be->upload(be, mb->cu_seqlens, row->cu_seqlens, (row->n_segments + 1) * sizeof(int32_t));

    if (tf->first_stage && chunk == 0)
        embed(tf, mb, weight(tf, tf->embedding));
    for (uint32_t i = 0; i < chunk_len(tf, chunk); i++)
        layer_forward(tf, mb, i);
    if (!tf->last_stage || chunk + 1 < tf->chunks)
        return 0;
    be->rmsnorm_fwd(be, mb->nf, mb->rstdf, mb->x[chunk_len(tf, chunk)], weight(tf, tf->norm), eps, Ts, d);

    /* The mean over labelled tokens, summed on the host in double in token
     * order (T floats: small next to the logits, and deterministic). */
    float *losses = evo_malloc(T * sizeof *losses);
    loss(tf, mb, whole_row(tf, tf->row_b, mb->nf, T), row->labels, losses);
    double sum = 0;
    for (size_t t = 0; t < T; t++)
        sum += losses[t];
    free(losses);
    return mb->n_labelled ? sum / mb->n_labelled : 0.0;
}

void evo_transformer_backward(evo_transformer *tf, int slot, float scale)
{
    const evo_model *m = tf->m;
    const evo_backend *be = tf->be;
    const evo_widths *w = &tf->w;
    evo_microbatch *mb = &tf->slots[slot];
    size_t T = mb->T, d = w->d, Ts = evo_transformer_rows(tf, T);
    int hd = (int)m->head_dim;
    float base = (float)m->rope_base;
    uint32_t chunk = mb->chunk;
    int has_head = tf->last_stage && chunk + 1 == tf->chunks, has_embedding = tf->first_stage && chunk == 0;
    const evo_grad_unit *layer_unit = tf->layer_unit + tf->chunk_at[chunk];
    if (!mb->n_labelled) { /* no gradient; a sink still gets its units, of zeros, in the same order */
        if (has_head)
            unit_empty(tf, tf->head_unit);
        for (uint32_t i = chunk_len(tf, chunk); i-- > 0;)
            unit_empty(tf, layer_unit[i]);
        if (has_embedding)
            unit_empty(tf, tf->embedding_unit);
        return;
    }
    /* A tensor rank's gradient of an input its row-cut layers (q k v,
     * gate up, head) read is a partial sum: input_grad sums it. */
    if (has_head) {
        unit_begin(tf, tf->head_unit);
        /* loss = sum_t losses[t] / n, so every labelled token gets scale / n
         * (ignored tokens get no gradient whatever dloss says). */
        be->fill(be, tf->dloss, scale / (float)mb->n_labelled, T);
        const evo_dval *nf = whole_row(tf, tf->row_b, mb->nf, T);
        for (size_t t0 = 0; t0 < T; t0 += tf->loss_rows) {
            size_t n = T - t0 < tf->loss_rows ? T - t0 : tf->loss_rows;
            head_logits(tf, nf, t0, n);
            be->crossentropy_bwd(be, tf->logits, tf->dloss + t0, tf->logits, mb->ce_lse + t0, mb->labels + t0,
                                 tf->label_smoothing, n, m->vocab, m->tp_rank * w->vocab, w->vocab);
            be->matmul_bwd(be, act_at(tf, tf->dn, t0 * d), grad(tf, tf->head), NULL, tf->logits,
                           act_at(tf, nf, t0 * d), weight(tf, tf->head), n, d, w->vocab, EVO_OVERWRITE);
        }
        /* dx carries dL/d(residual stream) down the layers; the branches
         * add their share to it in place. */
        be->rmsnorm_bwd(be, tf->dx, grad(tf, tf->norm), input_grad(tf, T), mb->x[chunk_len(tf, chunk)],
                        weight(tf, tf->norm), mb->rstdf, Ts, d, EVO_OVERWRITE);
        unit_end(tf, tf->head_unit);
    }
    /* With sequence parallelism the whole rows a layer's backward reads
     * are gathered again (Megatron's choice: the activations stay cut). */
    for (uint32_t i = chunk_len(tf, chunk); i-- > 0;) {
        const evo_layer_offsets *o = &tf->layer[tf->chunk_at[chunk] + i];
        const evo_layer_acts *a = &mb->acts[i];
        if (recomputed(tf, chunk, i)) /* the same ops on the same input: the same bits */
            layer_forward(tf, mb, i);
        unit_begin(tf, layer_unit[i]);
        /* y = h + down(act): dh = dy + mlp_norm'(gate' + up') */
        const evo_dval *dy = whole_row(tf, tf->row_a, tf->dx, T);
        be->matmul_bwd(be, tf->dact, grad(tf, o->down), NULL, dy, a->act, weight(tf, o->down), T, w->ffn, d,
                       EVO_OVERWRITE);
        be->swiglu_bwd(be, tf->dgate, tf->dup, tf->dact, a->gate, a->up, T * w->ffn);
        /* n2 feeds gate and up: its gradient is the sum of both */
        const evo_dval *n2 = whole_row(tf, tf->row_b, a->n2, T);
        be->matmul_bwd(be, tf->dn, grad(tf, o->gate), NULL, tf->dgate, n2, weight(tf, o->gate), T, d, w->ffn,
                       EVO_OVERWRITE);
        be->matmul_bwd(be, tf->dn, grad(tf, o->up), NULL, tf->dup, n2, weight(tf, o->up), T, d, w->ffn,
                       EVO_ACCUMULATE);
        be->rmsnorm_bwd(be, tf->dx, grad(tf, o->mlp_norm), input_grad(tf, T), a->h, weight(tf, o->mlp_norm),
                        a->rstd2, Ts, d, EVO_ACCUMULATE);
        /* h = x + o(att): dx = dh + attn_norm'(q' + k' + v') */
        const evo_dval *dh = whole_row(tf, tf->row_a, tf->dx, T);
        be->matmul_bwd(be, tf->dn, grad(tf, o->o), grad(tf, o->o_bias), dh, a->att, weight(tf, o->o), T, w->q, d,
                       EVO_OVERWRITE);
        be->attention_bwd(be, tf->dq, tf->dk, tf->dv, tf->scratch, tf->dn, a->q, a->k, a->v, a->att, a->lse,
                          mb->cu_seqlens, mb->n_seg, T, w->heads, w->kv_heads, hd);
        be->rope_bwd(be, tf->dq, tf->dq, mb->positions, T, w->heads, hd, base);
        be->rope_bwd(be, tf->dk, tf->dk, mb->positions, T, w->kv_heads, hd, base);
        const evo_dval *n1 = whole_row(tf, tf->row_b, a->n1, T);
        be->matmul_bwd(be, tf->dn, grad(tf, o->q), grad(tf, o->q_bias), tf->dq, n1, weight(tf, o->q), T, d, w->q,
                       EVO_OVERWRITE);
        be->matmul_bwd(be, tf->dn, grad(tf, o->k), grad(tf, o->k_bias), tf->dk, n1, weight(tf, o->k), T, d, w->kv,
                       EVO_ACCUMULATE);
        be->matmul_bwd(be, tf->dn, grad(tf, o->v), grad(tf, o->v_bias), tf->dv, n1, weight(tf, o->v), T, d, w->kv,
                       EVO_ACCUMULATE);
        be->rmsnorm_bwd(be, tf->dx, grad(tf, o->attn_norm), input_grad(tf, T), mb->x[i], weight(tf, o->attn_norm),
                        a->rstd1, Ts, d, EVO_ACCUMULATE);
        unit_end(tf, layer_unit[i]);
    }
    if (has_embedding) {
        unit_begin(tf, tf->embedding_unit);
        embed_backward(tf, mb, grad(tf, tf->embedding));
        unit_end(tf, tf->embedding_unit);
    }
}
