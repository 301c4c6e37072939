/* attention.cu - causal attention over packed segments, GQA, forward and
 * backward: the plain kernels, one warp per (token, head), that the tiled
 * tensor-core ones (attention_tiled.cu) are checked against, and the
 * launchers that pick one or the other. They follow the CPU reference
 * (backend_cpu_attention_ref.c) step by step:
 *
 * - forward: a warp holds its query in registers (hd/32 elements a lane)
 *   and walks the keys of its segment up to itself with an online softmax
 *   (running max m and sum l, rescaled by exp(m_old - m_new)), summing
 *   P v as it goes; it saves lse = m + log l and never forms a score row;
 * - backward: D = dout.out per (token, head); dq per (token, head) over the
 *   keys it saw; dk and dv per (key, kv head) over the queries of the group
 *   that saw the key. Each output has one owner, so no atomics; every score
 *   is recomputed from q.k and P = exp(S - lse).
 * Dot products are warp sums (fixed butterfly order): same bits every run.
 * q, k, v, out and their gradients are of the backend's dtype (X: float,
 * __nv_bfloat16 or __half), held and summed in fp32 registers and stored
 * rounded once (common.cuh); lse and D are fp32. */
#include <math.h>

#include "common.cuh"
#include "compute/attention_plan.h"
#include "compute/segment.h"

using namespace evo;

