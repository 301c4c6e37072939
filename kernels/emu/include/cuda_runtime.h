/* cuda_runtime.h (the CPU emulator's) - the runtime API, and for the
 * kernels (C++) what nvcc gives device code: the execution-space
 * keywords, threadIdx and friends, the barriers and warp shuffles, and the
 * launch (evo::launch in common.cuh calls evo_emu::launch).
 *
 * A launch goes into its stream's queue (runtime.cc), and the stream's
 * host thread runs the grid when it gets there, one block after the
 * other; a block's
 * threads are fibers (threads.cc) that switch only at a barrier
 * (__syncthreads, __syncwarp, a shuffle, a wmma load). Between two
 * barriers a thread runs alone, in thread order (or reverse order:
 * EVO_CUDA_EMULATOR_ORDER=reverse), so code that reads what another
 * thread wrote without a barrier between reads stale or poisoned values
 * and its results differ from the reference or between the two orders. */
#ifndef EVO_EMU_CUDA_RUNTIME_H
#define EVO_EMU_CUDA_RUNTIME_H

#include "cuda_runtime_api.h"

#ifdef __cplusplus

#include <stdint.h>
#include <string.h>

#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
/* Blocks run one at a time on one host thread, so a function's static is
 * its block's shared memory. */
#define __shared__ static

struct uint3 {
    unsigned x, y, z;
};

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz)
    {
    }
};

extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

namespace evo_emu {

/* A launch (common.cuh's evo::launch): its shape and shared memory
 * checked against the limits and the kernel's opt-in (an error is the
 * launch's, kept for cudaGetLastError), then run_grid queued on s. */
cudaError_t launch(const void *kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                   std::function<void()> body);
/* Work for stream s's host thread, after what is queued there already. */
void enqueue(cudaStream_t s, std::function<void()> work);
/* cudaErrorInvalidValue for a grid or block a GPU would not launch. */
cudaError_t check_shape(dim3 grid, dim3 block);
/* Runs body once for every thread of the grid; a kernel's fatal misuse
 * (a barrier that cannot complete, a partial warp mask) ends the process
 * with a message naming the kernel's launch. */
void run_grid(const void *kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()> &body);
char *dynamic_smem();
/* A kernel's misuse that would hang or corrupt a GPU: says which launch,
 * block and thread, and aborts. */
[[noreturn]] void misuse(const char *what);
void sync_block();
/* Every lane of the calling thread's warp arrives before any goes on. */
void sync_warp(unsigned mask);
/* The kernels' own barriers: sync_block and sync_warp, unless
 * EVO_CUDA_EMULATOR_IGNORE names them (syncthreads, syncwarp), which
 * shows that the checks catch a kernel without them (t0610). */
void syncthreads();
void syncwarp(unsigned mask);
/* Lane src's value of a shuffle whose lanes each give their own. */
uint64_t shuffle(unsigned mask, uint64_t mine, unsigned src_lane);
unsigned lane();
/* The lane's share of a 256-element fragment: i % 32 == lane. */
inline bool owns(unsigned i)
{
    return i % 32u == lane();
}

} // namespace evo_emu

#define EVO_DYNAMIC_SMEM(name, align) char *name = evo_emu::dynamic_smem()

inline void __syncthreads()
{
    evo_emu::syncthreads();
}

inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    evo_emu::syncwarp(mask);
}

template <typename T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask)
{
    static_assert(sizeof(T) <= sizeof(uint64_t), "a shuffle moves at most 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    bits = evo_emu::shuffle(mask, bits, evo_emu::lane() ^ (unsigned)lane_mask);
    T r;
    memcpy(&r, &bits, sizeof r);
    return r;
}

inline unsigned __float_as_uint(float f)
{
    unsigned u;
    memcpy(&u, &f, sizeof u);
    return u;
}

inline float __uint_as_float(unsigned u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

template <typename T> cudaError_t cudaFuncSetAttribute(T *kernel, cudaFuncAttribute attr, int value)
{
    return cudaFuncSetAttribute((const void *)kernel, attr, value);
}

#include "cuda_bf16.h"
#include "cuda_fp16.h"

#endif /* __cplusplus */

#endif
