/* comm-check - the comm layer on real ranks: run under `srun --mpi=pmix -n
 * N` (or alone, a world of one) with the parallel sizes as arguments:
 *
 *   comm-check TP PP ZERO1 [BACKEND [COMM]]
 *
 * BACKEND (cpu, guarded or cuda; default cpu) holds the buffers, as the
 * gradients of a training run; COMM is mpi (default) or nccl. Each rank
 * builds the layout of a small model, opens the comm (when N > 1) and
 * checks, one line each ("ok NAME" or "FAIL NAME: why"):
 *   - the layout: every rank's (pp, dp, tp) is InternEvo's
 *     global = pp (tp dp) + dp tp + tp, gathered from all ranks;
 *   - each group's members (evo_layout_group_member) are the ranks the
 *     comm's group holds, gathered over it;
 *   - the ids shared through PMIx (evo_comm_share_ids, NCCL's bootstrap
 *     with random bytes for ids): every member of a group read what its
 *     member 0 made, and groups made different ones;
 *   - in each group: all-reduce (f32, f64), reduce-scatter, all-gather
 *     (in place too), reduce, broadcast, send/recv around the group, with
 *     values that tell every rank's contribution apart; all-reduce,
 *     reduce-scatter and all-gather of bf16 and fp16 (activations), on
 *     values whose sums are exact in them;
 *   - any/all flags and the barrier;
 *   - the bytes counted per group equal evo_comm_volume's sum over the
 *     calls made.
 * Rank 0 prints; exit status 1 on any rank if any check failed anywhere. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/dtype.h"
#include "base/error.h"
#include "compute/backend_cpu.h"
#include "dist/comm.h"

static int failed, quiet;
static const evo_backend *be; /* whose memory every buffer handed to the comm is */

/* Host values in and out of a backend buffer. */
static float *up(float *dev, const float *host, size_t n)
{
    be->upload(be, dev, host, n * sizeof *host);
    return dev;
}

static void down(float *host, const float *dev, size_t n) { be->download(be, host, dev, n * sizeof *host); }

static void check(int ok, const char *name, const char *fmt, ...)
{
    if (!ok)
        failed = 1;
    if (quiet && ok)
        return;
    printf(ok ? "ok %s\n" : "FAIL %s: ", name);
    if (!ok) {
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
    }
}

/* The value rank r of a group puts at index i: distinct per (r, i), exact in f32. */
static float val(uint32_t r, size_t i) { return (float)(r * 1000 + i); }

/* A 16-bit value rank r puts at index i: (r + 1) 2^(i % 8), so that any
 * partial sum over at most 8 ranks (at most 36 2^k) is exact in bf16 and
 * fp16 and the result cannot depend on the order the ranks add in. */
static float half_val(uint32_t r, size_t i) { return (float)(r + 1) * (float)(1u << (i % 8)); }

/* n (at most 37 x 8) values of dtype dt from host floats into a backend
 * buffer, and back. */
static void *put_half(evo_dtype dt, void *dev, const float *v, size_t n)
{
    uint16_t h[37 * 8];
    evo_dtype_cast(h, dt, v, EVO_F32, n);
    be->upload(be, dev, h, n * sizeof *h);
    return dev;
}

static void get_half(evo_dtype dt, float *v, const void *dev, size_t n)
{
    uint16_t h[37 * 8];
    be->download(be, h, dev, n * sizeof *h);
    evo_dtype_cast(v, EVO_F32, h, dt, n);
}

