/* schedule.h - what changes from step to step in InternEvo's training, as
 * pure functions of the step and the config, so that every backend and
 * every rank computes the same numbers and a resumed run continues them:
 *
 *   - the learning rate: linear warmup, then cosine to eta_min
 *     (InternEvo's FineTuneCosineAnnealingWarmupLR);
 *   - AdamW's beta2 (InternEvo's Beta2Scheduler);
 *   - the dynamic loss scaler (InternEvo's DynamicGradScaler).
 * Which batches are skipped and how many rows each has (skip_batches,
 * rampup_batch_size) are config values: formats/batch_set.h.
 *
 * "step" is the number of optimizer steps taken before this one (skipped
 * batches and overflowed steps do not count, as in InternEvo, whose
 * schedulers advance only after a successful update). */
#ifndef EVO_SCHEDULE_H
#define EVO_SCHEDULE_H

#include <stdint.h>

#include "base/error.h"
#include "formats/config.h"

/* The learning rate of step s (0-based). With W = int(total * warmup_ratio)
 * and I = init_steps:
 *   s < I          0
 *   s < I + W      lr (s + 1 - I) / W
 *   otherwise      eta_min + (lr - eta_min) (1 + cos(pi (s - I - W) / (total - I - W))) / 2 */
double evo_lr_at(const evo_config *c, uint64_t s);

/* AdamW's beta2 at step s: adam_beta2 for the first step and whenever
 * beta2_scheduler.c <= 0, else max(init_beta2, 1 - 1/s^c). */
double evo_beta2_at(const evo_config *c, uint64_t s);

/* The dynamic loss scaler. The loss is multiplied by scale before the
 * backward and the gradients divided by it after; a step whose gradients
 * hold an inf or NaN is skipped. Such an overflow restarts the count of
 * clean steps and is counted; from the hysteresis-th overflow since the
 * scale last grew, every overflow backs the scale off (times
 * backoff_factor, not below min_scale). After growth_interval clean steps
 * in a row the scale grows (times growth_factor, not above max_scale) and
 * the overflow count restarts. Disabled (scale 1 for good) in fp32 and
 * tf32, as in InternEvo. */
typedef struct {
    double scale;
    uint32_t clean_steps, overflows; /* in a row; since the last growth */
    int enabled;
} evo_loss_scaler;

void evo_loss_scaler_init(evo_loss_scaler *s, const evo_config *c);
void evo_loss_scaler_update(evo_loss_scaler *s, const evo_config *c, int found_inf);

#endif
