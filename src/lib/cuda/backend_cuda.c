/* backend_cuda.c - the CUDA backend: the evo_backend table over device
 * memory, cuBLASLt for the matmuls and the kernels of kernels/ for the rest
 * (math in compute/backend.h). Built with `make CUDA=1` only.
 *
 * Everything runs in order on one stream, so an op may follow another
 * without a sync; the host waits only where it reads device memory
 * (download) or hands it a host buffer (upload, which then returns with the
 * buffer free for reuse).
 *
 * Matmuls are fp32 GEMMs (TF32 tensor cores when asked) with fp32
 * accumulation; the forward's bias is cuBLASLt's BIAS epilogue, the bias
 * gradient the column-sum kernel (in token order, the CPU's sum): whether
 * cuBLASLt's BGRADB adds into db across micro-batches or overwrites it is
 * not yet checked on a GPU. A GEMM's algorithm is chosen once per shape,
 * kind, bias and operand alignment by cuBLASLt's heuristic (which never
 * sees beta) and cached with its descriptors. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "base/error.h"
#include "compute/backend.h"
#include "compute/gemm_plan.h"
#include "cuda/cuda_stream.h"
#include "kernels/kernels.h" /* the top-level kernels/ folder */

static struct {
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *workspace;
    size_t workspace_bytes;
    double *sqnorm_partial; /* EVO_SQNORM_CHUNKS */
    int tf32;
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

static void cuda_upload(const evo_backend *be, void *dst, const void *host_src, size_t bytes)
{
    (void)be;
    if (!bytes)
        return;
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

/* dtype fp32: the working copy is the master weights' bits. */
static void cuda_working_copy(const evo_backend *be, float *dst, const float *src, size_t n)
{
    cuda_copy(be, dst, src, n * sizeof *dst);
}

static void cuda_copy2d(const evo_backend *be, float *dst, size_t dst_stride, const float *src, size_t src_stride,
                        size_t rows, size_t cols)
{
    (void)be;
    if (rows && cols)
        check(cudaMemcpy2DAsync(dst, dst_stride * sizeof *dst, src, src_stride * sizeof *src, cols * sizeof *dst,
                                rows, cudaMemcpyDeviceToDevice, cu.stream),
              "copy2d");
}

static void cuda_fill(const evo_backend *be, float *dst, float value, size_t n)
{
    (void)be;
    check(evo_k_fill(cu.stream, dst, value, n), "fill");
}

static void cuda_add(const evo_backend *be, float *dst, const float *src, size_t n)
{
    (void)be;
    check(evo_k_add(cu.stream, dst, src, n), "add");
}

static void cuda_cast(const evo_backend *be, void *dst, evo_dtype dst_dt, const void *src, evo_dtype src_dt,
                      size_t n)
{
    (void)be;
    check(evo_k_cast(cu.stream, dst, dst_dt, src, src_dt, n), "cast");
}

/* ---- matmul: cuBLASLt --------------------------------------------------- */

typedef struct {
    evo_gemm_kind kind;
    uint64_t T, C, OC;
    int bias;
    unsigned align_a, align_b, align_d;
} gemm_key;

static int same_key(const gemm_key *a, const gemm_key *b)
{
    return a->kind == b->kind && a->T == b->T && a->C == b->C && a->OC == b->OC && a->bias == b->bias &&
           a->align_a == b->align_a && a->align_b == b->align_b && a->align_d == b->align_d;
}

typedef struct {
    gemm_key key;
    int used;
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

static gemm_entry *gemm_prepare(const gemm_key *key, const evo_gemm_plan *plan)
{
    for (unsigned i = 0; i < GEMM_CACHE; i++)
        if (gemm_cache[i].used && same_key(&gemm_cache[i].key, key))
            return &gemm_cache[i];
    gemm_entry *g = &gemm_cache[gemm_next++ % GEMM_CACHE];
    drop_entry(g);
    const evo_gemm_plan p = *plan;
    cublasComputeType_t compute = cu.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    check_lt(cublasLtMatmulDescCreate(&g->desc, compute, CUDA_R_32F), "matmul descriptor");
    cublasOperation_t ta = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    set_attr(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    set_attr(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    cublasLtEpilogue_t epi = key->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    set_attr(g->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    check_lt(cublasLtMatrixLayoutCreate(&g->a, CUDA_R_32F, p.a_rows, p.a_cols, (int64_t)p.lda), "layout A");
    check_lt(cublasLtMatrixLayoutCreate(&g->b, CUDA_R_32F, p.b_rows, p.b_cols, (int64_t)p.ldb), "layout B");
    check_lt(cublasLtMatrixLayoutCreate(&g->d, CUDA_R_32F, p.d_rows, p.d_cols, (int64_t)p.ldd), "layout D");
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
    if (rc != CUBLAS_STATUS_SUCCESS || found < 1)
        evo_fatal("cuBLASLt: no algorithm for a %" PRIu64 " x %" PRIu64 " x %" PRIu64 " fp32 GEMM (status %d)",
                  p.m, p.n, p.k, (int)rc);
    g->algo = res.algo;
    g->key = *key;
    g->used = 1;
    return g;
}

/* D = op(A) op(B) (+ D when accumulate) (+ bias), the plan's operands
 * picked from the matmul's buffers. */
static void gemm(evo_gemm_kind kind, size_t T, size_t C, size_t OC, const float *inp, const float *W,
                 const float *dout, float *D, const float *bias, int accumulate)
{
    if (!T || !C || !OC)
        return;
    evo_gemm_plan p = evo_gemm_plan_of(kind, T, C, OC);
    const float *ops[3] = {[EVO_GEMM_INP] = inp, [EVO_GEMM_WEIGHT] = W, [EVO_GEMM_DOUT] = dout};
    const float *A = ops[p.a], *B = ops[p.b];
    gemm_key key = {.kind = kind, .T = T, .C = C, .OC = OC, .bias = bias != NULL,
                    .align_a = evo_gemm_alignment(A), .align_b = evo_gemm_alignment(B),
                    .align_d = evo_gemm_alignment(D)};
    gemm_entry *g = gemm_prepare(&key, &p);
    if (bias)
        set_attr(g->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    check_lt(cublasLtMatmul(cu.lt, g->desc, &alpha, A, g->a, B, g->b, &beta, D, g->d, D, g->d, &g->algo,
                            cu.workspace, cu.workspace_bytes, cu.stream),
             "matmul");
}

static void cuda_matmul_fwd(const evo_backend *be, float *out, const float *inp, const float *W, const float *b,
                            size_t T, size_t C, size_t OC)
{
    (void)be;
    gemm(EVO_GEMM_FORWARD, T, C, OC, inp, W, NULL, out, b, 0);
}

static void cuda_matmul_bwd(const evo_backend *be, float *dinp, float *dW, float *db, const float *dout,
                            const float *inp, const float *W, size_t T, size_t C, size_t OC,
                            evo_grad_mode dinp_mode)
{
    (void)be;
    if (dinp)
        gemm(EVO_GEMM_DINP, T, C, OC, inp, W, dout, dinp, NULL, dinp_mode == EVO_ACCUMULATE);
    if (dW)
        gemm(EVO_GEMM_DWEIGHT, T, C, OC, inp, W, dout, dW, NULL, 1);
    if (db)
        check(evo_k_column_sum(cu.stream, db, dout, T, OC), "bias gradient");
}

/* ---- the other ops: kernels/ -------------------------------------------- */

static void cuda_embedding_fwd(const evo_backend *be, float *out, const int32_t *ids, const float *table, size_t T,
                               size_t C)
{
    (void)be;
    check(evo_k_embedding_fwd(cu.stream, out, ids, table, T, C), "embedding forward");
}

static void cuda_embedding_bwd(const evo_backend *be, float *dtable, const int32_t *ids, const float *dout,
                               size_t T, size_t C)
{
    (void)be;
    check(evo_k_embedding_bwd(cu.stream, dtable, ids, dout, T, C), "embedding backward");
}

static void cuda_rmsnorm_fwd(const evo_backend *be, float *out, float *rstd, const float *inp, const float *w,
                             float eps, size_t T, size_t C)
{
    (void)be;
    check(evo_k_rmsnorm_fwd(cu.stream, out, rstd, inp, w, eps, T, C), "rmsnorm forward");
}

static void cuda_rmsnorm_bwd(const evo_backend *be, float *dinp, float *dw, const float *dout, const float *inp,
                             const float *w, const float *rstd, size_t T, size_t C, evo_grad_mode dinp_mode)
{
    (void)be;
    check(evo_k_rmsnorm_bwd(cu.stream, dinp, dw, dout, inp, w, rstd, T, C, dinp_mode == EVO_ACCUMULATE),
          "rmsnorm backward");
}

static void cuda_rope_fwd(const evo_backend *be, float *out, const float *inp, const int32_t *pos, size_t T, int H,
                          int hd, float base)
{
    (void)be;
    check(evo_k_rope(cu.stream, out, inp, pos, T, H, hd, base, 1.0f), "rope forward");
}

static void cuda_rope_bwd(const evo_backend *be, float *dinp, const float *dout, const int32_t *pos, size_t T,
                          int H, int hd, float base)
{
    (void)be;
    check(evo_k_rope(cu.stream, dinp, dout, pos, T, H, hd, base, -1.0f), "rope backward");
}

static void cuda_attention_fwd(const evo_backend *be, float *out, float *lse, const float *q, const float *k,
                               const float *v, const int32_t *cu_seqlens, int n_seg, size_t T, int H, int KVH,
                               int hd)
{
    (void)be;
    check(evo_k_attention_fwd(cu.stream, out, lse, q, k, v, cu_seqlens, n_seg, T, H, KVH, hd),
          "attention forward");
}

static void cuda_attention_bwd(const evo_backend *be, float *dq, float *dk, float *dv, float *scratch,
                               const float *dout, const float *q, const float *k, const float *v,
                               const float *out, const float *lse, const int32_t *cu_seqlens, int n_seg, size_t T,
                               int H, int KVH, int hd)
{
    (void)be;
    check(evo_k_attention_bwd(cu.stream, dq, dk, dv, scratch, dout, q, k, v, out, lse, cu_seqlens, n_seg, T, H, KVH,
                              hd),
          "attention backward");
}

static void cuda_swiglu_fwd(const evo_backend *be, float *out, const float *gate, const float *up, size_t n)
{
    (void)be;
    check(evo_k_swiglu_fwd(cu.stream, out, gate, up, n), "swiglu forward");
}

static void cuda_swiglu_bwd(const evo_backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                            const float *up, size_t n)
{
    (void)be;
    check(evo_k_swiglu_bwd(cu.stream, dgate, dup, dout, gate, up, n), "swiglu backward");
}

static void cuda_crossentropy_fwd(const evo_backend *be, float *losses, float *lse, const float *logits,
                                  const int32_t *labels, float eps, size_t T, size_t V)
{
    (void)be;
    check(evo_k_crossentropy_fwd(cu.stream, losses, lse, logits, labels, eps, T, V), "cross-entropy forward");
}

static void cuda_crossentropy_bwd(const evo_backend *be, float *dlogits, const float *dloss, const float *logits,
                                  const float *lse, const int32_t *labels, float eps, size_t T, size_t V, size_t v0,
                                  size_t Vl)
{
    (void)be;
    check(evo_k_crossentropy_bwd(cu.stream, dlogits, dloss, logits, lse, labels, eps, T, V, v0, Vl),
          "cross-entropy backward");
}

static void cuda_crossentropy_shard_fwd(const evo_backend *be, float *parts, const float *logits,
                                        const int32_t *labels, size_t T, size_t v0, size_t Vl)
{
    (void)be;
    check(evo_k_crossentropy_shard_fwd(cu.stream, parts, logits, labels, T, v0, Vl), "cross-entropy shard forward");
}

/* The step's scalars as backend_cpu_optim.c forms them (in double, as
 * PyTorch does in Python), so both backends take the same step. */
static void cuda_adamw(const evo_backend *be, float *p, const float *grad, float *m, float *v, size_t n, float lr,
                       float beta1, float beta2, float eps, float wd, float grad_scale, int t)
{
    (void)be;
    const float decay = (float)(1.0 - (double)lr * wd);
    const float step_size = (float)(lr / (1.0 - pow(beta1, t)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, t));
    check(evo_k_adamw(cu.stream, p, grad, m, v, n, decay, step_size, bc2_sqrt, beta1, 1.0f - beta1, beta2,
                      1.0f - beta2, eps, grad_scale),
          "adamw");
}

static void cuda_sqnorm(const evo_backend *be, double *acc, const float *x, size_t n)
{
    (void)be;
    check(evo_k_sqnorm(cu.stream, acc, cu.sqnorm_partial, x, n), "squared norm");
}

static evo_backend cuda_backend = {
    .name = cu.name,
    .host_memory = 0,
    .dtype = EVO_F32,
    .alloc = cuda_alloc,
    .finish = cuda_finish,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .fill = cuda_fill,
    .add = cuda_add,
    .copy = cuda_copy,
    .cast = cuda_cast,
    .working_copy = cuda_working_copy,
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

const int evo_cuda_built = 1;

cudaStream_t evo_cuda_stream(void) { return cu.stream; }

const evo_backend *evo_backend_cuda(int device, int tf32, evo_err *e)
{
    if (cu.lt) /* one GPU per process: the first call's */
        return &cuda_backend;
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
    cu.tf32 = tf32;
    snprintf(cu.name, sizeof cu.name, "cuda (GPU %d: %s, sm_%d%d, %s GEMMs)", device, prop.name, prop.major,
             prop.minor, tf32 ? "TF32" : "fp32");
    return &cuda_backend;
}
