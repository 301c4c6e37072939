/* runtime.cc - the CUDA runtime over host memory: a machine of
 * EVO_CUDA_EMULATOR_DEVICES GPUs (default 8, an HGX node), of which the
 * process sees those CUDA_VISIBLE_DEVICES lists, as the driver does (so
 * Slurm's GPU binding picks them); the current device is per host thread.
 * Every device is the same memory, the host's. Each has the Hopper-sized
 * shared memory a block may opt in to (or EVO_CUDA_EMULATOR_SMEM bytes,
 * to take a smaller GPU's paths), and the launch checks a GPU makes: a
 * block's dynamic shared memory past 48 KiB needs the kernel's opt-in
 * first.
 *
 * Streams run as a GPU's do, behind the host: a stream is a host thread
 * that runs its queue in order (grids, GEMMs, copies, NCCL's calls,
 * event records and waits) while the caller goes on. So the host sees a
 * result only after it waited for it (cudaStreamSynchronize, an event, a
 * copy to pageable memory), two streams order their work only through
 * events, and a pinned buffer is read when its copy runs, not when it was
 * queued: code that misses one of those reads stale values here too.
 * Copies from pageable memory take the source at the call, as CUDA's
 * staging does; cudaFree waits for every stream, as CUDA's does.
 *
 * Device memory is host memory that starts as 0xff bytes (NaN in every
 * float type), so a read of memory nothing wrote shows in the results. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "cuda_runtime.h"

/* A stream's queue; its front is the work its thread runs now, taken off
 * when done, so an empty queue is a stream with nothing left to do. */
struct evo_emu_stream {
    std::deque<std::function<void()>> work;
    bool destroyed = false; /* its thread ends once the queue is empty */
};

/* Records counts the cudaEventRecord calls, reached the newest record its
 * stream has run. */
struct evo_emu_event {
    uint64_t recorded = 0, reached = 0;
};

