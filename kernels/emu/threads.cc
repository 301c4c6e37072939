/* threads.cc - the emulator's grid: every block in turn, its threads as
 * fibers on one host thread, switching only at barriers. Fiber i is
 * thread i of every block: it starts once on its own stack (makecontext,
 * swapcontext), then runs one thread after another in a loop, parking
 * between blocks, and switches by GCC's __builtin_setjmp/__builtin_longjmp,
 * which keep the stack, frame and resume addresses only: no system call
 * (the ucontext calls set the signal mask), no unwinding (libc's longjmp).
 *
 * A thread runs until it reaches a barrier or returns; the scheduler then
 * resumes the next runnable thread in thread order (reverse order with
 * EVO_CUDA_EMULATOR_ORDER=reverse). __syncthreads releases the block when
 * every thread that has not returned is waiting (returned threads count as
 * arrived, as on the hardware); a warp barrier (__syncwarp, a shuffle, a
 * wmma load) releases a warp when all its lanes wait. Threads waiting at
 * barriers that can never complete (some of a warp at __syncthreads and
 * some at __syncwarp) would hang a GPU, and a barrier over part of a warp
 * is beyond evo's kernels: the emulator says so and aborts. So it does for
 * a full-warp barrier with a returned lane, stricter than CUDA (which
 * counts only the lanes that have not returned; evo's kernels return whole
 * warps at a time). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <mutex>

#include "cuda_runtime.h"

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace evo_emu {

namespace {

enum state { RUNNABLE, AT_BLOCK, AT_WARP, RETURNED };

constexpr size_t kStack = 256 << 10; /* a fiber's stack: wmma fragments of 256 floats live there */
constexpr unsigned kMaxThreads = 1024;
constexpr unsigned kWarpSize = 32;

/* __builtin_setjmp's buffer: five words */
typedef void *jump_point[5];

/* Goes on where __builtin_setjmp(p) was called (its own frame: GCC wants
 * the jump out of a function other than the one that set the point). */
__attribute__((noinline)) void jump_to(jump_point &p)
{
    __builtin_longjmp(p, 1);
}

struct fiber {
    ucontext_t start;
    jump_point at; /* where it waits, once started */
    bool started;
    state st;
};

struct grid_state {
    std::mutex lock; /* one grid at a time, whatever host thread launches */
    ucontext_t scheduler_ctx;
    jump_point scheduler;
    fiber threads[kMaxThreads];
    char *stacks = nullptr;
    unsigned n = 0, current = 0, live = 0, at_block = 0;
    unsigned at_warp[kMaxThreads / kWarpSize], returned_in_warp[kMaxThreads / kWarpSize];
    /* shuffles alternate between two sets, so a lane that goes on to the
     * next one never overwrites a value a slower lane has still to read */
    uint64_t slots[2][kMaxThreads];
    unsigned shuffles[kMaxThreads];
    char *smem = nullptr; /* the dynamic shared memory, 256-byte aligned as a GPU's */
    size_t smem_bytes = 0;
    const std::function<void()> *body = nullptr;
    const void *kernel = nullptr;
    bool reverse = false;
    bool ignore_syncthreads = false, ignore_syncwarp = false;
} g;

unsigned warp_lanes(unsigned w)
{
    const unsigned first = w * kWarpSize;
    return g.n - first < kWarpSize ? g.n - first : kWarpSize;
}

void release(state from, unsigned first, unsigned count)
{
    for (unsigned i = first; i < first + count; i++)
        if (g.threads[i].st == from)
            g.threads[i].st = RUNNABLE;
}

/* A warp whose waiting lanes can no longer all arrive. */
void check_warp(unsigned w)
{
    if (g.at_warp[w] && g.returned_in_warp[w])
        misuse("a warp barrier (__syncwarp, a shuffle or a wmma load) waits on a lane that has returned");
}

void block_arrivals()
{
    if (g.at_block && g.at_block == g.live) {
        release(AT_BLOCK, 0, g.n);
        g.at_block = 0;
    }
}

void yield()
{
    if (!__builtin_setjmp(g.threads[g.current].at))
        jump_to(g.scheduler);
}

/* A fiber's life: thread g.current of each block it is resumed for. */
void entry()
{
    for (;;) {
        (*g.body)();
        g.threads[g.current].st = RETURNED;
        g.live--;
        g.returned_in_warp[g.current / kWarpSize]++;
        check_warp(g.current / kWarpSize);
        block_arrivals();
        yield(); /* parked until a later block's thread of this number */
    }
}

/* Runs f until it yields. Its own frame (noinline), so that the jump back
 * from the fiber lands here and clobbers none of the caller's variables. */
__attribute__((noinline)) void resume(fiber &f)
{
    if (__builtin_setjmp(g.scheduler))
        return;
    if (f.started)
        jump_to(f.at);
    f.started = true;
    swapcontext(&g.scheduler_ctx, &f.start);
}

void set_thread_index(unsigned i)
{
    g.current = i;
    threadIdx.x = i % blockDim.x;
    threadIdx.y = i / blockDim.x % blockDim.y;
    threadIdx.z = i / (blockDim.x * blockDim.y);
}

