/* backend_emulated.c - the CPU backend computing "in" bf16 or fp16: each op
 * runs the CPU's fp32 code, then rounds what it wrote to an activation or
 * an activation's gradient to the dtype, where a GPU kernel that reads the
 * dtype, computes in fp32 registers and stores the dtype rounds (backend.h).
 * The values then are those of a GPU computing in the dtype, up to the
 * order of fp32 sums: a bf16 x bf16 product is exact in fp32, so an sgemm
 * over rounded operands is a bf16 GEMM accumulating in fp32. Storage stays
 * fp32, which only the host sees (host_memory 1).
 *
 * What is not rounded, as the contract says: parameter gradients (dW, db,
 * dw, dtable), the saved statistics (rstd, lse), the losses and the
 * cross-entropy's parts, the loss-scaled dloss (fill), the optimizer's
 * state and master weights. The tensor-parallel sums of partial results
 * are taken in fp32 and not rounded (a bf16 all-reduce would round each
 * partial sum): a known difference on more than one tensor rank.
 *
 * Rounding the rows of the working copy the embedding reads would change
 * nothing, so embedding_fwd is the CPU's. evo-train --backend emulated;
 * tests/t0330-mixed.sh. */
#include "base/dtype.h"
#include "compute/backend.h"

static const evo_backend *cpu;

static void round_out(const evo_backend *be, float *x, size_t n)
{
    if (x)
        evo_dtype_round(x, be->dtype, n);
}

static void emu_add(const evo_backend *be, float *dst, const float *src, size_t n)
{
    cpu->add(be, dst, src, n);
    round_out(be, dst, n);
}

static void emu_working_copy(const evo_backend *be, float *dst, const float *src, size_t n)
{
    cpu->working_copy(be, dst, src, n);
    round_out(be, dst, n);
}

static void emu_matmul_fwd(const evo_backend *be, float *out, const float *inp, const float *W, const float *b,
                           size_t T, size_t C, size_t OC)
{
    cpu->matmul_fwd(be, out, inp, W, b, T, C, OC);
    round_out(be, out, T * OC);
}

static void emu_matmul_bwd(const evo_backend *be, float *dinp, float *dW, float *db, const float *dout,
                           const float *inp, const float *W, size_t T, size_t C, size_t OC, evo_grad_mode mode)
{
    cpu->matmul_bwd(be, dinp, dW, db, dout, inp, W, T, C, OC, mode);
    round_out(be, dinp, T * C);
}

static void emu_rmsnorm_fwd(const evo_backend *be, float *out, float *rstd, const float *inp, const float *w,
                            float eps, size_t T, size_t C)
{
    cpu->rmsnorm_fwd(be, out, rstd, inp, w, eps, T, C);
    round_out(be, out, T * C);
}

static void emu_rmsnorm_bwd(const evo_backend *be, float *dinp, float *dw, const float *dout, const float *inp,
                            const float *w, const float *rstd, size_t T, size_t C, evo_grad_mode mode)
{
    cpu->rmsnorm_bwd(be, dinp, dw, dout, inp, w, rstd, T, C, mode);
    round_out(be, dinp, T * C);
}

static void emu_rope_fwd(const evo_backend *be, float *out, const float *inp, const int32_t *pos, size_t T, int H,
                         int hd, float base)
{
    cpu->rope_fwd(be, out, inp, pos, T, H, hd, base);
    round_out(be, out, T * (size_t)H * (size_t)hd);
}

static void emu_rope_bwd(const evo_backend *be, float *dinp, const float *dout, const int32_t *pos, size_t T, int H,
                         int hd, float base)
{
    cpu->rope_bwd(be, dinp, dout, pos, T, H, hd, base);
    round_out(be, dinp, T * (size_t)H * (size_t)hd);
}

static void emu_attention_fwd(const evo_backend *be, float *out, float *lse, const float *q, const float *k,
                              const float *v, const int32_t *cu, int n_seg, size_t T, int H, int KVH, int hd)
{
    cpu->attention_fwd(be, out, lse, q, k, v, cu, n_seg, T, H, KVH, hd);
    round_out(be, out, T * (size_t)H * (size_t)hd);
}

static void emu_attention_bwd(const evo_backend *be, float *dq, float *dk, float *dv, float *scratch,
                              const float *dout, const float *q, const float *k, const float *v, const float *out,
                              const float *lse, const int32_t *cu, int n_seg, size_t T, int H, int KVH, int hd)
{
    cpu->attention_bwd(be, dq, dk, dv, scratch, dout, q, k, v, out, lse, cu, n_seg, T, H, KVH, hd);
    round_out(be, dq, T * (size_t)H * (size_t)hd);
    round_out(be, dk, T * (size_t)KVH * (size_t)hd);
    round_out(be, dv, T * (size_t)KVH * (size_t)hd);
}

static void emu_swiglu_fwd(const evo_backend *be, float *out, const float *gate, const float *up, size_t n)
{
    cpu->swiglu_fwd(be, out, gate, up, n);
    round_out(be, out, n);
}

static void emu_swiglu_bwd(const evo_backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                           const float *up, size_t n)
{
    cpu->swiglu_bwd(be, dgate, dup, dout, gate, up, n);
    round_out(be, dgate, n);
    round_out(be, dup, n);
}

static void emu_crossentropy_bwd(const evo_backend *be, float *dlogits, const float *dloss, const float *logits,
                                 const float *lse, const int32_t *labels, float eps, size_t T, size_t V, size_t v0,
                                 size_t Vl)
{
    cpu->crossentropy_bwd(be, dlogits, dloss, logits, lse, labels, eps, T, V, v0, Vl);
    round_out(be, dlogits, T * Vl);
}

static evo_backend emulated[3]; /* by evo_dtype */

static void fill_table(evo_backend *e, evo_dtype dt, const char *name)
{
    *e = *cpu;
    e->name = name;
    e->dtype = dt;
    e->add = emu_add;
    e->working_copy = emu_working_copy;
    e->matmul_fwd = emu_matmul_fwd;
    e->matmul_bwd = emu_matmul_bwd;
    e->rmsnorm_fwd = emu_rmsnorm_fwd;
    e->rmsnorm_bwd = emu_rmsnorm_bwd;
    e->rope_fwd = emu_rope_fwd;
    e->rope_bwd = emu_rope_bwd;
    e->attention_fwd = emu_attention_fwd;
    e->attention_bwd = emu_attention_bwd;
    e->swiglu_fwd = emu_swiglu_fwd;
    e->swiglu_bwd = emu_swiglu_bwd;
    e->crossentropy_bwd = emu_crossentropy_bwd;
}

const evo_backend *evo_backend_emulated(evo_dtype dt)
{
    if (dt == EVO_F32)
        return evo_backend_cpu();
    if (!cpu) {
        cpu = evo_backend_cpu();
        fill_table(&emulated[EVO_BF16], EVO_BF16, "emulated bf16 (the CPU backend rounding to bf16)");
        fill_table(&emulated[EVO_F16], EVO_F16, "emulated fp16 (the CPU backend rounding to fp16)");
    }
    return &emulated[dt];
}
