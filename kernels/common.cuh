/* common.cuh - what every kernel file shares: launch sizes, the
 * deterministic reductions over a warp and a block, and the storage types
 * of activations (kernels.h): loads and stores between a dtype and fp32
 * registers, and the dispatch of a launcher to its kernel's template. */
#ifndef EVO_KERNELS_COMMON_CUH
#define EVO_KERNELS_COMMON_CUH

#include <stddef.h>
#include <stdint.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "base/dtype_bits.h"
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

/* Every kernel starts here: kernel<<<grid, block, smem, s>>>(args) on a
 * GPU, the grid run on the CPU by the emulator (kernels/emu, make
 * CUDA=emu); either way its error is cudaGetLastError's. */
template <typename... P, typename... A>
inline void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, A... args)
{
#ifdef EVO_CUDA_EMULATOR
    evo_emu::launch((const void *)kernel, grid, block, smem, s, [=] { kernel(args...); });
#else
    kernel<<<grid, block, smem, s>>>(args...);
#endif
}

/* The block's dynamic shared memory (the launch's smem bytes) as
 * char name[], aligned to align bytes; the emulator has its own. */
#ifndef EVO_DYNAMIC_SMEM
#define EVO_DYNAMIC_SMEM(name, align) extern __shared__ __align__(align) char name[]
#endif

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

/* ---- storage types ------------------------------------------------------
 * A dtype buffer holds X = float, __nv_bfloat16 or __half (X: the template
 * parameter of every kernel that reads one), computed on in fp32. load
 * widens exactly; store rounds to nearest even with dtype_bits.h's bit
 * operations, the host's (dtype.c), so that a GPU op and the CPU's
 * emulation of it (backend_emulated.c) round every value to the same bits.
 * __float2bfloat16_rn and __float2half_rn (cvt.rn) round finite values the
 * same way, overflow to inf included, but make every NaN the canonical
 * one, losing the sign and payload that dtype_bits.h keeps. */
__device__ inline float to_f32(float x)
{
    return x;
}

__device__ inline float to_f32(__nv_bfloat16 x)
{
    return __uint_as_float(evo_bf16_to_f32_bits(__bfloat16_as_ushort(x)));
}

__device__ inline float to_f32(__half x)
{
    return __uint_as_float(evo_f16_to_f32_bits(__half_as_ushort(x)));
}

template <typename X> __device__ inline X from_f32(float x);

template <> __device__ inline float from_f32<float>(float x)
{
    return x;
}

template <> __device__ inline __nv_bfloat16 from_f32<__nv_bfloat16>(float x)
{
    return __ushort_as_bfloat16(evo_bf16_from_f32_bits(__float_as_uint(x)));
}

template <> __device__ inline __half from_f32<__half>(float x)
{
    return __ushort_as_half(evo_f16_from_f32_bits(__float_as_uint(x)));
}

/* Element i of a dtype buffer as fp32, and x stored into it rounded. */
template <typename X> __device__ inline float load(const X *p, size_t i)
{
    return to_f32(p[i]);
}

template <typename X> __device__ inline void store(X *p, size_t i, float x)
{
    p[i] = from_f32<X>(x);
}

/* A launcher's dispatch on its dtype: f(X()) with X the storage type
 * of dt (a generic lambda that launches kernel<X>), then the launch's
 * error; cudaErrorInvalidValue for a dtype that is none of the three. */
template <typename F> inline cudaError_t dispatch(evo_dtype dt, F f)
{
    switch (dt) {
    case EVO_F32: f(float()); break;
    case EVO_BF16: f(__nv_bfloat16()); break;
    case EVO_F16: f(__half()); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

/* ---- sums over the tokens of a [T, C] matrix ----------------------------
 * acc[c] += sum_t f(t, c) in a fixed grouping: blocks of kSumThreads
 * columns by chunks of kSumChunkRows tokens write partial sums (the tokens
 * in order), then a thread per column adds its chunks' partials in order
 * to acc. T C / 32 threads at work rather than C: a thread per column
 * walking every token leaves most of a GPU idle at C in the thousands. The
 * grouping depends on T alone, so every run gives the same bits (not the
 * CPU's, which adds the tokens one by one: the two differ by fp32
 * rounding). partial holds column_partials(T, C) floats. */
constexpr int kSumThreads = 128, kSumChunkRows = 32;

inline size_t column_chunks(size_t T)
{
    return (T + kSumChunkRows - 1) / kSumChunkRows;
}

template <typename F> __global__ void column_partial_kernel(float *partial, size_t T, size_t C, F f)
{
    const size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (c >= C)
        return;
    const size_t t0 = chunk * kSumChunkRows, t1 = t0 + kSumChunkRows < T ? t0 + kSumChunkRows : T;
    float s = 0.0f;
    for (size_t t = t0; t < t1; t++)
        s += f(t, c);
    partial[chunk * C + c] = s;
}

/* (a template, as a header's kernel must be: acc is fp32) */
template <typename A> __global__ void column_total_kernel(A *acc, const float *partial, size_t chunks, size_t C)
{
    EVO_GRID_STRIDE(c, C)
    {
        float s = acc[c];
        for (size_t k = 0; k < chunks; k++)
            s += partial[k * C + c];
        acc[c] = s;
    }
}

template <typename F> inline void sum_columns(cudaStream_t s, float *acc, float *partial, size_t T, size_t C, F f)
{
    if (!T || !C)
        return;
    const size_t chunks = column_chunks(T);
    launch(column_partial_kernel<F>, dim3((unsigned)((C + kSumThreads - 1) / kSumThreads), (unsigned)chunks),
           kSumThreads, 0, s, partial, T, C, f);
    launch(column_total_kernel<float>, grid_for(C), kBlock, 0, s, acc, partial, chunks, C);
}

} // namespace evo

#endif
