/* backend_cpu_layers.c - the per-token layers of the CPU backend: embedding,
 * matmul (OpenBLAS), RMSNorm, RoPE, SwiGLU. The math of each is in
 * backend.h; comments here say how it is computed. Rows are independent in
 * every forward, so the loops split over tokens; the sums over tokens of a
 * backward (weight gradients) split over blocks of columns instead, see
 * EVO_CPU_COL_BLOCK. */
#include <cblas.h>
#include <math.h>

#include "compute/backend_cpu.h"

static inline size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

void evo_cpu_embedding_fwd(const evo_backend *be, evo_dval *out_, const int32_t *ids,
                           const evo_dval *table_, size_t T, size_t C)
{
    float *out = (float *)out_;
    const float *table = (const float *)table_;
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < T; t++) {
        const float *row = table + (size_t)ids[t] * C;
        for (size_t c = 0; c < C; c++)
            out[t * C + c] = row[c];
    }
}

/* Two tokens with the same id add into the same table row, so splitting the
 * tokens over threads would race; each thread owns columns instead. */
EVO_VECTOR_CLONES void evo_cpu_embedding_bwd(const evo_backend *be, float *dtable, const int32_t *ids,
                           const evo_dval *dout_, size_t T, size_t C)
{
    const float *dout = (const float *)dout_;
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t c0 = 0; c0 < C; c0 += EVO_CPU_COL_BLOCK) {
        size_t c1 = min_size(c0 + EVO_CPU_COL_BLOCK, C);
        for (size_t t = 0; t < T; t++) {
            float *row = dtable + (size_t)ids[t] * C;
            for (size_t c = c0; c < c1; c++)
                row[c] += dout[t * C + c];
        }
    }
}

/* W is stored [OC,C] as nn.Linear's weight, so the forward multiplies by its
 * transpose: one sgemm with TransB. */
void evo_cpu_matmul_fwd(const evo_backend *be, evo_dval *out_, const evo_dval *inp_, const evo_dval *W_,
                        const evo_dval *b_, size_t T, size_t C, size_t OC)
{
    float *out = (float *)out_;
    const float *inp = (const float *)inp_;
    const float *W = (const float *)W_;
    const float *b = (const float *)b_;
    (void)be;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)T, (blasint)OC, (blasint)C,
                1.0f, inp, (blasint)C, W, (blasint)C, 0.0f, out, (blasint)OC);
    if (!b)
        return;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < T; t++)
        for (size_t o = 0; o < OC; o++)
            out[t * OC + o] += b[o];
}

void evo_cpu_matmul_bwd(const evo_backend *be, evo_dval *dinp_, float *dW, float *db,
                        const evo_dval *dout_, const evo_dval *inp_, const evo_dval *W_, size_t T, size_t C,
                        size_t OC, evo_grad_mode dinp_mode)
{
    float *dinp = (float *)dinp_;
    const float *dout = (const float *)dout_;
    const float *inp = (const float *)inp_;
    const float *W = (const float *)W_;
    (void)be;
    if (dinp) /* [T,OC] . [OC,C], overwriting (beta 0) or adding (beta 1) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)T, (blasint)C,
                    (blasint)OC, 1.0f, dout, (blasint)OC, W, (blasint)C,
                    dinp_mode == EVO_ACCUMULATE ? 1.0f : 0.0f, dinp, (blasint)C);
    if (dW) /* [T,OC]^T . [T,C], accumulating (beta 1) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)OC, (blasint)C,
                    (blasint)T, 1.0f, dout, (blasint)OC, inp, (blasint)C, 1.0f, dW,
                    (blasint)C);
    if (!db)
        return;
#pragma omp parallel for schedule(static)
    for (size_t o0 = 0; o0 < OC; o0 += EVO_CPU_COL_BLOCK) {
        size_t o1 = min_size(o0 + EVO_CPU_COL_BLOCK, OC);
        for (size_t t = 0; t < T; t++)
            for (size_t o = o0; o < o1; o++)
                db[o] += dout[t * OC + o];
    }
}

/* The mean of squares is summed in double: for C in the thousands a float
 * sum loses digits that the rstd then carries into every output. */
EVO_VECTOR_CLONES void evo_cpu_rmsnorm_fwd(const evo_backend *be, evo_dval *out_, float *rstd, const evo_dval *inp_,
                         const evo_dval *w_, float eps, size_t T, size_t C)
{
    float *out = (float *)out_;
    const float *inp = (const float *)inp_;
    const float *w = (const float *)w_;
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < T; t++) {
        const float *x = inp + t * C;
        double ss = 0;
        for (size_t c = 0; c < C; c++)
            ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / (double)C + eps));
        rstd[t] = r;
        for (size_t c = 0; c < C; c++)
            out[t * C + c] = w[c] * (x[c] * r);
    }
}

