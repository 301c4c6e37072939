/* backend_cpu_attention.c - causal attention over packed segments, blocked
 * like flash attention, with OpenBLAS doing the products (math in
 * backend.h). backend_cpu_attention_ref.c holds the same op as plain
 * per-token loops: the spec this kernel is checked against (op-check).
 *
 * One segment of L tokens and one head is a small dense problem. With Q, K,
 * V its [L,hd] slices (rows H*hd or KVH*hd floats apart: sgemm's leading
 * dimension, so nothing is copied) and M the causal mask:
 *   S = Q K^T / sqrt(hd),   P = softmax_rows(S + M),   O = P V
 * Queries go in blocks of QB rows. Block [a, b) sees keys [0, b) only, so
 * it multiplies a QB x b slice of S and nothing past the diagonal block;
 * inside that block the masked half is computed and thrown away, about
 * QB / L of the work. A block's rows of S (QB x L floats, 128 KB at L 512)
 * stay in cache, so unlike a GPU kernel we need no online softmax: each row
 * gets its exact max, sum and lse, and lse [T,H] is all the backward keeps.
 *
 * The backward recomputes P block by block from lse, and with
 * dP = dO V^T,  D = rowsum(dO * O) = rowsum(P * dP),  dS = P (dP - D):
 *   dV += P^T dO,   dQ = dS K / sqrt(hd),   dK += dS^T Q / sqrt(hd)
 * dV and dK sum over every query block and every query head of the group,
 * so a backward unit is (segment, kv head) and owns those rows of dk and dv
 * outright: no sum is shared between threads, and each is added in one fixed
 * order (heads, then query blocks), whatever the thread count. sgemm runs
 * single-threaded inside our parallel region (OpenBLAS's OpenMP build does
 * not nest), so a unit's bits do not depend on the thread count either. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "compute/backend_cpu.h"

/* Query rows per block: large enough for sgemm to run near its peak, small
 * enough that the wasted half of the diagonal block stays a small part. */
enum { QB = 64 };

typedef struct {
    int32_t len, seg;
} seg_len;

/* Longest segment first, ties by index: a unit costs ~len^2, and handing
 * the big ones out first keeps the threads from waiting on a late big one
 * (results do not depend on the order: units own their outputs). */
static int longer_first(const void *pa, const void *pb)
{
    const seg_len *a = pa, *b = pb;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return a->seg < b->seg ? -1 : a->seg > b->seg;
}

static seg_len *segments_longest_first(const int32_t *cu, int n_seg, int32_t *max_len)
{
    seg_len *segs = evo_malloc((size_t)n_seg * sizeof *segs);
    for (int i = 0; i < n_seg; i++)
        segs[i] = (seg_len){cu[i + 1] - cu[i], i};
    qsort(segs, (size_t)n_seg, sizeof *segs, longer_first);
    *max_len = n_seg ? segs[0].len : 0;
    return segs;
}

/* S[m,b] = Q[a:a+m] K[0:b]^T / sqrt(hd): the scores of one query block. */
static void block_scores(float *S, const float *Q, int ldq, const float *K, int ldkv, int a,
                         int m, int b, int hd, float scale)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, b, hd, scale, Q + (size_t)a * ldq,
                ldq, K, ldkv, 0.0f, S, b);
}

/* row[j] = exp(row[j] - shift) for j < n, and row[j] = 0 for n <= j < b:
 * the causal mask, so the sgemm that follows can take all b keys. */
EVO_VECTOR_CLONES static void exp_masked(float *row, int n, int b, float shift)
{
    for (int j = 0; j < n; j++)
        row[j] = evo_cpu_exp(row[j] - shift);
    for (int j = n; j < b; j++)
        row[j] = 0;
}

void evo_cpu_attention_fwd(const evo_backend *be, evo_dval *out_, float *lse, const evo_dval *q_,
                           const evo_dval *k_, const evo_dval *v_, const int32_t *cu_seqlens, int n_seg,
                           size_t T, int H, int KVH, int hd)
{
    float *out = (float *)out_;
    const float *q = (const float *)q_;
    const float *k = (const float *)k_;
    const float *v = (const float *)v_;
    (void)be;
    (void)T;
    const float scale = 1.0f / sqrtf((float)hd);
    const int group = H / KVH, ldq = H * hd, ldkv = KVH * hd, n_units = n_seg * H;
    int32_t Lmax;
    seg_len *segs = segments_longest_first(cu_seqlens, n_seg, &Lmax);
#pragma omp parallel
    {
        float *S = evo_malloc((size_t)QB * (size_t)Lmax * sizeof *S);
        float inv_sum[QB];
#pragma omp for schedule(dynamic, 1)
        for (int u = 0; u < n_units; u++) {
            const int L = segs[u / H].len, h = u % H, g = h / group;
            const size_t s0 = (size_t)cu_seqlens[segs[u / H].seg];
            const float *Q = q + (s0 * (size_t)H + (size_t)h) * (size_t)hd;
            const float *K = k + (s0 * (size_t)KVH + (size_t)g) * (size_t)hd;
            const float *V = v + (s0 * (size_t)KVH + (size_t)g) * (size_t)hd;
            float *O = out + (s0 * (size_t)H + (size_t)h) * (size_t)hd;
            float *lse_h = lse + s0 * (size_t)H + (size_t)h; /* lse_h[t*H] */
            for (int a = 0; a < L; a += QB) {
                const int m = L - a < QB ? L - a : QB, b = a + m;
                block_scores(S, Q, ldq, K, ldkv, a, m, b, hd, scale);
                /* Row i (query a+i) sees keys 0..a+i. E = exp(S - max) never
                 * overflows; O = E V / sum E and lse = max + log sum E. */
                for (int i = 0; i < m; i++) {
                    float *row = S + (size_t)i * (size_t)b;
                    const int n = a + i + 1;
                    const float mx = evo_cpu_max(row, n);
                    exp_masked(row, n, b, mx);
                    const float l = evo_cpu_sum(row, n);
                    lse_h[(size_t)(a + i) * (size_t)H] = mx + logf(l);
                    inv_sum[i] = 1.0f / l;
                }
                float *Oa = O + (size_t)a * ldq;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, b, 1.0f, S, b, V,
                            ldkv, 0.0f, Oa, ldq);
                for (int i = 0; i < m; i++)
                    for (int c = 0; c < hd; c++)
                        Oa[(size_t)i * ldq + c] *= inv_sum[i];
            }
        }
        free(S);
    }
    free(segs);
}

