/* train-check - checks of what a training step is made of, one line each
 * ("ok NAME" or "FAIL NAME: why"), for t0310-train.sh:
 *   - gradient accumulation: four rows accumulated with backward(1/4) give
 *     the average of the four gradients computed one by one;
 *   - the learning-rate and beta2 schedules against their formulas;
 *   - the dynamic loss scaler through overflows, hysteresis, growth and
 *     its bounds;
 *   - skip_batches and rampup_batch_size parsing.
 * Exit status 1 if any check failed. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/schedule.h"
#include "compute/transformer.h"
#include "formats/batch_set.h"
#include "formats/config.h"

static int failed;

static void check(int ok, const char *name, const char *fmt, ...)
{
    if (ok) {
        printf("ok %s\n", name);
        return;
    }
    failed = 1;
    printf("FAIL %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* Row r of four: two segments, every 5th label ignored, ids from an LCG. */
static void make_row(evo_pack_row *row, size_t T, uint32_t V, int r)
{
    uint32_t lcg = 777u + 1000u * (uint32_t)r;
    int32_t cut = (int32_t)T / (2 + r);
    int32_t cu[] = {0, cut, (int32_t)T};
    memcpy(row->cu_seqlens, cu, sizeof cu);
    row->n_segments = 2;
    for (size_t t = 0; t < T; t++) {
        lcg = lcg * 1664525u + 1013904223u;
        row->tokens[t] = (int32_t)((lcg >> 8) % V);
    }
    for (size_t t = 0; t < T; t++) {
        int32_t end = (int32_t)t < cut ? cut : (int32_t)T;
        row->positions[t] = (int32_t)t - ((int32_t)t < cut ? 0 : cut);
        row->labels[t] = (int32_t)t + 1 == end || t % 5 == 2 ? EVO_IGNORE_LABEL : row->tokens[t + 1];
    }
}

static void check_accumulation(void)
{
    evo_config c;
    evo_err e;
    evo_model m;
    evo_config_defaults(&c);
    const char *sets[] = {"model.vocab_size=300", "model.hidden_size=32", "model.num_layers=2",
                          "model.num_attention_heads=4", "data.seq_len=24", "data.micro_bsz=2",
                          "model.init_std=0.2", "model.embed_init_std=1"};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        if (evo_config_set(&c, sets[i], &e) < 0)
            evo_fatal("%s", e.msg);
    if (evo_config_resolve(&c, &e) < 0 || evo_model_describe(&m, &c, &e) < 0)
        evo_fatal("%s", e.msg);
    const evo_backend *be = evo_backend_cpu();
    size_t T = 48, n = m.n_params;
    evo_pack_meta meta = {.seq_len = 24, .micro_bsz = 2};
    evo_pack_row rows[4];
    evo_transformer tf;
    evo_transformer_init(&tf, &m, be, &(evo_transformer_opts){.T_max = T});
    evo_transformer_init_params(&tf, 7);
    float *one = evo_calloc(n, sizeof *one), *acc = evo_malloc(n * sizeof *acc), *g = evo_malloc(n * sizeof *g);
    double loss_sum = 0;
    for (int r = 0; r < 4; r++) {
        evo_pack_row_init(&rows[r], &meta);
        make_row(&rows[r], T, m.vocab, r);
        evo_transformer_zero_grad(&tf);
        loss_sum += evo_transformer_forward(&tf, 0, 0, &rows[r], T);
        evo_transformer_backward(&tf, 0, 1.0f);
        be->download(be, g, tf.grads, n * sizeof *g);
        for (size_t i = 0; i < n; i++)
            one[i] += g[i] / 4;
    }
    evo_transformer_zero_grad(&tf);
    double loss_acc = 0;
    for (int r = 0; r < 4; r++) {
        loss_acc += evo_transformer_forward(&tf, 0, 0, &rows[r], T) / 4;
        evo_transformer_backward(&tf, 0, 0.25f);
    }
    be->download(be, acc, tf.grads, n * sizeof *acc);
    double maxdiff = 0, maxref = 0;
    for (size_t i = 0; i < n; i++) {
        maxdiff = fmax(maxdiff, fabs((double)acc[i] - one[i]));
        maxref = fmax(maxref, fabs((double)one[i]));
    }
    check(maxdiff <= 1e-6 * maxref, "accumulating 4 rows = mean of their gradients", "max diff %g of max %g",
          maxdiff, maxref);
    check(fabs(loss_acc - loss_sum / 4) < 1e-12, "step loss = mean of the rows' losses", "%.17g vs %.17g",
          loss_acc, loss_sum / 4);
    for (int r = 0; r < 4; r++)
        evo_pack_row_free(&rows[r]);
    free(one);
    free(acc);
    free(g);
    evo_transformer_free(&tf);
    evo_model_free(&m);
}

