/* backend_cpu.h - the CPU backend's ops, one file per concern, gathered into
 * the evo_backend table by backend_cpu.c. Internal: users see backend.h. */
#ifndef EVO_BACKEND_CPU_H
#define EVO_BACKEND_CPU_H

#include "backend.h"

/* Columns handled by one thread in column reductions (sums over T of a
 * [T,N] matrix): each thread owns a block of columns and walks the rows in
 * order, which needs no atomics and gives the same sums on any thread
 * count, while the inner loop stays contiguous. */
enum { EVO_CPU_COL_BLOCK = 64 };

/* backend_cpu_layers.c */
void evo_cpu_embedding_fwd(const evo_backend *be, float *out, const int32_t *ids,
                           const float *table, size_t T, size_t C);
void evo_cpu_embedding_bwd(const evo_backend *be, float *dtable, const int32_t *ids,
                           const float *dout, size_t T, size_t C);
void evo_cpu_matmul_fwd(const evo_backend *be, float *out, const float *inp, const float *W,
                        const float *b, size_t T, size_t C, size_t OC);
void evo_cpu_matmul_bwd(const evo_backend *be, float *dinp, float *dW, float *db,
                        const float *dout, const float *inp, const float *W, size_t T, size_t C,
                        size_t OC);
void evo_cpu_rmsnorm_fwd(const evo_backend *be, float *out, float *rstd, const float *inp,
                         const float *w, float eps, size_t T, size_t C);
void evo_cpu_rmsnorm_bwd(const evo_backend *be, float *dinp, float *dw, const float *dout,
                         const float *inp, const float *w, const float *rstd, size_t T, size_t C);
void evo_cpu_rope_fwd(const evo_backend *be, float *out, const float *inp, const int32_t *pos,
                      size_t T, int H, int hd, float base);
void evo_cpu_rope_bwd(const evo_backend *be, float *dinp, const float *dout, const int32_t *pos,
                      size_t T, int H, int hd, float base);
void evo_cpu_swiglu_fwd(const evo_backend *be, float *out, const float *gate, const float *up,
                        size_t n);
void evo_cpu_swiglu_bwd(const evo_backend *be, float *dgate, float *dup, const float *dout,
                        const float *gate, const float *up, size_t n);

/* backend_cpu_attention.c: blocked, OpenBLAS (what the table holds);
 * backend_cpu_attention_ref.c: the same contract as plain per-token loops,
 * the spec the blocked kernel is checked against (tests/c/op-check). */
void evo_cpu_attention_fwd(const evo_backend *be, float *out, float *lse, const float *q,
                           const float *k, const float *v, const int32_t *cu_seqlens, int n_seg,
                           size_t T, int H, int KVH, int hd);
void evo_cpu_attention_bwd(const evo_backend *be, float *dq, float *dk, float *dv,
                           float *scratch, const float *dout, const float *q, const float *k,
                           const float *v, const float *out, const float *lse,
                           const int32_t *cu_seqlens, int n_seg, size_t T, int H, int KVH,
                           int hd);
void evo_cpu_attention_ref_fwd(const evo_backend *be, float *out, float *lse, const float *q,
                               const float *k, const float *v, const int32_t *cu_seqlens,
                               int n_seg, size_t T, int H, int KVH, int hd);
void evo_cpu_attention_ref_bwd(const evo_backend *be, float *dq, float *dk, float *dv,
                               float *scratch, const float *dout, const float *q, const float *k,
                               const float *v, const float *out, const float *lse,
                               const int32_t *cu_seqlens, int n_seg, size_t T, int H, int KVH,
                               int hd);

/* backend_cpu_loss.c */
void evo_cpu_crossentropy_fwd(const evo_backend *be, float *losses, float *lse, int32_t *count,
                              const float *logits, const int32_t *labels, float eps, size_t T,
                              size_t V);
void evo_cpu_crossentropy_bwd(const evo_backend *be, float *dlogits, const float *dloss,
                              const float *logits, const float *lse, const int32_t *labels,
                              float eps, size_t T, size_t V);

/* backend_cpu_optim.c */
void evo_cpu_adamw(const evo_backend *be, float *p, const float *grad, float *m, float *v,
                   size_t n, float lr, float beta1, float beta2, float eps, float wd,
                   float grad_scale, int t);
void evo_cpu_sqnorm(const evo_backend *be, double *acc, const float *x, size_t n);

#endif
