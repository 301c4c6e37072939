/* attention-plan-check - the tensor-core attention's host logic
 * (compute/attention_plan.h), without a GPU:
 *
 * - the shapes it takes, and its shared-memory layouts: every region
 *   128-byte aligned, inside the block's memory and apart from the others,
 *   leading dimensions and fragment rows as wmma's loads want them, the
 *   total within sm_80's 163 KiB;
 * - its walk over tiles, run here in fp32 with the plan's own rules
 *   (evo_att_visible, evo_att_keys_end, evo_att_queries_end) and the
 *   kernels' order of work: a block of 64 queries over 64 keys at a time
 *   from its first query's segment start, an online softmax rescaling the
 *   output tile by tile; dq the same way; dk and dv by blocks of 64 keys
 *   over every head of the group and the queries from the block's first
 *   key to the end of its last key's segment. Its results are held to the
 *   plain CPU reference (backend_cpu_attention_ref.c) on ragged segments
 *   longer and shorter than a tile, GQA and MHA: a tile or mask rule that
 *   drops or adds a key would be off by order 1. Again with P and dS
 *   rounded to bf16 before their second products, as the kernels do:
 *   within scripts/gpu-check's 1e-2 of the fp32 reference, so that that
 *   check leaves them room.
 *
 * Prints one "ok" or "FAIL" line a check; exits 1 on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "compute/attention_plan.h"
#include "compute/backend.h"
#include "compute/backend_cpu.h"

static int failures;

static void report(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    failures += !ok;
}

/* ---- layouts ------------------------------------------------------------- */

static void check_layout(evo_att_kernel k, int hd)
{
    static const char *names[] = {"forward", "dq", "dk/dv"};
    const evo_att_smem m = evo_att_smem_of(k, hd);
    size_t tile = (size_t)EVO_ATT_TILE * m.ld16 * 2, at[9], len[9];
    int n = 0;
    for (size_t i = 0; i < m.n_tiles; i++)
        at[n] = m.tile[i], len[n++] = tile;
    at[n] = m.s, len[n++] = EVO_ATT_WARPS * m.warp_s;
    at[n] = m.p, len[n++] = EVO_ATT_WARPS * m.warp_p;
    at[n] = m.acc, len[n++] = EVO_ATT_WARPS * m.warp_acc;
    if (k == EVO_ATT_BWD_DKDV) {
        at[n] = m.p2, len[n++] = EVO_ATT_WARPS * m.warp_p;
        at[n] = m.acc2, len[n++] = EVO_ATT_WARPS * m.warp_acc;
    }
    at[n] = m.rows, len[n++] = (size_t)EVO_ATT_TILE * 3 * 4;
    int ok = m.total <= EVO_ATT_MAX_SMEM && (size_t)n == m.n_tiles + (k == EVO_ATT_BWD_DKDV ? 6 : 4);
    for (int i = 0; i < n; i++) {
        ok &= at[i] % EVO_ATT_ALIGN == 0 && at[i] + len[i] <= m.total;
        for (int j = 0; j < i; j++)
            ok &= at[i] + len[i] <= at[j] || at[j] + len[j] <= at[i];
    }
    /* wmma: ldm a multiple of 8 (16-bit) or 4 (fp32) elements, and every
     * fragment's first element 32-byte aligned: a fragment starts 16 rows
     * and 16 columns into a tile, a warp's part at warp x its size */
    ok &= m.ld16 % 8 == 0 && m.ldp % 8 == 0 && m.ldsf % 4 == 0 && m.ldacc % 4 == 0;
    ok &= (EVO_ATT_FRAG * m.ld16 * 2) % 32 == 0 && (EVO_ATT_FRAG * m.ldp * 2) % 32 == 0 &&
          (EVO_ATT_FRAG * m.ldsf * 4) % 32 == 0 && (EVO_ATT_FRAG * m.ldacc * 4) % 32 == 0;
    ok &= m.warp_s % 32 == 0 && m.warp_p % 32 == 0 && m.warp_acc % 32 == 0;
    char what[160];
    snprintf(what, sizeof what, "%s, hd %d: %zu bytes of shared memory, regions aligned and apart", names[k], hd,
             m.total);
    report(ok, what);
}

