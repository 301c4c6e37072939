/* backend_cpu.c - the CPU backend: its table of ops, and memory. On the CPU
 * "device memory" is host memory, so upload/download/copy are memcpy; the
 * ops still only touch what alloc() returned, as a GPU backend must. */
#include "compute/backend_cpu.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* 64-byte alignment: a cache line, and a whole AVX-512 vector. */
static void *cpu_alloc(const evo_backend *be, size_t bytes)
{
    (void)be;
    void *p;
    if (posix_memalign(&p, 64, bytes ? bytes : 1) != 0)
        evo_fatal("out of memory allocating %zu bytes", bytes);
    return p;
}

static void cpu_free(const evo_backend *be, void *p)
{
    (void)be;
    free(p);
}

static void cpu_memcpy(const evo_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        memcpy(dst, src, bytes);
}

EVO_VECTOR_CLONES static void cpu_fill(const evo_backend *be, float *dst, float value, size_t n)
{
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] = value;
}

EVO_VECTOR_CLONES static void cpu_add_f32(const evo_backend *be, float *dst, const float *src, size_t n)
{
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

/* fp32 is this backend's dtype */
static void cpu_add(const evo_backend *be, evo_dval *dst, const evo_dval *src, size_t n)
{
    cpu_add_f32(be, (float *)dst, (const float *)src, n);
}

static void cpu_copy2d(const evo_backend *be, evo_dval *dst_, size_t dst_stride, const evo_dval *src_, size_t src_stride,
                       size_t rows, size_t cols)
{
    float *dst = (float *)dst_;
    const float *src = (const float *)src_;
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        memcpy(dst + r * dst_stride, src + r * src_stride, cols * sizeof *dst);
}

static void cpu_cast(const evo_backend *be, void *dst, evo_dtype dst_dt, const void *src,
                     evo_dtype src_dt, size_t n)
{
    (void)be;
    evo_dtype_cast(dst, dst_dt, src, src_dt, n);
}

/* Every op has run when it returns. */
static void cpu_finish(const evo_backend *be) { (void)be; }

static const evo_backend cpu_backend = {
    .name = "cpu",
    .host_memory = 1,
    .dtype = EVO_F32,
    .alloc = cpu_alloc,
    .finish = cpu_finish,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .fill = cpu_fill,
    .add = cpu_add,
    .add_f32 = cpu_add_f32,
    .copy = cpu_memcpy,
    .cast = cpu_cast,
    .embedding_fwd = evo_cpu_embedding_fwd,
    .embedding_bwd = evo_cpu_embedding_bwd,
    .matmul_fwd = evo_cpu_matmul_fwd,
    .matmul_bwd = evo_cpu_matmul_bwd,
    .rmsnorm_fwd = evo_cpu_rmsnorm_fwd,
    .rmsnorm_bwd = evo_cpu_rmsnorm_bwd,
    .rope_fwd = evo_cpu_rope_fwd,
    .rope_bwd = evo_cpu_rope_bwd,
    .attention_fwd = evo_cpu_attention_fwd,
    .attention_bwd = evo_cpu_attention_bwd,
    .swiglu_fwd = evo_cpu_swiglu_fwd,
    .swiglu_bwd = evo_cpu_swiglu_bwd,
    .crossentropy_fwd = evo_cpu_crossentropy_fwd,
    .crossentropy_bwd = evo_cpu_crossentropy_bwd,
    .crossentropy_shard_fwd = evo_cpu_crossentropy_shard_fwd,
    .copy2d = cpu_copy2d,
    .adamw = evo_cpu_adamw,
    .sqnorm = evo_cpu_sqnorm,
};

/* OpenBLAS maps a work buffer for each thread that calls a GEMM, the first
 * time it does, and 0.3.21 (Debian 12's) retries a failed mmap forever. One
 * small GEMM on every OpenMP thread, before the caller allocates its model,
 * maps them all now, while there is room: when memory runs out later it
 * runs out in an allocation of ours, which fails with a message. 128^3 is
 * past OpenBLAS's small-matrix path, which maps nothing. */
static void map_blas_buffers(void)
{
    enum { N = 128 };
    /* allocated here: a malloc on another thread would reserve it an arena */
    float *ab = evo_calloc(2 * N * N, sizeof *ab), *c = evo_malloc((size_t)omp_get_max_threads() * N * N * sizeof *c);
#pragma omp parallel
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, ab, N, ab + N * N, N, 0.0f,
                c + (size_t)omp_get_thread_num() * N * N, N);
    free(ab);
    free(c);
}

const evo_backend *evo_backend_cpu(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, map_blas_buffers);
    return &cpu_backend;
}
