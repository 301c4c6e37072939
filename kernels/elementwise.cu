/* elementwise.cu - the kernels where each output element depends on a few
 * inputs at the same place: fill, add, casts, the embedding, RoPE, SwiGLU
 * and AdamW; and the sums over the tokens of a [T, C] matrix: the bias's
 * gradient in chunks of tokens (common.cuh's sum_columns), the embedding's
 * by a thread per (id, column) walking that id's tokens in order (the CPU
 * backend's order); no atomics. Activations are of the
 * backend's dtype (X below: float, __nv_bfloat16 or __half), read into
 * fp32 and stored rounded (common.cuh); the gradients of parameters and
 * the optimizer's buffers are fp32. */
#include <math.h>

#include "common.cuh"

using namespace evo;

namespace {

__global__ void fill_kernel(float *dst, float value, size_t n)
{
    EVO_GRID_STRIDE(i, n)
    dst[i] = value;
}

/* The sum in fp32, rounded once. */
template <typename X> __global__ void add_kernel(X *dst, const X *src, size_t n)
{
    EVO_GRID_STRIDE(i, n)
    store(dst, i, load(dst, i) + load(src, i));
}

/* Every dtype converts exactly to fp32, so a cast is a load and a store
 * with one rounding, as evo_dtype_cast's. */
template <typename Dst, typename Src> __global__ void cast_kernel(Dst *dst, const Src *src, size_t n)
{
    EVO_GRID_STRIDE(i, n)
    store(dst, i, load(src, i));
}

/* A copy of the rows: the table's values, bits and all. */
template <typename X> __global__ void embedding_fwd_kernel(X *out, const int32_t *ids, const X *table, size_t T,
                                                           size_t C)
{
    EVO_GRID_STRIDE(i, T * C)
    {
        size_t t = i / C, c = i % C;
        out[i] = table[(size_t)ids[t] * C + c];
    }
}

/* Tokens with the same id add into the same table row: chain[t] is the
 * next token after t with t's id (T: none), chain[T + t] 1 when t is its
 * id's first token in the row. A thread per token scans the row's ids:
 * T^2 compares of ids that stay in cache, small beside the backward's
 * GEMMs. */
__global__ void embedding_chain_kernel(int32_t *chain, const int32_t *ids, size_t T)
{
    EVO_GRID_STRIDE(t, T)
    {
        const int32_t id = ids[t];
        size_t next = T;
        int first = 1;
        for (size_t u = 0; u < T; u++)
            if (ids[u] == id) {
                first &= u >= t;
                if (u > t && next == T)
                    next = u;
            }
        chain[t] = (int32_t)next;
        chain[T + t] = first;
    }
}

/* A thread per (first token of an id, column) adds that id's tokens in
 * order onto the row's value, in fp32 as the CPU does, one after the
 * other: the CPU's bits, with T C threads at work rather than C. */
template <typename X>
__global__ void embedding_bwd_kernel(float *dtable, const int32_t *ids, const int32_t *chain, const X *dout, size_t T,
                                     size_t C)
{
    EVO_GRID_STRIDE(i, T * C)
    {
        const size_t t = i / C, c = i % C;
        if (!chain[T + t])
            continue;
        float *row = dtable + (size_t)ids[t] * C;
        float s = row[c];
        for (size_t u = t; u < T; u = (size_t)chain[u])
            s += load(dout, u * C + c);
        row[c] = s;
    }
}

/* x[t,c], for sum_columns */
template <typename X> struct element_of {
    const X *x;
    size_t C;
    __device__ float operator()(size_t t, size_t c) const { return load(x, t * C + c); }
};

/* The angle pos base^(-2i/hd) in double, as on the CPU: an fp32 angle is
 * off by up to pos ulps, which at position 4096 is already 1e-3 rad. A
 * thread reads both halves before it writes them, so out may be inp. */
template <typename X>
__global__ void rope_kernel(X *out, const X *inp, const int32_t *pos, size_t T, int H, int hd, float base,
                            float sign)
{
    const int half = hd / 2;
    EVO_GRID_STRIDE(idx, T * (size_t)H * half)
    {
        size_t t = idx / ((size_t)H * half);
        int i = (int)(idx % (size_t)half);
        size_t h = idx / half % (size_t)H;
        double theta = pos[t] * pow((double)base, -2.0 * i / hd);
        float c = (float)cos(theta), sn = (float)(sign * sin(theta));
        size_t o = (t * (size_t)H + h) * (size_t)hd + (size_t)i;
        float x1 = load(inp, o), x2 = load(inp, o + half);
        store(out, o, x1 * c - x2 * sn);
        store(out, o + half, x1 * sn + x2 * c);
    }
}

__device__ inline float sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

template <typename X> __global__ void swiglu_fwd_kernel(X *out, const X *gate, const X *up, size_t n)
{
    EVO_GRID_STRIDE(i, n)
    {
        float g = load(gate, i);
        store(out, i, g * sigmoid(g) * load(up, i));
    }
}

/* silu'(g) = s (1 + g (1 - s)), s = sigmoid(g) */
template <typename X>
__global__ void swiglu_bwd_kernel(X *dgate, X *dup, const X *dout, const X *gate, const X *up, size_t n)
{
    EVO_GRID_STRIDE(i, n)
    {
        float g = load(gate, i), s = sigmoid(g), dy = load(dout, i), u = load(up, i);
        store(dgate, i, dy * u * s * (1.0f + g * (1.0f - s)));
        store(dup, i, dy * g * s);
    }
}

template <typename X>
__global__ void adamw_kernel(float *p, X *work, const float *grad, float *m, float *v, size_t n, float decay,
                             float step_size, float bc2_sqrt, float b1, float c1, float b2, float c2, float eps,
                             float grad_scale)
{
    EVO_GRID_STRIDE(i, n)
    {
        float g = grad[i] * grad_scale, pi = p[i] * decay;
        float mi = m[i] * b1 + c1 * g, vi = v[i] * b2 + c2 * g * g;
        m[i] = mi;
        v[i] = vi;
        pi -= step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
        p[i] = pi;
        if (work) /* the working copy in the same pass: one read of p instead of two */
            store(work, i, pi);
    }
}

} // namespace

