/* host_device.h - EVO_HOST_DEVICE marks a static inline function that both
 * the host's C and the GPU's kernels (kernels/, nvcc) compile, so that the
 * two sides share one definition of a rule instead of two copies. */
#ifndef EVO_HOST_DEVICE_H
#define EVO_HOST_DEVICE_H

#ifdef __CUDACC__
#define EVO_HOST_DEVICE __host__ __device__
#else
#define EVO_HOST_DEVICE
#endif

#endif
