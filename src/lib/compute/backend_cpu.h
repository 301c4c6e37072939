/* backend_cpu.h - the CPU backend's ops, one file per concern, gathered into
 * the evo_backend table by backend_cpu.c. Internal: users see backend.h. */
#ifndef EVO_BACKEND_CPU_H
#define EVO_BACKEND_CPU_H

#include <stdint.h>
#include <string.h>

#include "base/simd.h"
#include "compute/backend.h"

/* Columns handled by one thread in column reductions (sums over T of a
 * [T,N] matrix): each thread owns a block of columns and walks the rows in
 * order, which needs no atomics and gives the same sums on any thread
 * count, while the inner loop stays contiguous. */
enum { EVO_CPU_COL_BLOCK = 64 };

/* --- vectorisable helpers shared by the ops ------------------------------ */

/* exp(x), within 1 ulp of it for every float in [-87, 88] (checked
 * exhaustively against exp in double); below -87, -inf included, it gives
 * exp(-87) ~ 2^-125.5 instead, a weight that vanishes in any sum with the
 * max's 1; above 88, +inf included, it gives exp(88) ~ 1.7e38, finite (a
 * sigmoid then says 6e-39 for 0). NaN stays NaN, so a NaN score still
 * poisons its row as with libm.
 * libm's expf is a call per element, which took a quarter of the time; this
 * one vectorizes. It is Cephes' expf: x = n ln2 + r, |r| <= ln2/2, with n
 * rounded by adding 1.5 * 2^23 (then t's low mantissa bits hold n) and ln2
 * split in two so that n ln2 is exact; exp(r) = 1 + r + r^2 p(r) with p of
 * degree 5; 2^n is the float with exponent bits n + 127. The clamp is an
 * unsigned min on the bits (a float's bits grow with its magnitude on
 * either side of zero; NaNs lie above +-inf's): a float compare here makes GCC branch,
 * and a branch over FP operations, which may trap, does not vectorize. */
static inline float evo_cpu_exp(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    const uint32_t minus_87 = 0xc2ae0000u, minus_inf = 0xff800000u, plus_88 = 0x42b00000u, plus_inf = 0x7f800000u;
    const uint32_t clamped = u < minus_87 ? u : minus_87, capped = u < plus_88 ? u : plus_88;
    u = u > minus_inf ? u : clamped;
    u = u > plus_inf ? u : capped;
    memcpy(&x, &u, 4);
    const float round = 12582912.0f; /* 1.5 * 2^23 */
    float t = x * 1.44269504088896341f + round, n = t - round;
    float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e;
    memcpy(&e, &t, 4);
    e = (e - 0x4b400000 + 127) << 23; /* 0x4b400000: the bits of 1.5 * 2^23 */
    float pow2n;
    memcpy(&pow2n, &e, 4);
    return p * pow2n;
}

/* The max and the sum of row[0:n] (n >= 1 for the max), over 8 lanes so
 * that the loops vectorize while the order of the sum stays fixed. */
static inline float evo_cpu_max(const float *row, size_t n)
{
    float a[8];
    for (int c = 0; c < 8; c++)
        a[c] = row[0];
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int c = 0; c < 8; c++)
            a[c] = row[j + c] > a[c] ? row[j + c] : a[c];
    for (; j < n; j++)
        a[0] = row[j] > a[0] ? row[j] : a[0];
    for (int c = 1; c < 8; c++)
        a[0] = a[c] > a[0] ? a[c] : a[0];
    return a[0];
}

static inline float evo_cpu_sum(const float *row, size_t n)
{
    float a[8] = {0};
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int c = 0; c < 8; c++)
            a[c] += row[j + c];
    for (; j < n; j++)
        a[0] += row[j];
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

/* The CPU backend's dtype is fp32: each op below views the evo_dval
 * buffers it is handed (its name_ parameters) as the floats they are. */

/* backend_cpu_layers.c */
void evo_cpu_embedding_fwd(const evo_backend *be, evo_dval *out, const int32_t *ids,
                           const evo_dval *table, size_t T, size_t C);
void evo_cpu_embedding_bwd(const evo_backend *be, float *dtable, const int32_t *ids,
                           const evo_dval *dout, size_t T, size_t C);
