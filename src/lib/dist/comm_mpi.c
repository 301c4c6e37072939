/* comm_mpi.c - ranks through Open MPI (CPU ranks, and GPU ranks staged
 * through the host): one communicator per group of the layout, split from
 * MPI_COMM_WORLD by (color, rank in the group), so rank r of a group is
 * the communicator's rank r.
 *
 * Open MPI finds its world through the same PMIx server evo_world asked
 * (srun --mpi=pmix or mpirun); the two must agree, and are checked to.
 * MPI counts are ints: large buffers go in pieces of at most CHUNK
 * elements, which changes no result (element-wise operations).
 *
 * Backend memory the host may not read (a GPU's, backend.h host_memory)
 * is staged: each call downloads what it sends into a host buffer, runs
 * the MPI call there and uploads what it received. Plain Open MPI, any
 * backend, the same bits; the copies cost what the NCCL comm saves. */
#include "dist/comm.h"

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/dtype_bits.h"
#include "base/log.h"

enum { CHUNK = 1 << 28 };

/* A message on its way: MPI owns the copy until the request completes. */
typedef struct {
    MPI_Request req;
    void *copy;
} pending_send;

/* What the watchdog watches: the collective under way (NULL: none), its
 * group and when it began. */
typedef struct {
    MPI_Comm group[EVO_N_GROUPS];
    evo_world world;
    double timeout_s;
    _Atomic(const char *) waiting_in;
    _Atomic int waiting_group;
    _Atomic double since;
    _Atomic int stop;
    pthread_t watchdog;
    pending_send *pending; /* sends not known to be delivered */
    size_t n_pending, cap_pending;
    void *stage;           /* host copies of staged backend memory */
    size_t stage_bytes;
    MPI_Op bf16_sum, f16_sum;
} mpi_impl;

/* Whether be's memory must go through the host (be NULL: host memory). */
static int staged(const evo_backend *be)
{
    return be && !be->host_memory;
}

/* The host buffer of a staged call, at least bytes long. */
static void *stage(evo_comm *c, size_t bytes)
{
    mpi_impl *m = c->impl;
    if (m->stage_bytes < bytes) {
        free(m->stage);
        m->stage = evo_malloc(bytes);
        m->stage_bytes = bytes;
    }
    return m->stage;
}

/* Where a call reads n bytes of buf: buf itself, or its download into the
 * stage at offset off. */
static void *host_view(evo_comm *c, const evo_backend *be, const void *buf, size_t bytes, size_t off,
                       size_t stage_bytes)
{
    if (!staged(be))
        return (void *)buf;
    char *h = (char *)stage(c, stage_bytes) + off;
    be->download(be, h, buf, bytes);
    return h;
}

/* The other way: what a staged call received, from the host buffer h back
 * into buf (nothing to do for host memory, which MPI wrote in place). */
static void host_return(const evo_backend *be, void *buf, const void *h, size_t bytes)
{
    if (staged(be))
        be->upload(be, buf, h, bytes);
}

static void *watchdog(void *arg)
{
    evo_comm *c = arg;
    mpi_impl *m = c->impl;
    while (!m->stop) {
        struct timespec nap = {0, 200 * 1000 * 1000};
        nanosleep(&nap, NULL);
        const char *what = m->waiting_in;
        if (!what || evo_now() - m->since < m->timeout_s)
            continue;
        evo_group g = (evo_group)m->waiting_group;
        char why[256];
        snprintf(why, sizeof why,
                 "%s over the %s group (%u ranks) has waited %.0f s for its peers: a rank died or hangs; "
                 "ending the job",
                 what, evo_group_name(g), evo_layout_group_size(&c->layout, g), m->timeout_s);
        fprintf(stderr, "%s: %s\n", evo_progname(), why);
        evo_world_abort(&m->world, EVO_EXIT_FAIL, why);
    }
    return NULL;
}

/* Brackets every blocking call. */
static void wait_begin(evo_comm *c, const char *what, evo_group g)
{
    mpi_impl *m = c->impl;
    m->since = evo_now();
    m->waiting_group = (int)g;
    m->waiting_in = what;
}

