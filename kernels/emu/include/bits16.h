/* bits16.h (the CPU emulator's): fp16's and bf16's storage types, their
 * bits and nothing else (evo's kernels convert with dtype_bits.h), behind
 * cuda_fp16.h and cuda_bf16.h. Two distinct types, as in CUDA, so that
 * overloads tell them apart. */
#ifndef EVO_EMU_BITS16_H
#define EVO_EMU_BITS16_H

#include <stdint.h>
#include <string.h>

#include "base/dtype_bits.h"

template <int Kind> struct evo_emu_bits16 {
    unsigned short bits;
};
using __half = evo_emu_bits16<0>;
using __nv_bfloat16 = evo_emu_bits16<1>;

inline unsigned short __half_as_ushort(__half h)
{
    return h.bits;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h)
{
    return h.bits;
}
inline __half __ushort_as_half(unsigned short u)
{
    return __half{u};
}
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u)
{
    return __nv_bfloat16{u};
}

/* A bf16 (or fp16) value's fp32, and an fp32 rounded to nearest even into
 * one: dtype_bits.h's, for the emulator's wmma, cuBLASLt and NCCL. */
inline float evo_emu_widen16(uint16_t h, bool bf16)
{
    const uint32_t u = bf16 ? evo_bf16_to_f32_bits(h) : evo_f16_to_f32_bits(h);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

inline uint16_t evo_emu_narrow16(float f, bool bf16)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return bf16 ? evo_bf16_from_f32_bits(u) : evo_f16_from_f32_bits(u);
}

#endif
