/* backend_cuda.c - the CUDA backend: the evo_backend table over device
 * memory, cuBLASLt for the matmuls and the kernels of kernels/ for the rest
 * (math in compute/backend.h). Built with `make CUDA=1` only.
 *
 * Everything runs in order on one stream, so an op may follow another
 * without a sync; the host waits only where it reads device memory
 * (download) or hands it a large host buffer (upload, which then returns
 * with the buffer free for reuse); small uploads, a step's, go through
 * pinned staging buffers without a wait.
 *
 * The backend computes in its dtype (backend.h): activations, their
 * gradients and the working weights are stored in it (evo_dval), the
 * kernels read them into fp32 and round what they store (kernels.h).
 * Matmuls are GEMMs of dtype operands with fp32 accumulation (bf16 or fp16
 * tensor cores; fp32, on TF32 tensor cores when asked); the forward's and
 * dinp's results are stored in the dtype, the weight gradient in fp32,
 * added to with beta 1. The forward's bias is cuBLASLt's BIAS epilogue;
 * the bias gradient comes out of the weight gradient's GEMM, its BGRADB
 * epilogue (the sum of dout over the tokens, its k dimension), which
 * stores it, so it goes to a scratch vector that is then added to db,
 * accumulating over micro-batches; where cuBLASLt has no BGRADB algorithm
 * for a shape, the column-sum kernel takes it. A GEMM's algorithm is chosen
 * once per shape, kind, types, bias and operand alignment by cuBLASLt's
 * heuristic (which never sees beta) and cached with its descriptors. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "base/error.h"
#include "compute/attention_plan.h"
#include "compute/backend.h"
#include "compute/gemm_plan.h"
#include "cuda/cuda_stream.h"
#include "kernels/kernels.h" /* the top-level kernels/ folder */

enum { STAGE_SLOTS = 16, STAGE_BYTES = 1 << 20 };

typedef struct {
    void *host; /* STAGE_BYTES of pinned memory */
    cudaEvent_t copied;
} staging_slot;

typedef struct {
    void *p;
    size_t bytes;
} op_workspace;

static struct {
    cudaStream_t stream;
    staging_slot stage[STAGE_SLOTS];
    unsigned stage_next;
    cublasLtHandle_t lt;
    void *workspace;
    size_t workspace_bytes;
    double *sqnorm_partial; /* EVO_SQNORM_CHUNKS */
    /* workspaces of some ops, sized by the first step's shapes */
    op_workspace bgrad;    /* BGRADB's bias gradient, before it is added to db */
    op_workspace partials; /* the sums over tokens' partial sums (evo_k_column_partials) */
    op_workspace chain;    /* the embedding backward's tokens by id: 2 T int32 */
    int tf32;
    /* the shared memory a block may opt in to, for the tensor-core
     * attention where it applies; 0: the plain kernels (EVO_CUDA_ATTENTION) */
    size_t attention_smem;
    char name[320];
} cu;

static void check(cudaError_t rc, const char *what)
{
    if (rc != cudaSuccess)
        evo_fatal("CUDA: %s: %s", what, cudaGetErrorString(rc));
}

static void check_lt(cublasStatus_t rc, const char *what)
{
    if (rc != CUBLAS_STATUS_SUCCESS)
        evo_fatal("cuBLASLt: %s: status %d", what, (int)rc);
}

/* ---- memory ------------------------------------------------------------- */

static void *cuda_alloc(const evo_backend *be, size_t bytes)
{
    (void)be;
    void *p = NULL;
    cudaError_t rc = cudaMalloc(&p, bytes ? bytes : 256);
    if (rc != cudaSuccess)
        evo_fatal("out of GPU memory allocating %zu bytes (%s)", bytes, cudaGetErrorString(rc));
    return p;
}

static void cuda_free(const evo_backend *be, void *p)
{
    (void)be;
    check(cudaFree(p), "cudaFree");
}

