/* norm.cu - RMSNorm forward and backward, and the squared norm of the
 * gradients. One block per token row for the norm; the row's sums are in
 * double, as on the CPU (for C in the thousands an fp32 sum loses digits
 * that rstd then carries into every output). x, w, out, dout and dinp are
 * of the backend's dtype (X: float, __nv_bfloat16 or __half), computed on
 * in fp32 (common.cuh); rstd, dw and the gradients whose norm is taken are
 * fp32. */
#include <math.h>

#include "common.cuh"

using namespace evo;

namespace {

template <typename X>
__global__ void rmsnorm_fwd_kernel(X *out, float *rstd, const X *inp, const X *w, float eps, size_t C)
{
    const size_t t = blockIdx.x;
    const X *x = inp + t * C;
    double ss = 0;
    for (size_t c = threadIdx.x; c < C; c += blockDim.x) {
        const float xc = load(x, c);
        ss += (double)xc * xc;
    }
    ss = block_sum(ss);
    const float r = (float)(1.0 / sqrt(ss / (double)C + eps));
    if (threadIdx.x == 0)
        rstd[t] = r;
    for (size_t c = threadIdx.x; c < C; c += blockDim.x)
        store(out, t * C + c, load(w, c) * (load(x, c) * r));
}

/* dx = rstd (g - xh mean(g xh)), g = dout w, xh = x rstd (backend_cpu_layers.c).
 * Accumulating, dx is the old value plus d in fp32, rounded once. */
template <typename X>
__global__ void rmsnorm_bwd_dinp_kernel(X *dinp, const X *dout, const X *inp, const X *w, const float *rstd,
                                        size_t C, int accumulate)
{
    const size_t t = blockIdx.x;
    const X *x = inp + t * C, *dy = dout + t * C;
    const float r = rstd[t];
    double dot = 0;
    for (size_t c = threadIdx.x; c < C; c += blockDim.x)
        dot += (double)(load(dy, c) * load(w, c)) * (load(x, c) * r);
    dot = block_sum(dot);
    const float mean = (float)(dot / (double)C);
    X *dx = dinp + t * C;
    for (size_t c = threadIdx.x; c < C; c += blockDim.x) {
        float d = r * (load(dy, c) * load(w, c) - load(x, c) * r * mean);
        store(dx, c, accumulate ? load(dx, c) + d : d);
    }
}

/* dout[t,c] xh[t,c], for sum_columns: dw[c] += its sum over t */
template <typename X> struct norm_weight_grad_of {
    const X *dout, *inp;
    const float *rstd;
    size_t C;
    __device__ float operator()(size_t t, size_t c) const
    {
        return load(dout, t * C + c) * (load(inp, t * C + c) * rstd[t]);
    }
};

/* Chunk c of EVO_SQNORM_CHUNKS, as backend_cpu_optim.c cuts them: a block
 * sums its chunk in double; then one thread adds the chunks in order. */
__global__ void sqnorm_chunks_kernel(double *partial, const float *x, size_t n)
{
    const size_t len = (n + EVO_SQNORM_CHUNKS - 1) / EVO_SQNORM_CHUNKS, c = blockIdx.x;
    const size_t i0 = c * len < n ? c * len : n, i1 = i0 + len < n ? i0 + len : n;
    double s = 0;
    for (size_t i = i0 + threadIdx.x; i < i1; i += blockDim.x)
        s += (double)x[i] * x[i];
    s = block_sum(s);
    if (threadIdx.x == 0)
        partial[c] = s;
}

__global__ void sqnorm_total_kernel(double *acc, const double *partial)
{
    double s = 0;
    for (int c = 0; c < EVO_SQNORM_CHUNKS; c++)
        s += partial[c];
    acc[0] += s;
}

} // namespace

extern "C" {

cudaError_t evo_k_rmsnorm_fwd(cudaStream_t s, evo_dtype dt, void *out, float *rstd, const void *inp, const void *w,
                              float eps, size_t T, size_t C)
{
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (T)
            launch(rmsnorm_fwd_kernel<X>, (unsigned)T, kBlock, 0, s, (X *)out, rstd, (const X *)inp, (const X *)w, eps,
                   C);
    });
}

cudaError_t evo_k_rmsnorm_bwd(cudaStream_t s, evo_dtype dt, void *dinp, float *dw, float *partial, const void *dout,
                              const void *inp, const void *w, const float *rstd, size_t T, size_t C,
                              int accumulate)
{
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (T) {
            launch(rmsnorm_bwd_dinp_kernel<X>, (unsigned)T, kBlock, 0, s, (X *)dinp, (const X *)dout, (const X *)inp,
                   (const X *)w, rstd, C, accumulate);
            sum_columns(s, dw, partial, T, C, norm_weight_grad_of<X>{(const X *)dout, (const X *)inp, rstd, C});
        }
    });
}

cudaError_t evo_k_sqnorm(cudaStream_t s, double *acc, double *partial, const float *x, size_t n)
{
    launch(sqnorm_chunks_kernel, EVO_SQNORM_CHUNKS, kBlock, 0, s, partial, x, n);
    launch(sqnorm_total_kernel, 1, 1, 0, s, acc, partial);
    return cudaGetLastError();
}

} // extern "C"
