/* optim.c - one optimizer step, InternEvo's HybridZeroOptimizer.step: the
 * gradients were accumulated with the loss multiplied by the loss scale S
 * and divided by the rows of the step, then summed over the dp ranks, so
 * (with g their sum and S folding in the division by dp)
 *
 *   norm = |g| / S                          (global L2 norm, unscaled)
 *   inf/NaN anywhere in g  -> skip the step, the scaler backs off
 *   coef = (norm + 1e-6) / clip_grad_norm   (clipping when coef > 1)
 *   AdamW on g / (S max(1, coef)) with the lr and beta2 of this step.
 *
 * The squared norm is summed in double on the backend and crosses to the
 * host as one number: the only host read of the step.
 *
 * ZeRO-1: each rank of a zero1 group keeps the moments of the tensors
 * dealt to it (evo_ckpt_zero_owned), and in bf16 or fp16 their fp32
 * master weights too; it updates those and broadcasts their weights as
 * the layers read them (fp32, or the dtype working copy: half the bytes);
 * the norm is the sum of the owners' parts, and of the pipeline stages'
 * and tensor ranks' (each holds its part: r->model), the norms' weights,
 * whole on every tensor rank, counted once. Without ZeRO (zero1 1) every
 * rank owns everything and the same code makes one call of each op.
 *
 * ZeRO-2 (parallel.zero1.shard_grads, evo's): the fp32 gradients are cut
 * as the moments too. The backward hands each unit's gradient of one row
 * to train_flush_grads (the transformer's gradient sink), which reduces
 * it at once and adds what this rank keeps into its shard; the whole
 * gradient never exists. 4 (1 - 1/zero1) bytes a parameter less, for
 * micro_num reductions of the gradient a step instead of one (DeepSpeed's
 * stage 2 makes the same trade), and sums taken in another order: per
 * row over the ranks, then over the rows. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "formats/ckpt_layout.h"
#include "train.h"

int train_next_run(const evo_model *m, const uint32_t *owner, size_t i, train_tensor_run *run)
{
    if (i >= m->n_tensors)
        return 0;
    *run = (train_tensor_run){.first = i, .end = i + 1, .owner = owner[i], .offset = m->tensors[i].offset,
                              .numel = m->tensors[i].numel};
    while (run->end < m->n_tensors && owner[run->end] == run->owner) {
        run->numel += m->tensors[run->end].numel;
        run->end++;
    }
    return 1;
}

void train_optim_init(train_run *r)
{
    const evo_backend *be = r->be;
    const evo_layout *l = &r->comm->layout;
    const evo_model *m = &r->model;
    r->owner = evo_malloc((m->n_tensors + 1) * sizeof *r->owner);
    r->moment_at = evo_malloc((m->n_tensors + 1) * sizeof *r->moment_at);
    r->n_moments = evo_ckpt_zero_owned(m, l->zero1, l->zero1_rank, r->owner);
    uint64_t at = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        r->moment_at[i] = r->owner[i] == l->zero1_rank ? at : UINT64_MAX;
        at += r->owner[i] == l->zero1_rank ? m->tensors[i].numel : 0;
    }
    size_t n = r->n_moments ? r->n_moments : 1;
    r->adam_m = be->alloc(be, n * sizeof(float));
    r->adam_v = be->alloc(be, n * sizeof(float));
    be->fill(be, r->adam_m, 0.0f, n);
    be->fill(be, r->adam_v, 0.0f, n);
    r->master = be->dtype == EVO_F32 ? NULL : be->alloc(be, n * sizeof(float));
    r->grad_shard = train_shards_grads(r->cfg, l) ? be->alloc(be, n * sizeof(float)) : NULL;
    r->sqnorm = be->alloc(be, sizeof(double));
}

void train_set_tensor(train_run *r, size_t i, const float *host)
{
    const evo_tensor_info *t = &r->model.tensors[i];
    evo_transformer_set_weights(&r->tf, t->offset, host, t->numel);
    if (r->master && r->moment_at[i] != UINT64_MAX)
        r->be->upload(r->be, r->master + r->moment_at[i], host, t->numel * sizeof *host);
}

void train_master_weights(train_run *r, float *host)
{
    const evo_backend *be = r->be;
    const evo_layout *l = &r->comm->layout;
    if (!r->master) {
        if (host)
            be->download(be, host, r->tf.params, r->model.n_params * sizeof *host);
        return;
    }
    enum { TAG_MASTER = 3 };
    train_tensor_run run;
    for (size_t i = 0; train_next_run(&r->model, r->owner, i, &run); i = run.end) {
        const float *mine = r->master + r->moment_at[run.first];
        size_t bytes = run.numel * sizeof *mine;
        if (run.owner == l->zero1_rank && l->zero1_rank == 0)
            be->download(be, host + run.offset, mine, bytes);
        else if (run.owner == l->zero1_rank)
            r->comm->send(r->comm, EVO_GROUP_ZERO1, be, mine, bytes, 0, TAG_MASTER);
        else if (l->zero1_rank == 0)
            r->comm->recv(r->comm, EVO_GROUP_ZERO1, NULL, host + run.offset, bytes, run.owner, TAG_MASTER);
    }
    r->comm->wait_sent(r->comm);
}

void train_optim_free(train_run *r)
{
    r->be->free(r->be, r->adam_m);
    r->be->free(r->be, r->adam_v);
    if (r->master)
        r->be->free(r->be, r->master);
    if (r->grad_shard)
        r->be->free(r->be, r->grad_shard);
    r->be->free(r->be, r->sqnorm);
    free(r->owner);
    free(r->moment_at);
}

/* Without ZeRO-1 every rank needs the sums, and so does every block when
 * zero1 blocks are smaller than dp. */
