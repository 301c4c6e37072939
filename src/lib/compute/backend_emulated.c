/* backend_emulated.c - the CPU backend computing "in" bf16 or fp16: every
 * evo_dval buffer (activations, their gradients, the working weights) is
 * stored in the dtype, as on a GPU, and each op reads its dtype inputs into
 * fp32, runs the CPU's fp32 code and stores what it writes rounded to the
 * dtype, where a GPU kernel that loads the dtype, computes in fp32
 * registers and stores the dtype rounds (backend.h). The values then are
 * those of a GPU computing in the dtype, up to the order of fp32 sums: a
 * bf16 x bf16 product is exact in fp32, so an sgemm over widened operands
 * is a bf16 GEMM accumulating in fp32. An op that adds into its output
 * (EVO_ACCUMULATE) reads the old value too and rounds once, as cuBLAS's
 * beta = 1 does.
 *
 * What stays fp32, as the contract says: parameter gradients (dW, db, dw,
 * dtable), the saved statistics (rstd, lse), the losses and the
 * cross-entropy's parts, the loss-scaled dloss (fill), the optimizer's
 * state and master weights. Memory is the host's (host_memory 1), so the
 * comms sum and send the dtype itself, as NCCL would.
 *
 * The fp32 copies live in scratch buffers that grow to the largest op and
 * stay: after the first step a step allocates nothing. A reference, not a
 * fast path: evo-train --backend emulated; tests/t0330-mixed.sh. */
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "base/error.h"
#include "compute/backend.h"

static const evo_backend *cpu;

/* The CPU backend's dtype is fp32: its evo_dval buffers are floats. */
#define DV(p) ((evo_dval *)(p))

enum { SCRATCH = 8 }; /* the most dtype operands of one op: attention_bwd's */
static struct {
    float *p;
    size_t cap;
} scratch[SCRATCH];

/* Scratch buffer i, room for n floats (its old contents undefined). */
static float *room(int i, size_t n)
{
    if (scratch[i].cap < n) {
        free(scratch[i].p);
        scratch[i].p = evo_malloc(n * sizeof(float));
        scratch[i].cap = n;
    }
    return scratch[i].p;
}

/* n dtype values of x in fp32, in scratch buffer i; NULL for NULL. */
static float *wide(const evo_backend *be, int i, const evo_dval *x, size_t n)
{
    if (!x)
        return NULL;
    float *w = room(i, n);
    evo_dtype_cast(w, EVO_F32, x, be->dtype, n);
    return w;
}

/* dst = src rounded to the dtype, n values (nothing for a NULL dst). */
static void narrow(const evo_backend *be, evo_dval *dst, const float *src, size_t n)
{
    if (dst)
        evo_dtype_cast(dst, be->dtype, src, EVO_F32, n);
}

/* An output the op overwrites (scratch only) or adds into (its values). */
static float *output(const evo_backend *be, int i, const evo_dval *x, size_t n, evo_grad_mode mode)
{
    if (!x)
        return NULL;
    return mode == EVO_ACCUMULATE ? wide(be, i, x, n) : room(i, n);
}

static void emu_add(const evo_backend *be, evo_dval *dst, const evo_dval *src, size_t n)
{
    float *d = wide(be, 0, dst, n);
    cpu->add(cpu, DV(d), DV(wide(be, 1, src, n)), n);
    narrow(be, dst, d, n);
}

/* Rows of whole dtype values: a byte copy, nothing to round. */
static void emu_copy2d(const evo_backend *be, evo_dval *dst, size_t dst_stride, const evo_dval *src,
                       size_t src_stride, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++)
        memcpy(evo_dval_at(be, dst, r * dst_stride), evo_dval_at(be, src, r * src_stride), evo_dval_bytes(be, cols));
}

static void emu_embedding_fwd(const evo_backend *be, evo_dval *out, const int32_t *ids, const evo_dval *table,
                              size_t T, size_t C)
{
    for (size_t t = 0; t < T; t++)
        memcpy(evo_dval_at(be, out, t * C), evo_dval_at(be, table, (size_t)ids[t] * C), evo_dval_bytes(be, C));
}

static void emu_embedding_bwd(const evo_backend *be, float *dtable, const int32_t *ids, const evo_dval *dout,
                              size_t T, size_t C)
{
    cpu->embedding_bwd(cpu, dtable, ids, DV(wide(be, 0, dout, T * C)), T, C);
}

