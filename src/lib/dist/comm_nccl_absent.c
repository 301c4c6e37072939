/* comm_nccl_absent.c - evo_comm_nccl in a build without CUDA (plain
 * `make`): there are no GPU ranks to connect. `make CUDA=1` builds
 * src/lib/cuda/comm_nccl.c instead of this file. */
#include "dist/comm.h"

evo_comm *evo_comm_nccl(const evo_layout *l, const evo_world *w, const evo_backend *be, double timeout_s,
                        evo_err *e)
{
    (void)l, (void)w, (void)be, (void)timeout_s;
    evo_errf(e, "this build has no NCCL comm (build with make CUDA=1)");
    return NULL;
}