/* A small upload (a row's tokens, labels, positions and cu_seqlens; a
 * scalar) is copied into the next of a ring of pinned staging buffers and
 * queued, and the host goes on without waiting for the GPU: it queues the
 * step's kernels while earlier ones run. A slot is reused once the copy
 * it held is done (its event), STAGE_SLOTS uploads later. A large one
 * (weights, at start and load) is copied from the caller's memory and
 * waited for, the caller's buffer then being free. */
static void cuda_upload(const evo_backend *be, void *dst, const void *host_src, size_t bytes)
{
    (void)be;
    if (!bytes)
        return;
    if (bytes <= STAGE_BYTES) {
        staging_slot *s = &cu.stage[cu.stage_next++ % STAGE_SLOTS];
        check(cudaEventSynchronize(s->copied), "upload");
        memcpy(s->host, host_src, bytes);
        check(cudaMemcpyAsync(dst, s->host, bytes, cudaMemcpyHostToDevice, cu.stream), "upload");
        check(cudaEventRecord(s->copied, cu.stream), "upload");
        return;
    }
    check(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, cu.stream), "upload");
    check(cudaStreamSynchronize(cu.stream), "upload");
}

static void cuda_download(const evo_backend *be, void *host_dst, const void *src, size_t bytes)
{
    (void)be;
    if (!bytes)
        return;
    check(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, cu.stream), "download");
    check(cudaStreamSynchronize(cu.stream), "download");
}

static void cuda_copy(const evo_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cu.stream), "copy");
}

static void cuda_finish(const evo_backend *be)
{
    (void)be;
    check(cudaStreamSynchronize(cu.stream), "finish");
}

static void cuda_copy2d(const evo_backend *be, evo_dval *dst, size_t dst_stride, const evo_dval *src,
                        size_t src_stride, size_t rows, size_t cols)
{
    const size_t es = evo_dtype_size(be->dtype);
    if (rows && cols)
        check(cudaMemcpy2DAsync(dst, dst_stride * es, src, src_stride * es, cols * es, rows,
                                cudaMemcpyDeviceToDevice, cu.stream),
              "copy2d");
}

static void cuda_fill(const evo_backend *be, float *dst, float value, size_t n)
{
    (void)be;
    check(evo_k_fill(cu.stream, dst, value, n), "fill");
}

static void cuda_add(const evo_backend *be, evo_dval *dst, const evo_dval *src, size_t n)
{
    check(evo_k_add(cu.stream, be->dtype, dst, src, n), "add");
}

static void cuda_add_f32(const evo_backend *be, float *dst, const float *src, size_t n)
{
    (void)be;
    check(evo_k_add(cu.stream, EVO_F32, dst, src, n), "add");
}

static void cuda_cast(const evo_backend *be, void *dst, evo_dtype dst_dt, const void *src, evo_dtype src_dt,
                      size_t n)
{
    (void)be;
    check(evo_k_cast(cu.stream, dst, dst_dt, src, src_dt, n), "cast");
}

/* ---- matmul: cuBLASLt ---------------------------------------------------
 * Types: A and B in the dtype; D (and C, the same buffer) in the dtype for
 * the forward and dinp, in fp32 for dW; CUBLAS_COMPUTE_32F (fp32
 * accumulation) with fp32 alpha and beta (scale type CUDA_R_32F). The cuBLAS
 * documentation's table of cublasLtMatmul's types has, for that compute
 * and scale type, A/B bf16 with C/D bf16 or fp32, and A/B fp16 with C/D
 * fp16 or fp32: bf16 operands into an fp32 D with beta 1 is how Megatron
 * (apex's wgrad_gemm_accum_fp32) and TransformerEngine accumulate weight
 * gradients. The BIAS epilogue's bias is of D's type unless told
 * (CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, cublasLt.h); it is set to the
 * dtype, D's type in the forward, the only GEMM with a bias. TF32
 * (CUBLAS_COMPUTE_32F_FAST_TF32) is for fp32 operands only. */

static cudaDataType_t lt_type(evo_dtype dt)
{
    return dt == EVO_BF16 ? CUDA_R_16BF : dt == EVO_F16 ? CUDA_R_16F : CUDA_R_32F;
}

