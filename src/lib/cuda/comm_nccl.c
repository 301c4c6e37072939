/* comm_nccl.c - GPU ranks through NCCL: one communicator per group of the
 * layout of more than one rank, each bootstrapped from a unique id that
 * the group's member 0 makes and publishes through PMIx
 * (evo_comm_share_ids: one fence for all of them). Built with `make
 * CUDA=1` only.
 *
 * Collectives run on the CUDA backend's stream, in order with the ops that
 * make and use their buffers: the host enqueues and goes on, and waits
 * only where it reads a result (host values: the f64 sums, the flags, a
 * host broadcast, staged through a small device buffer). Plain first:
 * no overlap of communication with compute yet.
 *
 * Point to point (the pipeline) goes through Open MPI staged through the
 * host (comm_mpi.c), as before NCCL: a stage sends and computes on while
 * its message waits for the peer's receive, and NCCL's ncclSend on the
 * compute stream would hold every later op behind that receive (two stages
 * that each send before they receive would wait on each other). Moving
 * it onto NCCL needs a send stream and a pair of GPUs to prove it on.
 *
 * NCCL is loaded when the comm opens (dlopen of libnccl.so.2), so the CUDA
 * build runs one-GPU and CPU jobs on machines without it.
 *
 * Results are deterministic for a fixed configuration (ranks, topology,
 * NCCL version and NCCL_ALGO / NCCL_PROTO); they differ from Open MPI's
 * in the last bits, as any two reduction orders do.
 *
 * Failures: NCCL has no timeout. A watchdog thread polls every
 * communicator's asynchronous error and the completion of the newest
 * collective; on an error, or a collective not done timeout_s seconds
 * after it was enqueued, it aborts the communicators (ncclCommAbort
 * stops what runs on the device), says on stderr which rank and which
 * collective, and ends the job through PMIx (Slurm kills the step). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "base/log.h"
#include "cuda/cuda_stream.h"
#include "dist/comm.h"

/* The NCCL entry points this comm calls, resolved from libnccl.so.2. */
#define NCCL_FUNCS(X)                                                                                                \
    X(ncclGetUniqueId) X(ncclCommInitRank) X(ncclCommFinalize) X(ncclCommDestroy) X(ncclCommAbort) \
    X(ncclCommGetAsyncError) X(ncclGetErrorString) X(ncclAllReduce) X(ncclReduceScatter) X(ncclAllGather)           \
    X(ncclReduce) X(ncclBroadcast)
#define NCCL_POINTER(f) __typeof__(&f) f;
static struct {
    NCCL_FUNCS(NCCL_POINTER)
} nc;
#undef NCCL_POINTER

