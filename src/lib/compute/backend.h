/* backend.h - the compute layer of evo-train: every op the model and the
 * optimizer need, forward and backward, behind one table of function
 * pointers. The CPU backend (backend_cpu*.c) is the reference: loops that
 * read like the math, OpenMP over rows, OpenBLAS for the matmuls; its
 * attention is blocked over sgemm, with the plain per-token loops kept
 * beside it (backend_cpu_attention_ref.c) and checked against it. A CUDA
 * backend (src/lib/cuda/ and kernels/) is a second table with the same
 * contract, checked against it on a GPU by scripts/gpu-check.
 *
 * Contract shared by every op:
 * - Memory is the backend's: buffers come from alloc() and are opaque
 *   "device pointers". The host reaches them only through upload/download,
 *   and an op never reads a host pointer (scalars are passed by value).
 * - Every op computes in fp32 (matmuls accumulate in fp32). A backend has
 *   a compute dtype (`dtype`, from model.dtype): the activations, their
 *   gradients and the working copy of the weights the layers read are
 *   stored in it, as evo_dval buffers, every op rounding what it writes to
 *   them (to nearest even, dtype.h). The master weights, parameter
 *   gradients, optimizer state, saved statistics (rstd, lse), losses and
 *   the loss-scaled dloss are fp32 (float *) in every dtype. Parameter
 *   gradients stay fp32 as Megatron's main_grad does, where InternEvo keeps
 *   them in the dtype: tried in bf16 (git f9d8e68, reverted), they saved
 *   2 bytes a parameter but put the emulated bf16 loss of gpu-check's
 *   small model 2.3-3.3% from fp32's at its worst step (3 seeds), against
 *   1.5-1.9% with fp32 gradients, past the 2% the GPU must meet. The CPU
 *   backend computes and stores fp32 (dtype fp32) and is the reference; the
 *   emulated one (backend_emulated.c) stores bf16 or fp16 and computes each
 *   op with the CPU's fp32 code: mixed precision's numerics and storage on
 *   the CPU, what a GPU computing in the dtype gets.
 * - A micro-batch is one packed row of T tokens (the batch dimension folded
 *   into T); document boundaries are given by cu_seqlens, positions restart
 *   in every segment (InternEvo's `indexes`).
 * - Tensors are row-major and contiguous: x[T,C] means x[t*C + c].
 * - Gradients of parameters ACCUMULATE (+=), so micro-batches add up into
 *   one step's gradient; gradients of activations are OVERWRITTEN (=), and
 *   the caller adds residual branches itself.
 * - Results are deterministic for a fixed thread count: no reduction order
 *   depends on thread timing (no atomics, no OpenMP reduction clauses).
 *
 * Dimensions: T tokens, C channels, OC output channels, V vocabulary,
 * H query heads, KVH key/value heads, hd head dimension, n flat elements. */
#ifndef EVO_BACKEND_H
#define EVO_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/dtype.h"
#include "base/error.h"
#include "compute/op_constants.h" /* EVO_IGNORE_LABEL, EVO_SQNORM_CHUNKS */

/* What a backward op does with the input gradient it computes: overwrite
 * the buffer, or add to it. A tensor that feeds several ops (the residual
 * stream, the normed input of q, k and v) then gets its gradient summed in
 * place, with no temporary and no extra pass over it. */
typedef enum { EVO_OVERWRITE, EVO_ACCUMULATE } evo_grad_mode;

/* A buffer of values in a backend's compute dtype: activations, their
 * gradients, the working weights. Incomplete on purpose: such a buffer is
 * reached through evo_dval_at, whose step is the dtype's size, and mixing
 * one up with an fp32 buffer is a compile error. */
typedef struct evo_dval evo_dval;

typedef struct evo_backend evo_backend;
struct evo_backend {
    const char *name;
    /* 1: alloc() returns memory the host may read and write (the CPU
     * backend), so a comm may hand it to MPI as it is; 0: the host reaches
     * it only through this table (a GPU's memory), and comms stage it. */
    int host_memory;
    /* The compute dtype, what an evo_dval holds (above). */
    evo_dtype dtype;