static void emu_matmul_fwd(const evo_backend *be, evo_dval *out, const evo_dval *inp, const evo_dval *W,
                           const evo_dval *b, size_t T, size_t C, size_t OC)
{
    float *o = room(0, T * OC);
    cpu->matmul_fwd(cpu, DV(o), DV(wide(be, 1, inp, T * C)), DV(wide(be, 2, W, OC * C)), DV(wide(be, 3, b, OC)), T,
                    C, OC);
    narrow(be, out, o, T * OC);
}

static void emu_matmul_bwd(const evo_backend *be, evo_dval *dinp, float *dW, float *db, const evo_dval *dout,
                           const evo_dval *inp, const evo_dval *W, size_t T, size_t C, size_t OC, evo_grad_mode mode)
{
    float *di = output(be, 0, dinp, T * C, mode);
    cpu->matmul_bwd(cpu, DV(di), dW, db, DV(wide(be, 1, dout, T * OC)), DV(wide(be, 2, dW ? inp : NULL, T * C)),
                    DV(wide(be, 3, dinp ? W : NULL, OC * C)), T, C, OC, mode);
    narrow(be, dinp, di, T * C);
}

static void emu_rmsnorm_fwd(const evo_backend *be, evo_dval *out, float *rstd, const evo_dval *inp,
                            const evo_dval *w, float eps, size_t T, size_t C)
{
    float *o = room(0, T * C);
    cpu->rmsnorm_fwd(cpu, DV(o), rstd, DV(wide(be, 1, inp, T * C)), DV(wide(be, 2, w, C)), eps, T, C);
    narrow(be, out, o, T * C);
}

static void emu_rmsnorm_bwd(const evo_backend *be, evo_dval *dinp, float *dw, const evo_dval *dout,
                            const evo_dval *inp, const evo_dval *w, const float *rstd, size_t T, size_t C,
                            evo_grad_mode mode)
{
    float *di = output(be, 0, dinp, T * C, mode);
    cpu->rmsnorm_bwd(cpu, DV(di), dw, DV(wide(be, 1, dout, T * C)), DV(wide(be, 2, inp, T * C)),
                     DV(wide(be, 3, w, C)), rstd, T, C, mode);
    narrow(be, dinp, di, T * C);
}

/* RoPE runs in place on the widened copy (out may be inp): op is the
 * CPU's forward or backward. */
typedef void rope_op(const evo_backend *, evo_dval *, const evo_dval *, const int32_t *, size_t, int, int, float);

static void rope(const evo_backend *be, rope_op *op, evo_dval *out, const evo_dval *inp, const int32_t *pos,
                 size_t T, int H, int hd, float base)
{
    size_t n = T * (size_t)H * (size_t)hd;
    float *x = wide(be, 0, inp, n);
    op(cpu, DV(x), DV(x), pos, T, H, hd, base);
    narrow(be, out, x, n);
}

static void emu_rope_fwd(const evo_backend *be, evo_dval *out, const evo_dval *inp, const int32_t *pos, size_t T,
                         int H, int hd, float base)
{
    rope(be, cpu->rope_fwd, out, inp, pos, T, H, hd, base);
}

static void emu_rope_bwd(const evo_backend *be, evo_dval *dinp, const evo_dval *dout, const int32_t *pos, size_t T,
                         int H, int hd, float base)
{
    rope(be, cpu->rope_bwd, dinp, dout, pos, T, H, hd, base);
}

static void emu_attention_fwd(const evo_backend *be, evo_dval *out, float *lse, const evo_dval *q,
                              const evo_dval *k, const evo_dval *v, const int32_t *cu, int n_seg, size_t T, int H,
                              int KVH, int hd)
{
    size_t nq = T * (size_t)H * (size_t)hd, nkv = T * (size_t)KVH * (size_t)hd;
    float *o = room(0, nq);
    cpu->attention_fwd(cpu, DV(o), lse, DV(wide(be, 1, q, nq)), DV(wide(be, 2, k, nkv)), DV(wide(be, 3, v, nkv)), cu,
                       n_seg, T, H, KVH, hd);
    narrow(be, out, o, nq);
}

