/* dtype.c - host conversions between fp32, bf16 and fp16 (dtype.h), with
 * the roundings of dtype_bits.h. */
#include "base/dtype.h"

#include "base/dtype_bits.h"

#include <stdint.h>
#include <string.h>

size_t evo_dtype_size(evo_dtype dt)
{
    return dt == EVO_F32 ? 4 : 2;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits_of_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Every dtype converts exactly to fp32, so each cast is load-as-f32 then
 * store-rounded: f16 <-> bf16 is correctly rounded with one rounding. */
static float load_f32(const void *src, evo_dtype dt, size_t i)
{
    switch (dt) {
    case EVO_BF16: return f32_from_bits(evo_bf16_to_f32_bits(((const uint16_t *)src)[i]));
    case EVO_F16: return f32_from_bits(evo_f16_to_f32_bits(((const uint16_t *)src)[i]));
    default: return ((const float *)src)[i];
    }
}

static void store_f32(void *dst, evo_dtype dt, size_t i, float f)
{
    switch (dt) {
    case EVO_BF16: ((uint16_t *)dst)[i] = evo_bf16_from_f32_bits(bits_of_f32(f)); break;
    case EVO_F16: ((uint16_t *)dst)[i] = evo_f16_from_f32_bits(bits_of_f32(f)); break;
    default: ((float *)dst)[i] = f; break;
    }
}

void evo_dtype_cast(void *dst, evo_dtype dst_dt, const void *src, evo_dtype src_dt, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        store_f32(dst, dst_dt, i, load_f32(src, src_dt, i));
}

void evo_dtype_round(float *x, evo_dtype dt, size_t n)
{
    if (dt == EVO_F32)
        return;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint32_t u = bits_of_f32(x[i]);
        x[i] = f32_from_bits(dt == EVO_BF16 ? evo_bf16_to_f32_bits(evo_bf16_from_f32_bits(u))
                                            : evo_f16_to_f32_bits(evo_f16_from_f32_bits(u)));
    }
}