static void check_schedules(void)
{
    evo_config c;
    evo_config_defaults(&c);
    c.adam.lr = 1e-3;
    c.lr_scheduler.total_steps = 100;
    c.lr_scheduler.warmup_ratio = 0.1;
    c.lr_scheduler.eta_min = 1e-5;
    int ok = 1;
    for (uint64_t s = 0; s < 10; s++)
        ok &= fabs(evo_lr_at(&c, s) - 1e-3 * (double)(s + 1) / 10) < 1e-18;
    check(ok, "lr: linear warmup (s+1)/W", "");
    double mid = evo_lr_at(&c, 55), end = evo_lr_at(&c, 100);
    check(evo_lr_at(&c, 10) == 1e-3 && fabs(mid - (1e-5 + (1e-3 - 1e-5) * 0.5)) < 1e-15 && fabs(end - 1e-5) < 1e-18,
          "lr: cosine from the peak to eta_min", "at 10: %g, 55: %g, 100: %g", evo_lr_at(&c, 10), mid, end);
    c.lr_scheduler.init_steps = 5;
    check(evo_lr_at(&c, 4) == 0 && fabs(evo_lr_at(&c, 5) - 1e-4) < 1e-18, "lr: zero before init_steps", "");

    c.adam.adam_beta2 = 0.95;
    c.beta2_scheduler.init_beta2 = 0.95;
    c.beta2_scheduler.c = 0;
    check(evo_beta2_at(&c, 0) == 0.95 && evo_beta2_at(&c, 1000) == 0.95, "beta2: constant when c = 0", "");
    c.beta2_scheduler.c = 0.8;
    check(evo_beta2_at(&c, 0) == 0.95 && evo_beta2_at(&c, 2) == 0.95 &&
              fabs(evo_beta2_at(&c, 100000) - (1 - pow(100000, -0.8))) < 1e-15,
          "beta2: max(init_beta2, 1 - s^-c)", "%.17g", evo_beta2_at(&c, 100000));
}

static void check_scaler(void)
{
    evo_config c;
    evo_config_defaults(&c);
    c.model.dtype = EVO_DT_F16;
    c.grad_scaler.initial_scale = 1024;
    c.grad_scaler.growth_interval = 3;
    c.grad_scaler.hysteresis = 2;
    c.grad_scaler.min_scale = 256;
    c.grad_scaler.max_scale = 4096;
    evo_loss_scaler s;
    evo_loss_scaler_init(&s, &c);
    /* overflow, overflow, overflow, 3 clean, overflow, 3 clean x3, overflow x4 */
    static const int seq[] = {1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
    static const double want[] = {1024, 512, 256, 256, 256, 512, 512, 512, 512, 1024, 1024, 1024,
                                  2048, 2048, 2048, 4096, 4096, 2048, 1024, 512};
    int ok = 1;
    size_t at = 0;
    for (size_t i = 0; i < sizeof seq / sizeof *seq && ok; i++) {
        evo_loss_scaler_update(&s, &c, seq[i]);
        ok = s.scale == want[i];
        at = i;
    }
    check(ok, "loss scaler: hysteresis, backoff to min_scale, growth to max_scale", "after update %zu: scale %g, want %g",
          at, s.scale, want[at]);
    c.model.dtype = EVO_DT_F32;
    evo_loss_scaler_init(&s, &c);
    evo_loss_scaler_update(&s, &c, 1);
    evo_loss_scaler_update(&s, &c, 1);
    check(s.scale == 1, "loss scaler: off in fp32 (scale 1)", "scale %g", s.scale);
}

static void check_batch_sets(void)
{
    evo_batch_set set;
    evo_err e;
    int ok = evo_batch_set_parse(&set, "100-200,350, 7", &e) == 0;
    ok = ok && evo_batch_set_has(&set, 100) && evo_batch_set_has(&set, 200) && evo_batch_set_has(&set, 350) &&
         evo_batch_set_has(&set, 7) && !evo_batch_set_has(&set, 99) && !evo_batch_set_has(&set, 201);
    evo_batch_set_free(&set);
    check(ok, "skip_batches \"100-200,350, 7\"", "");
    const char *bad[] = {"1-", "5-2", "a", "1,,2", "-3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char name[64];
        snprintf(name, sizeof name, "skip_batches rejects \"%s\"", bad[i]);
        check(evo_batch_set_parse(&set, bad[i], &e) < 0, name, "accepted");
    }
    evo_rampup r;
    ok = evo_rampup_parse(&r, "2 3 4", 10, &e) == 0;
    static const uint32_t want[] = {2, 2, 2, 2, 5, 5, 5, 5, 8, 8, 8, 8, 10, 10};
    for (uint64_t b = 0; ok && b < sizeof want / sizeof *want; b++)
        ok = evo_rampup_rows(&r, b) == want[b];
    check(ok && evo_rampup_rows(&r, UINT64_MAX) == 10, "rampup_batch_size \"2 3 4\" up to micro_num 10", "");
    check(evo_rampup_parse(&r, "", 6, &e) == 0 && evo_rampup_rows(&r, 12345) == 6, "no rampup: micro_num rows", "");
    check(evo_rampup_parse(&r, "20 1 1", 10, &e) < 0 && evo_rampup_parse(&r, "1 2", 10, &e) < 0,
          "rampup_batch_size rejects start > micro_num and missing fields", "");
}

int main(void)
{
    evo_set_progname("train-check");
    check_accumulation();
    check_schedules();
    check_scaler();
    check_batch_sets();
    return failed;
}
