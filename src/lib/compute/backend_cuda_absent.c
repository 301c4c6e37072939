/* backend_cuda_absent.c - evo_backend_cuda in a build without CUDA (plain
 * `make`): there is no GPU backend to open. `make CUDA=1` builds
 * src/lib/cuda/backend_cuda.c instead of this file. */
#include "base/error.h"
#include "compute/backend.h"

const int evo_cuda_built = 0;

const evo_backend *evo_backend_cuda(int device, evo_dtype dtype, int tf32, evo_err *e)
{
    (void)device, (void)dtype, (void)tf32;
    evo_errf(e, "this build has no CUDA backend (build with make CUDA=1)");
    return NULL;
}
