/* backend_cpu.c - the CPU backend: its table of ops, and memory. On the CPU
 * "device memory" is host memory, so upload/download/copy are memcpy; the
 * ops still only touch what alloc() returned, as a GPU backend must. */
#include "backend_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

size_t evo_dtype_size(evo_dtype dt)
{
    return dt == EVO_F32 ? 4 : 2;
}

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

EVO_VECTOR_CLONES static void cpu_add(const evo_backend *be, float *dst, const float *src, size_t n)
{
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

/* bf16 is the top half of an fp32. Rounding to nearest even: add 0x7fff
 * plus the lowest kept bit, so a tie (low half exactly 0x8000) rounds up
 * only when that bit is odd; a carry out of the mantissa bumps the exponent,
 * which is correct rounding too, up to inf. NaN is kept quiet instead, as
 * the addition could carry a NaN payload into inf. */
static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if (isnan(f))
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* fp16 through the compiler's _Float16, whose conversion from float rounds
 * to nearest even (IEEE 754), subnormals and overflow to inf included. */
static uint16_t f32_to_f16(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

static float f16_to_f32(uint16_t u)
{
    _Float16 h;
    memcpy(&h, &u, 2);
    return (float)h;
}

/* Every dtype converts exactly to fp32, so each cast is load-as-f32 then
 * store-rounded: f16 <-> bf16 is correctly rounded with one rounding. */
static float load_f32(const void *src, evo_dtype dt, size_t i)
{
    switch (dt) {
    case EVO_BF16: return bf16_to_f32(((const uint16_t *)src)[i]);
    case EVO_F16: return f16_to_f32(((const uint16_t *)src)[i]);
    default: return ((const float *)src)[i];
    }
}

static void store_f32(void *dst, evo_dtype dt, size_t i, float f)
{
    switch (dt) {
    case EVO_BF16: ((uint16_t *)dst)[i] = f32_to_bf16(f); break;
    case EVO_F16: ((uint16_t *)dst)[i] = f32_to_f16(f); break;
    default: ((float *)dst)[i] = f; break;
    }
}

static void cpu_cast(const evo_backend *be, void *dst, evo_dtype dst_dt, const void *src,
                     evo_dtype src_dt, size_t n)
{
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        store_f32(dst, dst_dt, i, load_f32(src, src_dt, i));
}

static const evo_backend cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .fill = cpu_fill,
    .add = cpu_add,
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
    .adamw = evo_cpu_adamw,
    .sqnorm = evo_cpu_sqnorm,
};

const evo_backend *evo_backend_cpu(void)
{
    return &cpu_backend;
}