static int load_nccl(evo_err *e)
{
    if (nc.ncclAllReduce)
        return 0;
    void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
    if (!h)
        return evo_errf(e, "NCCL: %s (install NCCL on the GPU nodes, or run with --comm mpi)", dlerror());
#define NCCL_RESOLVE(f)                                                                                               \
    if (!(*(void **)&nc.f = dlsym(h, #f)))                                                                            \
        return evo_errf(e, "NCCL: libnccl.so.2 lacks %s (NCCL 2.19 or later wanted)", #f);
    NCCL_FUNCS(NCCL_RESOLVE)
#undef NCCL_RESOLVE
    return 0;
}

typedef struct {
    ncclComm_t group[EVO_N_GROUPS]; /* NULL for groups of one rank */
    evo_comm *p2p;                  /* Open MPI, for send / recv */
    const evo_backend *be;
    cudaStream_t stream;
    int device;
    void *scratch; /* device staging of host values */
    size_t scratch_bytes;
    /* what the watchdog watches: the newest collective, its event */
    evo_world world;
    double timeout_s;
    cudaEvent_t newest;
    _Atomic(const char *) waiting_in;
    _Atomic int waiting_group;
    _Atomic double since;
    /* collectives recorded, twice each: odd while one is being recorded
     * (a seqlock: the watchdog trusts what it read only if this did not
     * move meanwhile) */
    _Atomic uint64_t records;
    _Atomic int stop;
    pthread_t watchdog;
} nccl_impl;

static nccl_impl *impl_of(evo_comm *c) { return c->impl; }

static uint32_t size_of(evo_comm *c, evo_group g) { return evo_layout_group_size(&c->layout, g); }

/* Ends the job from any thread: every communicator aborted first, so
 * that no kernel of this rank waits on for a peer that is gone. The main
 * thread and the watchdog may both get there (a dead peer fails the next
 * collective and shows as an async error): the first ends the job, the
 * other waits for the end. */
_Noreturn static void abort_job(nccl_impl *m, const char *why)
{
    static atomic_flag aborting = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&aborting))
        for (;;)
            pause();
    for (int g = 0; g < EVO_N_GROUPS; g++)
        if (m->group[g])
            nc.ncclCommAbort(m->group[g]);
    fprintf(stderr, "%s: %s\n", evo_progname(), why);
    evo_world_abort(&m->world, EVO_EXIT_FAIL, why);
}

static void check(nccl_impl *m, ncclResult_t rc, const char *what, evo_group g)
{
    if (rc == ncclSuccess || rc == ncclInProgress)
        return;
    char why[256];
    snprintf(why, sizeof why, "NCCL %s over the %s group: %s; ending the job", what, evo_group_name(g),
             nc.ncclGetErrorString(rc));
    abort_job(m, why);
}

static void check_cuda(cudaError_t rc, const char *what)
{
    if (rc != cudaSuccess)
        evo_fatal("CUDA: %s: %s", what, cudaGetErrorString(rc));
}

static void *watchdog(void *arg)
{
    evo_comm *c = arg;
    nccl_impl *m = c->impl;
    cudaSetDevice(m->device); /* the current device is per thread */
    uint64_t done = 0;        /* the newest record seen complete */
    while (!m->stop) {
        struct timespec nap = {0, 200 * 1000 * 1000};
        nanosleep(&nap, NULL);
        char why[320];
        for (int g = 0; g < EVO_N_GROUPS; g++) {
            ncclResult_t st = ncclSuccess;
            if (m->group[g] && nc.ncclCommGetAsyncError(m->group[g], &st) == ncclSuccess && st != ncclSuccess &&
                st != ncclInProgress) {
                snprintf(why, sizeof why, "NCCL over the %s group: %s (a peer failed?); ending the job",
                         evo_group_name((evo_group)g), nc.ncclGetErrorString(st));
                abort_job(m, why);
            }
        }
        uint64_t seq = m->records;
        const char *what = m->waiting_in;
        if (!what || seq % 2 || seq == done || evo_now() - m->since < m->timeout_s)
            continue;
        int pending = cudaEventQuery(m->newest) == cudaErrorNotReady;
        if (m->records != seq) /* a newer one came meanwhile: look again */
            continue;
        if (!pending) {
            done = seq;
            continue;
        }
        evo_group g = (evo_group)m->waiting_group;
        snprintf(why, sizeof why,
                 "%s over the %s group (%u ranks) is not done %.0f s after it was started: a rank died or hangs; "
                 "ending the job",
                 what, evo_group_name(g), size_of(c, g), m->timeout_s);
        abort_job(m, why);
    }
    return NULL;
}

/* Every collective, after it is enqueued: its completion marked for the
 * watchdog, its volume counted, and the host's time in the call. */
static void call_end(evo_comm *c, evo_group g, const char *what, evo_coll kind, uint64_t bytes, double t0)
{
    nccl_impl *m = impl_of(c);
    m->records++;
    check_cuda(cudaEventRecord(m->newest, m->stream), "event record");
    m->waiting_group = (int)g;
    m->since = evo_now();
    m->waiting_in = what;
    m->records++;
    c->bytes[g] += evo_comm_volume(kind, bytes, size_of(c, g));
    c->seconds[g] += evo_now() - t0;
}

/* The device staging buffer for host values, at least bytes long. */
static void *scratch(nccl_impl *m, size_t bytes)
{
    if (m->scratch_bytes < bytes) {
        m->be->free(m->be, m->scratch);
        m->scratch = m->be->alloc(m->be, bytes);
        m->scratch_bytes = bytes;
    }
    return m->scratch;
}

/* NCCL's type of a dtype: a bf16 or fp16 sum is NCCL's, each partial sum
 * of its ring rounded to the dtype (comm.h). */
static ncclDataType_t nccl_type(evo_dtype dt)
{
    return dt == EVO_BF16 ? ncclBfloat16 : dt == EVO_F16 ? ncclFloat16 : ncclFloat32;
}

static void allreduce(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *buf, size_t n)
{
    (void)be;
    nccl_impl *m = impl_of(c);
    if (!m->group[g])
        return;
    double t0 = evo_now();
    check(m, nc.ncclAllReduce(buf, buf, n, nccl_type(dt), ncclSum, m->group[g], m->stream), "all-reduce", g);
    call_end(c, g, "all-reduce", EVO_ALLREDUCE, n * evo_dtype_size(dt), t0);
}

/* A collective over host values: uploaded, reduced in place on the
 * device, downloaded (the download waits for it). */
static void host_allreduce(evo_comm *c, evo_group g, void *host, size_t n, size_t elem, ncclDataType_t type,
                           ncclRedOp_t op)
{
    nccl_impl *m = impl_of(c);
    if (!m->group[g])
        return;
    double t0 = evo_now();
    void *d = scratch(m, n * elem);
    m->be->upload(m->be, d, host, n * elem);
    check(m, nc.ncclAllReduce(d, d, n, type, op, m->group[g], m->stream), "all-reduce", g);
    call_end(c, g, "all-reduce", EVO_ALLREDUCE, n * elem, t0);
    double t1 = evo_now();
    m->be->download(m->be, host, d, n * elem); /* waits for the result */
    c->seconds[g] += evo_now() - t1;
}

static void allreduce_f64(evo_comm *c, evo_group g, double *host, size_t n)
{
    host_allreduce(c, g, host, n, sizeof *host, ncclFloat64, ncclSum);
}

/* A reduce-scatter or all-gather over a group of one rank: out is in. */
static int alone(nccl_impl *m, evo_group g, const evo_backend *be, evo_dtype dt, void *out, const void *in,
                 size_t n)
{
    if (m->group[g])
        return 0;
    if (out != in)
        be->copy(be, out, in, n * evo_dtype_size(dt));
    return 1;
}

static void reduce_scatter(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *out, const void *in,
                           size_t n)
{
    nccl_impl *m = impl_of(c);
    if (alone(m, g, be, dt, out, in, n))
        return;
    double t0 = evo_now();
    check(m, nc.ncclReduceScatter(in, out, n, nccl_type(dt), ncclSum, m->group[g], m->stream), "reduce-scatter", g);
    call_end(c, g, "reduce-scatter", EVO_REDUCE_SCATTER, n * size_of(c, g) * evo_dtype_size(dt), t0);
}

static void allgather(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *out, const void *in,
                      size_t n)
{
    nccl_impl *m = impl_of(c);
    if (alone(m, g, be, dt, out, in, n))
        return;
    double t0 = evo_now();
    /* in place when in is this rank's part of out, as NCCL defines it */
    check(m, nc.ncclAllGather(in, out, n, nccl_type(dt), m->group[g], m->stream), "all-gather", g);
    call_end(c, g, "all-gather", EVO_ALLGATHER, n * size_of(c, g) * evo_dtype_size(dt), t0);
}

static void reduce(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *buf, size_t n,
                   uint32_t root)
{
    (void)be;
    nccl_impl *m = impl_of(c);
    if (!m->group[g])
        return;
    double t0 = evo_now();
    check(m, nc.ncclReduce(buf, buf, n, nccl_type(dt), ncclSum, (int)root, m->group[g], m->stream), "reduce", g);
    call_end(c, g, "reduce", EVO_REDUCE, n * evo_dtype_size(dt), t0);
}

static void broadcast(evo_comm *c, evo_group g, const evo_backend *be, void *buf, size_t bytes, uint32_t root)
{
    nccl_impl *m = impl_of(c);
    if (!m->group[g])
        return;
    double t0 = evo_now();
    void *d = be ? buf : scratch(m, bytes);
    if (!be)
        m->be->upload(m->be, d, buf, bytes);
    check(m, nc.ncclBroadcast(d, d, bytes, ncclUint8, (int)root, m->group[g], m->stream), "broadcast", g);
    call_end(c, g, "broadcast", EVO_BROADCAST, bytes, t0);
    if (!be) {
        double t1 = evo_now();
        m->be->download(m->be, buf, d, bytes);
        c->seconds[g] += evo_now() - t1;
    }
}

/* Point to point: Open MPI's, its volume and time counted here too. */
static void send(evo_comm *c, evo_group g, const evo_backend *be, const void *buf, size_t bytes, uint32_t peer, int tag)
{
    evo_comm *p = impl_of(c)->p2p;
    uint64_t b = p->bytes[g];
    double s = p->seconds[g];
    p->send(p, g, be, buf, bytes, peer, tag);
    c->bytes[g] += p->bytes[g] - b;
    c->seconds[g] += p->seconds[g] - s;
}

static void recv(evo_comm *c, evo_group g, const evo_backend *be, void *buf, size_t bytes, uint32_t peer, int tag)
{
    evo_comm *p = impl_of(c)->p2p;
    double s = p->seconds[g];
    p->recv(p, g, be, buf, bytes, peer, tag);
    c->seconds[g] += p->seconds[g] - s;
}

static void wait_sent(evo_comm *c)
{
    evo_comm *p = impl_of(c)->p2p;
    double s = p->seconds[EVO_GROUP_PIPELINE];
    p->wait_sent(p);
    c->seconds[EVO_GROUP_PIPELINE] += p->seconds[EVO_GROUP_PIPELINE] - s;
}

static int flag_over_world(evo_comm *c, int flag, ncclRedOp_t op)
{
    int32_t v = flag != 0;
    host_allreduce(c, EVO_GROUP_WORLD, &v, 1, sizeof v, ncclInt32, op);
    return v;
}

static int any(evo_comm *c, int flag) { return flag_over_world(c, flag, ncclMax); }

static int all(evo_comm *c, int flag) { return flag_over_world(c, flag, ncclMin); }

static void barrier(evo_comm *c, evo_group g)
{
    /* a one-value all-reduce, waited for: not counted as traffic */
    uint64_t b = c->bytes[g];
    int32_t v = 0;
    host_allreduce(c, g, &v, 1, sizeof v, ncclInt32, ncclSum);
    c->bytes[g] = b;
}

static void free_nccl(evo_comm *c)
{
    nccl_impl *m = impl_of(c);
    check_cuda(cudaStreamSynchronize(m->stream), "the comm's last collectives");
    m->stop = 1;
    pthread_join(m->watchdog, NULL);
    for (int g = 0; g < EVO_N_GROUPS; g++)
        if (m->group[g]) {
            nc.ncclCommFinalize(m->group[g]);
            nc.ncclCommDestroy(m->group[g]);
        }
    cudaEventDestroy(m->newest);
    m->be->free(m->be, m->scratch);
    m->p2p->free(m->p2p);
    free(m);
    free(c);
}

static int make_id(void *id, size_t bytes, void *arg, evo_err *e)
{
    (void)arg, (void)bytes;
    ncclResult_t rc = nc.ncclGetUniqueId(id);
    return rc == ncclSuccess ? 0 : evo_errf(e, "ncclGetUniqueId: %s", nc.ncclGetErrorString(rc));
}

evo_comm *evo_comm_nccl(const evo_layout *l, const evo_world *w, const evo_backend *be, double timeout_s,
                        evo_err *e)
{
    if (be->host_memory || !evo_cuda_stream()) {
        evo_errf(e, "the NCCL comm needs the CUDA backend (--backend cuda)");
        return NULL;
    }
    if (load_nccl(e) < 0)
        return NULL;
    unsigned char ids[EVO_N_GROUPS][sizeof(ncclUniqueId)];
    if (evo_comm_share_ids(l, w, sizeof(ncclUniqueId), make_id, NULL, &ids[0][0], e) < 0)
        return NULL;
    static const evo_comm table = {.name = "nccl",
                                   .allreduce_sum = allreduce,
                                   .allreduce_sum_f64 = allreduce_f64,
                                   .reduce_scatter_sum = reduce_scatter,
                                   .allgather = allgather,
                                   .reduce_sum = reduce,
                                   .broadcast = broadcast,
                                   .send = send,
                                   .recv = recv,
                                   .wait_sent = wait_sent,
                                   .any = any,
                                   .all = all,
                                   .barrier = barrier,
                                   .free = free_nccl};
    evo_comm *c = evo_malloc(sizeof *c);
    nccl_impl *m = evo_calloc(1, sizeof *m);
    *c = table;
    c->layout = *l;
    c->impl = m;
    m->be = be;
    m->stream = evo_cuda_stream();
    m->world = *w;
    m->timeout_s = timeout_s;
    check_cuda(cudaGetDevice(&m->device), "device");
    check_cuda(cudaEventCreateWithFlags(&m->newest, cudaEventDisableTiming), "event");
    /* Every rank opens its groups in the same order; each init waits for
     * the group's other members, who are on their way through the same
     * order, so no two ranks wait on each other. */
    for (int g = 0; g < EVO_N_GROUPS; g++) {
        uint32_t size = evo_layout_group_size(l, (evo_group)g);
        if (size < 2)
            continue;
        ncclUniqueId id;
        memcpy(&id, ids[g], sizeof id);
        ncclResult_t rc = nc.ncclCommInitRank(&m->group[g], (int)size, id,
                                              (int)evo_layout_group_rank(l, (evo_group)g));
        if (rc != ncclSuccess)
            evo_fatal("NCCL: opening the %s group (%u ranks): %s", evo_group_name((evo_group)g), size,
                      nc.ncclGetErrorString(rc));
    }
    m->p2p = evo_comm_mpi(l, w, timeout_s, e);
    if (!m->p2p)
        evo_fatal("%s", e->msg);
    pthread_create(&m->watchdog, NULL, watchdog, c);
    return c;
}