static void check_half(evo_comm *c, evo_group g, evo_dtype dt, float *ba, float *bwhole, uint64_t *expect)
{
    uint32_t size = evo_layout_group_size(&c->layout, g), me = evo_layout_group_rank(&c->layout, g);
    enum { N = 37 };
    float a[N * 8], got[N * 8], sum[N * 8];
    char name[96];
    size_t n = (size_t)N * size;
    for (size_t i = 0; i < n; i++) {
        a[i] = half_val(me, i), sum[i] = 0;
        for (uint32_t r = 0; r < size; r++)
            sum[i] += half_val(r, i);
    }
    c->allreduce_sum(c, g, be, dt, put_half(dt, ba, a, N), N);
    get_half(dt, got, ba, N);
    int ok = 1;
    for (size_t i = 0; i < N; i++)
        ok &= got[i] == sum[i];
    c->reduce_scatter_sum(c, g, be, dt, ba, put_half(dt, bwhole, a, n), N);
    get_half(dt, got, ba, N);
    for (size_t i = 0; i < N; i++)
        ok &= got[i] == sum[me * N + i];
    c->allgather(c, g, be, dt, bwhole, put_half(dt, ba, a, N), N);
    get_half(dt, got, bwhole, n);
    for (uint32_t r = 0; r < size; r++)
        for (size_t i = 0; i < N; i++)
            ok &= got[r * N + i] == half_val(r, i);
    uint32_t root = size - 1;
    c->reduce_sum(c, g, be, dt, put_half(dt, ba, a, N), N, root);
    get_half(dt, got, ba, N);
    for (size_t i = 0; i < N; i++)
        ok &= got[i] == (me == root ? sum[i] : half_val(me, i));
    expect[g] += evo_comm_volume(EVO_ALLREDUCE, N * 2, size) + evo_comm_volume(EVO_REDUCE_SCATTER, n * 2, size) +
                 evo_comm_volume(EVO_ALLGATHER, n * 2, size) + evo_comm_volume(EVO_REDUCE, N * 2, size);
    snprintf(name, sizeof name, "%s: all-reduce, reduce-scatter, all-gather and reduce in %s", evo_group_name(g),
             dt == EVO_BF16 ? "bf16" : "fp16");
    check(ok, name, "rank %u: a wrong sum or part", me);
}