    /* ---- memory ---------------------------------------------------------
     * alloc never returns NULL (out of memory is fatal, as everywhere in
     * evo); its memory is uninitialised. fill writes n fp32 copies of value.
     * add adds src to dst over n values in the dtype, add_f32 over n fp32
     * ones (gradients summed outside the ops: ZeRO's shards, optim.c).
     * copy is device to device; upload/download cross to and from the host.
     * cast converts n elements with evo_dtype_cast's rounding (dtype.h). */
    void *(*alloc)(const evo_backend *be, size_t bytes);
    /* Waits until every op called so far has run (nothing to wait for
     * where ops return done, as on the CPU): for timing one op. */
    void (*finish)(const evo_backend *be);
    void (*free)(const evo_backend *be, void *p);
    void (*upload)(const evo_backend *be, void *dst, const void *host_src, size_t bytes);
    void (*download)(const evo_backend *be, void *host_dst, const void *src, size_t bytes);
    void (*fill)(const evo_backend *be, float *dst, float value, size_t n);
    void (*add)(const evo_backend *be, evo_dval *dst, const evo_dval *src, size_t n);
    void (*add_f32)(const evo_backend *be, float *dst, const float *src, size_t n);
    void (*copy)(const evo_backend *be, void *dst, const void *src, size_t bytes);
    void (*cast)(const evo_backend *be, void *dst, evo_dtype dst_dt, const void *src,
                 evo_dtype src_dt, size_t n);

    /* ---- embedding ------------------------------------------------------
     * out[t,:] = table[ids[t],:], with 0 <= ids[t] < V (checked by the
     * caller when tokens are loaded). Backward scatters the rows back:
     * dtable[ids[t],:] += dout[t,:]; repeated ids add up in token order. */
    void (*embedding_fwd)(const evo_backend *be, evo_dval *out, const int32_t *ids,
                          const evo_dval *table, size_t T, size_t C);
    void (*embedding_bwd)(const evo_backend *be, float *dtable, const int32_t *ids,
                          const evo_dval *dout, size_t T, size_t C);

    /* ---- matmul (nn.Linear) ---------------------------------------------
     * out[T,OC] = inp[T,C] . W[OC,C]^T + b[OC]     (bias may be NULL)
     * Backward, from dout = dL/dout:
     *   dinp[T,C] (+)= dout[T,OC] . W[OC,C]        (see evo_grad_mode)
     *   dW[OC,C]   += dout[T,OC]^T . inp[T,C]
     *   db[OC]     += sum_t dout[t,:]
     * Any of dinp, dW, db may be NULL to skip it. */
    void (*matmul_fwd)(const evo_backend *be, evo_dval *out, const evo_dval *inp, const evo_dval *W,
                       const evo_dval *b, size_t T, size_t C, size_t OC);
    void (*matmul_bwd)(const evo_backend *be, evo_dval *dinp, float *dW, float *db,
                       const evo_dval *dout, const evo_dval *inp, const evo_dval *W, size_t T,
                       size_t C, size_t OC, evo_grad_mode dinp_mode);

    /* ---- RMSNorm --------------------------------------------------------
     * rstd[t] = 1 / sqrt(mean_c x[t,c]^2 + eps);  out[t,c] = w[c] x[t,c] rstd[t]
     * rstd [T] is saved for the backward. With xh = x rstd and g = dout w:
     *   dinp[t,c] (+)= rstd[t] (g[t,c] - xh[t,c] mean_c'(g[t,c'] xh[t,c']))
     *   dw[c]     += sum_t dout[t,c] xh[t,c] */
    void (*rmsnorm_fwd)(const evo_backend *be, evo_dval *out, float *rstd, const evo_dval *inp,
                        const evo_dval *w, float eps, size_t T, size_t C);
    void (*rmsnorm_bwd)(const evo_backend *be, evo_dval *dinp, float *dw, const evo_dval *dout,
                        const evo_dval *inp, const evo_dval *w, const float *rstd, size_t T, size_t C,
                        evo_grad_mode dinp_mode);

    /* ---- rotary position embedding (rotate-half: GPT-NeoX, HF LLaMA,
     * InternLM v1) over the full head dim of x[T,H,hd], hd even. For
     * i < hd/2, theta = pos[t] base^(-2i/hd), x1 = x[i], x2 = x[i+hd/2]:
     *   out[i]      = x1 cos(theta) - x2 sin(theta)
     *   out[i+hd/2] = x1 sin(theta) + x2 cos(theta)
     * A rotation, so the backward is the rotation by -theta:
     *   dx1 =  dy1 cos + dy2 sin,  dx2 = -dy1 sin + dy2 cos
     * out may equal inp (in place), and dinp may equal dout. */
    void (*rope_fwd)(const evo_backend *be, evo_dval *out, const evo_dval *inp, const int32_t *pos,
                     size_t T, int H, int hd, float base);
    void (*rope_bwd)(const evo_backend *be, evo_dval *dinp, const evo_dval *dout, const int32_t *pos,
                     size_t T, int H, int hd, float base);

