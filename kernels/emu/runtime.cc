/* runtime.cc - the CUDA runtime over host memory: one device, the
 * Hopper-sized shared memory a block may opt in to (or
 * EVO_CUDA_EMULATOR_SMEM bytes, to take a smaller GPU's paths), streams
 * and events that are already done (every call runs to its end before it
 * returns), and the launch checks a GPU makes: a block's dynamic shared
 * memory past 48 KiB needs the kernel's opt-in first.
 *
 * Device memory is host memory that starts as 0xff bytes (NaN in every
 * float type), so a read of memory nothing wrote shows in the results. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <map>
#include <mutex>

#include "cuda_runtime.h"

struct evo_emu_stream {
    int unused;
};

struct evo_emu_event {
    int unused;
};

namespace {

constexpr size_t kDefaultSmem = 48 << 10, kHopperSmemOptin = 227 << 10;

std::mutex lock;
cudaError_t last_error = cudaSuccess;
std::map<const void *, size_t> smem_opt_in;

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

template <typename T> cudaError_t make(T **out)
{
    *out = new T();
    return cudaSuccess;
}

} // namespace

namespace evo_emu {

cudaError_t launch(const void *kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()> &body)
{
    size_t allowed = kDefaultSmem;
    {
        std::lock_guard<std::mutex> hold(lock);
        auto it = smem_opt_in.find(kernel);
        if (it != smem_opt_in.end() && it->second > allowed)
            allowed = it->second;
    }
    if (smem > allowed)
        return record(cudaErrorInvalidValue);
    return record(run_grid(kernel, grid, block, smem, body));
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
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    return record(device == 0 ? cudaSuccess : cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int *device)
{
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (device != 0)
        return record(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "evo CUDA emulator (CPU)");
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
    return cudaMalloc(p, bytes);
}

cudaError_t cudaFree(void *p)
{
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s)
{
    (void)kind;
    (void)s;
    if (bytes)
        memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s)
{
    if (width > dpitch || width > spitch)
        return record(cudaErrorInvalidValue);
    for (size_t r = 0; r < height; r++)
        cudaMemcpyAsync((char *)dst + r * dpitch, (const char *)src + r * spitch, width, kind, s);
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    (void)flags;
    return make(s);
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    (void)s;
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

cudaError_t cudaEventQuery(cudaEvent_t e)
{
    (void)e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    (void)e;
    (void)s;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    (void)e;
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
