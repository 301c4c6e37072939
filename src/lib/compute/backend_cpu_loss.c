/* backend_cpu_loss.c - cross-entropy with label smoothing over logits[T,V]
 * (math in backend.h), one token per parallel unit.
 *
 * With lse = log sum_v exp z_v, -log p_v = lse - z_v, so
 *   (1-eps)(lse - z_y) + eps mean_v (lse - z_v) = lse - (1-eps) z_y - eps mean(z)
 * and its derivative in z_v is p_v - (1-eps)[v = y] - eps/V. */
#include <math.h>

#include "compute/backend_cpu.h"

EVO_VECTOR_CLONES void evo_cpu_crossentropy_fwd(const evo_backend *be, float *losses, float *lse, int32_t *count,
                              const float *logits, const int32_t *labels, float eps, size_t T,
                              size_t V)
{
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < T; t++) {
        if (labels[t] == EVO_IGNORE_LABEL) {
            losses[t] = 0;
            lse[t] = 0;
            continue;
        }
        const float *z = logits + t * V;
        /* Sums over the vocabulary in double, V being up to ~10^5 terms, in
         * 8 lanes so that the loop vectorizes in a fixed order. The max is
         * subtracted first so that exp cannot overflow. */
        float m = evo_cpu_max(z, V);
        double s[8] = {0}, zs[8] = {0};
        size_t i = 0;
        for (; i + 8 <= V; i += 8)
            for (int c = 0; c < 8; c++) {
                s[c] += evo_cpu_exp(z[i + c] - m);
                zs[c] += z[i + c];
            }
        for (; i < V; i++) {
            s[0] += evo_cpu_exp(z[i] - m);
            zs[0] += z[i];
        }
        double sum = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
        double zsum = ((zs[0] + zs[4]) + (zs[1] + zs[5])) + ((zs[2] + zs[6]) + (zs[3] + zs[7]));
        double L = m + log(sum);
        lse[t] = (float)L;
        losses[t] = (float)(L - (1.0 - eps) * z[labels[t]] - eps * zsum / (double)V);
    }
    int32_t n = 0;
    for (size_t t = 0; t < T; t++)
        n += labels[t] != EVO_IGNORE_LABEL;
    *count = n;
}

EVO_VECTOR_CLONES void evo_cpu_crossentropy_bwd(const evo_backend *be, float *dlogits, const float *dloss,
                              const float *logits, const float *lse, const int32_t *labels,
                              float eps, size_t T, size_t V)
{
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < T; t++) {
        float *dz = dlogits + t * V;
        const float *z = logits + t * V;
        int32_t y = labels[t];
        if (y == EVO_IGNORE_LABEL) {
            for (size_t i = 0; i < V; i++)
                dz[i] = 0;
            continue;
        }
        float d = dloss[t], L = lse[t], smooth = eps / (float)V;
        for (size_t i = 0; i < V; i++)
            dz[i] = d * (evo_cpu_exp(z[i] - L) - smooth);
        dz[y] -= d * (1.0f - eps);
    }
}
