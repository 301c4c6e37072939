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
 * Point to point over the pipeline group goes through NCCL. An ncclSend
 * holds its stream, and its communicator, until the peer receives it:
 * on the compute stream, two stages that each send before they receive
 * would wait on each other. So every stage has four channels, a two-rank
 * communicator each: its messages to the next stage and to the previous
 * (comm.h's two tags), each sent on a stream of its own, and those from
 * the previous and from the next, received on the compute stream (a
 * receive waits for its message, in stream order). A channel carries one
 * kind of message one way, so its sends and receives match in order. A
 * send copies its buffer into a staging buffer of the channel on the
 * compute stream (the caller may write the buffer again at once) and the
 * channel's stream waits for that copy; wait_sent makes the compute
 * stream wait for every channel's sends. Channels open in one order on
 * every rank (by who makes them), so no two ranks wait on each other.
 * Messages over the other groups (the checkpoint's gather of the master
 * weights, host memory) go through Open MPI, staged (comm_mpi.c).
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
    X(ncclReduce) X(ncclBroadcast) X(ncclSend) X(ncclRecv)
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

/* A message staged for its send, the buffer free again once sent. */
typedef struct {
    void *buf;
    size_t bytes;
    cudaEvent_t sent; /* on the channel's stream, after the send */
} staged_msg;

/* One kind of message one way between two pipeline stages; the sender is
 * the communicator's rank 0. */
typedef struct {
    ncclComm_t comm;
    uint32_t peer;       /* the other stage */
    cudaStream_t stream; /* outgoing channels: where the sends wait */
    cudaEvent_t all_sent;
    staged_msg *msgs;
    size_t n_msgs;
} channel;

enum { N_CHANNELS = EVO_N_IDS - EVO_N_GROUPS };

typedef struct {
    ncclComm_t group[EVO_N_GROUPS]; /* NULL for groups of one rank */
    channel ch[N_CHANNELS];         /* the pipeline's, by id - EVO_N_GROUPS */
    int ch_order[N_CHANNELS];       /* the order they open and close in */
    cudaEvent_t staged;             /* a send's copy, on the compute stream */
    evo_comm *p2p;                  /* Open MPI, for send / recv over other groups */
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
    fprintf(stderr, "%s: %s\n", evo_progname(), why);
    /* the channels first: a send or receive waiting for a dead peer is
     * what holds the device */
    for (int i = 0; i < N_CHANNELS; i++)
        if (m->ch[i].comm)
            nc.ncclCommAbort(m->ch[i].comm);
    for (int g = 0; g < EVO_N_GROUPS; g++)
        if (m->group[g])
            nc.ncclCommAbort(m->group[g]);
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

/* Ends the job if comm (over what it carries) has failed. */
static void check_async(nccl_impl *m, ncclComm_t comm, const char *over)
{
    ncclResult_t st = ncclSuccess;
    if (comm && nc.ncclCommGetAsyncError(comm, &st) == ncclSuccess && st != ncclSuccess && st != ncclInProgress) {
        char why[320];
        snprintf(why, sizeof why, "NCCL over %s: %s (a peer failed?); ending the job", over,
                 nc.ncclGetErrorString(st));
        abort_job(m, why);
    }
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
        char why[320], over[64];
        for (int g = 0; g < EVO_N_GROUPS; g++) {
            snprintf(over, sizeof over, "the %s group", evo_group_name((evo_group)g));
            check_async(m, m->group[g], over);
        }
        for (int i = 0; i < N_CHANNELS; i++) {
            snprintf(over, sizeof over, "the pipeline's channel %s stage %u", i < 2 ? "to" : "from", m->ch[i].peer);
            check_async(m, m->ch[i].comm, over);
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

/* The channel of a message over the pipeline group: tag and peer must be
 * one of this stage's four. */
static channel *channel_of(nccl_impl *m, const evo_comm *c, const evo_backend *be, uint32_t peer, int tag, int out)
{
    const uint32_t pp = c->layout.pp, s = c->layout.pp_rank;
    const uint32_t next = (s + 1) % pp, prev = (s + pp - 1) % pp;
    int id = tag == EVO_TAG_TO_NEXT ? (out ? EVO_ID_TO_NEXT : EVO_ID_FROM_PREV)
                                    : (out ? EVO_ID_TO_PREV : EVO_ID_FROM_NEXT);
    if (!be || (tag != EVO_TAG_TO_NEXT && tag != EVO_TAG_TO_PREV) ||
        peer != ((tag == EVO_TAG_TO_NEXT) == out ? next : prev))
        evo_fatal("NCCL: a pipeline message %s stage %u with tag %d%s: not one of the stage's channels",
                  out ? "to" : "from", peer, tag, be ? "" : " in host memory");
    return &m->ch[id - EVO_N_GROUPS];
}

/* A staging buffer of ch of at least bytes whose last send is done; a
 * new one when none is (as many as the pipeline has messages in flight,
 * made in the first step). None is freed before the comm is: cudaFree
 * waits for the device, and so for sends not yet received. */
static staged_msg *free_msg(nccl_impl *m, channel *ch, size_t bytes)
{
    for (size_t i = 0; i < ch->n_msgs; i++) {
        staged_msg *msg = &ch->msgs[i];
        if (msg->bytes >= bytes && cudaEventQuery(msg->sent) == cudaSuccess)
            return msg;
    }
    ch->msgs = evo_realloc(ch->msgs, (ch->n_msgs + 1) * sizeof *ch->msgs);
    staged_msg *msg = &ch->msgs[ch->n_msgs++];
    msg->buf = m->be->alloc(m->be, bytes);
    msg->bytes = bytes;
    check_cuda(cudaEventCreateWithFlags(&msg->sent, cudaEventDisableTiming), "event");
    return msg;
}

/* Point to point: the pipeline's through its channels; over other groups
 * Open MPI's, its volume and time counted here too. */
static void send(evo_comm *c, evo_group g, const evo_backend *be, const void *buf, size_t bytes, uint32_t peer, int tag)
{
    nccl_impl *m = impl_of(c);
    if (g == EVO_GROUP_PIPELINE) {
        double t0 = evo_now();
        channel *ch = channel_of(m, c, be, peer, tag, 1);
        staged_msg *msg = free_msg(m, ch, bytes);
        m->be->copy(m->be, msg->buf, buf, bytes);
        check_cuda(cudaEventRecord(m->staged, m->stream), "event record");
        check_cuda(cudaStreamWaitEvent(ch->stream, m->staged, 0), "stream wait");
        check(m, nc.ncclSend(msg->buf, bytes, ncclUint8, 1, ch->comm, ch->stream), "send", g);
        check_cuda(cudaEventRecord(msg->sent, ch->stream), "event record");
        c->bytes[g] += evo_comm_volume(EVO_SENDRECV, bytes, 2);
        c->seconds[g] += evo_now() - t0;
        return;
    }
    evo_comm *p = m->p2p;
    uint64_t b = p->bytes[g];
    double s = p->seconds[g];
    p->send(p, g, be, buf, bytes, peer, tag);
    c->bytes[g] += p->bytes[g] - b;
    c->seconds[g] += p->seconds[g] - s;
}

static void recv(evo_comm *c, evo_group g, const evo_backend *be, void *buf, size_t bytes, uint32_t peer, int tag)
{
    nccl_impl *m = impl_of(c);
    if (g == EVO_GROUP_PIPELINE) {
        double t0 = evo_now();
        channel *ch = channel_of(m, c, be, peer, tag, 0);
        check(m, nc.ncclRecv(buf, bytes, ncclUint8, 0, ch->comm, m->stream), "receive", g);
        call_end(c, g, "a receive", EVO_SENDRECV, 0, t0);
        return;
    }
    evo_comm *p = m->p2p;
    double s = p->seconds[g];
    p->recv(p, g, be, buf, bytes, peer, tag);
    c->seconds[g] += p->seconds[g] - s;
}

/* The compute stream waits for every channel's sends (the watchdog then
 * sees one that is not received); Open MPI's sends are waited for. */
static void wait_sent(evo_comm *c)
{
    nccl_impl *m = impl_of(c);
    double t0 = evo_now();
    for (int i = 0; i < N_CHANNELS; i++)
        if (m->ch[i].stream) {
            check_cuda(cudaEventRecord(m->ch[i].all_sent, m->ch[i].stream), "event record");
            check_cuda(cudaStreamWaitEvent(m->stream, m->ch[i].all_sent, 0), "stream wait");
        }
    if (m->ch[0].comm)
        call_end(c, EVO_GROUP_PIPELINE, "a send's delivery", EVO_SENDRECV, 0, t0);
    evo_comm *p = m->p2p;
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
    for (int i = 0; i < N_CHANNELS; i++)
        if (m->ch[i].stream)
            check_cuda(cudaStreamSynchronize(m->ch[i].stream), "the comm's last sends");
    for (int k = 0; k < N_CHANNELS; k++) { /* in the order they opened: the peers' */
        channel *ch = &m->ch[m->ch_order[k]];
        if (!ch->comm)
            continue;
        nc.ncclCommFinalize(ch->comm);
        nc.ncclCommDestroy(ch->comm);
        if (ch->stream) {
            cudaStreamDestroy(ch->stream);
            cudaEventDestroy(ch->all_sent);
        }
        for (size_t j = 0; j < ch->n_msgs; j++) {
            m->be->free(m->be, ch->msgs[j].buf);
            cudaEventDestroy(ch->msgs[j].sent);
        }
        free(ch->msgs);
    }
    cudaEventDestroy(m->staged);
    cudaEventDestroy(m->newest);
    m->be->free(m->be, m->scratch);
    m->p2p->free(m->p2p);
    free(m);
    free(c);
}

/* The pipeline's four channels of this stage, opened by key (the stage
 * that makes them, then its to-next before its to-prev): one order over
 * all channels, the same for a channel's two members, so the first not
 * yet open always has both members waiting at it. With two stages, the
 * previous stage is the next one, and each of the four is a channel of
 * its own still. */
static void open_channels(nccl_impl *m, const evo_layout *l, unsigned char ids[][sizeof(ncclUniqueId)])
{
    const uint32_t pp = l->pp, s = l->pp_rank;
    if (pp < 2)
        return;
    const uint32_t next = (s + 1) % pp, prev = (s + pp - 1) % pp;
    /* per channel: the peer, the maker's stage, and whether it is the
     * maker's to-next (0) or to-prev (1) */
    const uint32_t peer[N_CHANNELS] = {next, prev, prev, next};
    const uint32_t key[N_CHANNELS] = {2 * s, 2 * s + 1, 2 * prev, 2 * next + 1};
    int *order = m->ch_order; /* by key: an insertion sort */
    for (int i = 0; i < N_CHANNELS; i++) {
        int k = i;
        for (; k > 0 && key[order[k - 1]] > key[i]; k--)
            order[k] = order[k - 1];
        order[k] = i;
    }
    for (int k = 0; k < N_CHANNELS; k++) {
        int i = order[k], out = i < 2;
        channel *ch = &m->ch[i];
        ch->peer = peer[i];
        ncclUniqueId id;
        memcpy(&id, ids[EVO_N_GROUPS + i], sizeof id);
        ncclResult_t rc = nc.ncclCommInitRank(&ch->comm, 2, id, out ? 0 : 1);
        if (rc != ncclSuccess)
            evo_fatal("NCCL: opening the pipeline's channel %s stage %u: %s", out ? "to" : "from", ch->peer,
                      nc.ncclGetErrorString(rc));
        if (out) {
            check_cuda(cudaStreamCreateWithFlags(&ch->stream, cudaStreamNonBlocking), "stream");
            check_cuda(cudaEventCreateWithFlags(&ch->all_sent, cudaEventDisableTiming), "event");
        }
    }
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
    unsigned char ids[EVO_N_IDS][sizeof(ncclUniqueId)];
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
    check_cuda(cudaEventCreateWithFlags(&m->staged, cudaEventDisableTiming), "event");
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
    open_channels(m, l, ids);
    m->p2p = evo_comm_mpi(l, w, timeout_s, e);
    if (!m->p2p)
        evo_fatal("%s", e->msg);
    pthread_create(&m->watchdog, NULL, watchdog, c);
    return c;
}