/* ---- the tile walk, in fp32 ------------------------------------------------ */

typedef struct {
    size_t T;
    int H, KVH, hd, n_seg;
    int bf16; /* P and dS rounded to bf16 where the kernels store them */
    const int32_t *cu;
    const float *q, *k, *v, *dout, *out, *lse;
} problem;

static float as_stored(const problem *p, float x)
{
    if (p->bf16)
        evo_dtype_round(&x, EVO_BF16, 1);
    return x;
}

static size_t seg0_of(const problem *p, size_t t)
{
    size_t s0 = p->T, s1 = p->T;
    if (t < p->T)
        evo_segment_of(p->cu, p->n_seg, t, &s0, &s1);
    return s0;
}

static float dot(const float *a, const float *b, int n)
{
    float s = 0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static const float *qrow(const problem *p, const float *x, size_t t, int h)
{
    return x + (t * (size_t)p->H + (size_t)h) * (size_t)p->hd;
}

static const float *kvrow(const problem *p, const float *x, size_t s, int g)
{
    return x + (s * (size_t)p->KVH + (size_t)g) * (size_t)p->hd;
}

/* out and lse as the forward kernel walks them */
static void tiled_fwd(const problem *p, float *out, float *lse)
{
    const float scale = 1.0f / sqrtf((float)p->hd);
    for (size_t t0 = 0; t0 < p->T; t0 += EVO_ATT_TILE)
        for (int h = 0; h < p->H; h++) {
            const int g = h / (p->H / p->KVH);
            const size_t kend = evo_att_keys_end(t0, p->T);
            for (size_t t = t0; t < t0 + EVO_ATT_TILE && t < p->T; t++) {
                float m = -INFINITY, l = 0, *o = out + (t * (size_t)p->H + (size_t)h) * (size_t)p->hd;
                memset(o, 0, (size_t)p->hd * sizeof *o);
                for (size_t k0 = seg0_of(p, t0); k0 < kend; k0 += EVO_ATT_TILE) {
                    float sc[EVO_ATT_TILE], mx = -INFINITY;
                    for (int c = 0; c < EVO_ATT_TILE; c++) {
                        size_t s = k0 + (size_t)c;
                        sc[c] = evo_att_visible(t, s, seg0_of(p, t), p->T)
                                    ? dot(qrow(p, p->q, t, h), kvrow(p, p->k, s, g), p->hd) * scale
                                    : -INFINITY;
                        mx = fmaxf(mx, sc[c]);
                    }
                    float m_new = fmaxf(m, mx), corr = m_new == -INFINITY ? 1.0f : expf(m - m_new), psum = 0;
                    for (int d = 0; d < p->hd; d++)
                        o[d] *= corr;
                    for (int c = 0; c < EVO_ATT_TILE; c++) {
                        float pc = sc[c] == -INFINITY ? 0.0f : expf(sc[c] - m_new), p16 = as_stored(p, pc);
                        psum += pc;
                        for (int d = 0; pc != 0 && d < p->hd; d++)
                            o[d] += p16 * kvrow(p, p->v, k0 + (size_t)c, g)[d];
                    }
                    l = l * corr + psum;
                    m = m_new;
                }
                for (int d = 0; d < p->hd; d++)
                    o[d] /= l;
                lse[t * (size_t)p->H + (size_t)h] = m + logf(l);
            }
        }
}

static float P_of(const problem *p, size_t t, int h, size_t s, float scale)
{
    const int g = h / (p->H / p->KVH);
    return expf(dot(qrow(p, p->q, t, h), kvrow(p, p->k, s, g), p->hd) * scale - p->lse[t * (size_t)p->H + (size_t)h]);
}

static float dS_of(const problem *p, size_t t, int h, size_t s, float P)
{
    const int g = h / (p->H / p->KVH);
    float D = dot(qrow(p, p->dout, t, h), qrow(p, p->out, t, h), p->hd);
    return P * (dot(qrow(p, p->dout, t, h), kvrow(p, p->v, s, g), p->hd) - D);
}

/* dq as the dq kernel walks the keys, dk and dv as the dk/dv kernel walks
 * the queries */
static void tiled_bwd(const problem *p, float *dq, float *dk, float *dv)
{
    const float scale = 1.0f / sqrtf((float)p->hd);
    const int group = p->H / p->KVH;
    for (size_t t0 = 0; t0 < p->T; t0 += EVO_ATT_TILE)
        for (int h = 0; h < p->H; h++) {
            const int g = h / group;
            for (size_t t = t0; t < t0 + EVO_ATT_TILE && t < p->T; t++) {
                float *o = dq + (t * (size_t)p->H + (size_t)h) * (size_t)p->hd;
                memset(o, 0, (size_t)p->hd * sizeof *o);
                for (size_t k0 = seg0_of(p, t0); k0 < evo_att_keys_end(t0, p->T); k0 += EVO_ATT_TILE)
                    for (size_t s = k0; s < k0 + EVO_ATT_TILE; s++)
                        if (evo_att_visible(t, s, seg0_of(p, t), p->T)) {
                            float dS = as_stored(p, dS_of(p, t, h, s, P_of(p, t, h, s, scale)));
                            for (int d = 0; d < p->hd; d++)
                                o[d] += dS * kvrow(p, p->k, s, g)[d] * scale;
                        }
            }
        }
    for (size_t s0 = 0; s0 < p->T; s0 += EVO_ATT_TILE)
        for (int g = 0; g < p->KVH; g++) {
            const size_t qend = evo_att_queries_end(p->cu, p->n_seg, s0, p->T);
            for (size_t s = s0; s < s0 + EVO_ATT_TILE && s < p->T; s++) {
                float *gk = dk + (s * (size_t)p->KVH + (size_t)g) * (size_t)p->hd;
                float *gv = dv + (s * (size_t)p->KVH + (size_t)g) * (size_t)p->hd;
                memset(gk, 0, (size_t)p->hd * sizeof *gk);
                memset(gv, 0, (size_t)p->hd * sizeof *gv);
                for (int h = g * group; h < (g + 1) * group; h++)
                    for (size_t q0 = s0; q0 < qend; q0 += EVO_ATT_TILE)
                        for (size_t t = q0; t < q0 + EVO_ATT_TILE; t++)
                            if (evo_att_visible(t, s, seg0_of(p, t), p->T)) {
                                float P = P_of(p, t, h, s, scale), dS = as_stored(p, dS_of(p, t, h, s, P));
                                P = as_stored(p, P);
                                for (int d = 0; d < p->hd; d++) {
                                    gk[d] += dS * qrow(p, p->q, t, h)[d] * scale;
                                    gv[d] += P * qrow(p, p->dout, t, h)[d];
                                }
                            }
            }
        }
}

static uint64_t rng = 0x7ea5;
static float uniform(float lo, float hi)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng >> 40) / 16777216.0);
}

