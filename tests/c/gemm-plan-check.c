/* gemm-plan-check - every plan of compute/gemm_plan.h (what the CUDA
 * backend hands cuBLASLt) run through a plain column-major GEMM, the
 * BLAS definition, against the CPU backend's matmul forward and backward
 * on the same buffers, for several shapes. Also checks that each operand's
 * stored shape covers exactly its buffer (rows x cols = its element count,
 * ld = rows). Prints one line per shape and kind; exit 1 on any mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "compute/backend.h"
#include "compute/gemm_plan.h"

/* D[m,n] = beta D + op(A) op(B), column-major, op(X) = X^T when trans. */
static void gemm_colmajor(const evo_gemm_plan *p, const float *A, const float *B, float *D, float beta)
{
    for (uint64_t j = 0; j < p->n; j++)
        for (uint64_t i = 0; i < p->m; i++) {
            double s = 0;
            for (uint64_t l = 0; l < p->k; l++) {
                float a = p->trans_a ? A[l + i * p->lda] : A[i + l * p->lda];
                float b = p->trans_b ? B[j + l * p->ldb] : B[l + j * p->ldb];
                s += (double)a * b;
            }
            D[i + j * p->ldd] = (float)(beta * D[i + j * p->ldd] + s);
        }
}

static float *randoms(size_t n, unsigned *seed)
{
    float *x = evo_malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)rand_r(seed) / RAND_MAX - 0.5f;
    return x;
}

static int failures;

static void compare(const char *what, size_t T, size_t C, size_t OC, const float *got, const float *want, size_t n)
{
    double err = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        err += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        ref += (double)want[i] * want[i];
    }
    double rel = sqrt(err / (ref > 0 ? ref : 1));
    int ok = rel < 1e-5;
    failures += !ok;
    printf("%s %s T=%zu C=%zu OC=%zu: relative L2 gap %.2e\n", ok ? "ok" : "FAIL", what, T, C, OC, rel);
}

static const float *operand(evo_gemm_operand o, const float *inp, const float *W, const float *dout)
{
    return o == EVO_GEMM_INP ? inp : o == EVO_GEMM_WEIGHT ? W : dout;
}

static size_t elements(evo_gemm_operand o, size_t T, size_t C, size_t OC)
{
    return o == EVO_GEMM_INP ? T * C : o == EVO_GEMM_WEIGHT ? OC * C : T * OC;
}

static void check_shape(size_t T, size_t C, size_t OC)
{
    unsigned seed = (unsigned)(T * 131 + C * 7 + OC);
    const evo_backend *be = evo_backend_cpu();
    float *inp = randoms(T * C, &seed), *W = randoms(OC * C, &seed), *dout = randoms(T * OC, &seed);
    float *dinp0 = randoms(T * C, &seed), *dW0 = randoms(OC * C, &seed);
    float *want = evo_malloc((T * C + OC * C + T * OC) * sizeof *want), *got = evo_malloc((T * C + OC * C + T * OC) * sizeof *got);
    static const char *names[] = {"forward", "dinp", "dweight"};
    for (int kind = EVO_GEMM_FORWARD; kind <= EVO_GEMM_DWEIGHT; kind++) {
        evo_gemm_plan p = evo_gemm_plan_of((evo_gemm_kind)kind, T, C, OC);
        size_t nd = kind == EVO_GEMM_FORWARD ? T * OC : kind == EVO_GEMM_DINP ? T * C : OC * C;
        int shapes_ok = p.a_rows * p.a_cols == elements(p.a, T, C, OC) &&
                        p.b_rows * p.b_cols == elements(p.b, T, C, OC) && p.d_rows * p.d_cols == nd &&
                        p.lda == p.a_rows && p.ldb == p.b_rows && p.ldd == p.d_rows &&
                        p.m == (p.trans_a ? p.a_cols : p.a_rows) && p.k == (p.trans_a ? p.a_rows : p.a_cols);
        if (!shapes_ok) {
            failures++;
            printf("FAIL %s T=%zu C=%zu OC=%zu: stored shapes do not cover the buffers\n", names[kind], T, C, OC);
        }
        /* The GEMM into D, and the backend's op into the same starting values. */
        float beta = kind == EVO_GEMM_FORWARD ? 0.0f : 1.0f;
        const float *start = kind == EVO_GEMM_DINP ? dinp0 : dW0;
        if (kind != EVO_GEMM_FORWARD) {
            memcpy(got, start, nd * sizeof *got);
            memcpy(want, start, nd * sizeof *want);
        }
        gemm_colmajor(&p, operand(p.a, inp, W, dout), operand(p.b, inp, W, dout), got, beta);
        /* the CPU backend's dtype values are floats */
        const evo_dval *dv_inp = (const evo_dval *)inp, *dv_W = (const evo_dval *)W, *dv_dout = (const evo_dval *)dout;
        if (kind == EVO_GEMM_FORWARD)
            be->matmul_fwd(be, (evo_dval *)want, dv_inp, dv_W, NULL, T, C, OC);
        else if (kind == EVO_GEMM_DINP)
            be->matmul_bwd(be, (evo_dval *)want, NULL, NULL, dv_dout, dv_inp, dv_W, T, C, OC, EVO_ACCUMULATE);
        else
            be->matmul_bwd(be, NULL, want, NULL, dv_dout, dv_inp, dv_W, T, C, OC, EVO_OVERWRITE);
        compare(names[kind], T, C, OC, got, want, nd);
    }
    free(inp), free(W), free(dout), free(dinp0), free(dW0), free(want), free(got);
}

int main(void)
{
    static const size_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {16, 64, 48}, {33, 40, 96}, {128, 32, 17}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_shape(shapes[i][0], shapes[i][1], shapes[i][2]);
    return failures ? 1 : 0;
}
