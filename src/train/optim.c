/* optim.c - one optimizer step, InternEvo's HybridZeroOptimizer.step on one
 * rank: the gradients were accumulated with the loss multiplied by the
 * loss scale S and divided by the rows of the step, so
 *
 *   norm = |g| / S                          (global L2 norm, unscaled)
 *   inf/NaN anywhere in g  -> skip the step, the scaler backs off
 *   coef = (norm + 1e-6) / clip_grad_norm   (clipping when coef > 1)
 *   AdamW on g / (S max(1, coef)) with the lr and beta2 of this step.
 *
 * The squared norm is summed in double on the backend and crosses to the
 * host as one number: the only host read of the step. */
#include <math.h>

#include "train.h"

void train_optim_init(train_run *r)
{
    const evo_backend *be = r->be;
    size_t n = r->model.n_params;
    r->adam_m = be->alloc(be, n * sizeof(float));
    r->adam_v = be->alloc(be, n * sizeof(float));
    be->fill(be, r->adam_m, 0.0f, n);
    be->fill(be, r->adam_v, 0.0f, n);
    r->sqnorm = be->alloc(be, sizeof(double));
}

void train_optim_free(train_run *r)
{
    r->be->free(r->be, r->adam_m);
    r->be->free(r->be, r->adam_v);
    r->be->free(r->be, r->sqnorm);
}

train_step_result train_optim_step(train_run *r)
{
    const evo_backend *be = r->be;
    evo_comm *comm = r->comm;
    const evo_config *c = r->cfg;
    size_t n = r->model.n_params;
    float *g = r->tf.grads;

    /* Data parallel: the step's gradient is the mean over ranks; the sum
     * is taken here and the division folded into the scale below. */
    comm->allreduce_sum_f32(comm, EVO_GROUP_DATA, be, g, n);
    double acc = 0;
    be->upload(be, r->sqnorm, &acc, sizeof acc);
    be->sqnorm(be, r->sqnorm, g, n);
    be->download(be, &acc, r->sqnorm, sizeof acc);

    double scale = r->st.scaler.scale * comm->layout.dp;
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
    be->adamw(be, r->tf.params, g, r->adam_m, r->adam_v, n, (float)res.lr, (float)c->adam.adam_beta1,
              (float)res.beta2, (float)c->adam.adam_eps, (float)c->adam.weight_decay, (float)(1 / combined),
              (int)(r->st.adam_steps + 1));
    evo_loss_scaler_update(&r->st.scaler, c, 0);
    res.applied = 1;
    return res;
}