static float *randoms(size_t n, float lo, float hi)
{
    float *x = evo_malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = uniform(lo, hi);
    return x;
}

static double rel_l2(const float *a, const float *b, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / (r > 0 ? r : 1));
}

static void check_walk(const char *name, int H, int KVH, int hd, const int *lens, int bf16)
{
    int32_t cu[16] = {0};
    int n_seg = 0;
    for (; lens[n_seg]; n_seg++)
        cu[n_seg + 1] = cu[n_seg] + lens[n_seg];
    const size_t T = (size_t)cu[n_seg], nq = T * (size_t)H * (size_t)hd, nkv = T * (size_t)KVH * (size_t)hd;
    const evo_backend *be = evo_backend_cpu();
    float *q = randoms(nq, -1, 1), *k = randoms(nkv, -1, 1), *v = randoms(nkv, -1, 1), *dout = randoms(nq, -1, 1);
    float *out = evo_malloc(nq * sizeof *out), *lse = evo_malloc(T * (size_t)H * sizeof *lse);
    float *dq = evo_malloc(nq * sizeof *dq), *dk = evo_malloc(nkv * sizeof *dk), *dv = evo_malloc(nkv * sizeof *dv);
    float *scratch = evo_malloc(T * (size_t)H * sizeof *scratch);
    evo_cpu_attention_ref_fwd(be, (evo_dval *)out, lse, (evo_dval *)q, (evo_dval *)k, (evo_dval *)v, cu, n_seg, T,
                              H, KVH, hd);
    evo_cpu_attention_ref_bwd(be, (evo_dval *)dq, (evo_dval *)dk, (evo_dval *)dv, scratch, (evo_dval *)dout,
                              (evo_dval *)q, (evo_dval *)k, (evo_dval *)v, (evo_dval *)out, lse, cu, n_seg, T, H, KVH,
                              hd);
    float *t_out = evo_malloc(nq * sizeof *t_out), *t_lse = evo_malloc(T * (size_t)H * sizeof *t_lse);
    float *t_dq = evo_malloc(nq * sizeof *t_dq), *t_dk = evo_malloc(nkv * sizeof *t_dk);
    float *t_dv = evo_malloc(nkv * sizeof *t_dv);
    problem p = {.T = T, .H = H, .KVH = KVH, .hd = hd, .n_seg = n_seg, .bf16 = bf16, .cu = cu, .q = q, .k = k,
                 .v = v, .dout = dout, .out = out, .lse = lse};
    tiled_fwd(&p, t_out, t_lse);
    tiled_bwd(&p, t_dq, t_dk, t_dv);
    double e[5] = {rel_l2(t_out, out, nq), rel_l2(t_lse, lse, T * (size_t)H), rel_l2(t_dq, dq, nq),
                   rel_l2(t_dk, dk, nkv), rel_l2(t_dv, dv, nkv)};
    double worst = 0;
    for (int i = 0; i < 5; i++)
        worst = e[i] > worst ? e[i] : worst;
    char what[200];
    double tol = bf16 ? 1e-2 : 1e-5;
    snprintf(what, sizeof what,
             "%s (T %zu, %d segments, H %d, KVH %d, hd %d)%s: the tile walk within %g of the reference, worst "
             "relative L2 %.2e (out %.1e lse %.1e dq %.1e dk %.1e dv %.1e)",
             name, T, n_seg, H, KVH, hd, bf16 ? ", P and dS in bf16" : "", tol, worst, e[0], e[1], e[2], e[3], e[4]);
    report(worst < tol, what);
    free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv), free(scratch);
    free(t_out), free(t_lse), free(t_dq), free(t_dk), free(t_dv);
}

