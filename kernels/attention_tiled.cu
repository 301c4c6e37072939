/* attention_tiled.cu - causal attention over packed segments, GQA, forward
 * and backward on tensor cores: flash-attention 2's algorithm with wmma's
 * 16 x 16 x 16 bf16/fp16 fragments (mma.sync on sm_80 and later),
 * accumulating in fp32. The plain kernels (attention.cu) are the
 * reference these are checked against on a GPU (scripts/gpu-check); the
 * tiling and the shared-memory layout are compute/attention_plan.h's.
 *
 * forward: a block takes 64 queries of one head, a warp 16 of them, and
 *   walks their keys 64 at a time from the first query's segment start:
 *   S = Q K^T on tensor cores into shared memory, the causal and segment
 *   mask and an online softmax there in fp32 (running max m and sum l,
 *   two lanes a row), P rounded to the dtype, then O += P V on tensor
 *   cores (O kept in fp32 in shared memory, rescaled by exp(m_old -
 *   m_new) first). It never forms more than a 16 x 64 tile of scores; it
 *   saves lse = m + log l.
 * backward, without atomics (each output has one owner, as in the plain
 *   kernels): D = dout.out (attention.cu's kernel); dq by blocks of 64
 *   queries of a head over their keys (S and P again from lse, dP = dO
 *   V^T, dS = P (dP - D) rounded, dQ += dS K); dk and dv by blocks of 64
 *   keys of a kv head over the queries of every head of its group that
 *   see them (P^T, dV += P^T dO, dS^T, dK += dS^T Q). Scores are
 *   recomputed in both: more FLOPs than flash-attention 2's one pass with
 *   atomic dq, and the same bits on every run.
 *
 * The kernels are compiled for head dimensions 64 and 128 (HD), so that a
 * warp's fragments of its rows stay in registers. */
#include <math.h>
#include <mma.h>
#include <type_traits>

#include "common.cuh"
#include "compute/attention_plan.h"
#include "compute/segment.h"

using namespace evo;
using namespace nvcuda;

namespace {

constexpr int kT = EVO_ATT_TILE, kF = EVO_ATT_FRAG, kThreads = EVO_ATT_WARPS * kWarp;
constexpr int kHalf = kT / 2; /* columns of a score row each of its two lanes takes */

template <typename X> using FragA = wmma::fragment<wmma::matrix_a, kF, kF, kF, X, wmma::row_major>;
/* B = a tile's rows read as columns: K^T, V^T, Q^T, dO^T */
template <typename X> using FragBt = wmma::fragment<wmma::matrix_b, kF, kF, kF, X, wmma::col_major>;
template <typename X> using FragB = wmma::fragment<wmma::matrix_b, kF, kF, kF, X, wmma::row_major>;
using FragC = wmma::fragment<wmma::accumulator, kF, kF, kF, float>;

/* Rows [r0, r0 + kT) of one head of x [T, heads, hd] into a tile with
 * leading dimension ld, zeros for rows at or past end; the whole block. */
template <typename X>
__device__ void load_tile(X *tile, unsigned ld, const X *x, size_t r0, size_t end, int heads, int head, int hd)
{
    for (int i = threadIdx.x; i < kT * hd; i += blockDim.x) {
        const int r = i / hd, d = i % hd;
        const size_t t = r0 + (size_t)r;
        tile[r * ld + d] = t < end ? x[(t * (size_t)heads + (size_t)head) * (size_t)hd + (size_t)d] : from_f32<X>(0.0f);
    }
}

/* Per-row values of rows [r0, r0 + kT) (a run of queries): where each
 * one's segment starts (end for a row past the last token, which sees no
 * key), and its lse and D at head h, when asked for. */
__device__ void load_rows(int32_t *seg0, float *lse_s, float *d_s, const int32_t *cu, int n_seg, size_t r0, size_t T,
                          int H, int h, const float *lse, const float *D)
{
    for (int r = threadIdx.x; r < kT; r += blockDim.x) {
        const size_t t = r0 + (size_t)r;
        size_t s0 = T, s1 = T;
        if (t < T)
            evo_segment_of(cu, n_seg, t, &s0, &s1);
        seg0[r] = (int32_t)s0;
        if (lse) {
            lse_s[r] = t < T ? lse[t * (size_t)H + (size_t)h] : 0.0f;
            d_s[r] = t < T ? D[t * (size_t)H + (size_t)h] : 0.0f;
        }
    }
}

/* A warp's fragments of its 16 rows of a tile: frag[kk] holds columns
 * [16 kk, 16 kk + 16). */
template <typename X, int HD> __device__ inline void load_rows_frags(FragA<X> (&frag)[HD / kF], const X *tile, unsigned ld)
{
    const int w = threadIdx.x / kWarp;
#pragma unroll
    for (int kk = 0; kk < HD / kF; kk++)
        wmma::load_matrix_sync(frag[kk], tile + (size_t)(w * kF) * ld + kk * kF, ld);
}

/* out[16, 64] (fp32, ld ldo) = a[16, HD] . rows[64, HD]^T: the warp's rows
 * against every row of a tile (scores, or dP). */
template <typename X, int HD>
__device__ inline void rows_times_tile_t(float *out, unsigned ldo, const FragA<X> (&a)[HD / kF], const X *tile,
                                         unsigned ld)
{
#pragma unroll
    for (int j = 0; j < kT / kF; j++) {
        FragC acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < HD / kF; kk++) {
            FragBt<X> b;
            wmma::load_matrix_sync(b, tile + (size_t)(j * kF) * ld + kk * kF, ld);
            wmma::mma_sync(acc, a[kk], b, acc);
        }
        wmma::store_matrix_sync(out + j * kF, acc, ldo, wmma::mem_row_major);
    }
}