int train_reduce_to_owners(const evo_layout *l) { return l->zero1 > 1 && l->zero1 == l->dp; }

int train_shards_grads(const evo_config *c, const evo_layout *l) { return c->parallel.zero1_shard_grads && l->zero1 > 1; }

int train_next_reduction(const evo_model *m, const uint32_t *owner, const evo_layout *l, uint64_t bucket_size,
                         evo_grad_unit span, train_reduction *red)
{
    uint64_t at = red->n ? red->offset + red->n : span.offset, end = span.offset + span.numel;
    if (at >= end)
        return 0;
    if (!train_reduce_to_owners(l)) {
        *red = (train_reduction){.offset = at, .n = train_bucket(bucket_size, end - at), .root = -1};
        return 1;
    }
    size_t i = 0; /* the tensor holding element at, and the run of its owner from there */
    while (m->tensors[i].offset + m->tensors[i].numel <= at)
        i++;
    train_tensor_run run;
    train_next_run(m, owner, i, &run);
    uint64_t run_end = run.offset + run.numel < end ? run.offset + run.numel : end;
    *red = (train_reduction){.offset = at, .n = train_bucket(bucket_size, run_end - at), .root = run.owner};
    return 1;
}

/* The gradients of span (g holds them from span.offset on) summed over
 * the data-parallel ranks where this rank needs them (train_next_reduction).
 * With sequence parallelism the norms' gradients are first summed over the
 * tensor ranks, each having seen its tokens only. */
static void reduce_span(train_run *r, float *g, evo_grad_unit span)
{
    evo_comm *comm = r->comm;
    for (size_t i = 0; evo_layout_sequence_parallel(&comm->layout) && i < r->model.n_tensors; i++) {
        const evo_tensor_info *t = &r->model.tensors[i];
        if (t->tp_replicated && t->offset >= span.offset && t->offset < span.offset + span.numel)
            comm->allreduce_sum(comm, EVO_GROUP_TENSOR, r->be, EVO_F32, g + (t->offset - span.offset), t->numel);
    }
    train_reduction red = {0};
    while (train_next_reduction(&r->model, r->owner, &comm->layout, r->cfg->hybrid_zero_optimizer.reduce_bucket_size,
                                span, &red)) {
        float *at = g + (red.offset - span.offset);
        if (red.root < 0)
            comm->allreduce_sum(comm, EVO_GROUP_DATA, r->be, EVO_F32, at, red.n);
        else
            comm->reduce_sum(comm, EVO_GROUP_DATA, r->be, EVO_F32, at, red.n, (uint32_t)red.root);
    }
}

void train_flush_grads(void *ctx, float *grad, evo_grad_unit unit)
{
    train_run *r = ctx;
    reduce_span(r, grad, unit);
    for (size_t i = 0; i < r->model.n_tensors; i++) {
        const evo_tensor_info *t = &r->model.tensors[i];
        if (r->moment_at[i] != UINT64_MAX && t->offset >= unit.offset && t->offset < unit.offset + unit.numel)
            r->be->add_f32(r->be, r->grad_shard + r->moment_at[i], grad + (t->offset - unit.offset), t->numel);
    }
}

