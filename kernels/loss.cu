/* loss.cu - cross-entropy with label smoothing over logits [T, V] (or a
 * shard [T, Vl] of the vocabulary), one block per token for the forward's
 * sums, elementwise for the backward. The sums over V (~10^5 terms) are in
 * double, as on the CPU; the max is subtracted before exp, so it cannot
 * overflow. The logits and dlogits are of the backend's dtype (X: float,
 * __nv_bfloat16 or __half), read into fp32 (common.cuh); losses, lse and
 * the parts are fp32. Math: backend.h and backend_cpu_loss.c. */
#include <math.h>

#include "common.cuh"

using namespace evo;

namespace {

/* The row's max m, sum exp(z - m) and sum z, in every thread. */
template <typename X> __device__ inline void row_sums(const X *z, size_t n, float *m, double *sum, double *zsum)
{
    float mx = -INFINITY;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x)
        mx = fmaxf(mx, load(z, i));
    mx = block_max(mx);
    double s = 0, zs = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float zi = load(z, i);
        s += (double)expf(zi - mx);
        zs += zi;
    }
    *m = mx;
    *sum = block_sum(s);
    *zsum = block_sum(zs);
}

template <typename X>
__global__ void crossentropy_fwd_kernel(float *losses, float *lse, const X *logits, const int32_t *labels, float eps,
                                        size_t V)
{
    const size_t t = blockIdx.x;
    const int32_t y = labels[t];
    if (y == EVO_IGNORE_LABEL) {
        if (threadIdx.x == 0)
            losses[t] = lse[t] = 0;
        return;
    }
    const X *z = logits + t * V;
    float m;
    double sum, zsum;
    row_sums(z, V, &m, &sum, &zsum);
    if (threadIdx.x == 0) {
        double L = m + log(sum);
        lse[t] = (float)L;
        losses[t] = (float)(L - (1.0 - eps) * load(z, (size_t)y) - eps * zsum / (double)V);
    }
}

template <typename X>
__global__ void crossentropy_shard_fwd_kernel(float *parts, const X *logits, const int32_t *labels, size_t T, size_t v0,
                                              size_t Vl)
{
    const size_t t = blockIdx.x;
    const int32_t y = labels[t];
    if (y == EVO_IGNORE_LABEL) {
        if (threadIdx.x == 0)
            parts[t] = parts[T + t] = parts[2 * T + t] = 0;
        return;
    }
    const X *z = logits + t * Vl;
    float m;
    double sum, zsum;
    row_sums(z, Vl, &m, &sum, &zsum);
    if (threadIdx.x == 0) {
        parts[t] = (float)(m + log(sum));
        parts[T + t] = (size_t)y >= v0 && (size_t)y < v0 + Vl ? load(z, (size_t)y - v0) : 0.0f;
        parts[2 * T + t] = (float)zsum;
    }
}

/* dz_v = dloss (softmax(z)_v - (1-eps)[v = y] - eps/V), over the shard's
 * columns; each element is read and written by one thread, its logit read
 * before the gradient is written, so dlogits may be logits. */
template <typename X>
__global__ void crossentropy_bwd_kernel(X *dlogits, const float *dloss, const X *logits, const float *lse,
                                        const int32_t *labels, float eps, size_t T, size_t V, size_t v0, size_t Vl)
{
    const float smooth = eps / (float)V;
    EVO_GRID_STRIDE(i, T * Vl)
    {
        const size_t t = i / Vl, col = i % Vl;
        const int32_t y = labels[t];
        if (y == EVO_IGNORE_LABEL) {
            store(dlogits, i, 0.0f);
            continue;
        }
        const float d = dloss[t];
        float g = d * (expf(load(logits, i) - lse[t]) - smooth);
        if ((size_t)y == v0 + col)
            g -= d * (1.0f - eps);
        store(dlogits, i, g);
    }
}

} // namespace

extern "C" {

cudaError_t evo_k_crossentropy_fwd(cudaStream_t s, evo_dtype dt, float *losses, float *lse, const void *logits,
                                   const int32_t *labels, float eps, size_t T, size_t V)
{
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (T)
            launch(crossentropy_fwd_kernel<X>, (unsigned)T, kBlock, 0, s, losses, lse, (const X *)logits, labels, eps,
                   V);
    });
}

cudaError_t evo_k_crossentropy_shard_fwd(cudaStream_t s, evo_dtype dt, float *parts, const void *logits,
                                         const int32_t *labels, size_t T, size_t v0, size_t Vl)
{
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (T)
            launch(crossentropy_shard_fwd_kernel<X>, (unsigned)T, kBlock, 0, s, parts, (const X *)logits, labels, T, v0,
                   Vl);
    });
}

cudaError_t evo_k_crossentropy_bwd(cudaStream_t s, evo_dtype dt, void *dlogits, const float *dloss,
                                   const void *logits, const float *lse, const int32_t *labels, float eps, size_t T,
                                   size_t V, size_t v0, size_t Vl)
{
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (T && Vl)
            launch(crossentropy_bwd_kernel<X>, grid_for(T * Vl), kBlock, 0, s, (X *)dlogits, dloss, (const X *)logits,
                   lse, labels, eps, T, V, v0, Vl);
    });
}

} // extern "C"
