/* comm.h - everything evo-train knows about the world of ranks, behind one
 * table of functions: who am I, how many are we, and the few collectives a
 * data-parallel step needs. The single-process world is implemented here;
 * the NCCL/PMIx world (srun, many GPUs) is a second table with the same
 * contract, and the training loop does not change. (Collectives join the
 * table as the loop needs them: a ZeRO step adds reduce-scatter and
 * all-gather.)
 *
 * Buffers are backend memory (device pointers for a GPU backend), as the
 * gradients they reduce; flags and counters are host values. */
#ifndef EVO_COMM_H
#define EVO_COMM_H

#include <stddef.h>

#include "compute/backend.h"

typedef struct evo_comm evo_comm;
struct evo_comm {
    const char *name;
    int rank, size; /* data-parallel rank and world (tp = pp = 1 for now) */
    /* buf[i] = sum over ranks of buf[i] (gradients: the caller scales). */
    void (*allreduce_sum_f32)(const evo_comm *c, const evo_backend *be, float *buf, size_t n);
    /* 1 on every rank if any rank passed a non-zero flag: stop requests
     * (signals, stop file) must end every rank at the same step. */
    int (*any)(const evo_comm *c, int flag);
};

/* The world of one process. */
const evo_comm *evo_comm_single(void);

#endif