/* out = w xh with xh = x rstd, and rstd depends on every x[c]:
 * d rstd / d x[c] = -rstd^3 x[c] / C, hence
 * dx = rstd g - x rstd^3 mean(g x) = rstd (g - xh mean(g xh)), g = dout w. */
EVO_VECTOR_CLONES void evo_cpu_rmsnorm_bwd(const evo_backend *be, evo_dval *dinp_, float *dw, const evo_dval *dout_,
                                           const evo_dval *inp_, const evo_dval *w_, const float *rstd, size_t T,
                                           size_t C, evo_grad_mode dinp_mode)
{
    float *dinp = (float *)dinp_;
    const float *dout = (const float *)dout_;
    const float *inp = (const float *)inp_;
    const float *w = (const float *)w_;
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < T; t++) {
        const float *x = inp + t * C, *dy = dout + t * C;
        float r = rstd[t];
        double dot = 0;
        for (size_t c = 0; c < C; c++)
            dot += (double)(dy[c] * w[c]) * (x[c] * r);
        float mean = (float)(dot / (double)C), *dx = dinp + t * C;
        if (dinp_mode == EVO_ACCUMULATE)
            for (size_t c = 0; c < C; c++)
                dx[c] += r * (dy[c] * w[c] - x[c] * r * mean);
        else
            for (size_t c = 0; c < C; c++)
                dx[c] = r * (dy[c] * w[c] - x[c] * r * mean);
    }
#pragma omp parallel for schedule(static)
    for (size_t c0 = 0; c0 < C; c0 += EVO_CPU_COL_BLOCK) {
        size_t c1 = min_size(c0 + EVO_CPU_COL_BLOCK, C);
        for (size_t t = 0; t < T; t++)
            for (size_t c = c0; c < c1; c++)
                dw[c] += dout[t * C + c] * (inp[t * C + c] * rstd[t]);
    }
}

/* Forward and backward are one rotation, by +theta or -theta (sign). The
 * angle is computed in double: pos * base^(-2i/hd) reaches thousands of
 * radians, and a float angle would be off by ~1e-4 there. (InternEvo builds
 * its tables in fp32 and casts them to bf16, far coarser than this.) The
 * angles depend on the token only, so they are shared by its heads. */
EVO_VECTOR_CLONES static void rope_rotate(float *out, const float *inp, const int32_t *pos, size_t T, int H,
                        int hd, float base, double sign)
{
    int half = hd / 2;
    double inv_freq[half];
    for (int i = 0; i < half; i++)
        inv_freq[i] = pow((double)base, -2.0 * i / hd);
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            double theta = pos[t] * inv_freq[i];
            float c = (float)cos(theta), s = (float)(sign * sin(theta));
            for (int h = 0; h < H; h++) {
                size_t o = (t * (size_t)H + (size_t)h) * (size_t)hd + (size_t)i;
                float x1 = inp[o], x2 = inp[o + (size_t)half];
                out[o] = x1 * c - x2 * s;
                out[o + (size_t)half] = x1 * s + x2 * c;
            }
        }
    }
}

void evo_cpu_rope_fwd(const evo_backend *be, evo_dval *out_, const evo_dval *inp_, const int32_t *pos,
                      size_t T, int H, int hd, float base)
{
    float *out = (float *)out_;
    const float *inp = (const float *)inp_;
    (void)be;
    rope_rotate(out, inp, pos, T, H, hd, base, 1.0);
}

void evo_cpu_rope_bwd(const evo_backend *be, evo_dval *dinp_, const evo_dval *dout_, const int32_t *pos,
                      size_t T, int H, int hd, float base)
{
    float *dinp = (float *)dinp_;
    const float *dout = (const float *)dout_;
    (void)be;
    rope_rotate(dinp, dout, pos, T, H, hd, base, -1.0);
}

static inline float sigmoidf(float x)
{
    return 1.0f / (1.0f + evo_cpu_exp(-x));
}

EVO_VECTOR_CLONES void evo_cpu_swiglu_fwd(const evo_backend *be, evo_dval *out_, const evo_dval *gate_, const evo_dval *up_,
                        size_t n)
{
    float *out = (float *)out_;
    const float *gate = (const float *)gate_;
    const float *up = (const float *)up_;
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = gate[i] * sigmoidf(gate[i]) * up[i];
}

/* silu'(g) = s + g s (1 - s) = s (1 + g (1 - s)), s = sigmoid(g). */
EVO_VECTOR_CLONES void evo_cpu_swiglu_bwd(const evo_backend *be, evo_dval *dgate_, evo_dval *dup_, const evo_dval *dout_,
                        const evo_dval *gate_, const evo_dval *up_, size_t n)
{
    float *dgate = (float *)dgate_;
    float *dup = (float *)dup_;
    const float *dout = (const float *)dout_;
    const float *gate = (const float *)gate_;
    const float *up = (const float *)up_;
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], s = sigmoidf(g), dy = dout[i];
        dgate[i] = dy * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] = dy * g * s;
    }
}
