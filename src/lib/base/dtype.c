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

/* Every dtype converts exactly to fp32, so each cast is load-as-f32 then
 * store-rounded: f16 <-> bf16 is correctly rounded with one rounding. */
void evo_dtype_cast(void *dst, evo_dtype dst_dt, const void *src, evo_dtype src_dt, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        evo_dtype_store(dst, dst_dt, i, evo_dtype_load(src, src_dt, i));
}

void evo_dtype_round(float *x, evo_dtype dt, size_t n)
{
    if (dt == EVO_F32)
        return;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint32_t u = evo_f32_bits(x[i]);
        x[i] = evo_f32_from_bits(dt == EVO_BF16 ? evo_bf16_to_f32_bits(evo_bf16_from_f32_bits(u))
                                                : evo_f16_to_f32_bits(evo_f16_from_f32_bits(u)));
    }
}
