/* elementwise.cu - the kernels where each output element depends on a few
 * inputs at the same place: fill, add, casts, the embedding, RoPE, SwiGLU
 * and AdamW; and the sums over tokens of a [T, C] matrix, one thread per
 * column walking the tokens in order (the embedding's and the bias's
 * gradients): no atomics, the CPU backend's order. */
#include <math.h>

#include "base/dtype_bits.h"
#include "common.cuh"

using namespace evo;

namespace {

__global__ void fill_kernel(float *dst, float value, size_t n)
{
    EVO_GRID_STRIDE(i, n)
    dst[i] = value;
}

__global__ void add_kernel(float *dst, const float *src, size_t n)
{
    EVO_GRID_STRIDE(i, n)
    dst[i] += src[i];
}

__device__ inline float load_as_f32(const void *src, evo_dtype dt, size_t i)
{
    uint32_t u;
    if (dt == EVO_BF16)
        u = evo_bf16_to_f32_bits(((const uint16_t *)src)[i]);
    else if (dt == EVO_F16)
        u = evo_f16_to_f32_bits(((const uint16_t *)src)[i]);
    else
        return ((const float *)src)[i];
    return __uint_as_float(u);
}

__global__ void cast_kernel(void *dst, evo_dtype dst_dt, const void *src, evo_dtype src_dt, size_t n)
{
    EVO_GRID_STRIDE(i, n)
    {
        float f = load_as_f32(src, src_dt, i);
        if (dst_dt == EVO_BF16)
            ((uint16_t *)dst)[i] = evo_bf16_from_f32_bits(__float_as_uint(f));
        else if (dst_dt == EVO_F16)
            ((uint16_t *)dst)[i] = evo_f16_from_f32_bits(__float_as_uint(f));
        else
            ((float *)dst)[i] = f;
    }
}

__global__ void embedding_fwd_kernel(float *out, const int32_t *ids, const float *table, size_t T, size_t C)
{
    EVO_GRID_STRIDE(i, T * C)
    {
        size_t t = i / C, c = i % C;
        out[i] = table[(size_t)ids[t] * C + c];
    }
}

/* Two tokens with the same id add into the same row: a thread owns a
 * column and adds the tokens in order. */
__global__ void embedding_bwd_kernel(float *dtable, const int32_t *ids, const float *dout, size_t T, size_t C)
{
    EVO_GRID_STRIDE(c, C)
    for (size_t t = 0; t < T; t++)
        dtable[(size_t)ids[t] * C + c] += dout[t * C + c];
}

__global__ void column_sum_kernel(float *acc, const float *x, size_t T, size_t C)
{
    EVO_GRID_STRIDE(c, C)
    {
        float s = acc[c];
        for (size_t t = 0; t < T; t++)
            s += x[t * C + c];
        acc[c] = s;
    }
}

/* The angle pos base^(-2i/hd) in double, as on the CPU: an fp32 angle is
 * off by up to pos ulps, which at position 4096 is already 1e-3 rad. */
__global__ void rope_kernel(float *out, const float *inp, const int32_t *pos, size_t T, int H, int hd, float base,
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
        float x1 = inp[o], x2 = inp[o + half];
        out[o] = x1 * c - x2 * sn;
        out[o + half] = x1 * sn + x2 * c;
    }
}

__device__ inline float sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

__global__ void swiglu_fwd_kernel(float *out, const float *gate, const float *up, size_t n)
{
    EVO_GRID_STRIDE(i, n)
    out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

/* silu'(g) = s (1 + g (1 - s)), s = sigmoid(g) */
__global__ void swiglu_bwd_kernel(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                                  size_t n)
{
    EVO_GRID_STRIDE(i, n)
    {
        float g = gate[i], s = sigmoid(g), dy = dout[i];
        dgate[i] = dy * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] = dy * g * s;
    }
}

__global__ void adamw_kernel(float *p, const float *grad, float *m, float *v, size_t n, float decay, float step_size,
                             float bc2_sqrt, float b1, float c1, float b2, float c2, float eps, float grad_scale)
{
    EVO_GRID_STRIDE(i, n)
    {
        float g = grad[i] * grad_scale, pi = p[i] * decay;
        float mi = m[i] * b1 + c1 * g, vi = v[i] * b2 + c2 * g * g;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

} // namespace

extern "C" {

cudaError_t evo_k_fill(cudaStream_t s, float *dst, float value, size_t n)
{
    if (n)
        fill_kernel<<<grid_for(n), kBlock, 0, s>>>(dst, value, n);
    return cudaGetLastError();
}

cudaError_t evo_k_add(cudaStream_t s, float *dst, const float *src, size_t n)
{
    if (n)
        add_kernel<<<grid_for(n), kBlock, 0, s>>>(dst, src, n);
    return cudaGetLastError();
}

cudaError_t evo_k_cast(cudaStream_t s, void *dst, evo_dtype dst_dt, const void *src, evo_dtype src_dt, size_t n)
{
    if (n)
        cast_kernel<<<grid_for(n), kBlock, 0, s>>>(dst, dst_dt, src, src_dt, n);
    return cudaGetLastError();
}

cudaError_t evo_k_embedding_fwd(cudaStream_t s, float *out, const int32_t *ids, const float *table, size_t T,
                                size_t C)
{
    if (T && C)
        embedding_fwd_kernel<<<grid_for(T * C), kBlock, 0, s>>>(out, ids, table, T, C);
    return cudaGetLastError();
}

cudaError_t evo_k_embedding_bwd(cudaStream_t s, float *dtable, const int32_t *ids, const float *dout, size_t T,
                                size_t C)
{
    if (T && C)
        embedding_bwd_kernel<<<grid_for(C, 64), 64, 0, s>>>(dtable, ids, dout, T, C);
    return cudaGetLastError();
}

cudaError_t evo_k_column_sum(cudaStream_t s, float *acc, const float *x, size_t T, size_t C)
{
    if (C)
        column_sum_kernel<<<grid_for(C, 64), 64, 0, s>>>(acc, x, T, C);
    return cudaGetLastError();
}

cudaError_t evo_k_rope(cudaStream_t s, float *out, const float *inp, const int32_t *pos, size_t T, int H, int hd,
                       float base, float sign)
{
    size_t n = T * (size_t)H * (size_t)(hd / 2);
    if (n)
        rope_kernel<<<grid_for(n), kBlock, 0, s>>>(out, inp, pos, T, H, hd, base, sign);
    return cudaGetLastError();
}

cudaError_t evo_k_swiglu_fwd(cudaStream_t s, float *out, const float *gate, const float *up, size_t n)
{
    if (n)
        swiglu_fwd_kernel<<<grid_for(n), kBlock, 0, s>>>(out, gate, up, n);
    return cudaGetLastError();
}

cudaError_t evo_k_swiglu_bwd(cudaStream_t s, float *dgate, float *dup, const float *dout, const float *gate,
                             const float *up, size_t n)
{
    if (n)
        swiglu_bwd_kernel<<<grid_for(n), kBlock, 0, s>>>(dgate, dup, dout, gate, up, n);
    return cudaGetLastError();
}

cudaError_t evo_k_adamw(cudaStream_t s, float *p, const float *grad, float *m, float *v, size_t n, float decay,
                        float step_size, float bc2_sqrt, float b1, float c1, float b2, float c2, float eps,
                        float grad_scale)
{
    if (n)
        adamw_kernel<<<grid_for(n), kBlock, 0, s>>>(p, grad, m, v, n, decay, step_size, bc2_sqrt, b1, c1, b2, c2,
                                                    eps, grad_scale);
    return cudaGetLastError();
}

} // extern "C"