static void wait_end(evo_comm *c)
{
    mpi_impl *m = c->impl;
    c->seconds[m->waiting_group] += evo_now() - m->since;
    m->waiting_in = NULL;
}

static MPI_Comm comm_of(evo_comm *c, evo_group g) { return ((mpi_impl *)c->impl)->group[g]; }

static uint32_t size_of(evo_comm *c, evo_group g) { return evo_layout_group_size(&c->layout, g); }

/* A collective has returned: what it sent is counted. */
static void done(evo_comm *c, evo_group g, evo_coll kind, uint64_t bytes)
{
    wait_end(c);
    c->bytes[g] += evo_comm_volume(kind, bytes, size_of(c, g));
}

static int as_int(size_t n, const char *what)
{
    if (n > INT_MAX)
        evo_fatal("%s of %zu elements per rank: more than MPI's int counts allow", what, n);
    return (int)n;
}

/* MPI has no bf16 or fp16: their values travel as 16-bit integers and
 * are summed by these ops, each pair added in fp32 and rounded to the
 * dtype (NCCL's way; dtype_bits.h's rounding). */
static void half_sum(const uint16_t *a, uint16_t *b, int n, evo_dtype dt)
{
    for (int i = 0; i < n; i++) {
        uint32_t ua = dt == EVO_BF16 ? evo_bf16_to_f32_bits(a[i]) : evo_f16_to_f32_bits(a[i]);
        uint32_t ub = dt == EVO_BF16 ? evo_bf16_to_f32_bits(b[i]) : evo_f16_to_f32_bits(b[i]);
        float fa, fb;
        memcpy(&fa, &ua, 4);
        memcpy(&fb, &ub, 4);
        fb += fa;
        memcpy(&ub, &fb, 4);
        b[i] = dt == EVO_BF16 ? evo_bf16_from_f32_bits(ub) : evo_f16_from_f32_bits(ub);
    }
}

static void bf16_sum(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    half_sum(in, inout, *len, EVO_BF16);
}

static void f16_sum(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    half_sum(in, inout, *len, EVO_F16);
}

static MPI_Datatype mpi_type(evo_dtype dt) { return dt == EVO_F32 ? MPI_FLOAT : MPI_UINT16_T; }

static MPI_Op sum_op(evo_comm *c, evo_dtype dt)
{
    mpi_impl *m = c->impl;
    return dt == EVO_BF16 ? m->bf16_sum : dt == EVO_F16 ? m->f16_sum : MPI_SUM;
}

static void allreduce(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *buf, size_t n)
{
    wait_begin(c, "all-reduce", g);
    size_t es = evo_dtype_size(dt);
    char *h = host_view(c, be, buf, n * es, 0, n * es);
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, h + i * es, (int)k, mpi_type(dt), sum_op(c, dt), comm_of(c, g));
    }
    host_return(be, buf, h, n * es);
    done(c, g, EVO_ALLREDUCE, n * es);
}

static void allreduce_f64(evo_comm *c, evo_group g, double *host, size_t n)
{
    wait_begin(c, "all-reduce", g);
    MPI_Allreduce(MPI_IN_PLACE, host, as_int(n, "all-reduce"), MPI_DOUBLE, MPI_SUM, comm_of(c, g));
    done(c, g, EVO_ALLREDUCE, n * sizeof *host);
}

static void reduce_scatter(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *out,
                           const void *in, size_t n)
{
    wait_begin(c, "reduce-scatter", g);
    size_t es = evo_dtype_size(dt), whole = n * size_of(c, g) * es;
    /* staged: the whole input, then this rank's part after it */
    const void *h_in = host_view(c, be, in, whole, 0, whole + n * es);
    void *h_out = staged(be) ? (char *)stage(c, whole + n * es) + whole : out;
    MPI_Reduce_scatter_block(h_in, h_out, as_int(n, "reduce-scatter"), mpi_type(dt), sum_op(c, dt), comm_of(c, g));
    host_return(be, out, h_out, n * es);
    done(c, g, EVO_REDUCE_SCATTER, whole);
}

