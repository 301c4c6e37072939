/* world.h - who this process is among the ranks of a job, from PMIx.
 *
 * Under `srun --mpi=pmix` (Slurm's PMIx plugin) or Open MPI's mpirun, a
 * PMIx server runs beside every process and knows the job: this rank, the
 * job size, the ranks on this node (the local rank picks the GPU) and the
 * node count. A process started by hand has no server (no PMIX_NAMESPACE
 * in its environment, or PMIx_Init fails with PMIX_ERR_UNREACH), and the
 * world is one rank, silently. */
#ifndef EVO_WORLD_H
#define EVO_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct {
    uint32_t rank, size;             /* in the job */
    uint32_t local_rank, local_size; /* on this node */
    uint32_t nodes;
    int pmix;                        /* 1: a PMIx server answered (finalize it) */
    char nspace[256];                /* the job's PMIx namespace; "" alone */
} evo_world;

/* Fills w from PMIx, or as a world of one rank. Fails only when a server
 * answered but could not say what the job is. */
int evo_world_init(evo_world *w, evo_err *e);
void evo_world_finalize(evo_world *w);
/* Small values published to the other ranks (NCCL's unique ids): put
 * stores one under key for this rank, fence (collective over the job:
 * every rank calls it) makes every rank's puts visible to all, get reads
 * rank r's value of key, which must be exactly n bytes. Keys begin with
 * "evo." so as not to meet the launcher's or Open MPI's. A world without
 * PMIx has nothing to publish to: each call fails saying so. */
int evo_world_put(const evo_world *w, const char *key, const void *data, size_t n, evo_err *e);
int evo_world_fence(const evo_world *w, evo_err *e);
int evo_world_get(const evo_world *w, uint32_t rank, const char *key, void *out, size_t n, evo_err *e);
/* Ends the whole job now: PMIx_Abort, after which the launcher (Slurm's
 * PMIx plugin, mpirun) kills every rank, stopped ones included; alone,
 * this process exits. Safe from any thread. */
_Noreturn void evo_world_abort(const evo_world *w, int status, const char *why);

#endif
