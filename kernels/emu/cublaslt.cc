/* cublaslt.cc - cuBLASLt's matmul as evo calls it, on the CPU: what each
 * descriptor, layout and epilogue means, checked as the library checks it
 * (attribute sizes, shapes that do not chain, type pairs its table does not
 * have, operands less aligned than the algorithm was chosen for), then
 * D = alpha op(A) op(B) + beta C (+ bias) by plain loops, column-major:
 *   op(A) [m, k]: A stored [m, k] (N) or [k, m] (T), element (i, p) at
 *                 A[i + p lda] or A[p + i lda]; op(B) [k, n] likewise;
 *   D [m, n], (i, j) at D[i + j ldd]; C is not read when beta is 0.
 * BIAS adds bias[i] (D's rows) to every column; BGRADB writes
 * bias[j] = sum_p op(B)(p, j), the sum over k (cuBLASLt's documentation of
 * cublasLtEpilogue_t). Operands widen exactly to fp32 (rounded to TF32's
 * 10 mantissa bits under CUBLAS_COMPUTE_32F_FAST_TF32), sums are fp32 in
 * k order, D is rounded to its type to nearest even (dtype_bits.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <initializer_list>
#include <vector>

#include "bits16.h"
#include "cublasLt.h"
#include "cuda_runtime.h"

struct evo_emu_lt {
    int unused;
};

struct evo_emu_matmul_desc {
    cublasComputeType_t compute;
    int32_t trans_a, trans_b;
    uint32_t epilogue;
    const void *bias;
    int32_t bias_type; /* -1: D's */
};

struct evo_emu_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};

struct evo_emu_preference {
    uint64_t workspace;
    uint32_t align[4]; /* A, B, C, D; cuBLASLt assumes 256 unless told */
};

namespace {

template <typename T> cublasStatus_t make(T **out)
{
    T *p = (T *)calloc(1, sizeof(T));
    if (!p)
        return CUBLAS_STATUS_ALLOC_FAILED;
    *out = p;
    return CUBLAS_STATUS_SUCCESS;
}

template <typename T> cublasStatus_t set(T *field, const void *buf, size_t size)
{
    if (size != sizeof(T))
        return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(field, buf, size);
    return CUBLAS_STATUS_SUCCESS;
}

bool known(cudaDataType_t t)
{
    return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF;
}

float widen(const void *p, size_t i, int32_t t)
{
    if (t == CUDA_R_32F)
        return ((const float *)p)[i];
    return evo_emu_widen16(((const uint16_t *)p)[i], t == CUDA_R_16BF);
}

void narrow(void *p, size_t i, int32_t t, float f)
{
    if (t == CUDA_R_32F)
        ((float *)p)[i] = f;
    else
        ((uint16_t *)p)[i] = evo_emu_narrow16(f, t == CUDA_R_16BF);
}

/* TF32: fp32's exponent, 10 mantissa bits, rounded to nearest even. */
float tf32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u) {
        u += 0xfffu + ((u >> 13) & 1u);
        u &= ~0x1fffu;
    }
    memcpy(&f, &u, sizeof f);
    return f;
}

struct shape {
    uint64_t m, n, k;
};

/* The GEMM's m, n, k when the layouts chain and their types are a pair
 * cublasLtMatmul's table has for fp32 compute; false otherwise. */
bool check(const evo_emu_matmul_desc *d, const evo_emu_layout *a, const evo_emu_layout *b, const evo_emu_layout *c,
           const evo_emu_layout *dd, shape *s)
{
    if (!known(a->type) || a->type != b->type || !known(dd->type) || c->type != dd->type)
        return false;
    if (dd->type != a->type && dd->type != CUDA_R_32F)
        return false;
    if (d->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && (a->type != CUDA_R_32F || dd->type != CUDA_R_32F))
        return false;
    const uint64_t m = d->trans_a ? a->cols : a->rows, k = d->trans_a ? a->rows : a->cols;
    const uint64_t kb = d->trans_b ? b->cols : b->rows, n = d->trans_b ? b->rows : b->cols;
    if (k != kb || dd->rows != m || dd->cols != n || c->rows != m || c->cols != n)
        return false;
    for (const evo_emu_layout *l : {a, b, c, dd})
        if (l->ld < 1 || (uint64_t)l->ld < l->rows)
            return false;
    if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT && d->epilogue != CUBLASLT_EPILOGUE_BIAS &&
        d->epilogue != CUBLASLT_EPILOGUE_BGRADB)
        return false;
    *s = shape{m, n, k};
    return true;
}

bool aligned(const void *p, uint32_t bytes)
{
    return bytes && (uintptr_t)p % bytes == 0;
}

/* D = al op(A) op(B) + be C (C not read when be is 0), with d's epilogue:
 * what cublasLtMatmul queues on its stream. */