static const char *dtype_name(evo_dtype dt)
{
    return dt == EVO_BF16 ? "bf16" : dt == EVO_F16 ? "fp16" : "fp32";
}

typedef struct {
    evo_gemm_kind kind;
    uint64_t T, C, OC;
    evo_dtype ab, d; /* the types of A and B, and of C and D */
    int bias;
    unsigned align_a, align_b, align_d, align_bias;
} gemm_key;

static int same_key(const gemm_key *a, const gemm_key *b)
{
    return a->kind == b->kind && a->T == b->T && a->C == b->C && a->OC == b->OC && a->ab == b->ab && a->d == b->d &&
           a->bias == b->bias && a->align_a == b->align_a && a->align_b == b->align_b && a->align_d == b->align_d &&
           a->align_bias == b->align_bias;
}

typedef struct {
    gemm_key key;
    int used;
    int none; /* cuBLASLt has no algorithm for it (asked once) */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} gemm_entry;

enum { GEMM_CACHE = 256 };
static gemm_entry gemm_cache[GEMM_CACHE];
static unsigned gemm_next; /* the slot reused once the cache is full */

static void set_attr(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const void *v, size_t n)
{
    check_lt(cublasLtMatmulDescSetAttribute(d, attr, v, n), "set a matmul attribute");
}

static void drop_entry(gemm_entry *g)
{
    if (!g->used)
        return;
    cublasLtMatrixLayoutDestroy(g->a);
    cublasLtMatrixLayoutDestroy(g->b);
    cublasLtMatrixLayoutDestroy(g->d);
    cublasLtMatmulDescDestroy(g->desc);
    g->used = 0;
}

/* The heuristic reads the bias pointer's alignment from the descriptor
 * (cublasLt.h, CUBLASLT_MATMUL_DESC_BIAS_POINTER), so the first call's
 * bias is set before it and the bias's alignment is part of the key. A
 * bias is the forward's BIAS epilogue input (of the dtype) or the weight
 * gradient's BGRADB output (fp32, D's type). NULL for a weight gradient
 * with BGRADB that cuBLASLt cannot do; any other GEMM it cannot do is
 * fatal. */
