/* bits16.h (the CPU emulator's): fp16's and bf16's storage types, their
 * bits and nothing else (evo's kernels convert with dtype_bits.h), behind
 * cuda_fp16.h and cuda_bf16.h. Two distinct types, as in CUDA, so that
 * overloads tell them apart. */
#ifndef EVO_EMU_BITS16_H
#define EVO_EMU_BITS16_H

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

#endif
