/* comm.h - everything evo-train knows about the world of ranks, behind one
 * table of functions: the layout (layout.h) and the collectives the
 * parallel modes need, each over one group of that layout. A world of one
 * rank (comm_single.c), Open MPI's ranks (comm_mpi.c) and NCCL's GPU
 * ranks (cuda/comm_nccl.c) implement it, and the training loop does not
 * change with them.
 *
 * Contract:
 * - Every rank of a group calls the same collectives in the same order
 *   with the same counts (n is per rank where a buffer is cut in parts).
 * - Buffers of the calls that take a dtype (fp32 gradients, or the
 *   backend's dtype for activations: evo_dval) and of f32 calls are
 *   backend memory (device pointers for a GPU backend); f64 calls and
 *   flags are host values; broadcast, send and recv take either: be NULL
 *   says host memory (a path, a file listing). A bf16 or fp16 sum adds in
 *   fp32 and rounds each result to the dtype, as NCCL does.
 * - Deterministic: the same layout on the same data gives the same bits
 *   every run (reduction order fixed by the algorithm, not by timing).
 * - bytes[g] counts what this rank sends over group g under the ring
 *   algorithms, evo_comm_volume's formula: tests and --dry-run check the
 *   communication volume against it. A group of one rank moves nothing.
 *   seconds[g] the wall time spent in its calls. */
#ifndef EVO_COMM_H
#define EVO_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "compute/backend.h"
#include "dist/layout.h"
#include "dist/world.h"

typedef enum { EVO_ALLREDUCE, EVO_REDUCE_SCATTER, EVO_ALLGATHER, EVO_BROADCAST, EVO_REDUCE, EVO_SENDRECV } evo_coll;

typedef struct evo_comm evo_comm;
struct evo_comm {
    const char *name;
    evo_layout layout;
    uint64_t bytes[EVO_N_GROUPS];
    double seconds[EVO_N_GROUPS]; /* spent in the group's calls: transfers and waits for peers */
    void *impl;

    /* buf[i] = sum over the group of buf[i], n values of dtype dt. */
    void (*allreduce_sum)(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *buf, size_t n);
    void (*allreduce_sum_f64)(evo_comm *c, evo_group g, double *host, size_t n);
    /* in: size x n values on every rank; out: this rank's n of their sum
     * (out[i] = sum over ranks of in[rank n + i]). */
    void (*reduce_scatter_sum)(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *out,
                               const void *in, size_t n);
    /* out: size x n, rank r's n values at out + r n; in may be that place. */
    void (*allgather)(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *out, const void *in,
                      size_t n);
    /* buf on root = sum over the group of buf, n values of dtype dt; other
     * ranks' buf unchanged. */
    void (*reduce_sum)(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *buf, size_t n,
                       uint32_t root);
    /* buf of every rank = root's. */
    void (*broadcast)(evo_comm *c, evo_group g, const evo_backend *be, void *buf, size_t bytes, uint32_t root);
    /* Point to point within a group (the pipeline's activations and their
     * gradients). send takes a copy of buf and returns at once; the
     * message goes while the sender works on (a pipeline stage sends on
     * and computes the next row; blocking sends between stages that each
     * send before they receive would wait on each other). recv waits for
     * its message. Messages from one rank to another with the same tag
     * arrive in the order sent; wait_sent waits until every message this
     * rank sent is delivered. */
    void (*send)(evo_comm *c, evo_group g, const evo_backend *be, const void *buf, size_t bytes, uint32_t peer,
                 int tag);
    void (*recv)(evo_comm *c, evo_group g, const evo_backend *be, void *buf, size_t bytes, uint32_t peer, int tag);
    void (*wait_sent)(evo_comm *c);
    /* Over the whole world: 1 on every rank if any (all) rank's flag is
     * non-zero; stop requests must end every rank at the same step. */
    int (*any)(evo_comm *c, int flag);
    int (*all)(evo_comm *c, int flag);
    void (*barrier)(evo_comm *c, evo_group g);
    void (*free)(evo_comm *c);
};

/* Bytes one rank sends for a collective of `bytes` (the whole buffer:
 * size x n elements for reduce-scatter and all-gather) over `size` ranks,
 * with ring algorithms: all-reduce 2 (size-1)/size, reduce-scatter and
 * all-gather (size-1)/size, broadcast and reduce (size-1)/size (pipelined
 * along the ring), send/recv the message. Integer bytes, rounded down. */
uint64_t evo_comm_volume(evo_coll kind, uint64_t bytes, uint32_t size);

/* The pipeline group's two kinds of message: tag EVO_TAG_TO_NEXT goes to
 * the next stage (activations), EVO_TAG_TO_PREV to the previous one
 * (gradients). A comm may carry each on a channel of its own (NCCL's). */
enum { EVO_TAG_TO_NEXT = 0, EVO_TAG_TO_PREV = 1 };

/* The secrets evo_comm_share_ids shares, by index: one per group, then
 * the pipeline's four channels of this rank: its messages to the next
 * stage and to the previous one (made by this rank), and from the
 * previous and from the next (made by them). */
enum { EVO_ID_TO_NEXT = EVO_N_GROUPS, EVO_ID_TO_PREV, EVO_ID_FROM_PREV, EVO_ID_FROM_NEXT, EVO_N_IDS };

/* The bootstrap of a comm whose groups and channels each need a secret
 * made by one of their ranks (NCCL's unique ids): for every group g of
 * more than one rank, its member 0 makes one with make(id, bytes, arg),
 * and with a pipeline of more than one stage, every stage makes its two
 * outgoing channels'; each is published through PMIx; one fence; then
 * every rank reads its groups' and channels' ids into ids + i bytes
 * (i < EVO_N_IDS; zeros for what it does not have). Collective over the
 * world, one fence whatever the layout. */
int evo_comm_share_ids(const evo_layout *l, const evo_world *w, size_t bytes,
                       int (*make)(void *id, size_t bytes, void *arg, evo_err *e), void *arg, unsigned char *ids,
                       evo_err *e);

/* The world of one process, with the layout of one rank. */
evo_comm *evo_comm_single(const evo_layout *l);
/* Open MPI's ranks (MPI_Init, which finds the same PMIx server as w), one
 * communicator per group of l. Checks that MPI sees the world PMIx gave.
 * A watchdog thread ends the job (evo_world_abort) when one collective
 * has waited timeout_s seconds for its peers, saying on stderr which one
 * and over which group: a rank that died or hangs (SIGSTOP, a stuck file
 * system) must not leave the others waiting forever. */
evo_comm *evo_comm_mpi(const evo_layout *l, const evo_world *w, double timeout_s, evo_err *e);
/* GPU ranks through NCCL (src/lib/cuda/comm_nccl.c, make CUDA=1 only):
 * be is the CUDA backend, open on this rank's GPU; one communicator per
 * group of more than one rank, their ids shared through PMIx; point to
 * point over the pipeline group through NCCL, one two-rank communicator
 * for each of a stage's four channels (EVO_TAG_TO_NEXT, EVO_TAG_TO_PREV:
 * device memory only), over other groups through Open MPI, staged. The
 * same watchdog contract as
 * evo_comm_mpi. Fails in a build without CUDA, when libnccl.so.2 cannot
 * be loaded, or when be is not the CUDA backend. */
evo_comm *evo_comm_nccl(const evo_layout *l, const evo_world *w, const evo_backend *be, double timeout_s,
                        evo_err *e);

#endif
