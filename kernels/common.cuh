/* common.cuh - what every kernel file shares: launch sizes and the
 * deterministic reductions over a warp and a block. */
#ifndef EVO_KERNELS_COMMON_CUH
#define EVO_KERNELS_COMMON_CUH

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "kernels.h"

namespace evo {

constexpr int kWarp = 32;
constexpr int kBlock = 256; /* threads per block of the elementwise and per-row kernels */

/* Blocks for a grid-stride loop over n items: enough to fill any current
 * GPU (132 SMs x 16 blocks of 256), no more, so huge n never overflows the
 * grid's x dimension. */
inline unsigned grid_for(size_t n, int block = kBlock)
{
    size_t b = (n + (size_t)block - 1) / (size_t)block;
    const size_t cap = 4096;
    return (unsigned)(b < 1 ? 1 : b > cap ? cap : b);
}

#define EVO_GRID_STRIDE(i, n)                                                                              \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* The sum over a warp, the same in every lane: a butterfly whose order is
 * fixed by the lane numbers, so the bits never depend on timing. */
template <typename T> __device__ inline T warp_sum(T x)
{
    for (int o = kWarp / 2; o > 0; o /= 2)
        x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

template <typename T> __device__ inline T warp_max(T x)
{
    for (int o = kWarp / 2; o > 0; o /= 2) {
        T y = __shfl_xor_sync(0xffffffffu, x, o);
        x = y > x ? y : x;
    }
    return x;
}

/* The sum over a block of blockDim.x (a multiple of 32, at most 1024)
 * threads, returned to every thread: each warp sums its lanes, then warp 0
 * sums the warps' results in warp order. */
template <typename T> __device__ inline T block_sum(T x)
{
    __shared__ T part[32];
    const int lane = threadIdx.x % kWarp, wid = threadIdx.x / kWarp, nw = blockDim.x / kWarp;
    x = warp_sum(x);
    __syncthreads(); /* part[] may still be read by a previous call */
    if (lane == 0)
        part[wid] = x;
    __syncthreads();
    x = lane < nw ? part[lane] : T(0);
    return warp_sum(x);
}

template <typename T> __device__ inline T block_max(T x)
{
    __shared__ T part[32];
    const int lane = threadIdx.x % kWarp, wid = threadIdx.x / kWarp, nw = blockDim.x / kWarp;
    x = warp_max(x);
    __syncthreads();
    if (lane == 0)
        part[wid] = x;
    __syncthreads();
    x = lane < nw ? part[lane] : part[0];
    return warp_max(x);
}

} // namespace evo

#endif