/* acc[16, HD] (fp32 in shared memory, ld ldacc) += p[16, 64] (ld ldp) .
 * tile[64, HD]: P V, dS K, P^T dO, dS^T Q. */
template <typename X, int HD>
__device__ inline void acc_plus_p_tile(float *acc, unsigned ldacc, const X *p, unsigned ldp, const X *tile, unsigned ld)
{
#pragma unroll
    for (int n = 0; n < HD / kF; n++) {
        FragC c;
        wmma::load_matrix_sync(c, acc + n * kF, ldacc, wmma::mem_row_major);
#pragma unroll
        for (int j = 0; j < kT / kF; j++) {
            FragA<X> a;
            FragB<X> b;
            wmma::load_matrix_sync(a, p + j * kF, ldp);
            wmma::load_matrix_sync(b, tile + (size_t)(j * kF) * ld + n * kF, ld);
            wmma::mma_sync(c, a, b, c);
        }
        wmma::store_matrix_sync(acc + n * kF, c, ldacc, wmma::mem_row_major);
    }
}

/* The key tile from k0 (keys before kend; zeros past them) of kv head g
 * into Ks and Vs, and the warp's scores against it (unscaled, unmasked)
 * into Sw: the first half of the forward's and dq's step. */
template <typename X, int HD>
__device__ inline void scores_of_key_tile(float *Sw, X *Ks, X *Vs, const FragA<X> (&qf)[HD / kF], const X *k,
                                          const X *v, size_t k0, size_t kend, int KVH, int g, const evo_att_smem &m)
{
    load_tile(Ks, m.ld16, k, k0, kend, KVH, g, HD);
    load_tile(Vs, m.ld16, v, k0, kend, KVH, g, HD);
    __syncthreads();
    rows_times_tile_t<X, HD>(Sw, m.ldsf, qf, Ks, m.ld16);
    __syncwarp();
}

/* Zeros for a warp's accumulator rows. */
template <int HD> __device__ inline void zero_acc(float *acc, unsigned ldacc)
{
    for (int i = threadIdx.x % kWarp; i < kF * HD; i += kWarp)
        acc[(i / HD) * ldacc + i % HD] = 0.0f;
}

/* Rows of a warp's fp32 accumulator, stored to a head of y [T, heads, HD]
 * times scale: lane pairs per row, as in the softmax. */