static gemm_entry *gemm_prepare(const gemm_key *key, const evo_gemm_plan *plan, const void *bias)
{
    for (unsigned i = 0; i < GEMM_CACHE; i++)
        if (gemm_cache[i].used && same_key(&gemm_cache[i].key, key))
            return gemm_cache[i].none ? NULL : &gemm_cache[i];
    gemm_entry *g = &gemm_cache[gemm_next++ % GEMM_CACHE];
    drop_entry(g);
    const evo_gemm_plan p = *plan;
    const cudaDataType_t ab = lt_type(key->ab), d = lt_type(key->d);
    cublasComputeType_t compute = cu.tf32 && key->ab == EVO_F32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    check_lt(cublasLtMatmulDescCreate(&g->desc, compute, CUDA_R_32F), "matmul descriptor");
    cublasOperation_t ta = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    set_attr(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    set_attr(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    const int bgrad = key->kind == EVO_GEMM_DWEIGHT;
    cublasLtEpilogue_t epi = !key->bias ? CUBLASLT_EPILOGUE_DEFAULT : bgrad ? CUBLASLT_EPILOGUE_BGRADB
                                                                            : CUBLASLT_EPILOGUE_BIAS;
    set_attr(g->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    if (key->bias) {
        const int32_t bias_type = (int32_t)(bgrad ? d : ab);
        set_attr(g->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type);
        set_attr(g->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    }
    check_lt(cublasLtMatrixLayoutCreate(&g->a, ab, p.a_rows, p.a_cols, (int64_t)p.lda), "layout A");
    check_lt(cublasLtMatrixLayoutCreate(&g->b, ab, p.b_rows, p.b_cols, (int64_t)p.ldb), "layout B");
    check_lt(cublasLtMatrixLayoutCreate(&g->d, d, p.d_rows, p.d_cols, (int64_t)p.ldd), "layout D");
    cublasLtMatmulPreference_t pref;
    check_lt(cublasLtMatmulPreferenceCreate(&pref), "preference");
    uint64_t ws = cu.workspace_bytes;
    uint32_t al[4] = {key->align_a, key->align_b, key->align_d, key->align_d};
    check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
             "workspace preference");
    static const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++)
        check_lt(cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &al[i], sizeof al[i]), "alignment");
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t rc = cublasLtMatmulAlgoGetHeuristic(cu.lt, g->desc, g->a, g->b, g->d, g->d, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    g->key = *key;
    g->used = 1;
    g->none = rc != CUBLAS_STATUS_SUCCESS || found < 1;
    if (g->none && key->bias && bgrad)
        return NULL;
    if (g->none)
        evo_fatal("cuBLASLt: no algorithm for a %" PRIu64 " x %" PRIu64 " x %" PRIu64
                  " GEMM of %s operands into %s (status %d)",
                  p.m, p.n, p.k, dtype_name(key->ab), dtype_name(key->d), (int)rc);
    g->algo = res.algo;
    return g;
}

/* D = op(A) op(B) (+ D when accumulate) (+ bias), the plan's operands
 * picked from the matmul's buffers (of the dtype); D of the dtype, or fp32
 * for the weight gradient, whose bias, if any, is where BGRADB stores the
 * bias gradient. 0 when cuBLASLt cannot do that BGRADB (nothing done). */
static int gemm(const evo_backend *be, evo_gemm_kind kind, size_t T, size_t C, size_t OC, const evo_dval *inp,
                const evo_dval *W, const evo_dval *dout, void *D, const void *bias, int accumulate)
{
    if (!T || !C || !OC)
        return 1;
    evo_gemm_plan p = evo_gemm_plan_of(kind, T, C, OC);
    const evo_dval *ops[3] = {[EVO_GEMM_INP] = inp, [EVO_GEMM_WEIGHT] = W, [EVO_GEMM_DOUT] = dout};
    const evo_dval *A = ops[p.a], *B = ops[p.b];
    /* alignments in bytes, as MIN_ALIGNMENT_*_BYTES wants them, for any
     * element size */
    gemm_key key = {.kind = kind, .T = T, .C = C, .OC = OC, .ab = be->dtype,
                    .d = kind == EVO_GEMM_DWEIGHT ? EVO_F32 : be->dtype, .bias = bias != NULL,
                    .align_a = evo_gemm_alignment(A), .align_b = evo_gemm_alignment(B),
                    .align_d = evo_gemm_alignment(D), .align_bias = bias ? evo_gemm_alignment(bias) : 0};
    gemm_entry *g = gemm_prepare(&key, &p, bias);
    if (!g)
        return 0;
    if (bias)
        set_attr(g->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    check_lt(cublasLtMatmul(cu.lt, g->desc, &alpha, A, g->a, B, g->b, &beta, D, g->d, D, g->d, &g->algo,
                            cu.workspace, cu.workspace_bytes, cu.stream),
             "matmul");
    return 1;
}

/* At least bytes of a workspace: grown in the first step, then kept, so
 * that later steps allocate nothing. The block it outgrows is left
 * allocated for the process's life (a few small blocks, once): cudaFree
 * would wait for the whole device, and so, in a pipeline, for sends that
 * the peer receives only after this stage's next ones. */
static void *room(const evo_backend *be, op_workspace *w, size_t bytes)
{
    if (w->bytes < bytes) {
        w->p = cuda_alloc(be, bytes);
        w->bytes = bytes;
    }
    return w->p;
}

static void cuda_matmul_fwd(const evo_backend *be, evo_dval *out, const evo_dval *inp, const evo_dval *W,
                            const evo_dval *b, size_t T, size_t C, size_t OC)
{
    gemm(be, EVO_GEMM_FORWARD, T, C, OC, inp, W, NULL, out, b, 0);
}

static void cuda_matmul_bwd(const evo_backend *be, evo_dval *dinp, float *dW, float *db, const evo_dval *dout,
                            const evo_dval *inp, const evo_dval *W, size_t T, size_t C, size_t OC,
                            evo_grad_mode dinp_mode)
{
    if (dinp)
        gemm(be, EVO_GEMM_DINP, T, C, OC, inp, W, dout, dinp, NULL, dinp_mode == EVO_ACCUMULATE);
    int db_done = 0;
    if (dW && db && T && C && OC &&
        gemm(be, EVO_GEMM_DWEIGHT, T, C, OC, inp, W, dout, dW, room(be, &cu.bgrad, OC * sizeof *db), 1)) {
        cuda_add_f32(be, db, cu.bgrad.p, OC);
        db_done = 1;
    } else if (dW)
        gemm(be, EVO_GEMM_DWEIGHT, T, C, OC, inp, W, dout, dW, NULL, 1);
    if (db && !db_done)
        check(evo_k_column_sum(cu.stream, be->dtype, db,
                               room(be, &cu.partials, evo_k_column_partials(T, OC) * sizeof(float)), dout, T, OC),
              "bias gradient");
}

/* ---- the other ops: kernels/ -------------------------------------------- */

static void cuda_embedding_fwd(const evo_backend *be, evo_dval *out, const int32_t *ids, const evo_dval *table,
                               size_t T, size_t C)
{
    check(evo_k_embedding_fwd(cu.stream, be->dtype, out, ids, table, T, C), "embedding forward");
}

static void cuda_embedding_bwd(const evo_backend *be, float *dtable, const int32_t *ids, const evo_dval *dout,
                               size_t T, size_t C)
{
    int32_t *chain = room(be, &cu.chain, 2 * T * sizeof(int32_t));
    check(evo_k_embedding_bwd(cu.stream, be->dtype, dtable, ids, chain, dout, T, C), "embedding backward");
}

static void cuda_rmsnorm_fwd(const evo_backend *be, evo_dval *out, float *rstd, const evo_dval *inp,
                             const evo_dval *w, float eps, size_t T, size_t C)
{
    check(evo_k_rmsnorm_fwd(cu.stream, be->dtype, out, rstd, inp, w, eps, T, C), "rmsnorm forward");
}

static void cuda_rmsnorm_bwd(const evo_backend *be, evo_dval *dinp, float *dw, const evo_dval *dout,
                             const evo_dval *inp, const evo_dval *w, const float *rstd, size_t T, size_t C,
                             evo_grad_mode dinp_mode)
{
    float *partial = room(be, &cu.partials, evo_k_column_partials(T, C) * sizeof(float));
    check(evo_k_rmsnorm_bwd(cu.stream, be->dtype, dinp, dw, partial, dout, inp, w, rstd, T, C,
                            dinp_mode == EVO_ACCUMULATE),
          "rmsnorm backward");
}

static void cuda_rope_fwd(const evo_backend *be, evo_dval *out, const evo_dval *inp, const int32_t *pos, size_t T,
                          int H, int hd, float base)
{
    check(evo_k_rope(cu.stream, be->dtype, out, inp, pos, T, H, hd, base, 1.0f), "rope forward");
}

static void cuda_rope_bwd(const evo_backend *be, evo_dval *dinp, const evo_dval *dout, const int32_t *pos, size_t T,
                          int H, int hd, float base)
{
    check(evo_k_rope(cu.stream, be->dtype, dinp, dout, pos, T, H, hd, base, -1.0f), "rope backward");
}

static void cuda_attention_fwd(const evo_backend *be, evo_dval *out, float *lse, const evo_dval *q,
                               const evo_dval *k, const evo_dval *v, const int32_t *cu_seqlens, int n_seg, size_t T,
                               int H, int KVH, int hd)
{
    check(evo_k_attention_fwd(cu.stream, be->dtype, cu.attention_smem, out, lse, q, k, v, cu_seqlens, n_seg, T, H,
                              KVH, hd),
          "attention forward");
}

static void cuda_attention_bwd(const evo_backend *be, evo_dval *dq, evo_dval *dk, evo_dval *dv, float *scratch,
                               const evo_dval *dout, const evo_dval *q, const evo_dval *k, const evo_dval *v,
                               const evo_dval *out, const float *lse, const int32_t *cu_seqlens, int n_seg, size_t T,
                               int H, int KVH, int hd)
{
    check(evo_k_attention_bwd(cu.stream, be->dtype, cu.attention_smem, dq, dk, dv, scratch, dout, q, k, v, out, lse,
                              cu_seqlens, n_seg,
                              T, H, KVH, hd),
          "attention backward");
}

static void cuda_swiglu_fwd(const evo_backend *be, evo_dval *out, const evo_dval *gate, const evo_dval *up, size_t n)
{
    check(evo_k_swiglu_fwd(cu.stream, be->dtype, out, gate, up, n), "swiglu forward");
}

static void cuda_swiglu_bwd(const evo_backend *be, evo_dval *dgate, evo_dval *dup, const evo_dval *dout,
                            const evo_dval *gate, const evo_dval *up, size_t n)
{
    check(evo_k_swiglu_bwd(cu.stream, be->dtype, dgate, dup, dout, gate, up, n), "swiglu backward");
}

static void cuda_crossentropy_fwd(const evo_backend *be, float *losses, float *lse, const evo_dval *logits,
                                  const int32_t *labels, float eps, size_t T, size_t V)
{
    check(evo_k_crossentropy_fwd(cu.stream, be->dtype, losses, lse, logits, labels, eps, T, V),
          "cross-entropy forward");
}

static void cuda_crossentropy_bwd(const evo_backend *be, evo_dval *dlogits, const float *dloss,
                                  const evo_dval *logits, const float *lse, const int32_t *labels, float eps, size_t T,
                                  size_t V, size_t v0, size_t Vl)
{
    check(evo_k_crossentropy_bwd(cu.stream, be->dtype, dlogits, dloss, logits, lse, labels, eps, T, V, v0, Vl),
          "cross-entropy backward");
}

static void cuda_crossentropy_shard_fwd(const evo_backend *be, float *parts, const evo_dval *logits,
                                        const int32_t *labels, size_t T, size_t v0, size_t Vl)
{
    check(evo_k_crossentropy_shard_fwd(cu.stream, be->dtype, parts, logits, labels, T, v0, Vl),
          "cross-entropy shard forward");
}

/* The step's scalars as backend_cpu_optim.c forms them (in double, as
 * PyTorch does in Python), so both backends take the same step. */
static void cuda_adamw(const evo_backend *be, float *p, evo_dval *work, const float *grad, float *m, float *v,
                       size_t n, float lr, float beta1, float beta2, float eps, float wd, float grad_scale, int t)
{
    const float decay = (float)(1.0 - (double)lr * wd);
    const float step_size = (float)(lr / (1.0 - pow(beta1, t)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, t));
    check(evo_k_adamw(cu.stream, be->dtype, p, work, grad, m, v, n, decay, step_size, bc2_sqrt, beta1,
                      1.0f - beta1, beta2, 1.0f - beta2, eps, grad_scale),
          "adamw");
}

static void cuda_sqnorm(const evo_backend *be, double *acc, const float *x, size_t n)
{
    (void)be;
    check(evo_k_sqnorm(cu.stream, acc, cu.sqnorm_partial, x, n), "squared norm");
}

/* dtype is set when the GPU is opened. */
static evo_backend cuda_backend = {
    .name = cu.name,
    .host_memory = 0,
    .alloc = cuda_alloc,
    .finish = cuda_finish,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .fill = cuda_fill,
    .add = cuda_add,
    .add_f32 = cuda_add_f32,
    .copy = cuda_copy,
    .cast = cuda_cast,
    .embedding_fwd = cuda_embedding_fwd,
    .embedding_bwd = cuda_embedding_bwd,
    .matmul_fwd = cuda_matmul_fwd,
    .matmul_bwd = cuda_matmul_bwd,
    .rmsnorm_fwd = cuda_rmsnorm_fwd,
    .rmsnorm_bwd = cuda_rmsnorm_bwd,
    .rope_fwd = cuda_rope_fwd,
    .rope_bwd = cuda_rope_bwd,
    .attention_fwd = cuda_attention_fwd,
    .attention_bwd = cuda_attention_bwd,
    .swiglu_fwd = cuda_swiglu_fwd,
    .swiglu_bwd = cuda_swiglu_bwd,
    .crossentropy_fwd = cuda_crossentropy_fwd,
    .crossentropy_bwd = cuda_crossentropy_bwd,
    .crossentropy_shard_fwd = cuda_crossentropy_shard_fwd,
    .copy2d = cuda_copy2d,
    .adamw = cuda_adamw,
    .sqnorm = cuda_sqnorm,
};

#ifdef EVO_CUDA_EMULATOR
const int evo_cuda_built = EVO_CUDA_EMULATED;
#else
const int evo_cuda_built = 1;
#endif

cudaStream_t evo_cuda_stream(void) { return cu.stream; }

const evo_backend *evo_backend_cuda(int device, evo_dtype dtype, int tf32, evo_err *e)
{
    if (cu.lt && (cuda_backend.dtype != dtype || cu.tf32 != tf32)) {
        evo_errf(e, "the CUDA backend is open already, as %s", cu.name);
        return NULL;
    }
    if (cu.lt) /* one GPU per process: the first call's */
        return &cuda_backend;
    /* EVO_CUDA_ATTENTION=plain keeps the plain attention kernels for every
     * shape: the reference, and a way around the tiled ones */
    const char *att = getenv("EVO_CUDA_ATTENTION");
    if (att && strcmp(att, "plain") != 0 && strcmp(att, "tiled") != 0) /* not a reason to train on the CPU */
        evo_fatal("EVO_CUDA_ATTENTION is '%s', not plain or tiled", att);
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess || count < 1) {
        evo_errf(e, "no CUDA device (%s)", rc != cudaSuccess ? cudaGetErrorString(rc) : "none visible");
        return NULL;
    }
    device %= count;
    struct cudaDeviceProp prop;
    if ((rc = cudaSetDevice(device)) != cudaSuccess || (rc = cudaGetDeviceProperties(&prop, device)) != cudaSuccess) {
        evo_errf(e, "CUDA device %d: %s", device, cudaGetErrorString(rc));
        return NULL;
    }
    check(cudaStreamCreateWithFlags(&cu.stream, cudaStreamNonBlocking), "stream");
    check_lt(cublasLtCreate(&cu.lt), "cublasLtCreate");
    cu.workspace_bytes = evo_gemm_workspace_bytes(prop.major);
    cu.workspace = cuda_alloc(&cuda_backend, cu.workspace_bytes);
    cu.sqnorm_partial = cuda_alloc(&cuda_backend, EVO_SQNORM_CHUNKS * sizeof(double));
    for (int i = 0; i < STAGE_SLOTS; i++) {
        check(cudaMallocHost(&cu.stage[i].host, STAGE_BYTES), "pinned staging memory");
        check(cudaEventCreateWithFlags(&cu.stage[i].copied, cudaEventDisableTiming), "staging event");
    }
    cu.tf32 = tf32;
    cu.attention_smem = !att || strcmp(att, "tiled") == 0 ? prop.sharedMemPerBlockOptin : 0;
    cuda_backend.dtype = dtype;
    int tiled64 = evo_att_takes(dtype, 64, cu.attention_smem);
    int tiled128 = evo_att_takes(dtype, EVO_ATT_MAX_HD, cu.attention_smem);
    snprintf(cu.name, sizeof cu.name, "cuda (GPU %d: %s, sm_%d%d, %s GEMMs, %s attention)", device, prop.name,
             prop.major, prop.minor, dtype == EVO_F32 && tf32 ? "TF32" : dtype_name(dtype),
             tiled128 ? "tensor-core (head dims 64, 128)" : tiled64 ? "tensor-core (head dim 64)" : "plain");
    return &cuda_backend;
}