static void allgather(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *out, const void *in,
                      size_t n)
{
    wait_begin(c, "all-gather", g);
    int k = as_int(n, "all-gather");
    size_t es = evo_dtype_size(dt), mine = (size_t)evo_layout_group_rank(&c->layout, g) * n * es,
           whole = n * size_of(c, g) * es;
    const void *send = in == (char *)out + mine ? MPI_IN_PLACE : in;
    char *h_out = out;
    if (staged(be)) { /* this rank's part in its place, gathered in place */
        h_out = (char *)host_view(c, be, in, n * es, mine, whole) - mine;
        send = MPI_IN_PLACE;
    }
    MPI_Allgather(send, k, mpi_type(dt), h_out, k, mpi_type(dt), comm_of(c, g));
    host_return(be, out, h_out, whole);
    done(c, g, EVO_ALLGATHER, whole);
}

static void reduce(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *buf, size_t n,
                   uint32_t root)
{
    wait_begin(c, "reduce", g);
    int me_root = evo_layout_group_rank(&c->layout, g) == root;
    size_t es = evo_dtype_size(dt);
    char *h = host_view(c, be, buf, n * es, 0, n * es);
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        MPI_Reduce(me_root ? MPI_IN_PLACE : h + i * es, h + i * es, (int)k, mpi_type(dt), sum_op(c, dt), (int)root,
                   comm_of(c, g));
    }
    if (me_root)
        host_return(be, buf, h, n * es);
    done(c, g, EVO_REDUCE, n * es);
}

static void broadcast(evo_comm *c, evo_group g, const evo_backend *be, void *buf, size_t bytes, uint32_t root)
{
    wait_begin(c, "broadcast", g);
    int me_root = evo_layout_group_rank(&c->layout, g) == root;
    char *h = buf;
    if (staged(be))
        h = me_root ? host_view(c, be, buf, bytes, 0, bytes) : stage(c, bytes);
    for (size_t i = 0; i < bytes; i += CHUNK)
        MPI_Bcast(h + i, (int)(bytes - i < CHUNK ? bytes - i : CHUNK), MPI_BYTE, (int)root, comm_of(c, g));
    if (!me_root)
        host_return(be, buf, h, bytes);
    done(c, g, EVO_BROADCAST, bytes);
}

/* Frees the copies of the messages delivered (all of them with wait):
 * a send never blocks, and its copy lives only as long as it must. */
static void reap_sends(mpi_impl *m, int wait)
{
    size_t kept = 0;
    for (size_t i = 0; i < m->n_pending; i++) {
        int done = 0;
        if (wait)
            MPI_Wait(&m->pending[i].req, MPI_STATUS_IGNORE), done = 1;
        else
            MPI_Test(&m->pending[i].req, &done, MPI_STATUS_IGNORE);
        if (done)
            free(m->pending[i].copy);
        else
            m->pending[kept++] = m->pending[i];
    }
    m->n_pending = kept;
}

static void send(evo_comm *c, evo_group g, const evo_backend *be, const void *buf, size_t bytes, uint32_t peer, int tag)
{
    mpi_impl *m = c->impl;
    wait_begin(c, "send", g);
    reap_sends(m, 0);
    for (size_t i = 0; i < bytes; i += CHUNK) {
        size_t k = bytes - i < CHUNK ? bytes - i : CHUNK;
        if (m->n_pending == m->cap_pending) {
            m->cap_pending = m->cap_pending ? 2 * m->cap_pending : 16;
            m->pending = evo_realloc(m->pending, m->cap_pending * sizeof *m->pending);
        }
        pending_send *ps = &m->pending[m->n_pending++];
        ps->copy = evo_malloc(k);
        if (staged(be))
            be->download(be, ps->copy, (const char *)buf + i, k);
        else
            memcpy(ps->copy, (const char *)buf + i, k);
        MPI_Isend(ps->copy, (int)k, MPI_BYTE, (int)peer, tag, comm_of(c, g), &ps->req);
    }
    done(c, g, EVO_SENDRECV, bytes);
}