template <typename X, int HD>
__device__ inline void store_acc(X *y, const float *acc, unsigned ldacc, size_t row, size_t T, int heads, int head,
                                 float scale)
{
    const int lane = threadIdx.x % kWarp, r = lane / 2, half = lane % 2;
    const size_t t = row + (size_t)r;
    if (t >= T)
        return;
    X *o = y + (t * (size_t)heads + (size_t)head) * HD;
    for (int d = half; d < HD; d += 2)
        store(o, (size_t)d, acc[r * ldacc + d] * scale);
}

template <typename X, int HD>
__global__ void __launch_bounds__(kThreads)
    attention_tiled_fwd_kernel(X *out, float *lse, const X *q, const X *k, const X *v, const int32_t *cu, int n_seg,
                               size_t T, int H, int KVH)
{
    EVO_DYNAMIC_SMEM(smem, EVO_ATT_ALIGN);
    const evo_att_smem m = evo_att_smem_of(EVO_ATT_FWD, HD);
    X *Qs = (X *)(smem + m.tile[0]), *Ks = (X *)(smem + m.tile[1]), *Vs = (X *)(smem + m.tile[2]);
    const int w = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, r = lane / 2, half = lane % 2;
    float *Sw = (float *)(smem + m.s + w * m.warp_s), *Ow = (float *)(smem + m.acc + w * m.warp_acc);
    X *Pw = (X *)(smem + m.p + w * m.warp_p);
    int32_t *seg0 = (int32_t *)(smem + m.rows);
    const size_t t0 = (size_t)blockIdx.x * kT;
    const int h = blockIdx.y, g = h / (H / KVH);
    const float scale = 1.0f / sqrtf((float)HD);

    load_rows(seg0, NULL, NULL, cu, n_seg, t0, T, H, h, NULL, NULL);
    load_tile(Qs, m.ld16, q, t0, T, H, h, HD);
    zero_acc<HD>(Ow, m.ldacc);
    __syncthreads();
    FragA<X> qf[HD / kF];
    load_rows_frags<X, HD>(qf, Qs, m.ld16);

    /* keys from the first query's segment start (seg0 grows with t) */
    const size_t t = t0 + (size_t)(w * kF + r), my0 = (size_t)seg0[w * kF + r];
    const size_t kend = evo_att_keys_end(t0, T);
    float m_row = -INFINITY, l_row = 0.0f;
    for (size_t k0 = (size_t)seg0[0]; k0 < kend; k0 += kT) {
        scores_of_key_tile<X, HD>(Sw, Ks, Vs, qf, k, v, k0, kend, KVH, g, m);
        float sc[kHalf], mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < kHalf; c++) {
            const int col = half * kHalf + c;
            const size_t s = k0 + (size_t)col;
            sc[c] = evo_att_visible(t, s, my0, T) ? Sw[r * m.ldsf + col] * scale : -INFINITY;
            mx = fmaxf(mx, sc[c]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        const float m_new = fmaxf(m_row, mx);
        /* no key yet (m_new -inf): nothing to add, nothing to rescale */
        const float corr = m_new == -INFINITY ? 1.0f : expf(m_row - m_new);
        float psum = 0.0f;
#pragma unroll
        for (int c = 0; c < kHalf; c++) {
            const float p = sc[c] == -INFINITY ? 0.0f : expf(sc[c] - m_new);
            psum += p;
            Pw[r * m.ldp + half * kHalf + c] = from_f32<X>(p);
        }
        psum += __shfl_xor_sync(0xffffffffu, psum, 1);
        l_row = l_row * corr + psum;
        m_row = m_new;
        for (int d = half; d < HD; d += 2)
            Ow[r * m.ldacc + d] *= corr;
        __syncwarp();
        acc_plus_p_tile<X, HD>(Ow, m.ldacc, Pw, m.ldp, Vs, m.ld16);
        __syncthreads(); /* the next tile overwrites Ks and Vs */
    }
    store_acc<X, HD>(out, Ow, m.ldacc, t0 + (size_t)(w * kF), T, H, h, 1.0f / l_row);
    if (t < T && half == 0)
        lse[t * (size_t)H + (size_t)h] = m_row + logf(l_row);
}

/* dq of 64 queries of head h: over their keys as the forward, with
 * P = exp(S - lse) and dS = P (dO.v - D). */
template <typename X, int HD>
__global__ void __launch_bounds__(kThreads)
    attention_tiled_dq_kernel(X *dq, const float *D, const X *dout, const X *q, const X *k, const X *v,
                              const float *lse, const int32_t *cu, int n_seg, size_t T, int H, int KVH)
{
    EVO_DYNAMIC_SMEM(smem, EVO_ATT_ALIGN);
    const evo_att_smem m = evo_att_smem_of(EVO_ATT_BWD_DQ, HD);
    X *Qs = (X *)(smem + m.tile[0]), *dOs = (X *)(smem + m.tile[1]);
    X *Ks = (X *)(smem + m.tile[2]), *Vs = (X *)(smem + m.tile[3]);
    const int w = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, r = lane / 2, half = lane % 2;
    float *Sw = (float *)(smem + m.s + w * m.warp_s), *Aw = (float *)(smem + m.acc + w * m.warp_acc);
    X *dSw = (X *)(smem + m.p + w * m.warp_p);
    int32_t *seg0 = (int32_t *)(smem + m.rows);
    float *lse_s = (float *)(seg0 + kT), *d_s = lse_s + kT;
    const size_t t0 = (size_t)blockIdx.x * kT;
    const int h = blockIdx.y, g = h / (H / KVH);
    const float scale = 1.0f / sqrtf((float)HD);

    load_rows(seg0, lse_s, d_s, cu, n_seg, t0, T, H, h, lse, D);
    load_tile(Qs, m.ld16, q, t0, T, H, h, HD);
    load_tile(dOs, m.ld16, dout, t0, T, H, h, HD);
    zero_acc<HD>(Aw, m.ldacc);
    __syncthreads();
    FragA<X> qf[HD / kF], dof[HD / kF];
    load_rows_frags<X, HD>(qf, Qs, m.ld16);
    load_rows_frags<X, HD>(dof, dOs, m.ld16);

    const int row = w * kF + r;
    const size_t t = t0 + (size_t)row, my0 = (size_t)seg0[row];
    const float L = lse_s[row], Dt = d_s[row];
    const size_t kend = evo_att_keys_end(t0, T);
    for (size_t k0 = (size_t)seg0[0]; k0 < kend; k0 += kT) {
        scores_of_key_tile<X, HD>(Sw, Ks, Vs, qf, k, v, k0, kend, KVH, g, m);
        float p[kHalf];
#pragma unroll
        for (int c = 0; c < kHalf; c++) {
            const int col = half * kHalf + c;
            const size_t s = k0 + (size_t)col;
            p[c] = evo_att_visible(t, s, my0, T) ? expf(Sw[r * m.ldsf + col] * scale - L) : 0.0f;
        }
        __syncwarp(); /* every lane has read its scores before dP overwrites them */
        rows_times_tile_t<X, HD>(Sw, m.ldsf, dof, Vs, m.ld16);
        __syncwarp();
#pragma unroll
        for (int c = 0; c < kHalf; c++) {
            const int col = half * kHalf + c;
            dSw[r * m.ldp + col] = from_f32<X>(p[c] * (Sw[r * m.ldsf + col] - Dt));
        }
        __syncwarp();
        acc_plus_p_tile<X, HD>(Aw, m.ldacc, dSw, m.ldp, Ks, m.ld16);
        __syncthreads();
    }
    store_acc<X, HD>(dq, Aw, m.ldacc, t0 + (size_t)(w * kF), T, H, h, scale);
}

/* dk and dv of 64 keys of kv head g: over every head of the group and the
 * queries of the keys' segments from the first key on. A warp holds its
 * 16 keys' k and v as fragments; the query tiles pass through shared
 * memory. */
template <typename X, int HD>
__global__ void __launch_bounds__(kThreads)
    attention_tiled_dkdv_kernel(X *dk, X *dv, const float *D, const X *dout, const X *q, const X *k, const X *v,
                                const float *lse, const int32_t *cu, int n_seg, size_t T, int H, int KVH)
{
    EVO_DYNAMIC_SMEM(smem, EVO_ATT_ALIGN);
    const evo_att_smem m = evo_att_smem_of(EVO_ATT_BWD_DKDV, HD);
    X *Qs = (X *)(smem + m.tile[0]), *dOs = (X *)(smem + m.tile[1]);
    const int w = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, r = lane / 2, half = lane % 2;
    float *Sw = (float *)(smem + m.s + w * m.warp_s);
    float *dVw = (float *)(smem + m.acc + w * m.warp_acc), *dKw = (float *)(smem + m.acc2 + w * m.warp_acc);
    X *Pw = (X *)(smem + m.p + w * m.warp_p), *dSw = (X *)(smem + m.p2 + w * m.warp_p);
    int32_t *seg0 = (int32_t *)(smem + m.rows);
    float *lse_s = (float *)(seg0 + kT), *d_s = lse_s + kT;
    const size_t s0 = (size_t)blockIdx.x * kT;
    const int g = blockIdx.y, group = H / KVH;
    const float scale = 1.0f / sqrtf((float)HD);

    /* k and v of the block's keys, staged through the query tiles */
    load_tile(Qs, m.ld16, k, s0, T, KVH, g, HD);
    load_tile(dOs, m.ld16, v, s0, T, KVH, g, HD);
    zero_acc<HD>(dVw, m.ldacc);
    zero_acc<HD>(dKw, m.ldacc);
    __syncthreads();
    FragA<X> kf[HD / kF], vf[HD / kF];
    load_rows_frags<X, HD>(kf, Qs, m.ld16);
    load_rows_frags<X, HD>(vf, dOs, m.ld16);
    __syncthreads();

    const size_t s = s0 + (size_t)(w * kF + r); /* this lane pair's key */
    const size_t qend = evo_att_queries_end(cu, n_seg, s0, T);
    for (int h = g * group; h < (g + 1) * group; h++)
        for (size_t q0 = s0; q0 < qend; q0 += kT) {
            load_rows(seg0, lse_s, d_s, cu, n_seg, q0, T, H, h, lse, D);
            load_tile(Qs, m.ld16, q, q0, T, H, h, HD);
            load_tile(dOs, m.ld16, dout, q0, T, H, h, HD);
            __syncthreads();
            /* P^T [16 keys, 64 queries] */
            rows_times_tile_t<X, HD>(Sw, m.ldsf, kf, Qs, m.ld16);
            __syncwarp();
            float p[kHalf];
#pragma unroll
            for (int c = 0; c < kHalf; c++) {
                const int col = half * kHalf + c;
                const size_t t = q0 + (size_t)col;
                p[c] = evo_att_visible(t, s, (size_t)seg0[col], T) ? expf(Sw[r * m.ldsf + col] * scale - lse_s[col])
                                                                  : 0.0f;
                Pw[r * m.ldp + col] = from_f32<X>(p[c]);
            }
            __syncwarp();
            /* dP^T = V dO^T */
            rows_times_tile_t<X, HD>(Sw, m.ldsf, vf, dOs, m.ld16);
            __syncwarp();
#pragma unroll
            for (int c = 0; c < kHalf; c++) {
                const int col = half * kHalf + c;
                dSw[r * m.ldp + col] = from_f32<X>(p[c] * (Sw[r * m.ldsf + col] - d_s[col]));
            }
            __syncwarp();
            acc_plus_p_tile<X, HD>(dVw, m.ldacc, Pw, m.ldp, dOs, m.ld16);
            acc_plus_p_tile<X, HD>(dKw, m.ldacc, dSw, m.ldp, Qs, m.ld16);
            __syncthreads(); /* the next tile overwrites Qs, dOs and the rows */
        }
    store_acc<X, HD>(dk, dKw, m.ldacc, s0 + (size_t)(w * kF), T, KVH, g, scale);
    store_acc<X, HD>(dv, dVw, m.ldacc, s0 + (size_t)(w * kF), T, KVH, g, 1.0f);
}

/* A kernel's opt-in to its shared memory, past the default 48 KiB. */
template <typename K> cudaError_t opt_in(K kernel, evo_att_kernel which, int hd)
{
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)evo_att_smem_of(which, hd).total);
}