[[noreturn]] void deadlock()
{
    unsigned counts[4] = {0, 0, 0, 0};
    for (unsigned i = 0; i < g.n; i++)
        counts[g.threads[i].st]++;
    char msg[200];
    snprintf(msg, sizeof msg,
             "barriers that can never complete: %u threads at __syncthreads, %u at warp barriers, %u returned",
             counts[AT_BLOCK], counts[AT_WARP], counts[RETURNED]);
    misuse(msg);
}

/* Fiber i's first start, on its stack (noinline: getcontext returns
 * twice, as setjmp does). */
__attribute__((noinline)) void prepare(fiber &f, unsigned i)
{
    getcontext(&f.start);
    f.start.uc_stack.ss_sp = g.stacks + (size_t)i * kStack;
    f.start.uc_stack.ss_size = kStack;
    f.start.uc_link = nullptr;
    makecontext(&f.start, entry, 0);
}

void run_block(size_t smem_bytes)
{
    /* dynamic shared memory starts as NaN bytes: a read before a write
     * shows */
    memset(g.smem, 0xff, smem_bytes);
    for (unsigned i = 0; i < g.n; i++) {
        fiber &f = g.threads[i];
        if (!f.started)
            prepare(f, i);
        f.st = RUNNABLE;
        g.shuffles[i] = 0;
    }
    memset(g.at_warp, 0, sizeof g.at_warp);
    memset(g.returned_in_warp, 0, sizeof g.returned_in_warp);
    g.live = g.n;
    g.at_block = 0;
    while (g.live) {
        bool ran = false;
        for (unsigned k = 0; k < g.n; k++) {
            const unsigned i = g.reverse ? g.n - 1 - k : k;
            if (g.threads[i].st != RUNNABLE)
                continue;
            set_thread_index(i);
            resume(g.threads[i]);
            ran = true;
        }
        if (!ran && g.live)
            deadlock();
    }
}

} // namespace

[[noreturn]] void misuse(const char *what)
{
    fprintf(stderr, "evo CUDA emulator: kernel %p, block (%u, %u, %u), thread %u: %s\n", g.kernel, blockIdx.x,
            blockIdx.y, blockIdx.z, g.current, what);
    abort();
}

cudaError_t check_shape(dim3 grid, dim3 block)
{
    const size_t n = (size_t)block.x * block.y * block.z;
    if (!n || n > kMaxThreads || !grid.x || !grid.y || !grid.z || grid.y > 65535 || grid.z > 65535)
        return cudaErrorInvalidValue;
    return cudaSuccess;
}

void run_grid(const void *kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()> &body)
{
    std::lock_guard<std::mutex> hold(g.lock);
    g.kernel = kernel;
    if (!g.stacks) {
        void *p = mmap(nullptr, kMaxThreads * kStack, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            misuse("no memory for the threads' stacks");
        g.stacks = (char *)p;
        const char *order = getenv("EVO_CUDA_EMULATOR_ORDER"), *ignore = getenv("EVO_CUDA_EMULATOR_IGNORE");
        g.reverse = order && strcmp(order, "reverse") == 0;
        g.ignore_syncthreads = ignore && strcmp(ignore, "syncthreads") == 0;
        g.ignore_syncwarp = ignore && strcmp(ignore, "syncwarp") == 0;
    }
    if (g.smem_bytes < smem) {
        free(g.smem);
        g.smem_bytes = (smem + 255) / 256 * 256;
        if (!(g.smem = (char *)aligned_alloc(256, g.smem_bytes)))
            misuse("no memory for the shared memory");
    }
    g.n = block.x * block.y * block.z;
    g.body = &body;
    blockDim = block;
    gridDim = grid;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = uint3{x, y, z};
                run_block(smem);
            }
}

char *dynamic_smem()
{
    return g.smem;
}

unsigned lane()
{
    return g.current % kWarpSize;
}

void sync_block()
{
    g.threads[g.current].st = AT_BLOCK;
    g.at_block++;
    block_arrivals();
    yield();
}

void sync_warp(unsigned mask)
{
    const unsigned w = g.current / kWarpSize, lanes = warp_lanes(w);
    const unsigned full = lanes == kWarpSize ? 0xffffffffu : (1u << lanes) - 1;
    if ((mask & full) != full)
        misuse("a warp barrier over part of a warp (evo's kernels sync whole warps)");
    g.threads[g.current].st = AT_WARP;
    g.at_warp[w]++;
    check_warp(w);
    if (g.at_warp[w] == lanes) {
        release(AT_WARP, w * kWarpSize, lanes);
        g.at_warp[w] = 0;
    }
    yield();
}

uint64_t shuffle(unsigned mask, uint64_t mine, unsigned src_lane)
{
    const unsigned w = g.current / kWarpSize, set = g.shuffles[g.current]++ % 2;
    g.slots[set][g.current] = mine;
    sync_warp(mask); /* every lane has put its value */
    return g.slots[set][w * kWarpSize + src_lane % kWarpSize];
}

void syncthreads()
{
    if (!g.ignore_syncthreads)
        sync_block();
}

void syncwarp(unsigned mask)
{
    if (!g.ignore_syncwarp)
        sync_warp(mask);
}

} // namespace evo_emu
