/* dtype.h - the element types of weights and activations as evo stores and
 * computes them, and exact conversions between them on the host.
 *
 * fp32 is the reference type: every bf16 and fp16 value is exactly an fp32
 * value, so a conversion is "read as fp32, store rounded". Checkpoints and
 * safetensors files store any of the three; backends compute in one of
 * them (backend.h). This is host code; the GPU's cast kernel rounds with
 * the same bit operations (dtype_bits.h), so the two agree bit for bit. */
#ifndef EVO_DTYPE_H
#define EVO_DTYPE_H

#include <stddef.h>

typedef enum { EVO_F32, EVO_BF16, EVO_F16 } evo_dtype;

/* Bytes per element of a dtype (4, 2, 2). */
size_t evo_dtype_size(evo_dtype dt);

/* Converts n elements of host memory, rounding to nearest even when
 * narrowing (f32 -> bf16/f16, and f16 <-> bf16 through the exact f32
 * value, so with one rounding); NaN stays NaN, overflow becomes +-inf.
 * Parallel over OpenMP threads; the result does not depend on their
 * number. */
void evo_dtype_cast(void *dst, evo_dtype dst_dt, const void *src, evo_dtype src_dt, size_t n);

/* Rounds n fp32 values in place to the nearest dt values, as a cast to dt
 * and back would (nothing for fp32): fp32 memory holding bf16 or fp16
 * values, how the CPU emulates computing in them (backend.h). */
void evo_dtype_round(float *x, evo_dtype dt, size_t n);

#endif
