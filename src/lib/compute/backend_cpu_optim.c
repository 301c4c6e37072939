/* backend_cpu_optim.c - what the optimizer step runs over flat buffers:
 * AdamW, and the squared norm for gradient clipping (math in backend.h). */
#include <math.h>

#include "compute/backend_cpu.h"

/* The same operations in the same order as torch.optim.AdamW's single-tensor
 * step (PyTorch 1.13), scalars formed in double as Python does and the
 * tensor arithmetic in fp32, so the two agree to the last few ulps. */
EVO_VECTOR_CLONES void evo_cpu_adamw(const evo_backend *be, float *p, evo_dval *work_, const float *grad, float *m,
                                     float *v, size_t n, float lr, float beta1, float beta2, float eps, float wd,
                                     float grad_scale, int t)
{
    (void)be;
    float *work = (float *)work_; /* fp32: the working copy is p's bits */
    const float decay = (float)(1.0 - (double)lr * wd);
    const float step_size = (float)(lr / (1.0 - pow(beta1, t)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, t));
    const float b1 = beta1, c1 = 1.0f - beta1, b2 = beta2, c2 = 1.0f - beta2;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        p[i] *= decay;
        m[i] = m[i] * b1 + c1 * g;
        v[i] = v[i] * b2 + c2 * g * g;
        p[i] -= step_size * (m[i] / (sqrtf(v[i]) / bc2_sqrt + eps));
    }
    if (work && work != p)
        memcpy(work, p, n * sizeof *p);
}

/* EVO_SQNORM_CHUNKS chunks, each summed by one thread, then the chunk sums
 * added in order: the grouping of the sum depends on n only, never on the
 * thread count or timing, so the norm (and with it every clipped step) is
 * reproducible. 256 chunks keep that many threads busy. */

EVO_VECTOR_CLONES void evo_cpu_sqnorm(const evo_backend *be, double *acc, const float *x, size_t n)
{
    (void)be;
    double part[EVO_SQNORM_CHUNKS];
    const size_t len = (n + EVO_SQNORM_CHUNKS - 1) / EVO_SQNORM_CHUNKS;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < EVO_SQNORM_CHUNKS; c++) {
        size_t i0 = c * len < n ? c * len : n, i1 = i0 + len < n ? i0 + len : n;
        double s = 0;
        for (size_t i = i0; i < i1; i++)
            s += (double)x[i] * x[i];
        part[c] = s;
    }
    double s = 0;
    for (size_t c = 0; c < EVO_SQNORM_CHUNKS; c++)
        s += part[c];
    acc[0] += s;
}