unsigned tiles(size_t n) { return (unsigned)((n + kT - 1) / kT); }

/* f(X(), integral_constant<HD>) for the 16-bit types and head dims the
 * kernels are compiled for; cudaErrorInvalidValue otherwise. */
template <typename F> cudaError_t dispatch_tiled(evo_dtype dt, int hd, F f)
{
    if (!evo_att_tiled(dt, hd))
        return cudaErrorInvalidValue;
    auto by_hd = [&](auto ty) {
        if (hd == 64)
            f(ty, std::integral_constant<int, 64>());
        else
            f(ty, std::integral_constant<int, 128>());
    };
    if (dt == EVO_BF16)
        by_hd(__nv_bfloat16());
    else
        by_hd(__half());
    return cudaGetLastError();
}

} // namespace

extern "C" {

cudaError_t evo_k_attention_tiled_fwd(cudaStream_t s, evo_dtype dt, void *out, float *lse, const void *q,
                                      const void *k, const void *v, const int32_t *cu_seqlens, int n_seg, size_t T,
                                      int H, int KVH, int hd)
{
    cudaError_t rc = cudaSuccess;
    cudaError_t launched = dispatch_tiled(dt, hd, [&](auto ty, auto hd_c) {
        using X = decltype(ty);
        constexpr int HD = decltype(hd_c)::value;
        auto kernel = attention_tiled_fwd_kernel<X, HD>;
        if (!T || (rc = opt_in(kernel, EVO_ATT_FWD, HD)) != cudaSuccess)
            return;
        launch(kernel, dim3(tiles(T), (unsigned)H), kThreads, evo_att_smem_of(EVO_ATT_FWD, HD).total, s, (X *)out, lse,
               (const X *)q, (const X *)k, (const X *)v, cu_seqlens, n_seg, T, H, KVH);
    });
    return rc != cudaSuccess ? rc : launched;
}

cudaError_t evo_k_attention_tiled_bwd(cudaStream_t s, evo_dtype dt, void *dq, void *dk, void *dv, const float *D,
                                      const void *dout, const void *q, const void *k, const void *v,
                                      const float *lse, const int32_t *cu_seqlens, int n_seg, size_t T, int H,
                                      int KVH, int hd)
{
    cudaError_t rc = cudaSuccess;
    cudaError_t launched = dispatch_tiled(dt, hd, [&](auto ty, auto hd_c) {
        using X = decltype(ty);
        constexpr int HD = decltype(hd_c)::value;
        const X *q_ = (const X *)q, *k_ = (const X *)k, *v_ = (const X *)v, *dout_ = (const X *)dout;
        auto dq_kernel = attention_tiled_dq_kernel<X, HD>;
        auto dkdv_kernel = attention_tiled_dkdv_kernel<X, HD>;
        if (!T || (rc = opt_in(dq_kernel, EVO_ATT_BWD_DQ, HD)) != cudaSuccess ||
            (rc = opt_in(dkdv_kernel, EVO_ATT_BWD_DKDV, HD)) != cudaSuccess)
            return;
        launch(dq_kernel, dim3(tiles(T), (unsigned)H), kThreads, evo_att_smem_of(EVO_ATT_BWD_DQ, HD).total, s, (X *)dq,
               D, dout_, q_, k_, v_, lse, cu_seqlens, n_seg, T, H, KVH);
        launch(dkdv_kernel, dim3(tiles(T), (unsigned)KVH), kThreads, evo_att_smem_of(EVO_ATT_BWD_DKDV, HD).total, s,
               (X *)dk, (X *)dv, D, dout_, q_, k_, v_, lse, cu_seqlens, n_seg, T, H, KVH);
    });
    return rc != cudaSuccess ? rc : launched;
}

} // extern "C"