namespace {

constexpr size_t kDefaultSmem = 48 << 10, kHopperSmemOptin = 227 << 10;

std::mutex lock;
cudaError_t last_error = cudaSuccess;
std::map<const void *, size_t> smem_opt_in;
std::map<const char *, size_t> pinned; /* cudaMallocHost's blocks, by start */

/* The streams' queues and the events, under one lock, and one signal for
 * "some work was queued or finished". Never destroyed: stream threads
 * still wait on them while the process exits. */
std::mutex &queue_lock = *new std::mutex;
std::condition_variable &queue_moved = *new std::condition_variable;
std::vector<cudaStream_t> &streams = *new std::vector<cudaStream_t>;

void run_queue(cudaStream_t s)
{
    std::unique_lock<std::mutex> l(queue_lock);
    for (;;) {
        queue_moved.wait(l, [s] { return !s->work.empty() || s->destroyed; });
        if (s->work.empty()) {
            streams.erase(std::find(streams.begin(), streams.end(), s));
            delete s;
            return;
        }
        std::function<void()> &f = s->work.front();
        l.unlock();
        f();
        l.lock();
        s->work.pop_front();
        queue_moved.notify_all();
    }
}

cudaStream_t new_stream()
{
    cudaStream_t s = new evo_emu_stream();
    std::thread(run_queue, s).detach();
    std::lock_guard<std::mutex> hold(queue_lock);
    streams.push_back(s);
    return s;
}

/* The legacy default stream (0): one more stream, created when first used. */
cudaStream_t stream_or_default(cudaStream_t s)
{
    static cudaStream_t legacy = new_stream();
    return s ? s : legacy;
}

void wait_idle(cudaStream_t s)
{
    std::unique_lock<std::mutex> l(queue_lock);
    queue_moved.wait(l, [s] { return s->work.empty(); });
}

/* What waiting for e means at a call: its newest record so far, reached. */
uint64_t newest_record(cudaEvent_t e)
{
    std::lock_guard<std::mutex> hold(queue_lock);
    return e->recorded;
}

void wait_reached(cudaEvent_t e, uint64_t want)
{
    std::unique_lock<std::mutex> l(queue_lock);
    queue_moved.wait(l, [e, want] { return e->reached >= want; });
}

bool is_pinned(const void *p, size_t bytes)
{
    std::lock_guard<std::mutex> hold(lock);
    auto it = pinned.upper_bound((const char *)p);
    return it != pinned.begin() && (--it, (const char *)p + bytes <= it->first + it->second);
}

/* A copy on stream s, as CUDA makes it: to or from pinned memory, and
 * between device buffers, when the stream gets there; from pageable host
 * memory, the source taken now; to pageable host memory, after the
 * stream's earlier work and before the call returns. */
void copy_on(cudaStream_t s, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
             const std::function<void(void *, const void *)> &copy)
{
    if (kind == cudaMemcpyHostToDevice && !is_pinned(src, bytes)) {
        auto staged = std::make_shared<std::vector<char>>((const char *)src, (const char *)src + bytes);
        evo_emu::enqueue(s, [=] { copy(dst, staged->data()); });
    } else if (kind == cudaMemcpyDeviceToHost && !is_pinned(dst, bytes)) {
        wait_idle(stream_or_default(s));
        copy(dst, src);
    } else {
        evo_emu::enqueue(s, [=] { copy(dst, src); });
    }
}

size_t smem_optin()
{
    const char *s = getenv("EVO_CUDA_EMULATOR_SMEM");
    return s && *s ? (size_t)strtoull(s, NULL, 10) : kHopperSmemOptin;
}

cudaError_t record(cudaError_t e)
{
    if (e != cudaSuccess) {
        std::lock_guard<std::mutex> hold(lock);
        last_error = e;
    }
    return e;
}

/* The machine's devices this process sees, by their index on the machine:
 * all of them, or those CUDA_VISIBLE_DEVICES lists (comma-separated
 * indices; the driver reads up to the first entry that is not one of the
 * machine's, or that repeats one, and an empty list hides them all). */
const std::vector<int> &visible_devices()
{
    static const std::vector<int> visible = [] {
        const char *m = getenv("EVO_CUDA_EMULATOR_DEVICES"), *list = getenv("CUDA_VISIBLE_DEVICES");
        const long machine = m && *m ? strtol(m, NULL, 10) : 8;
        std::vector<int> v;
        for (long i = 0; !list && i < machine; i++)
            v.push_back((int)i);
        for (const char *p = list; p;) {
            char *end;
            const long i = strtol(p, &end, 10);
            if (end == p || i < 0 || i >= machine || std::count(v.begin(), v.end(), (int)i))
                break;
            v.push_back((int)i);
            p = *end == ',' ? end + 1 : NULL;
        }
        return v;
    }();
    return visible;
}

thread_local int current_device;

bool valid_device(int device)
{
    return device >= 0 && (size_t)device < visible_devices().size();
}

template <typename T> cudaError_t make(T **out)
{
    *out = new T();
    return cudaSuccess;
}

} // namespace

namespace evo_emu {

void enqueue(cudaStream_t s, std::function<void()> work)
{
    s = stream_or_default(s);
    std::lock_guard<std::mutex> hold(queue_lock);
    s->work.push_back(std::move(work));
    queue_moved.notify_all();
}

cudaError_t launch(const void *kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s, std::function<void()> body)
{
    if (check_shape(grid, block) != cudaSuccess)
        return record(cudaErrorInvalidValue);
    size_t allowed = kDefaultSmem;
    {
        std::lock_guard<std::mutex> hold(lock);
        auto it = smem_opt_in.find(kernel);
        if (it != smem_opt_in.end() && it->second > allowed)
            allowed = it->second;
    }
    if (smem > allowed)
        return record(cudaErrorInvalidValue);
    enqueue(s, [=] { run_grid(kernel, grid, block, smem, body); });
    return cudaSuccess;
}

} // namespace evo_emu

