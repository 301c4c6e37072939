/* kernels.h - the CUDA kernels of the GPU backend, as C functions that
 * launch them on a stream. The backend's host side (src/lib/cuda/) calls
 * these; the math of every op is in src/lib/compute/backend.h, and the CPU
 * backend beside it (backend_cpu*.c) is the reference each kernel is
 * checked against (scripts/gpu-check).
 *
 * Every launcher returns the launch's error (cudaGetLastError), so a bad
 * configuration is reported where it happened. No kernel uses atomics or
 * a reduction whose order depends on scheduling: the same inputs give the
 * same bits on every run, as on the CPU.
 *
 * First versions, plain and obviously correct (one warp per token and head
 * in attention); the fast ones (the tensor-core attention, the sums over
 * tokens in chunks) are checked against them and the CPU backend. */
#ifndef EVO_KERNELS_H
#define EVO_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "compute/op_constants.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest head dimension the attention kernels take (registers per
 * lane: hd / 32 of q and of the output). */
enum { EVO_K_MAX_HEAD_DIM = 256 };

/* Activations, their gradients and the working weights (backend.h's
 * evo_dval) are `void *` of the dtype dt (fp32, bf16 or fp16): each kernel
 * is a template over that storage type, reads it into fp32 registers,
 * computes in fp32 and stores rounded to nearest even (dtype_bits.h's
 * rounding, the CPU's). Everything typed float is fp32 in every dtype:
 * parameter gradients, rstd, lse, losses, the optimizer's buffers. */

/* elementwise.cu */
cudaError_t evo_k_fill(cudaStream_t s, float *dst, float value, size_t n);
cudaError_t evo_k_add(cudaStream_t s, evo_dtype dt, void *dst, const void *src, size_t n);
cudaError_t evo_k_cast(cudaStream_t s, void *dst, evo_dtype dst_dt, const void *src, evo_dtype src_dt, size_t n);
cudaError_t evo_k_embedding_fwd(cudaStream_t s, evo_dtype dt, void *out, const int32_t *ids, const void *table,
                                size_t T, size_t C);
/* chain: 2 T int32 of workspace */
cudaError_t evo_k_embedding_bwd(cudaStream_t s, evo_dtype dt, float *dtable, const int32_t *ids, int32_t *chain,
                                const void *dout, size_t T, size_t C);
/* acc[c] += sum_t x[t,c]: the bias gradient, in a fixed grouping of the
 * tokens (common.cuh's sum_columns), partial holding
 * evo_k_column_partials(T, C) floats of workspace */
cudaError_t evo_k_column_sum(cudaStream_t s, evo_dtype dt, float *acc, float *partial, const void *x, size_t T,
                             size_t C);
size_t evo_k_column_partials(size_t T, size_t C);
/* sign +1: the forward rotation, -1: the backward */
cudaError_t evo_k_rope(cudaStream_t s, evo_dtype dt, void *out, const void *inp, const int32_t *pos, size_t T,
                       int H, int hd, float base, float sign);
cudaError_t evo_k_swiglu_fwd(cudaStream_t s, evo_dtype dt, void *out, const void *gate, const void *up, size_t n);
cudaError_t evo_k_swiglu_bwd(cudaStream_t s, evo_dtype dt, void *dgate, void *dup, const void *dout,
                             const void *gate, const void *up, size_t n);
/* AdamW with the step's scalars formed on the host (backend_cpu_optim.c's
 * order): p = p decay; m = b1 m + c1 g; v = b2 v + c2 g^2;
 * p -= step_size m / (sqrt(v) / bc2_sqrt + eps), g = grad_scale grad;
 * and, unless work is NULL, work = p stored in dt (the working copy). */
cudaError_t evo_k_adamw(cudaStream_t s, evo_dtype dt, float *p, void *work, const float *grad, float *m, float *v,
                        size_t n, float decay, float step_size, float bc2_sqrt, float b1, float c1, float b2,
                        float c2, float eps, float grad_scale);

/* norm.cu */
cudaError_t evo_k_rmsnorm_fwd(cudaStream_t s, evo_dtype dt, void *out, float *rstd, const void *inp, const void *w,
                              float eps, size_t T, size_t C);
/* accumulate: 1 adds into dinp, 0 overwrites it; dw's sum over the tokens
 * as evo_k_column_sum's, with its workspace */
cudaError_t evo_k_rmsnorm_bwd(cudaStream_t s, evo_dtype dt, void *dinp, float *dw, float *partial, const void *dout,
                              const void *inp, const void *w, const float *rstd, size_t T, size_t C,
                              int accumulate);
/* acc[0] += sum x^2 in double, over backend.h's EVO_SQNORM_CHUNKS chunks;
 * partial holds EVO_SQNORM_CHUNKS doubles. */
cudaError_t evo_k_sqnorm(cudaStream_t s, double *acc, double *partial, const float *x, size_t n);

/* attention.cu: the tensor-core kernels (attention_tiled.cu) where
 * compute/attention_plan.h's evo_att_takes the shape on a GPU whose blocks
 * may opt in to tiled_smem bytes of shared memory, else the plain ones;
 * tiled_smem 0: the plain ones always */
cudaError_t evo_k_attention_fwd(cudaStream_t s, evo_dtype dt, size_t tiled_smem, void *out, float *lse, const void *q,
                                const void *k, const void *v, const int32_t *cu_seqlens, int n_seg, size_t T, int H,
                                int KVH, int hd);
cudaError_t evo_k_attention_bwd(cudaStream_t s, evo_dtype dt, size_t tiled_smem, void *dq, void *dk, void *dv,
                                float *scratch, const void *dout, const void *q, const void *k, const void *v,
                                const void *out, const float *lse, const int32_t *cu_seqlens, int n_seg, size_t T,
                                int H, int KVH, int hd);

/* attention_tiled.cu (the shapes evo_att_tiled takes; D = dout.out [T,H]) */
cudaError_t evo_k_attention_tiled_fwd(cudaStream_t s, evo_dtype dt, void *out, float *lse, const void *q,
                                      const void *k, const void *v, const int32_t *cu_seqlens, int n_seg, size_t T,
                                      int H, int KVH, int hd);
cudaError_t evo_k_attention_tiled_bwd(cudaStream_t s, evo_dtype dt, void *dq, void *dk, void *dv, const float *D,
                                      const void *dout, const void *q, const void *k, const void *v,
                                      const float *lse, const int32_t *cu_seqlens, int n_seg, size_t T, int H,
                                      int KVH, int hd);

/* loss.cu */
cudaError_t evo_k_crossentropy_fwd(cudaStream_t s, evo_dtype dt, float *losses, float *lse, const void *logits,
                                   const int32_t *labels, float eps, size_t T, size_t V);
cudaError_t evo_k_crossentropy_shard_fwd(cudaStream_t s, evo_dtype dt, float *parts, const void *logits,
                                         const int32_t *labels, size_t T, size_t v0, size_t Vl);
cudaError_t evo_k_crossentropy_bwd(cudaStream_t s, evo_dtype dt, void *dlogits, const float *dloss,
                                   const void *logits, const float *lse, const int32_t *labels, float eps, size_t T,
                                   size_t V, size_t v0, size_t Vl);

#ifdef __cplusplus
}
#endif

#endif