static void check_group(evo_comm *c, evo_group g, uint64_t *expect)
{
    uint32_t size = evo_layout_group_size(&c->layout, g), me = evo_layout_group_rank(&c->layout, g);
    const char *gn = evo_group_name(g);
    char name[96];
    enum { N = 37 }; /* not a multiple of any group size: uneven ring chunks */
    float a[N], whole[N * 8], part[N];
    double d[N];
    float *ba = be->alloc(be, sizeof a), *bwhole = be->alloc(be, sizeof whole), *bpart = be->alloc(be, sizeof part);

    /* the group holds the members layout.h names */
    a[0] = (float)c->layout.rank;
    c->allgather(c, g, be, EVO_F32, bwhole, up(ba, a, 1), 1);
    down(whole, bwhole, size);
    int ok = 1;
    for (uint32_t r = 0; r < size; r++)
        ok &= whole[r] == (float)evo_layout_group_member(&c->layout, g, r);
    expect[g] += evo_comm_volume(EVO_ALLGATHER, (uint64_t)size * sizeof(float), size);
    snprintf(name, sizeof name, "%s: the group's members are evo_layout_group_member's", gn);
    check(ok, name, "rank %u sees another membership", c->layout.rank);

    for (size_t i = 0; i < N; i++)
        a[i] = val(me, i), d[i] = (double)val(me, i) + 0.25;
    c->allreduce_sum(c, g, be, EVO_F32, up(ba, a, N), N);
    down(a, ba, N);
    c->allreduce_sum_f64(c, g, d, N);
    expect[g] += evo_comm_volume(EVO_ALLREDUCE, sizeof a, size) + evo_comm_volume(EVO_ALLREDUCE, sizeof d, size);
    ok = 1;
    for (size_t i = 0; i < N; i++) {
        double sum = 0;
        for (uint32_t r = 0; r < size; r++)
            sum += val(r, i);
        ok &= a[i] == (float)sum && d[i] == sum + 0.25 * size;
    }
    snprintf(name, sizeof name, "%s: all-reduce f32 and f64 over %u ranks", gn, size);
    check(ok, name, "a wrong sum");

    for (uint32_t r = 0; r < size; r++)
        for (size_t i = 0; i < N; i++)
            whole[r * N + i] = val(me, r * N + i);
    c->reduce_scatter_sum(c, g, be, EVO_F32, bpart, up(bwhole, whole, (size_t)N * size), N);
    down(part, bpart, N);
    expect[g] += evo_comm_volume(EVO_REDUCE_SCATTER, (uint64_t)N * size * sizeof(float), size);
    ok = 1;
    for (size_t i = 0; i < N; i++) {
        double sum = 0;
        for (uint32_t r = 0; r < size; r++)
            sum += val(r, me * N + i);
        ok &= part[i] == (float)sum;
    }
    snprintf(name, sizeof name, "%s: reduce-scatter", gn);
    check(ok, name, "rank %u's part is wrong", me);

    for (size_t i = 0; i < N; i++)
        part[i] = val(me, i);
    c->allgather(c, g, be, EVO_F32, bwhole, up(bpart, part, N), N);
    down(whole, bwhole, (size_t)N * size);
    ok = 1;
    for (uint32_t r = 0; r < size; r++)
        for (size_t i = 0; i < N; i++)
            ok &= whole[r * N + i] == val(r, i);
    memset(whole, 0, sizeof whole);
    for (size_t i = 0; i < N; i++)
        whole[me * N + i] = val(me, i);
    up(bwhole, whole, (size_t)N * size);
    c->allgather(c, g, be, EVO_F32, bwhole, bwhole + me * N, N); /* in place */
    down(whole, bwhole, (size_t)N * size);
    for (uint32_t r = 0; r < size; r++)
        for (size_t i = 0; i < N; i++)
            ok &= whole[r * N + i] == val(r, i);
    expect[g] += 2 * evo_comm_volume(EVO_ALLGATHER, (uint64_t)N * size * sizeof(float), size);
    snprintf(name, sizeof name, "%s: all-gather, out of place and in place", gn);
    check(ok, name, "a gathered part is wrong");

    for (evo_dtype dt = EVO_BF16; dt <= EVO_F16; dt++)
        check_half(c, g, dt, ba, bwhole, expect);

    uint32_t root = size - 1;
    for (size_t i = 0; i < N; i++)
        a[i] = val(me, i);
    c->reduce_sum(c, g, be, EVO_F32, up(ba, a, N), N, root);
    down(a, ba, N);
    ok = 1;
    for (size_t i = 0; i < N; i++) {
        double sum = 0;
        for (uint32_t r = 0; r < size; r++)
            sum += val(r, i);
        ok &= me == root ? a[i] == (float)sum : a[i] == val(me, i);
    }
    for (size_t i = 0; i < N; i++)
        a[i] = val(me, i);
    c->broadcast(c, g, be, up(ba, a, N), sizeof a, root);
    down(a, ba, N);
    for (size_t i = 0; i < N; i++)
        ok &= a[i] == val(root, i);
    for (size_t i = 0; i < N; i++)
        d[i] = (double)val(me, i);
    c->broadcast(c, g, NULL, d, sizeof d, root); /* host memory */
    for (size_t i = 0; i < N; i++)
        ok &= d[i] == (double)val(root, i);
    expect[g] += evo_comm_volume(EVO_REDUCE, sizeof a, size) + evo_comm_volume(EVO_BROADCAST, sizeof a, size) +
                 evo_comm_volume(EVO_BROADCAST, sizeof d, size);
    snprintf(name, sizeof name, "%s: reduce and broadcast (backend and host memory) to rank %u", gn, root);
    check(ok, name, "rank %u holds the wrong values", me);

    if (size > 1) { /* around the ring, two messages each way (sends do not block) */
        uint32_t next = (me + 1) % size, prev = (me + size - 1) % size;
        for (size_t i = 0; i < N; i++)
            a[i] = val(me, i);
        c->send(c, g, be, up(ba, a, N), sizeof a, next, EVO_TAG_TO_NEXT);
        for (size_t i = 0; i < N; i++)
            a[i] = -val(me, i); /* the first message was copied: changing ba changes nothing */
        c->send(c, g, be, up(ba, a, N), sizeof a, prev, EVO_TAG_TO_PREV);
        c->send(c, g, be, ba, sizeof a, next, EVO_TAG_TO_NEXT);
        ok = 1;
        c->recv(c, g, be, bpart, sizeof part, next, EVO_TAG_TO_PREV);
        down(part, bpart, N);
        for (size_t i = 0; i < N; i++)
            ok &= part[i] == -val(next, i);
        c->recv(c, g, be, bpart, sizeof part, prev, EVO_TAG_TO_NEXT);
        down(part, bpart, N);
        for (size_t i = 0; i < N; i++)
            ok &= part[i] == val(prev, i);
        c->recv(c, g, be, bpart, sizeof part, prev, EVO_TAG_TO_NEXT);
        down(part, bpart, N);
        for (size_t i = 0; i < N; i++)
            ok &= part[i] == -val(prev, i);
        c->wait_sent(c);
        expect[g] += 3 * evo_comm_volume(EVO_SENDRECV, sizeof a, size);
        snprintf(name, sizeof name, "%s: sends and receives around the group, in order per tag", gn);
        check(ok, name, "rank %u got the wrong message", me);
    }
    c->barrier(c, g);
    be->free(be, ba);
    be->free(be, bwhole);
    be->free(be, bpart);
}