    /* ---- causal attention over packed segments (flash-attn varlen) ------
     * q[T,H,hd], k,v[T,KVH,hd], segment i is tokens [cu[i], cu[i+1]),
     * cu[0] = 0, cu[n_seg] = T. Query head h reads kv head h / (H/KVH)
     * (GQA; KVH = H is MHA). For t in segment [s0, s1):
     *   S[t,s] = q[t,h].k[s,g] / sqrt(hd)           for s0 <= s <= t
     *   lse[t,h] = log sum_s exp S[t,s];   P[t,s] = exp(S[t,s] - lse[t,h])
     *   out[t,h] = sum_s P[t,s] v[s,g]
     * lse [T,H] is saved for the backward, which recomputes P from it:
     *   D[t,h]  = dout[t,h].out[t,h]  (= sum_s P dP)     -> scratch [T,H]
     *   dP[t,s] = dout[t,h].v[s,g];   dS = P (dP - D)
     *   dq[t,h] = sum_s dS k[s,g] / sqrt(hd)
     *   dk[s,g] = sum_{h in g, t>=s} dS q[t,h] / sqrt(hd)
     *   dv[s,g] = sum_{h in g, t>=s} P dout[t,h]
     * dq, dk, dv are overwritten; scratch is T*H floats of workspace. */
    void (*attention_fwd)(const evo_backend *be, evo_dval *out, float *lse, const evo_dval *q,
                          const evo_dval *k, const evo_dval *v, const int32_t *cu_seqlens, int n_seg,
                          size_t T, int H, int KVH, int hd);
    void (*attention_bwd)(const evo_backend *be, evo_dval *dq, evo_dval *dk, evo_dval *dv,
                          float *scratch, const evo_dval *dout, const evo_dval *q, const evo_dval *k,
                          const evo_dval *v, const evo_dval *out, const float *lse,
                          const int32_t *cu_seqlens, int n_seg, size_t T, int H, int KVH,
                          int hd);

    /* ---- SwiGLU ---------------------------------------------------------
     * out = silu(gate) up, silu(g) = g sigmoid(g), elementwise over n:
     *   dup = dout silu(g);  dgate = dout up sigmoid(g) (1 + g (1 - sigmoid(g))) */
    void (*swiglu_fwd)(const evo_backend *be, evo_dval *out, const evo_dval *gate, const evo_dval *up,
                       size_t n);
    void (*swiglu_bwd)(const evo_backend *be, evo_dval *dgate, evo_dval *dup, const evo_dval *dout,
                       const evo_dval *gate, const evo_dval *up, size_t n);

    /* ---- cross-entropy with label smoothing eps (PyTorch's) -------------
     * For a labelled token (y = labels[t] != EVO_IGNORE_LABEL), z = logits[t]:
     *   lse[t]    = log sum_v exp z_v
     *   losses[t] = (1-eps)(lse - z_y) + eps mean_v (lse - z_v)
     * and losses[t] = 0 for ignored tokens (the caller, which has the
     * labels, takes InternEvo's mean over the row's labelled ones). Backward, from a
     * per-token dloss[t] (ignored tokens get zero gradient):
     *   dlogits[t,v] = dloss[t] (softmax(z)_v - (1-eps)[v = y] - eps/V)
     * for v in [v0, v0+Vl) (below: a shard of the vocabulary).
     * dlogits may equal logits (the logits are not needed after it). */
    void (*crossentropy_fwd)(const evo_backend *be, float *losses, float *lse, const evo_dval *logits,
                             const int32_t *labels, float eps, size_t T, size_t V);
    void (*crossentropy_bwd)(const evo_backend *be, evo_dval *dlogits, const float *dloss,
                             const evo_dval *logits, const float *lse, const int32_t *labels,
                             float eps, size_t T, size_t V, size_t v0, size_t Vl);
    /* The same over a shard of the vocabulary (Megatron's vocab-parallel
     * cross-entropy, InternEvo's parallel_output): logits [T,Vl] hold the
     * columns [v0, v0+Vl) of the V. Forward gives each token's parts
     * (parts [3,T]; zeros for an ignored token):
     *   parts[t]      = log sum_{v in shard} exp z_v
     *   parts[T+t]    = z_y if y is in the shard, else 0
     *   parts[2T+t]   = sum_{v in shard} z_v
     * from which the caller, having every shard's, takes lse as the
     * log-sum-exp of the first parts, z_y and sum z as sums, and the loss
     *   lse - (1-eps) z_y - eps sum z / V.
     * The backward above takes that global lse, v0 and Vl: it writes the
     * shard's [T,Vl] columns of dlogits (v0 0, Vl V: the whole). */
    void (*crossentropy_shard_fwd)(const evo_backend *be, float *parts, const evo_dval *logits,
                                   const int32_t *labels, size_t T, size_t v0, size_t Vl);
    /* ---- strided copy ----------------------------------------------------
     * dst[r*dst_stride + c] = src[r*src_stride + c] for r < rows, c < cols
     * (dtype values): a block of columns in or out of a [rows, stride]
     * matrix. */
    void (*copy2d)(const evo_backend *be, evo_dval *dst, size_t dst_stride, const evo_dval *src,
                   size_t src_stride, size_t rows, size_t cols);