extern "C" {

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNotReady: return "device not ready";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError(void)
{
    std::lock_guard<std::mutex> hold(lock);
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = (int)visible_devices().size();
    return *n ? cudaSuccess : record(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int device)
{
    if (!valid_device(device))
        return record(cudaErrorInvalidDevice);
    current_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
    *device = current_device;
    return cudaSuccess;
}

/* The machine's index of the device is its PCI bus: what NCCL tells
 * GPUs apart by. */
cudaError_t cudaDeviceGetPCIBusId(char *id, int len, int device)
{
    if (!valid_device(device) || len < 1)
        return record(!valid_device(device) ? cudaErrorInvalidDevice : cudaErrorInvalidValue);
    snprintf(id, (size_t)len, "0000:%02x:00.0", visible_devices()[(size_t)device]);
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (!valid_device(device))
        return record(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "evo CUDA emulator (CPU) #%d", visible_devices()[(size_t)device]);
    prop->totalGlobalMem = (size_t)80 << 30;
    prop->sharedMemPerBlock = kDefaultSmem;
    prop->sharedMemPerBlockOptin = smem_optin();
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    const size_t n = (bytes + 255) / 256 * 256;
    *p = aligned_alloc(256, n ? n : 256);
    if (!*p)
        return record(cudaErrorMemoryAllocation);
    memset(*p, 0xff, n);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t bytes)
{
    cudaError_t rc = cudaMalloc(p, bytes);
    if (rc == cudaSuccess) {
        std::lock_guard<std::mutex> hold(lock);
        pinned[(const char *)*p] = bytes;
    }
    return rc;
}

cudaError_t cudaFree(void *p)
{
    {
        std::unique_lock<std::mutex> l(queue_lock);
        queue_moved.wait(l, [] {
            return std::all_of(streams.begin(), streams.end(), [](cudaStream_t s) { return s->work.empty(); });
        });
    }
    {
        std::lock_guard<std::mutex> hold(lock);
        pinned.erase((const char *)p);
    }
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s)
{
    if (bytes)
        copy_on(s, dst, src, bytes, kind, [bytes](void *d, const void *from) { memmove(d, from, bytes); });
    return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s)
{
    if (width > dpitch || width > spitch)
        return record(cudaErrorInvalidValue);
    const size_t host_pitch = kind == cudaMemcpyDeviceToHost ? dpitch : spitch;
    if (height && width)
        copy_on(s, dst, src, (height - 1) * host_pitch + width, kind, [=](void *d, const void *from) {
            for (size_t r = 0; r < height; r++)
                memmove((char *)d + r * dpitch, (const char *)from + r * spitch, width);
        });
    return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void *arg)
{
    evo_emu::enqueue(s, [=] { fn(arg); });
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    (void)flags;
    *s = new_stream();
    return cudaSuccess;
}

/* As CUDA's: the queued work still runs, then the stream goes. */
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    std::lock_guard<std::mutex> hold(queue_lock);
    s->destroyed = true;
    queue_moved.notify_all();
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    wait_idle(stream_or_default(s));
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags)
{
    (void)flags;
    const uint64_t want = newest_record(e);
    evo_emu::enqueue(s, [e, want] { wait_reached(e, want); });
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    (void)flags;
    return make(e);
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    std::unique_lock<std::mutex> l(queue_lock);
    const uint64_t mine = ++e->recorded;
    l.unlock();
    evo_emu::enqueue(s, [e, mine] {
        std::lock_guard<std::mutex> hold(queue_lock);
        e->reached = std::max(e->reached, mine);
        queue_moved.notify_all();
    });
    return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t e)
{
    std::lock_guard<std::mutex> hold(queue_lock);
    return e->reached >= e->recorded ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    wait_reached(e, newest_record(e));
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *kernel, cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || (size_t)value > smem_optin())
        return record(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> hold(lock);
    smem_opt_in[kernel] = (size_t)value;
    return cudaSuccess;
}

} // extern "C"
