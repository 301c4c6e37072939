/* mma.h (the CPU emulator's): wmma's 16 x 16 x 16 fragments, as evo's
 * tensor-core attention uses them.
 *
 * A fragment is the whole 16 x 16 tile in every lane (the hardware spreads
 * it over the lanes in an unspecified layout, which evo never relies on).
 * load_matrix_sync reads the tile, then waits for the warp: lanes that
 * wrote the tile without a __syncwarp before are caught, as the first
 * lanes read what the later ones had not written yet. An accumulator
 * lane computes and stores only its share of the elements (i % 32 ==
 * lane), so a lane reading the stored tile without a __syncwarp after
 * store_matrix_sync reads stale values. Products of bf16 or fp16 are exact
 * in fp32 and summed in fp32 in k order: a tensor core's sums differ in
 * rounding only. */
#ifndef EVO_EMU_MMA_H
#define EVO_EMU_MMA_H

#include <math.h>

#include <type_traits>

#include <stdint.h>

#include "cuda_runtime.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {
};
struct matrix_b {
};
struct accumulator {
};
struct row_major {
};
struct col_major {
};
enum layout_t { mem_row_major, mem_col_major };

constexpr int kTile = 16;

inline float widen(float x)
{
    return x;
}

inline float widen(__nv_bfloat16 x)
{
    return evo_emu_widen16(x.bits, true);
}

inline float widen(__half x)
{
    return evo_emu_widen16(x.bits, false);
}

/* wmma's rules for a load or store (the CUDA C++ Programming Guide): a
 * 256-bit aligned pointer, and a leading dimension that is a multiple of
 * 16 bytes. A GPU's result is undefined otherwise; here it is an abort. */
template <typename T> inline void check_operand(const T *p, unsigned ld)
{
    if ((uintptr_t)p % 32 != 0)
        evo_emu::misuse("a wmma load or store at an address not 256-bit aligned");
    if (ld * sizeof(T) % 16 != 0)
        evo_emu::misuse("a wmma load or store whose leading dimension is not a multiple of 16 bytes");
}

/* x[r * 16 + c]: element (r, c) of the tile, rows m (or k) by columns. */
template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment {
    static_assert(M == kTile && N == kTile && K == kTile, "evo uses 16 x 16 x 16 fragments");
    static constexpr int num_elements = kTile * kTile;
    float x[kTile * kTile];
};

template <typename Use, typename T, typename Layout>
inline void load_matrix_sync(fragment<Use, kTile, kTile, kTile, T, Layout> &f, const T *p, unsigned ld)
{
    static_assert(!std::is_same<Use, accumulator>::value, "an accumulator's load names its memory layout");
    check_operand(p, ld);
    const bool by_rows = std::is_same<Layout, row_major>::value;
    for (int r = 0; r < kTile; r++)
        for (int c = 0; c < kTile; c++)
            f.x[r * kTile + c] = widen(by_rows ? p[(size_t)r * ld + c] : p[(size_t)c * ld + r]);
    evo_emu::sync_warp(0xffffffffu);
}

inline void load_matrix_sync(fragment<accumulator, kTile, kTile, kTile, float> &f, const float *p, unsigned ld,
                             layout_t layout)
{
    check_operand(p, ld);
    for (int r = 0; r < kTile; r++)
        for (int c = 0; c < kTile; c++)
            f.x[r * kTile + c] = layout == mem_row_major ? p[(size_t)r * ld + c] : p[(size_t)c * ld + r];
    evo_emu::sync_warp(0xffffffffu);
}

inline void store_matrix_sync(float *p, const fragment<accumulator, kTile, kTile, kTile, float> &f, unsigned ld,
                              layout_t layout)
{
    check_operand(p, ld);
    for (int r = 0; r < kTile; r++)
        for (int c = 0; c < kTile; c++)
            if (evo_emu::owns((unsigned)(r * kTile + c)))
                (layout == mem_row_major ? p[(size_t)r * ld + c] : p[(size_t)c * ld + r]) = f.x[r * kTile + c];
}

inline void fill_fragment(fragment<accumulator, kTile, kTile, kTile, float> &f, float v)
{
    for (float &e : f.x)
        e = v;
}

/* d = a b + c: the lane's share; the rest of d is NaN, never stored. */
template <typename T, typename LA, typename LB>
inline void mma_sync(fragment<accumulator, kTile, kTile, kTile, float> &d,
                     const fragment<matrix_a, kTile, kTile, kTile, T, LA> &a,
                     const fragment<matrix_b, kTile, kTile, kTile, T, LB> &b,
                     const fragment<accumulator, kTile, kTile, kTile, float> &c)
{
    for (int i = 0; i < kTile; i++)
        for (int j = 0; j < kTile; j++) {
            if (!evo_emu::owns((unsigned)(i * kTile + j))) {
                d.x[i * kTile + j] = NAN;
                continue;
            }
            float s = c.x[i * kTile + j];
            for (int k = 0; k < kTile; k++)
                s += a.x[i * kTile + k] * b.x[k * kTile + j];
            d.x[i * kTile + j] = s;
        }
}

} // namespace wmma
} // namespace nvcuda

#endif