static void emu_attention_bwd(const evo_backend *be, evo_dval *dq, evo_dval *dk, evo_dval *dv, float *scratch_,
                              const evo_dval *dout, const evo_dval *q, const evo_dval *k, const evo_dval *v,
                              const evo_dval *out, const float *lse, const int32_t *cu, int n_seg, size_t T, int H,
                              int KVH, int hd)
{
    size_t nq = T * (size_t)H * (size_t)hd, nkv = T * (size_t)KVH * (size_t)hd;
    float *gq = room(0, nq), *gk = room(1, nkv), *gv = room(2, nkv);
    cpu->attention_bwd(cpu, DV(gq), DV(gk), DV(gv), scratch_, DV(wide(be, 3, dout, nq)), DV(wide(be, 4, q, nq)),
                       DV(wide(be, 5, k, nkv)), DV(wide(be, 6, v, nkv)), DV(wide(be, 7, out, nq)), lse, cu, n_seg, T,
                       H, KVH, hd);
    narrow(be, dq, gq, nq);
    narrow(be, dk, gk, nkv);
    narrow(be, dv, gv, nkv);
}

static void emu_swiglu_fwd(const evo_backend *be, evo_dval *out, const evo_dval *gate, const evo_dval *up, size_t n)
{
    float *o = room(0, n);
    cpu->swiglu_fwd(cpu, DV(o), DV(wide(be, 1, gate, n)), DV(wide(be, 2, up, n)), n);
    narrow(be, out, o, n);
}

static void emu_swiglu_bwd(const evo_backend *be, evo_dval *dgate, evo_dval *dup, const evo_dval *dout,
                           const evo_dval *gate, const evo_dval *up, size_t n)
{
    float *dg = room(0, n), *du = room(1, n);
    cpu->swiglu_bwd(cpu, DV(dg), DV(du), DV(wide(be, 2, dout, n)), DV(wide(be, 3, gate, n)), DV(wide(be, 4, up, n)),
                    n);
    narrow(be, dgate, dg, n);
    narrow(be, dup, du, n);
}

static void emu_crossentropy_fwd(const evo_backend *be, float *losses, float *lse, const evo_dval *logits,
                                 const int32_t *labels, float eps, size_t T, size_t V)
{
    cpu->crossentropy_fwd(cpu, losses, lse, DV(wide(be, 0, logits, T * V)), labels, eps, T, V);
}

static void emu_crossentropy_shard_fwd(const evo_backend *be, float *parts, const evo_dval *logits,
                                       const int32_t *labels, size_t T, size_t v0, size_t Vl)
{
    cpu->crossentropy_shard_fwd(cpu, parts, DV(wide(be, 0, logits, T * Vl)), labels, T, v0, Vl);
}

/* In place on the widened logits (dlogits may be logits). */
static void emu_crossentropy_bwd(const evo_backend *be, evo_dval *dlogits, const float *dloss,
                                 const evo_dval *logits, const float *lse, const int32_t *labels, float eps, size_t T,
                                 size_t V, size_t v0, size_t Vl)
{
    float *z = wide(be, 0, logits, T * Vl);
    cpu->crossentropy_bwd(cpu, DV(z), dloss, DV(z), lse, labels, eps, T, V, v0, Vl);
    narrow(be, dlogits, z, T * Vl);
}

/* The CPU's step on the fp32 masters, then their working copy rounded. */
static void emu_adamw(const evo_backend *be, float *p, evo_dval *work, const float *grad, float *m, float *v,
                      size_t n, float lr, float beta1, float beta2, float eps, float wd, float grad_scale, int t)
{
    cpu->adamw(cpu, p, NULL, grad, m, v, n, lr, beta1, beta2, eps, wd, grad_scale, t);
    narrow(be, work, p, n);
}

static evo_backend emulated[3]; /* by evo_dtype */

static void fill_table(evo_backend *e, evo_dtype dt, const char *name)
{
    *e = *cpu;
    e->name = name;
    e->dtype = dt;
    e->add = emu_add;
    e->copy2d = emu_copy2d;
    e->embedding_fwd = emu_embedding_fwd;
    e->embedding_bwd = emu_embedding_bwd;
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
    e->crossentropy_fwd = emu_crossentropy_fwd;
    e->crossentropy_bwd = emu_crossentropy_bwd;
    e->crossentropy_shard_fwd = emu_crossentropy_shard_fwd;
    e->adamw = emu_adamw;
}

const evo_backend *evo_backend_emulated(evo_dtype dt)
{
    if (dt == EVO_F32)
        return evo_backend_cpu();
    if (!cpu) {
        cpu = evo_backend_cpu();
        fill_table(&emulated[EVO_BF16], EVO_BF16, "emulated bf16 (bf16 storage, the CPU's fp32 ops)");
        fill_table(&emulated[EVO_F16], EVO_F16, "emulated fp16 (fp16 storage, the CPU's fp32 ops)");
    }
    return &emulated[dt];
}
