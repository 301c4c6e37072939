/* dtype.c - host conversions between fp32, bf16 and fp16 (dtype.h). */
#include "base/dtype.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

size_t evo_dtype_size(evo_dtype dt)
{
    return dt == EVO_F32 ? 4 : 2;
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

void evo_dtype_cast(void *dst, evo_dtype dst_dt, const void *src, evo_dtype src_dt, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        store_f32(dst, dst_dt, i, load_f32(src, src_dt, i));
}
