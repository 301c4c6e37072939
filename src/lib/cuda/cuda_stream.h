/* cuda_stream.h - the CUDA backend's stream, for the NCCL comm
 * (comm_nccl.c): collectives enqueued on it run in order with the ops
 * that make and use their buffers, with no sync between. */
#ifndef EVO_CUDA_STREAM_H
#define EVO_CUDA_STREAM_H

#include <cuda_runtime_api.h>

/* NULL (the legacy stream) before evo_backend_cuda has opened a GPU. */
cudaStream_t evo_cuda_stream(void);

#endif
