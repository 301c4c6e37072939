/* gemm_plan.h - the three GEMMs of a row-major nn.Linear (backend.h's
 * matmul) as the column-major GEMMs cuBLAS(Lt) runs. Host logic only, so
 * the CPU build tests it (tests/c/gemm-plan-check evaluates each plan with
 * a plain column-major GEMM against the CPU backend's matmul).
 *
 * A row-major [R, C] array is the same memory as a column-major [C, R]
 * matrix with leading dimension C, so no operand is ever copied:
 *   forward  out^T[OC,T]  = W^T . inp^T     A = W (transposed), B = inp
 *   dinp     dinp^T[C,T]  = W . dout^T      A = W, B = dout
 *   dW       dW^T[C,OC]  += inp^T . dout    A = inp, B = dout (transposed)
 * D = op(A)[m,k] . op(B)[k,n] (+ beta D). */
#ifndef EVO_GEMM_PLAN_H
#define EVO_GEMM_PLAN_H

#include <stddef.h>
#include <stdint.h>

typedef enum { EVO_GEMM_FORWARD, EVO_GEMM_DINP, EVO_GEMM_DWEIGHT } evo_gemm_kind;

/* Which of the matmul's buffers an operand is. */
typedef enum { EVO_GEMM_INP, EVO_GEMM_WEIGHT, EVO_GEMM_DOUT } evo_gemm_operand;

typedef struct {
    uint64_t m, n, k;
    evo_gemm_operand a, b; /* D is the op's output: out, dinp or dW */
    int trans_a, trans_b;  /* op(X) = X^T */
    /* stored column-major shapes (rows x cols) and leading dimensions */
    uint64_t a_rows, a_cols, lda, b_rows, b_cols, ldb, d_rows, d_cols, ldd;
} evo_gemm_plan;

/* The plan of one GEMM of out[T,OC] = inp[T,C] . W[OC,C]^T. */
evo_gemm_plan evo_gemm_plan_of(evo_gemm_kind kind, size_t T, size_t C, size_t OC);

/* The largest power of two, at most 256, that divides the address: what
 * cuBLASLt's heuristic may assume of an operand (MIN_ALIGNMENT_*_BYTES; it
 * assumes 256 unless told, and tensors cut from one buffer are often less
 * aligned). */
unsigned evo_gemm_alignment(const void *p);

/* cuBLASLt's workspace for a GPU of compute capability major.minor: 32 MiB
 * on Hopper (sm_90) and later, 4 MiB before (cuBLAS's own recommendation). */
size_t evo_gemm_workspace_bytes(int cc_major);

#endif