/* A stand-in for ncclGetUniqueId: 128 random bytes. */
static int random_id(void *id, size_t bytes, void *arg, evo_err *e)
{
    (void)arg;
    uint64_t *w = id;
    for (size_t i = 0; i < bytes / 8; i++)
        w[i] = ((uint64_t)rand() << 32) ^ (uint64_t)rand() ^ ((uint64_t)getpid() << 16);
    (void)e;
    return 0;
}

/* NCCL's bootstrap path, shared ids, checked through the comm itself: the
 * member 0 of each group broadcasts the id it made. */
static void check_ids(evo_comm *c, const evo_world *w, uint64_t *expect)
{
    enum { ID = 128 };
    unsigned char ids[EVO_N_IDS][ID], made[ID];
    evo_err e;
    srand((unsigned)w->rank * 7919u + (unsigned)getpid());
    if (evo_comm_share_ids(&c->layout, w, ID, random_id, NULL, &ids[0][0], &e) < 0) {
        check(0, "ids shared through PMIx", "%s", e.msg);
        return;
    }
    int ok = 1, distinct = 1;
    for (int g = 0; g < EVO_N_GROUPS; g++) {
        uint32_t size = evo_layout_group_size(&c->layout, (evo_group)g);
        if (size < 2)
            continue;
        memcpy(made, ids[g], ID);
        c->broadcast(c, (evo_group)g, NULL, made, ID, 0);
        expect[g] += evo_comm_volume(EVO_BROADCAST, ID, size);
        ok &= memcmp(made, ids[g], ID) == 0;
        for (int h = 0; h < g; h++)
            if (evo_layout_group_size(&c->layout, (evo_group)h) > 1)
                distinct &= memcmp(ids[h], ids[g], ID) != 0;
    }
    check(ok && distinct, "ids shared through PMIx: each group's members read its member 0's, one per group",
          ok ? "two groups of rank %u read the same id" : "rank %u read another id than its group's member 0 made",
          c->layout.rank);
}