void evo_cpu_attention_bwd(const evo_backend *be, evo_dval *dq_, evo_dval *dk_, evo_dval *dv_,
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
    (void)T;
    (void)scratch; /* each row's D is used where it is computed */
    const float scale = 1.0f / sqrtf((float)hd);
    const int group = H / KVH, ldq = H * hd, ldkv = KVH * hd, n_units = n_seg * KVH;
    int32_t Lmax;
    seg_len *segs = segments_longest_first(cu_seqlens, n_seg, &Lmax);
#pragma omp parallel
    {
        float *P = evo_malloc((size_t)QB * (size_t)Lmax * sizeof *P);
        float *dS = evo_malloc((size_t)QB * (size_t)Lmax * sizeof *dS);
#pragma omp for schedule(dynamic, 1)
        for (int u = 0; u < n_units; u++) {
            const int L = segs[u / KVH].len, g = u % KVH;
            const size_t s0 = (size_t)cu_seqlens[segs[u / KVH].seg];
            const size_t kv0 = (s0 * (size_t)KVH + (size_t)g) * (size_t)hd;
            const float *K = k + kv0, *V = v + kv0;
            float *dK = dk + kv0, *dV = dv + kv0;
            for (int s = 0; s < L; s++)
                for (int c = 0; c < hd; c++)
                    dK[(size_t)s * ldkv + c] = dV[(size_t)s * ldkv + c] = 0;
            for (int h = g * group; h < (g + 1) * group; h++) {
                const size_t q0 = (s0 * (size_t)H + (size_t)h) * (size_t)hd;
                const float *Q = q + q0, *dO = dout + q0, *O = out + q0;
                float *dQ = dq + q0;
                const float *lse_h = lse + s0 * (size_t)H + (size_t)h; /* [t*H] */
                for (int a = 0; a < L; a += QB) {
                    const int m = L - a < QB ? L - a : QB, b = a + m;
                    block_scores(P, Q, ldq, K, ldkv, a, m, b, hd, scale);
                    for (int i = 0; i < m; i++)
                        exp_masked(P + (size_t)i * (size_t)b, a + i + 1, b,
                                   lse_h[(size_t)(a + i) * (size_t)H]);
                    /* dV[0:b] += P^T dO[a:b] */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, b, hd, m, 1.0f, P, b,
                                dO + (size_t)a * ldq, ldq, 1.0f, dV, ldkv);
                    /* dP = dO[a:b] V[0:b]^T, then dS = P (dP - D) / sqrt(hd) in
                     * place; the masked tail, where P = 0, stays exactly 0. */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, b, hd, 1.0f,
                                dO + (size_t)a * ldq, ldq, V, ldkv, 0.0f, dS, b);
                    for (int i = 0; i < m; i++) {
                        const size_t t = (size_t)(a + i);
                        const float *dOt = dO + t * ldq, *Ot = O + t * ldq;
                        float Dt = 0;
                        for (int c = 0; c < hd; c++)
                            Dt += dOt[c] * Ot[c];
                        const float *prow = P + (size_t)i * (size_t)b;
                        float *row = dS + (size_t)i * (size_t)b;
                        const int n = a + i + 1;
                        for (int j = 0; j < n; j++)
                            row[j] = prow[j] * (row[j] - Dt) * scale;
                        for (int j = n; j < b; j++)
                            row[j] = 0;
                    }
                    /* dQ[a:b] = dS K[0:b];  dK[0:b] += dS^T Q[a:b] */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, b, 1.0f, dS, b,
                                K, ldkv, 0.0f, dQ + (size_t)a * ldq, ldq);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, b, hd, m, 1.0f, dS, b,
                                Q + (size_t)a * ldq, ldq, 1.0f, dK, ldkv);
                }
            }
        }
        free(dS);
        free(P);
    }
    free(segs);
}