    /* ---- AdamW step (torch.optim.AdamW, decoupled weight decay) ---------
     * With g = grad_scale grad (unscaling and clipping folded into one
     * factor) and t >= 1 the step number:
     *   p  -= lr wd p
     *   m   = beta1 m + (1-beta1) g;     v = beta2 v + (1-beta2) g^2
     *   p  -= lr/(1-beta1^t) m / (sqrt(v)/sqrt(1-beta2^t) + eps)
     * over n flat elements (one call per buffer, or one over all of them
     * when parameters and state live in single arenas). work, unless
     * NULL, gets the working copy of the new p, rounded to the dtype (a
     * copy in fp32), in the same pass. */
    void (*adamw)(const evo_backend *be, float *p, evo_dval *work, const float *grad, float *m,
                  float *v, size_t n, float lr, float beta1, float beta2, float eps, float wd,
                  float grad_scale, int t);

    /* ---- squared L2 norm, for global gradient-norm clipping -------------
     * acc[0] += sum_i x[i]^2, summed in double into ONE double in device
     * memory, so the norm over all parameter buffers costs one download
     * per step rather than one host sync per buffer. In double the sum of
     * squared floats cannot overflow (FLT_MAX^2 * 2^64 < DBL_MAX), so the
     * result is non-finite exactly when some x[i] is inf or NaN: that is the
     * overflow test of the loss scaler. Every backend cuts x into the same
     * EVO_SQNORM_CHUNKS chunks, sums each and adds the chunk sums in order,
     * so the grouping of the sum depends on n only. */
    void (*sqnorm)(const evo_backend *be, double *acc, const float *x, size_t n);
};

/* Element i of a dtype buffer, and the bytes of n of its elements. */
static inline evo_dval *evo_dval_at(const evo_backend *be, const evo_dval *p, size_t i)
{
    return p ? (evo_dval *)((const char *)p + i * evo_dtype_size(be->dtype)) : NULL;
}

static inline size_t evo_dval_bytes(const evo_backend *be, size_t n) { return n * evo_dtype_size(be->dtype); }

/* The CPU backend (OpenMP threads: OMP_NUM_THREADS; OpenBLAS sgemm). */
const evo_backend *evo_backend_cpu(void);

/* The CPU backend with its memory unreadable by the host outside the
 * table's functions (backend_guarded.c): a test that nothing else touches
 * backend memory, as with a GPU's. */
const evo_backend *evo_backend_guarded(void);

/* The CPU backend rounding to dt wherever the contract says an op writes
 * dtype values (backend_emulated.c): bf16 or fp16 mixed precision's
 * numerics on the CPU, the reference for a GPU computing in them. fp32 is
 * the CPU backend, bit for bit. */
const evo_backend *evo_backend_emulated(evo_dtype dt);

/* inner with every op timed, each waited for (finish) so that its time is
 * its own: the run is slower by the waits (backend_profiled.c). One at a
 * time; evo_backend_profile_print tells what it measured. */
const evo_backend *evo_backend_profiled(const evo_backend *inner);
/* The profiled backend's ops, most time first: calls, seconds, share of
 * the ops' time, mean; one line each, every line starting with prefix. */
void evo_backend_profile_print(FILE *f, const char *prefix);

/* The CUDA backend (src/lib/cuda/, kernels/; built by `make CUDA=1`) on GPU
 * number device modulo the visible ones (the PMIx local rank picks it),
 * computing in dtype: bf16 or fp16 tensor-core GEMMs, or with fp32 fp32
 * GEMMs, on TF32 tensor cores with tf32. NULL, with the reason in e, when
 * the build has no CUDA or the machine no GPU: the caller then uses the
 * CPU backend. One GPU per process: later calls return the first one's
 * backend, or fail if they ask for another dtype or tf32. */
const evo_backend *evo_backend_cuda(int device, evo_dtype dtype, int tf32, evo_err *e);
/* 1 in a `make CUDA=1` build, EVO_CUDA_EMULATED in a `make CUDA=emu` one
 * (the CUDA backend on kernels/emu's CPU emulator, for tests), 0
 * otherwise. */
enum { EVO_CUDA_EMULATED = 2 };
extern const int evo_cuda_built;

#endif
