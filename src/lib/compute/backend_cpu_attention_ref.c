/* backend_cpu_attention_ref.c - causal attention over packed segments as
 * plain per-token loops: the CPU reference of flash-attn's varlen kernel
 * (math in backend.h), the spec that the blocked kernel of
 * backend_cpu_attention.c (what the backend table uses) is checked against
 * by tests/c/op-check. Slow (a dot product per score, and each score is
 * recomputed by every pass that needs it) but written to be read.
 *
 * Like flash attention it never stores the T x T score matrix: the forward
 * keeps only lse = log sum exp S per (token, head), and the backward
 * recomputes each score from q.k and P = exp(S - lse). Per query the forward
 * makes two passes over the keys: one for lse (an online max, so exp never
 * overflows), one summing P v straight into out.
 *
 * Parallel units own their outputs outright, so no sum is shared between
 * threads: the forward and dq go by (query token, head); dk and dv, which
 * sum over every query that sees a key, go by (key token, kv head) and loop
 * over the queries of the group themselves. Causality makes later queries
 * costlier, hence the dynamic schedules (results do not depend on them). */
#include <math.h>

#include "compute/backend_cpu.h"
#include "compute/segment.h"

static inline float dot(const float *a, const float *b, int n)
{
    float s = 0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static inline void axpy(float *y, float a, const float *x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

void evo_cpu_attention_ref_fwd(const evo_backend *be, evo_dval *out_, float *lse, const evo_dval *q_,
                           const evo_dval *k_, const evo_dval *v_, const int32_t *cu_seqlens, int n_seg,
                           size_t T, int H, int KVH, int hd)
{
    float *out = (float *)out_;
    const float *q = (const float *)q_;
    const float *k = (const float *)k_;
    const float *v = (const float *)v_;
    (void)be;
    const float scale = 1.0f / sqrtf((float)hd);
    const int group = H / KVH;
#pragma omp parallel for collapse(2) schedule(dynamic, 8)
    for (size_t t = 0; t < T; t++) {
        for (int h = 0; h < H; h++) {
            size_t s0, s1;
            evo_segment_of(cu_seqlens, n_seg, t, &s0, &s1);
            const float *qt = q + (t * (size_t)H + (size_t)h) * (size_t)hd;
            const size_t g = (size_t)(h / group);
            /* Online log-sum-exp: l = sum exp(S - m) for the running max m,
             * rescaled by exp(m_old - m_new) when the max grows. */
            float m = -INFINITY, l = 0;
            for (size_t s = s0; s <= t; s++) {
                float sc = dot(qt, k + (s * (size_t)KVH + g) * (size_t)hd, hd) * scale;
                if (sc > m) {
                    l = l * expf(m - sc) + 1.0f;
                    m = sc;
                } else {
                    l += expf(sc - m);
                }
            }
            float L = m + logf(l);
            lse[t * (size_t)H + (size_t)h] = L;
            float *o = out + (t * (size_t)H + (size_t)h) * (size_t)hd;
            for (int i = 0; i < hd; i++)
                o[i] = 0;
            for (size_t s = s0; s <= t; s++) {
                size_t kv = (s * (size_t)KVH + g) * (size_t)hd;
                float p = expf(dot(qt, k + kv, hd) * scale - L);
                axpy(o, p, v + kv, hd);
            }
        }
    }
}

void evo_cpu_attention_ref_bwd(const evo_backend *be, evo_dval *dq_, evo_dval *dk_, evo_dval *dv_,
                           float *scratch, const evo_dval *dout_, const evo_dval *q_, const evo_dval *k_,
                           const evo_dval *v_, const evo_dval *out_, const float *lse,
                           const int32_t *cu_seqlens, int n_seg, size_t T, int H, int KVH,
                           int hd)
{
    float *dq = (float *)dq_;
    float *dk = (float *)dk_;
    float *dv = (float *)dv_;
    const float *dout = (const float *)dout_;
    const float *q = (const float *)q_;
    const float *k = (const float *)k_;
    const float *v = (const float *)v_;
    const float *out = (const float *)out_;
    (void)be;
    const float scale = 1.0f / sqrtf((float)hd);
    const int group = H / KVH;
    float *D = scratch;
    /* dq, by query: D first, since dS = P (dP - D) needs it for every key. */
#pragma omp parallel for collapse(2) schedule(dynamic, 8)
    for (size_t t = 0; t < T; t++) {
        for (int h = 0; h < H; h++) {
            size_t s0, s1;
            evo_segment_of(cu_seqlens, n_seg, t, &s0, &s1);
            const size_t th = t * (size_t)H + (size_t)h, g = (size_t)(h / group);
            const float *qt = q + th * (size_t)hd, *dy = dout + th * (size_t)hd;
            float Dt = dot(dy, out + th * (size_t)hd, hd);
            D[th] = Dt;
            float *dqt = dq + th * (size_t)hd;
            for (int i = 0; i < hd; i++)
                dqt[i] = 0;
            for (size_t s = s0; s <= t; s++) {
                size_t kv = (s * (size_t)KVH + g) * (size_t)hd;
                float p = expf(dot(qt, k + kv, hd) * scale - lse[th]);
                float ds = p * (dot(dy, v + kv, hd) - Dt);
                axpy(dqt, ds * scale, k + kv, hd);
            }
        }
    }
    /* dk, dv, by key: every query head of the group, every later query of
     * the segment. */
#pragma omp parallel for collapse(2) schedule(dynamic, 8)
    for (size_t s = 0; s < T; s++) {
        for (int g = 0; g < KVH; g++) {
            size_t s0, s1;
            evo_segment_of(cu_seqlens, n_seg, s, &s0, &s1);
            const size_t kv = (s * (size_t)KVH + (size_t)g) * (size_t)hd;
            float *dks = dk + kv, *dvs = dv + kv;
            for (int i = 0; i < hd; i++)
                dks[i] = dvs[i] = 0;
            for (int h = g * group; h < (g + 1) * group; h++) {
                for (size_t t = s; t < s1; t++) {
                    const size_t th = t * (size_t)H + (size_t)h;
                    const float *qt = q + th * (size_t)hd, *dy = dout + th * (size_t)hd;
                    float p = expf(dot(qt, k + kv, hd) * scale - lse[th]);
                    float ds = p * (dot(dy, v + kv, hd) - D[th]);
                    axpy(dvs, p, dy, hd);
                    axpy(dks, ds * scale, qt, hd);
                }
            }
        }
    }
}
