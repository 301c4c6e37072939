/* gemm_plan.c - row-major Linear layers as column-major GEMMs (gemm_plan.h). */
#include "compute/gemm_plan.h"

/* A stored matrix used as op(X) of shape rows x cols: stored as is, or
 * transposed when trans. */
static void stored(uint64_t op_rows, uint64_t op_cols, int trans, uint64_t *rows, uint64_t *cols, uint64_t *ld)
{
    *rows = trans ? op_cols : op_rows;
    *cols = trans ? op_rows : op_cols;
    *ld = *rows;
}

evo_gemm_plan evo_gemm_plan_of(evo_gemm_kind kind, size_t T, size_t C, size_t OC)
{
    evo_gemm_plan p = {0};
    switch (kind) {
    case EVO_GEMM_FORWARD: /* out^T[OC,T] = (W[C,OC] col-major)^T . inp^T[C,T] */
        p.m = OC, p.n = T, p.k = C;
        p.a = EVO_GEMM_WEIGHT, p.trans_a = 1;
        p.b = EVO_GEMM_INP, p.trans_b = 0;
        break;
    case EVO_GEMM_DINP: /* dinp^T[C,T] = W[C,OC] . dout^T[OC,T] */
        p.m = C, p.n = T, p.k = OC;
        p.a = EVO_GEMM_WEIGHT, p.trans_a = 0;
        p.b = EVO_GEMM_DOUT, p.trans_b = 0;
        break;
    case EVO_GEMM_DWEIGHT: /* dW^T[C,OC] = inp^T[C,T] . (dout^T[OC,T])^T */
        p.m = C, p.n = OC, p.k = T;
        p.a = EVO_GEMM_INP, p.trans_a = 0;
        p.b = EVO_GEMM_DOUT, p.trans_b = 1;
        break;
    }
    stored(p.m, p.k, p.trans_a, &p.a_rows, &p.a_cols, &p.lda);
    stored(p.k, p.n, p.trans_b, &p.b_rows, &p.b_cols, &p.ldb);
    stored(p.m, p.n, 0, &p.d_rows, &p.d_cols, &p.ldd);
    return p;
}

unsigned evo_gemm_alignment(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    unsigned align = 256;
    while (align > 1 && a % align)
        align /= 2;
    return align;
}

size_t evo_gemm_workspace_bytes(int cc_major)
{
    return (size_t)(cc_major >= 9 ? 32 : 4) << 20;
}