void evo_cpu_matmul_fwd(const evo_backend *be, evo_dval *out, const evo_dval *inp, const evo_dval *W,
                        const evo_dval *b, size_t T, size_t C, size_t OC);
void evo_cpu_matmul_bwd(const evo_backend *be, evo_dval *dinp, float *dW, float *db,
                        const evo_dval *dout, const evo_dval *inp, const evo_dval *W, size_t T, size_t C,
                        size_t OC, evo_grad_mode dinp_mode);
void evo_cpu_rmsnorm_fwd(const evo_backend *be, evo_dval *out, float *rstd, const evo_dval *inp,
                         const evo_dval *w, float eps, size_t T, size_t C);
void evo_cpu_rmsnorm_bwd(const evo_backend *be, evo_dval *dinp, float *dw, const evo_dval *dout,
                         const evo_dval *inp, const evo_dval *w, const float *rstd, size_t T, size_t C,
                         evo_grad_mode dinp_mode);
void evo_cpu_rope_fwd(const evo_backend *be, evo_dval *out, const evo_dval *inp, const int32_t *pos,
                      size_t T, int H, int hd, float base);
void evo_cpu_rope_bwd(const evo_backend *be, evo_dval *dinp, const evo_dval *dout, const int32_t *pos,
                      size_t T, int H, int hd, float base);
void evo_cpu_swiglu_fwd(const evo_backend *be, evo_dval *out, const evo_dval *gate, const evo_dval *up,
                        size_t n);
void evo_cpu_swiglu_bwd(const evo_backend *be, evo_dval *dgate, evo_dval *dup, const evo_dval *dout,
                        const evo_dval *gate, const evo_dval *up, size_t n);

/* backend_cpu_attention.c: blocked, OpenBLAS (what the table holds);
 * backend_cpu_attention_ref.c: the same contract as plain per-token loops,
 * the spec the blocked kernel is checked against (tests/c/op-check). */
void evo_cpu_attention_fwd(const evo_backend *be, evo_dval *out, float *lse, const evo_dval *q,
                           const evo_dval *k, const evo_dval *v, const int32_t *cu_seqlens, int n_seg,
                           size_t T, int H, int KVH, int hd);
void evo_cpu_attention_bwd(const evo_backend *be, evo_dval *dq, evo_dval *dk, evo_dval *dv,
                           float *scratch, const evo_dval *dout, const evo_dval *q, const evo_dval *k,
                           const evo_dval *v, const evo_dval *out, const float *lse,
                           const int32_t *cu_seqlens, int n_seg, size_t T, int H, int KVH,
                           int hd);
void evo_cpu_attention_ref_fwd(const evo_backend *be, evo_dval *out, float *lse, const evo_dval *q,
                               const evo_dval *k, const evo_dval *v, const int32_t *cu_seqlens,
                               int n_seg, size_t T, int H, int KVH, int hd);
void evo_cpu_attention_ref_bwd(const evo_backend *be, evo_dval *dq, evo_dval *dk, evo_dval *dv,
                               float *scratch, const evo_dval *dout, const evo_dval *q, const evo_dval *k,
                               const evo_dval *v, const evo_dval *out, const float *lse,
                               const int32_t *cu_seqlens, int n_seg, size_t T, int H, int KVH,
                               int hd);

/* backend_cpu_loss.c */
void evo_cpu_crossentropy_fwd(const evo_backend *be, float *losses, float *lse, const evo_dval *logits,
                              const int32_t *labels, float eps, size_t T, size_t V);
void evo_cpu_crossentropy_bwd(const evo_backend *be, evo_dval *dlogits, const float *dloss,
                              const evo_dval *logits, const float *lse, const int32_t *labels,
                              float eps, size_t T, size_t V, size_t v0, size_t Vl);
void evo_cpu_crossentropy_shard_fwd(const evo_backend *be, float *parts, const evo_dval *logits,
                                    const int32_t *labels, size_t T, size_t v0, size_t Vl);

/* backend_cpu_optim.c */
void evo_cpu_adamw(const evo_backend *be, float *p, evo_dval *work, const float *grad, float *m, float *v,
                   size_t n, float lr, float beta1, float beta2, float eps, float wd,
                   float grad_scale, int t);
void evo_cpu_sqnorm(const evo_backend *be, double *acc, const float *x, size_t n);

#endif
