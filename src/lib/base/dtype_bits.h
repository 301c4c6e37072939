/* dtype_bits.h - the roundings between fp32, bf16 and fp16 as operations on
 * bits, shared by the host casts (dtype.c) and the GPU's cast kernel
 * (kernels/), so both round every value to the same bits.
 *
 * All round to nearest even. NaN stays NaN (quiet, its payload's top bits
 * kept), a value past the largest finite one becomes inf, and fp16's
 * subnormals are rounded exactly. tests/c/dtype-check compares them with
 * the compiler's _Float16 conversions: all 65536 fp16 values, and the fp32
 * values around every rounding boundary. */
#ifndef EVO_DTYPE_BITS_H
#define EVO_DTYPE_BITS_H

#include <stdint.h>

#include "base/host_device.h"

/* bf16 is the top half of an fp32. Adding 0x7fff plus the lowest kept bit
 * rounds to nearest even: a tie (low half exactly 0x8000) rounds up only
 * when that bit is odd, and a carry out of the mantissa bumps the exponent,
 * which is correct rounding too, up to inf. A NaN is made quiet instead,
 * as the addition could carry its payload into inf. */
EVO_HOST_DEVICE static inline uint16_t evo_bf16_from_f32_bits(uint32_t u)
{
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

EVO_HOST_DEVICE static inline uint32_t evo_bf16_to_f32_bits(uint16_t h)
{
    return (uint32_t)h << 16;
}

/* fp16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
EVO_HOST_DEVICE static inline uint16_t evo_f16_from_f32_bits(uint32_t u)
{
    const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* 65520 = 65504 + half an ulp, and above: inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) { /* 2^-14 and above: normal. Rebias 127 -> 15, round the low 13 bits away */
        uint32_t r = a - 0x38000000u;
        r += 0xfffu + ((r >> 13) & 1u);
        return (uint16_t)(sign | (r >> 13));
    }
    /* Subnormal or zero: the value in units of 2^-24 is the 24-bit
     * significand shifted right by 126 - exponent (>= 14); round what is
     * shifted out. A round-up to 0x400 is the smallest normal, correctly. */
    const uint32_t e = a >> 23;
    if (e < 102) /* below 2^-25: rounds to zero */
        return (uint16_t)sign;
    const uint32_t m = (a & 0x7fffffu) | 0x800000u, shift = 126 - e;
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    q += rem > half || (rem == half && (q & 1u));
    return (uint16_t)(sign | q);
}

EVO_HOST_DEVICE static inline uint32_t evo_f16_to_f32_bits(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f)
        return sign | 0x7f800000u | (m << 13);
    if (e)
        return sign | ((e + 112) << 23) | (m << 13);
    if (!m)
        return sign;
    e = 113; /* subnormal m 2^-24: normalise */
    while (!(m & 0x400u)) {
        m <<= 1;
        e--;
    }
    return sign | (e << 23) | ((m & 0x3ffu) << 13);
}

#endif
