#include "compute/schedule.h"

#include <math.h>

double evo_lr_at(const evo_config *c, uint64_t s)
{
    uint64_t total = c->lr_scheduler.total_steps, init = c->lr_scheduler.init_steps;
    uint64_t warmup = (uint64_t)((double)total * c->lr_scheduler.warmup_ratio);
    double lr = c->adam.lr, eta_min = c->lr_scheduler.eta_min;
    if (s < init)
        return 0;
    if (s < init + warmup)
        return lr * (double)(s + 1 - init) / (double)warmup;
    /* Cosine over what is left; an empty remainder keeps the peak. */
    if (total <= init + warmup)
        return lr;
    double t = (double)(s - init - warmup) / (double)(total - init - warmup);
    return eta_min + (lr - eta_min) * (1 + cos(M_PI * t)) / 2;
}

double evo_beta2_at(const evo_config *c, uint64_t s)
{
    double k = c->beta2_scheduler.c;
    if (s == 0 || k <= 0)
        return c->adam.adam_beta2;
    return fmax(c->beta2_scheduler.init_beta2, 1 - 1 / pow((double)s, k));
}

void evo_loss_scaler_init(evo_loss_scaler *s, const evo_config *c)
{
    s->enabled = c->model.dtype == EVO_DT_BF16 || c->model.dtype == EVO_DT_F16;
    s->scale = s->enabled ? c->grad_scaler.initial_scale : 1;
    s->clean_steps = s->overflows = 0;
}

void evo_loss_scaler_update(evo_loss_scaler *s, const evo_config *c, int found_inf)
{
    if (!s->enabled)
        return;
    if (found_inf) {
        s->clean_steps = 0;
        if (++s->overflows >= c->grad_scaler.hysteresis)
            s->scale = fmax(s->scale * c->grad_scaler.backoff_factor, c->grad_scaler.min_scale);
    } else if (++s->clean_steps == c->grad_scaler.growth_interval) {
        s->clean_steps = s->overflows = 0;
        s->scale = fmin(s->scale * c->grad_scaler.growth_factor, c->grad_scaler.max_scale);
    }
}