int main(int argc, char **argv)
{
    evo_set_progname("comm-check");
    if (argc < 4 || argc > 6)
        evo_usage_error("usage: comm-check TP PP ZERO1 [cpu|guarded|cuda [mpi|nccl]]");
    const char *backend = argc > 4 ? argv[4] : "cpu", *comm = argc > 5 ? argv[5] : "mpi";
    evo_config cfg;
    evo_model m;
    evo_world w;
    evo_layout l;
    evo_err e;
    evo_config_defaults(&cfg);
    char sets[3][64];
    snprintf(sets[0], sizeof sets[0], "parallel.tensor.size=%s", argv[1]);
    snprintf(sets[1], sizeof sets[1], "parallel.pipeline.size=%s", argv[2]);
    snprintf(sets[2], sizeof sets[2], "parallel.zero1=%s", argv[3]);
    const char *model[] = {"model.vocab_size=256", "model.hidden_size=64", "model.num_attention_heads=4",
                           "model.num_layers=4", sets[0], sets[1], sets[2]};
    for (size_t i = 0; i < sizeof model / sizeof *model; i++)
        if (evo_config_set(&cfg, model[i], &e) < 0)
            evo_fatal("%s", e.msg);
    if (evo_config_resolve(&cfg, &e) < 0 || evo_model_describe(&m, &cfg, &e) < 0 || evo_world_init(&w, &e) < 0 ||
        evo_layout_make(&l, &cfg, &m, w.size, w.rank, &e) < 0)
        evo_fatal("%s", e.msg);
    if (!strcmp(backend, "cpu"))
        be = evo_backend_cpu();
    else if (!strcmp(backend, "guarded"))
        be = evo_backend_guarded();
    else if (!strcmp(backend, "cuda") && !(be = evo_backend_cuda((int)w.local_rank, EVO_F32, 0, &e)))
        evo_fatal("%s", e.msg);
    if (!be)
        evo_usage_error("comm-check: backend cpu, guarded or cuda, not '%s'", backend);
    evo_comm *c = w.size == 1          ? evo_comm_single(&l)
                  : !strcmp(comm, "nccl") ? evo_comm_nccl(&l, &w, be, 60, &e)
                  : !strcmp(comm, "mpi")  ? evo_comm_mpi(&l, &w, 60, &e)
                                          : (evo_usage_error("comm-check: comm mpi or nccl, not '%s'", comm), NULL);
    if (!c)
        evo_fatal("%s", e.msg);
    quiet = w.rank != 0;

    /* Every rank's coordinates, gathered over the world. */
    float mine[3] = {(float)l.pp_rank, (float)l.dp_rank, (float)l.tp_rank};
    float *all = evo_calloc((size_t)w.size * 3, sizeof *all);
    float *ball = be->alloc(be, (size_t)w.size * 3 * sizeof *all), *bmine = be->alloc(be, sizeof mine);
    uint64_t expect[EVO_N_GROUPS] = {0};
    c->allgather(c, EVO_GROUP_WORLD, be, EVO_F32, ball, up(bmine, mine, 3), 3);
    down(all, ball, (size_t)w.size * 3);
    be->free(be, ball);
    be->free(be, bmine);
    expect[EVO_GROUP_WORLD] += evo_comm_volume(EVO_ALLGATHER, (uint64_t)w.size * 3 * sizeof(float), w.size);
    int ok = 1;
    for (uint32_t r = 0; r < w.size; r++)
        ok &= evo_layout_global(&l, (uint32_t)all[3 * r], (uint32_t)all[3 * r + 1], (uint32_t)all[3 * r + 2]) == r;
    char text[160], name[256];
    evo_layout_describe(&l, text, sizeof text);
    snprintf(name, sizeof name, "layout %s: global = pp (tp dp) + dp tp + tp on every rank", text);
    check(ok, name, "a rank's coordinates do not give its global rank");
    free(all);

    for (int g = 0; g < EVO_N_GROUPS; g++)
        check_group(c, (evo_group)g, expect);
    if (w.size > 1)
        check_ids(c, &w, expect);
    int any_one = c->any(c, w.rank == w.size - 1), all_one = c->all(c, 1), all_but = c->all(c, w.rank != 0);
    expect[EVO_GROUP_WORLD] += 3 * evo_comm_volume(EVO_ALLREDUCE, sizeof(int), w.size);
    check(any_one && all_one && !all_but, "any and all flags over the world",
          "any %d, all %d, all-but-rank-0 %d", any_one, all_one, all_but);
    ok = 1;
    for (int g = 0; g < EVO_N_GROUPS; g++)
        ok &= c->bytes[g] == expect[g];
    check(ok, "bytes counted per group equal the ring volumes of the calls", "world %llu (want %llu), data %llu (want %llu)",
          (unsigned long long)c->bytes[0], (unsigned long long)expect[0], (unsigned long long)c->bytes[1],
          (unsigned long long)expect[1]);

    /* Any rank's failure fails every rank. */
    int any_failed = c->any(c, failed);
    c->free(c);
    evo_world_finalize(&w);
    evo_model_free(&m);
    return any_failed ? 1 : 0;
}