int main(void)
{
    evo_set_progname("attention-plan-check");
    struct {
        evo_dtype dt;
        int hd, want;
    } shapes[] = {{EVO_BF16, 64, 1}, {EVO_BF16, 128, 1}, {EVO_F16, 128, 1}, {EVO_F32, 128, 0},
                  {EVO_BF16, 96, 0}, {EVO_BF16, 256, 0}, {EVO_F16, 32, 0},  {EVO_BF16, 0, 0}};
    int ok = 1;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        ok &= evo_att_tiled(shapes[i].dt, shapes[i].hd) == shapes[i].want;
    report(ok, "the tiled kernels take bf16/fp16 at head dims 64 and 128, the plain ones the rest");
    for (int hd = 64; hd <= EVO_ATT_MAX_HD; hd += 64)
        for (int k = EVO_ATT_FWD; k <= EVO_ATT_BWD_DKDV; k++)
            check_layout((evo_att_kernel)k, hd);
    report(evo_att_fits(64, EVO_ATT_MAX_SMEM) && evo_att_fits(128, EVO_ATT_MAX_SMEM) && evo_att_fits(128, 227 << 10) &&
               evo_att_fits(64, 99 << 10) && !evo_att_fits(128, 99 << 10),
           "fits: hd 64 and 128 in sm_80's 163 KiB and sm_90's 227 KiB, hd 64 only in sm_86's 99 KiB");
    /* segments across tile edges, one longer than two tiles, one of a
     * single token, a row ending mid-tile */
    static const int ragged[] = {37, 150, 1, 64, 29, 0}, one[] = {70, 0};
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        check_walk("GQA 4/2, ragged", 4, 2, 16, ragged, bf16);
        check_walk("MHA, ragged", 2, 2, 8, ragged, bf16);
        check_walk("MQA 3/1, one segment", 3, 1, 16, one, bf16);
    }
    return failures ? 1 : 0;
}