namespace {

constexpr int kRegs = EVO_K_MAX_HEAD_DIM / kWarp; /* elements of a head vector per lane */
constexpr int kWarpsPerBlock = 4;

/* Lane l holds elements l, l+32, ... of a head vector. */
template <typename X> __device__ inline void load_vec(float r[kRegs], const X *x, int hd, int lane)
{
#pragma unroll
    for (int j = 0; j < kRegs; j++) {
        int d = lane + j * kWarp;
        r[j] = d < hd ? load(x, d) : 0.0f;
    }
}

template <typename X> __device__ inline float dot_vec(const float r[kRegs], const X *x, int hd, int lane)
{
    float s = 0;
#pragma unroll
    for (int j = 0; j < kRegs; j++) {
        int d = lane + j * kWarp;
        if (d < hd)
            s += r[j] * load(x, d);
    }
    return warp_sum(s);
}

template <typename X> __device__ inline void store_vec(X *x, const float r[kRegs], float scale, int hd, int lane)
{
#pragma unroll
    for (int j = 0; j < kRegs; j++) {
        int d = lane + j * kWarp;
        if (d < hd)
            store(x, d, r[j] * scale);
    }
}

/* The (token, head) a warp of the per-query kernels owns, its kv head and
 * the keys it attends to, [s0, t]; false past the last one. */
struct Query {
    size_t unit, t, h, g, s0, s1;
};

__device__ inline bool query_of_warp(Query *qu, const int32_t *cu, int n_seg, size_t T, int H, int KVH)
{
    qu->unit = (size_t)blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarp;
    if (qu->unit >= T * (size_t)H)
        return false;
    qu->t = qu->unit / (size_t)H;
    qu->h = qu->unit % (size_t)H;
    qu->g = qu->h / (size_t)(H / KVH);
    evo_segment_of(cu, n_seg, qu->t, &qu->s0, &qu->s1);
    return true;
}

template <typename X>
__global__ void attention_fwd_kernel(X *out, float *lse, const X *q, const X *k, const X *v, const int32_t *cu,
                                     int n_seg, size_t T, int H, int KVH, int hd)
{
    Query qu;
    if (!query_of_warp(&qu, cu, n_seg, T, H, KVH))
        return;
    const int lane = threadIdx.x % kWarp;
    const size_t unit = qu.unit, t = qu.t, g = qu.g, s0 = qu.s0;
    const float scale = 1.0f / sqrtf((float)hd);
    float qr[kRegs], o[kRegs];
    load_vec(qr, q + unit * (size_t)hd, hd, lane);
#pragma unroll
    for (int j = 0; j < kRegs; j++)
        o[j] = 0;
    float m = -INFINITY, l = 0;
    for (size_t s = s0; s <= t; s++) {
        const size_t kv = (s * (size_t)KVH + g) * (size_t)hd;
        const float sc = dot_vec(qr, k + kv, hd, lane) * scale;
        const float m_new = fmaxf(m, sc), corr = expf(m - m_new), p = expf(sc - m_new);
        l = l * corr + p;
#pragma unroll
        for (int j = 0; j < kRegs; j++) {
            int d = lane + j * kWarp;
            o[j] = o[j] * corr + (d < hd ? p * load(v, kv + d) : 0.0f);
        }
        m = m_new;
    }
    store_vec(out + unit * (size_t)hd, o, 1.0f / l, hd, lane);
    if (lane == 0)
        lse[unit] = m + logf(l);
}

/* D[t,h] = dout[t,h] . out[t,h] */
template <typename X>
__global__ void attention_bwd_d_kernel(float *D, const X *dout, const X *out, size_t n_units, int hd)
{
    const size_t unit = (size_t)blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (unit >= n_units)
        return;
    float r[kRegs];
    load_vec(r, dout + unit * (size_t)hd, hd, lane);
    const float d = dot_vec(r, out + unit * (size_t)hd, hd, lane);
    if (lane == 0)
        D[unit] = d;
}

/* dq[t,h] = sum_{s0 <= s <= t} dS k[s,g] / sqrt(hd), dS = P (dout.v[s] - D) */
template <typename X>
__global__ void attention_bwd_dq_kernel(X *dq, const float *D, const X *dout, const X *q, const X *k, const X *v,
                                        const float *lse, const int32_t *cu, int n_seg, size_t T, int H, int KVH,
                                        int hd)
{
    Query qu;
    if (!query_of_warp(&qu, cu, n_seg, T, H, KVH))
        return;
    const int lane = threadIdx.x % kWarp;
    const size_t unit = qu.unit, t = qu.t, g = qu.g, s0 = qu.s0;
    const float scale = 1.0f / sqrtf((float)hd), L = lse[unit], Dt = D[unit];
    float qr[kRegs], dor[kRegs], acc[kRegs];
    load_vec(qr, q + unit * (size_t)hd, hd, lane);
    load_vec(dor, dout + unit * (size_t)hd, hd, lane);
#pragma unroll
    for (int j = 0; j < kRegs; j++)
        acc[j] = 0;
    for (size_t s = s0; s <= t; s++) {
        const size_t kv = (s * (size_t)KVH + g) * (size_t)hd;
        const float P = expf(dot_vec(qr, k + kv, hd, lane) * scale - L);
        const float dS = P * (dot_vec(dor, v + kv, hd, lane) - Dt);
#pragma unroll
        for (int j = 0; j < kRegs; j++) {
            int d = lane + j * kWarp;
            acc[j] += d < hd ? dS * load(k, kv + d) : 0.0f;
        }
    }
    store_vec(dq + unit * (size_t)hd, acc, scale, hd, lane);
}

/* dk[s,g] = sum_{h in g, t >= s} dS q[t,h] / sqrt(hd);  dv[s,g] = sum P dout[t,h] */
template <typename X>
__global__ void attention_bwd_dkdv_kernel(X *dk, X *dv, const float *D, const X *dout, const X *q, const X *k,
                                          const X *v, const float *lse, const int32_t *cu, int n_seg, size_t T,
                                          int H, int KVH, int hd)
{
    const size_t unit = (size_t)blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (unit >= T * (size_t)KVH)
        return;
    const size_t s = unit / (size_t)KVH, g = unit % (size_t)KVH;
    const int group = H / KVH;
    size_t s0, s1;
    evo_segment_of(cu, n_seg, s, &s0, &s1);
    const float scale = 1.0f / sqrtf((float)hd);
    float kr[kRegs], vr[kRegs], dka[kRegs], dva[kRegs];
    load_vec(kr, k + unit * (size_t)hd, hd, lane);
    load_vec(vr, v + unit * (size_t)hd, hd, lane);
#pragma unroll
    for (int j = 0; j < kRegs; j++)
        dka[j] = dva[j] = 0;
    for (size_t h = g * (size_t)group; h < (g + 1) * (size_t)group; h++)
        for (size_t t = s; t < s1; t++) {
            const size_t qi = t * (size_t)H + h;
            const X *qt = q + qi * (size_t)hd, *dot = dout + qi * (size_t)hd;
            const float P = expf(dot_vec(kr, qt, hd, lane) * scale - lse[qi]);
            const float dS = P * (dot_vec(vr, dot, hd, lane) - D[qi]);
#pragma unroll
            for (int j = 0; j < kRegs; j++) {
                int d = lane + j * kWarp;
                if (d < hd) {
                    dka[j] += dS * load(qt, d);
                    dva[j] += P * load(dot, d);
                }
            }
        }
    store_vec(dk + unit * (size_t)hd, dka, scale, hd, lane);
    store_vec(dv + unit * (size_t)hd, dva, 1.0f, hd, lane);
}

unsigned warp_blocks(size_t units)
{
    return (unsigned)((units + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

} // namespace

extern "C" {

cudaError_t evo_k_attention_fwd(cudaStream_t s, evo_dtype dt, size_t tiled_smem, void *out, float *lse, const void *q,
                                const void *k, const void *v, const int32_t *cu_seqlens, int n_seg, size_t T, int H,
                                int KVH, int hd)
{
    if (hd > EVO_K_MAX_HEAD_DIM)
        return cudaErrorInvalidValue;
    if (evo_att_takes(dt, hd, tiled_smem))
        return evo_k_attention_tiled_fwd(s, dt, out, lse, q, k, v, cu_seqlens, n_seg, T, H, KVH, hd);
    return dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (T)
            launch(attention_fwd_kernel<X>, warp_blocks(T * (size_t)H), kWarpsPerBlock * kWarp, 0, s, (X *)out, lse,
                   (const X *)q, (const X *)k, (const X *)v, cu_seqlens, n_seg, T, H, KVH, hd);
    });
}

cudaError_t evo_k_attention_bwd(cudaStream_t s, evo_dtype dt, size_t tiled_smem, void *dq, void *dk, void *dv,
                                float *scratch, const void *dout, const void *q, const void *k, const void *v,
                                const void *out, const float *lse, const int32_t *cu_seqlens, int n_seg, size_t T,
                                int H, int KVH, int hd)
{
    if (hd > EVO_K_MAX_HEAD_DIM)
        return cudaErrorInvalidValue;
    int use_tiled = evo_att_takes(dt, hd, tiled_smem);
    cudaError_t rc = dispatch(dt, [&](auto ty) {
        using X = decltype(ty);
        if (!T)
            return;
        const unsigned threads = kWarpsPerBlock * kWarp;
        const X *q_ = (const X *)q, *k_ = (const X *)k, *v_ = (const X *)v, *dout_ = (const X *)dout;
        launch(attention_bwd_d_kernel<X>, warp_blocks(T * (size_t)H), threads, 0, s, scratch, dout_, (const X *)out,
               T * (size_t)H, hd);
        if (use_tiled)
            return;
        launch(attention_bwd_dq_kernel<X>, warp_blocks(T * (size_t)H), threads, 0, s, (X *)dq, scratch, dout_, q_, k_,
               v_, lse, cu_seqlens, n_seg, T, H, KVH, hd);
        launch(attention_bwd_dkdv_kernel<X>, warp_blocks(T * (size_t)KVH), threads, 0, s, (X *)dk, (X *)dv, scratch,
               dout_, q_, k_, v_, lse, cu_seqlens, n_seg, T, H, KVH, hd);
    });
    if (rc != cudaSuccess || !use_tiled || !T)
        return rc;
    return evo_k_attention_tiled_bwd(s, dt, dq, dk, dv, scratch, dout, q, k, v, lse, cu_seqlens, n_seg, T, H, KVH,
                                     hd);
}

} // extern "C"
