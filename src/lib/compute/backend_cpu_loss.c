/* backend_cpu_loss.c - cross-entropy with label smoothing over logits[T,V]
 * (math in backend.h), one token per parallel unit.
 *
 * With lse = log sum_v exp z_v, -log p_v = lse - z_v, so
 *   (1-eps)(lse - z_y) + eps mean_v (lse - z_v) = lse - (1-eps) z_y - eps mean(z)
 * and its derivative in z_v is p_v - (1-eps)[v = y] - eps/V.
 *
 * On a shard of the vocabulary the sums split: the ranks' log-sum-exps
 * combine as a log-sum-exp, z_y is on one rank and sum z adds up; the
 * derivative needs only the global lse. */
#include <math.h>

#include "compute/backend_cpu.h"

/* Over the n logits z of one token: the max m, sum exp(z - m) and sum z,
 * in double, V being up to ~10^5 terms, in 8 lanes so that the loop
 * vectorizes in a fixed order. The max is subtracted first so that exp
 * cannot overflow. */
static inline void token_sums(const float *z, size_t n, float *m, double *sum, double *zsum)
{
    *m = evo_cpu_max(z, n);
    double s[8] = {0}, zs[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int c = 0; c < 8; c++) {
            s[c] += evo_cpu_exp(z[i + c] - *m);
            zs[c] += z[i + c];
        }
    for (; i < n; i++) {
        s[0] += evo_cpu_exp(z[i] - *m);
        zs[0] += z[i];
    }
    *sum = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    *zsum = ((zs[0] + zs[4]) + (zs[1] + zs[5])) + ((zs[2] + zs[6]) + (zs[3] + zs[7]));
}

EVO_VECTOR_CLONES void evo_cpu_crossentropy_fwd(const evo_backend *be, float *losses, float *lse,
                                                const evo_dval *logits_, const int32_t *labels, float eps, size_t T,
                                                size_t V)
{
    const float *logits = (const float *)logits_;
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < T; t++) {
        if (labels[t] == EVO_IGNORE_LABEL) {
            losses[t] = 0;
            lse[t] = 0;
            continue;
        }
        const float *z = logits + t * V;
        float m;
        double sum, zsum;
        token_sums(z, V, &m, &sum, &zsum);
        double L = m + log(sum);
        lse[t] = (float)L;
        losses[t] = (float)(L - (1.0 - eps) * z[labels[t]] - eps * zsum / (double)V);
    }
}

EVO_VECTOR_CLONES void evo_cpu_crossentropy_shard_fwd(const evo_backend *be, float *parts, const evo_dval *logits_,
                                                      const int32_t *labels, size_t T, size_t v0, size_t Vl)
{
    const float *logits = (const float *)logits_;
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < T; t++) {
        int32_t y = labels[t];
        parts[t] = parts[T + t] = parts[2 * T + t] = 0;
        if (y == EVO_IGNORE_LABEL)
            continue;
        const float *z = logits + t * Vl;
        float m;
        double sum, zsum;
        token_sums(z, Vl, &m, &sum, &zsum);
        parts[t] = (float)(m + log(sum));
        parts[T + t] = (size_t)y >= v0 && (size_t)y < v0 + Vl ? z[(size_t)y - v0] : 0.0f;
        parts[2 * T + t] = (float)zsum;
    }
}

EVO_VECTOR_CLONES void evo_cpu_crossentropy_bwd(const evo_backend *be, evo_dval *dlogits_, const float *dloss,
                                                const evo_dval *logits_, const float *lse, const int32_t *labels,
                                                float eps, size_t T, size_t V, size_t v0, size_t Vl)
{
    float *dlogits = (float *)dlogits_;
    const float *logits = (const float *)logits_;
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < T; t++) {
        float *dz = dlogits + t * Vl;
        const float *z = logits + t * Vl;
        int32_t y = labels[t];
        if (y == EVO_IGNORE_LABEL) {
            for (size_t i = 0; i < Vl; i++)
                dz[i] = 0;
            continue;
        }
        float d = dloss[t], L = lse[t], smooth = eps / (float)V;
        for (size_t i = 0; i < Vl; i++)
            dz[i] = d * (evo_cpu_exp(z[i] - L) - smooth);
        if ((size_t)y >= v0 && (size_t)y < v0 + Vl)
            dz[(size_t)y - v0] -= d * (1.0f - eps);
    }
}