static void recv(evo_comm *c, evo_group g, const evo_backend *be, void *buf, size_t bytes, uint32_t peer, int tag)
{
    wait_begin(c, "recv", g);
    char *h = staged(be) ? stage(c, bytes) : buf;
    for (size_t i = 0; i < bytes; i += CHUNK)
        MPI_Recv(h + i, (int)(bytes - i < CHUNK ? bytes - i : CHUNK), MPI_BYTE, (int)peer, tag,
                 comm_of(c, g), MPI_STATUS_IGNORE);
    host_return(be, buf, h, bytes);
    wait_end(c);
}

static void wait_sent(evo_comm *c)
{
    wait_begin(c, "a send's delivery", EVO_GROUP_PIPELINE);
    reap_sends(c->impl, 1);
    wait_end(c);
}

static int flag_over_world(evo_comm *c, int flag, MPI_Op op)
{
    int v = flag != 0;
    wait_begin(c, "a flag's all-reduce", EVO_GROUP_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, op, comm_of(c, EVO_GROUP_WORLD));
    done(c, EVO_GROUP_WORLD, EVO_ALLREDUCE, sizeof v);
    return v;
}

static int any(evo_comm *c, int flag) { return flag_over_world(c, flag, MPI_LOR); }

static int all(evo_comm *c, int flag) { return flag_over_world(c, flag, MPI_LAND); }

static void barrier(evo_comm *c, evo_group g)
{
    wait_begin(c, "barrier", g);
    MPI_Barrier(comm_of(c, g));
    wait_end(c);
}

static void free_mpi(evo_comm *c)
{
    mpi_impl *m = c->impl;
    reap_sends(m, 1);
    free(m->pending);
    free(m->stage);
    m->stop = 1;
    pthread_join(m->watchdog, NULL);
    for (int g = EVO_GROUP_DATA; g < EVO_N_GROUPS; g++)
        MPI_Comm_free(&m->group[g]);
    MPI_Op_free(&m->bf16_sum);
    MPI_Op_free(&m->f16_sum);
    MPI_Finalize();
    free(m);
    free(c);
}

evo_comm *evo_comm_mpi(const evo_layout *l, const evo_world *w, double timeout_s, evo_err *e)
{
    int inited = 0, rank, size;
    MPI_Initialized(&inited);
    int thread_level;
    /* FUNNELED: the watchdog thread never calls MPI. */
    if (!inited && MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &thread_level) != MPI_SUCCESS) {
        evo_errf(e, "MPI_Init failed (rank %u of %u by PMIx)", w->rank, w->size);
        return NULL;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if ((uint32_t)rank != w->rank || (uint32_t)size != w->size) {
        evo_errf(e, "MPI sees rank %d of %d, PMIx rank %u of %u: start evo-train with srun --mpi=pmix or mpirun",
                 rank, size, w->rank, w->size);
        MPI_Finalize();
        return NULL;
    }
    static const evo_comm table = {.name = "mpi",
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
                                   .free = free_mpi};
    evo_comm *c = evo_malloc(sizeof *c);
    mpi_impl *m = evo_calloc(1, sizeof *m);
    *c = table;
    c->layout = *l;
    c->impl = m;
    m->group[EVO_GROUP_WORLD] = MPI_COMM_WORLD;
    for (int g = EVO_GROUP_DATA; g < EVO_N_GROUPS; g++)
        MPI_Comm_split(MPI_COMM_WORLD, (int)evo_layout_group_color(l, (evo_group)g),
                       (int)evo_layout_group_rank(l, (evo_group)g), &m->group[g]);
    MPI_Op_create(bf16_sum, 1, &m->bf16_sum);
    MPI_Op_create(f16_sum, 1, &m->f16_sum);
    m->world = *w;
    m->timeout_s = timeout_s;
    pthread_create(&m->watchdog, NULL, watchdog, c);
    return c;
}