void matmul(const evo_emu_matmul_desc *d, const evo_emu_layout *a, const evo_emu_layout *b, const evo_emu_layout *c,
            const evo_emu_layout *dd, const shape &g, float al, const void *A, const void *B, float be, const void *C,
            void *D)
{
    const int32_t bias_type = d->bias_type < 0 ? (int32_t)dd->type : d->bias_type;
    const bool tf = d->compute == CUBLAS_COMPUTE_32F_FAST_TF32;
    /* op(A) by rows and op(B) by columns, widened: each sum walks two
     * contiguous runs of k */
    std::vector<float> ra(g.m * g.k), cb(g.n * g.k);
    for (uint64_t i = 0; i < g.m; i++)
        for (uint64_t p = 0; p < g.k; p++) {
            const float v = widen(A, d->trans_a ? p + i * (uint64_t)a->ld : i + p * (uint64_t)a->ld, a->type);
            ra[i * g.k + p] = tf ? tf32(v) : v;
        }
    for (uint64_t j = 0; j < g.n; j++)
        for (uint64_t p = 0; p < g.k; p++)
            cb[j * g.k + p] = widen(B, d->trans_b ? j + p * (uint64_t)b->ld : p + j * (uint64_t)b->ld, b->type);
    for (uint64_t j = 0; j < g.n; j++) {
        const float *bj = &cb[j * g.k];
        for (uint64_t i = 0; i < g.m; i++) {
            const float *ai = &ra[i * g.k];
            float sum = 0.0f;
            for (uint64_t p = 0; p < g.k; p++)
                sum += ai[p] * (tf ? tf32(bj[p]) : bj[p]);
            float v = al * sum;
            if (be != 0.0f)
                v += be * widen(C, i + j * (uint64_t)c->ld, c->type);
            if (d->epilogue == CUBLASLT_EPILOGUE_BIAS)
                v += widen(d->bias, i, bias_type);
            narrow(D, i + j * (uint64_t)dd->ld, dd->type, v);
        }
        if (d->epilogue == CUBLASLT_EPILOGUE_BGRADB) {
            float sum = 0.0f;
            for (uint64_t p = 0; p < g.k; p++)
                sum += bj[p];
            narrow((void *)d->bias, j, bias_type, sum);
        }
    }
}

} // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h)
{
    return make(h);
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale)
{
    if ((compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32) || scale != CUDA_R_32F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    cublasStatus_t rc = make(d);
    if (rc == CUBLAS_STATUS_SUCCESS) {
        (*d)->compute = compute;
        (*d)->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
        (*d)->bias_type = -1;
    }
    return rc;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
    free(d);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size)
{
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return set(&d->trans_a, buf, size);
    case CUBLASLT_MATMUL_DESC_TRANSB: return set(&d->trans_b, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return set(&d->epilogue, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set(&d->bias, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return set(&d->bias_type, buf, size);
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t type, uint64_t rows, uint64_t cols,
                                          int64_t ld)
{
    cublasStatus_t rc = make(l);
    if (rc == CUBLAS_STATUS_SUCCESS)
        **l = evo_emu_layout{type, rows, cols, ld};
    return rc;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
    free(l);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p)
{
    cublasStatus_t rc = make(p);
    if (rc == CUBLAS_STATUS_SUCCESS)
        for (uint32_t &a : (*p)->align)
            a = 256;
    return rc;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p)
{
    free(p);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size)
{
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return set(&p->workspace, buf, size);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return set(&p->align[0], buf, size);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return set(&p->align[1], buf, size);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return set(&p->align[2], buf, size);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return set(&p->align[3], buf, size);
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}

/* One algorithm for any GEMM check() takes; it remembers the alignments it
 * was chosen for (algo.data[0..3]), which every call must keep. */
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t dd, cublasLtMatmulPreference_t p, int requested,
                                              cublasLtMatmulHeuristicResult_t *results, int *found)
{
    shape s;
    *found = 0;
    if (!h || requested < 1)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!check(d, a, b, c, dd, &s))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    memset(results, 0, sizeof *results);
    for (int i = 0; i < 4; i++)
        results->algo.data[i] = p->align[i];
    results->state = CUBLAS_STATUS_SUCCESS;
    results->wavesCount = 1.0f;
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t a, const void *B, cublasLtMatrixLayout_t b, const void *beta,
                              const void *C, cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t dd,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_bytes, cudaStream_t s)
{
    (void)workspace;
    (void)workspace_bytes;
    shape g;
    if (!h || !algo || !check(d, a, b, c, dd, &g))
        return CUBLAS_STATUS_INVALID_VALUE;
    const void *ptr[4] = {A, B, C, D};
    for (int i = 0; i < 4; i++)
        if (!aligned(ptr[i], (uint32_t)algo->data[i]))
            return CUBLAS_STATUS_NOT_SUPPORTED;
    if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT && !d->bias)
        return CUBLAS_STATUS_INVALID_VALUE;
    /* the descriptors and the scalars as they are now: the caller may
     * change or free them before the stream gets to the product */
    const float al = *(const float *)alpha, be = *(const float *)beta;
    evo_emu::enqueue(s, [=, md = *d, la = *a, lb = *b, lc = *c, ld = *dd] {
        matmul(&md, &la, &lb, &lc, &ld, g, al, A, B, be, C, D);
    });
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