extern "C" {

cudaError_t evo_k_fill(cudaStream_t s, float *dst, float value, size_t n)
{
    if (n)
        launch(fill_kernel, grid_for(n), kBlock, 0, s, dst, value, n);
    return cudaGetLastError();
}

cudaError_t evo_k_add(cudaStream_t s, evo_dtype dt, void *dst, const void *src, size_t n)
{
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (n)
            launch(add_kernel<X>, grid_for(n), kBlock, 0, s, (X *)dst, (const X *)src, n);
    });
}

cudaError_t evo_k_cast(cudaStream_t s, void *dst, evo_dtype dst_dt, const void *src, evo_dtype src_dt, size_t n)
{
    cudaError_t src_rc = cudaSuccess; /* the inner dispatch's: src_dt none of the three */
    cudaError_t rc = dispatch(dst_dt, [&](auto dst_ty) {
        src_rc = dispatch(src_dt, [&](auto src_ty) {
            using Dst = decltype(dst_ty);
            using Src = decltype(src_ty);
            if (n)
                launch(cast_kernel<Dst, Src>, grid_for(n), kBlock, 0, s, (Dst *)dst, (const Src *)src, n);
        });
    });
    return rc != cudaSuccess ? rc : src_rc;
}

cudaError_t evo_k_embedding_fwd(cudaStream_t s, evo_dtype dt, void *out, const int32_t *ids, const void *table,
                                size_t T, size_t C)
{
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (T && C)
            launch(embedding_fwd_kernel<X>, grid_for(T * C), kBlock, 0, s, (X *)out, ids, (const X *)table, T, C);
    });
}

cudaError_t evo_k_embedding_bwd(cudaStream_t s, evo_dtype dt, float *dtable, const int32_t *ids, int32_t *chain,
                                const void *dout, size_t T, size_t C)
{
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (T && C) {
            launch(embedding_chain_kernel, grid_for(T), kBlock, 0, s, chain, ids, T);
            launch(embedding_bwd_kernel<X>, grid_for(T * C), kBlock, 0, s, dtable, ids, chain, (const X *)dout, T, C);
        }
    });
}

cudaError_t evo_k_column_sum(cudaStream_t s, evo_dtype dt, float *acc, float *partial, const void *x, size_t T,
                             size_t C)
{
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        sum_columns(s, acc, partial, T, C, element_of<X>{(const X *)x, C});
    });
}

size_t evo_k_column_partials(size_t T, size_t C)
{
    return column_chunks(T) * C;
}

cudaError_t evo_k_rope(cudaStream_t s, evo_dtype dt, void *out, const void *inp, const int32_t *pos, size_t T,
                       int H, int hd, float base, float sign)
{
    size_t n = T * (size_t)H * (size_t)(hd / 2);
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (n)
            launch(rope_kernel<X>, grid_for(n), kBlock, 0, s, (X *)out, (const X *)inp, pos, T, H, hd, base, sign);
    });
}

cudaError_t evo_k_swiglu_fwd(cudaStream_t s, evo_dtype dt, void *out, const void *gate, const void *up, size_t n)
{
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (n)
            launch(swiglu_fwd_kernel<X>, grid_for(n), kBlock, 0, s, (X *)out, (const X *)gate, (const X *)up, n);
    });
}

cudaError_t evo_k_swiglu_bwd(cudaStream_t s, evo_dtype dt, void *dgate, void *dup, const void *dout,
                             const void *gate, const void *up, size_t n)
{
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (n)
            launch(swiglu_bwd_kernel<X>, grid_for(n), kBlock, 0, s, (X *)dgate, (X *)dup, (const X *)dout,
                   (const X *)gate, (const X *)up, n);
    });
}

cudaError_t evo_k_adamw(cudaStream_t s, evo_dtype dt, float *p, void *work, const float *grad, float *m, float *v,
                        size_t n, float decay, float step_size, float bc2_sqrt, float b1, float c1, float b2,
                        float c2, float eps, float grad_scale)
{
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (n)
            launch(adamw_kernel<X>, grid_for(n), kBlock, 0, s, p, (X *)work, grad, m, v, n, decay, step_size, bc2_sqrt,
                   b1, c1, b2, c2, eps, grad_scale);
    });
}

} // extern "C"