void train_zero_grads(train_run *r)
{
    evo_transformer_zero_grad(&r->tf);
    if (r->grad_shard)
        r->be->fill(r->be, r->grad_shard, 0.0f, r->n_moments);
}

void train_poison_grads(train_run *r) { r->be->fill(r->be, r->grad_shard ? r->grad_shard : r->tf.grads, NAN, 1); }

/* The summed gradient of tensor i, which this rank keeps: in its shard,
 * laid out as the moments, or in the whole buffer. Consecutive tensors
 * it keeps follow each other in both. */
static float *kept_grad(const train_run *r, size_t i)
{
    return r->grad_shard ? r->grad_shard + r->moment_at[i] : r->tf.grads + r->model.tensors[i].offset;
}

train_step_result train_optim_step(train_run *r)
{
    const evo_backend *be = r->be;
    evo_comm *comm = r->comm;
    const evo_layout *l = &comm->layout;
    const evo_config *c = r->cfg;
    train_tensor_run run;

    /* Data parallel: the step's gradient is the mean over ranks; the sum
     * is taken here (with sharded gradients, row by row in the backward)
     * and the division folded into the scale below. The squared norm:
     * each zero1 rank's share of it, summed over the group. */
    if (!r->grad_shard)
        reduce_span(r, r->tf.grads, (evo_grad_unit){.numel = r->model.n_params});
    double acc = 0;
    be->upload(be, r->sqnorm, &acc, sizeof acc);
    for (size_t i = 0; train_next_run(&r->model, r->owner, i, &run); i = run.end) {
        if (run.owner != l->zero1_rank)
            continue;
        if (l->tp_rank == 0) {
            be->sqnorm(be, r->sqnorm, kept_grad(r, run.first), run.numel);
            continue;
        }
        for (size_t k = run.first; k < run.end; k++) /* the norms count on tensor rank 0 */
            if (!r->model.tensors[k].tp_replicated)
                be->sqnorm(be, r->sqnorm, kept_grad(r, k), r->model.tensors[k].numel);
    }
    be->download(be, &acc, r->sqnorm, sizeof acc);
    comm->allreduce_sum_f64(comm, EVO_GROUP_ZERO1, &acc, 1);
    comm->allreduce_sum_f64(comm, EVO_GROUP_PIPELINE, &acc, 1);
    comm->allreduce_sum_f64(comm, EVO_GROUP_TENSOR, &acc, 1);

    double scale = r->st.scaler.scale * l->dp;
    train_step_result res = {.grad_norm = sqrt(acc) / scale,
                             .lr = evo_lr_at(c, r->st.step),
                             .beta2 = evo_beta2_at(c, r->st.step)};
    if (!isfinite(acc)) {
        evo_loss_scaler_update(&r->st.scaler, c, 1);
        return res;
    }
    double clip = c->hybrid_zero_optimizer.clip_grad_norm;
    double coef = clip > 0 ? (res.grad_norm + 1e-6) / clip : 0;
    double combined = scale * (coef > 1 ? coef : 1);
    /* Each rank updates the master weights it keeps, makes their working
     * copy in the same pass, and sends that to the rest of its zero1
     * group. */
    for (size_t i = 0; train_next_run(&r->model, r->owner, i, &run); i = run.end) {
        evo_dval *w = evo_dval_at(be, r->tf.weights, run.offset);
        if (run.owner == l->zero1_rank) {
            uint64_t at = r->moment_at[run.first];
            float *p = r->master ? r->master + at : r->tf.params + run.offset;
            be->adamw(be, p, r->master ? w : NULL, kept_grad(r, run.first), r->adam_m + at, r->adam_v + at, run.numel,
                      (float)res.lr, (float)c->adam.adam_beta1, (float)res.beta2, (float)c->adam.adam_eps,
                      (float)c->adam.weight_decay, (float)(1 / combined), (int)(r->st.adam_steps + 1));
        }
        if (l->zero1 > 1)
            comm->broadcast(comm, EVO_GROUP_ZERO1, be, w, evo_dval_bytes(be, run.numel), run.owner);
    }
    evo_loss_scaler_update(&r->st.scaler, c, 0);
    res.applied = 1;
    return res;
}
