/* comm_single.c - the world of one rank: every collective is the identity
 * (a copy where the output is another buffer), and nothing is sent. */
#include "dist/comm.h"

#include <stdlib.h>

static void allreduce(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *buf, size_t n)
{
    (void)c, (void)g, (void)be, (void)dt, (void)buf, (void)n;
}

static void allreduce_f64(evo_comm *c, evo_group g, double *host, size_t n)
{
    (void)c, (void)g, (void)host, (void)n;
}

static void copy(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *out, const void *in, size_t n)
{
    (void)c, (void)g;
    if (out != in)
        be->copy(be, out, in, n * evo_dtype_size(dt));
}

static void reduce(evo_comm *c, evo_group g, const evo_backend *be, evo_dtype dt, void *buf, size_t n,
                   uint32_t root)
{
    (void)c, (void)g, (void)be, (void)dt, (void)buf, (void)n, (void)root;
}

static void broadcast(evo_comm *c, evo_group g, const evo_backend *be, void *buf, size_t bytes, uint32_t root)
{
    (void)c, (void)g, (void)be, (void)buf, (void)bytes, (void)root;
}

/* A group of one has no peer: a pipeline of one stage never sends. */
static void send(evo_comm *c, evo_group g, const evo_backend *be, const void *buf, size_t bytes, uint32_t peer, int tag)
{
    (void)c, (void)g, (void)be, (void)buf, (void)bytes, (void)peer, (void)tag;
    abort();
}

static void recv(evo_comm *c, evo_group g, const evo_backend *be, void *buf, size_t bytes, uint32_t peer, int tag)
{
    (void)c, (void)g, (void)be, (void)buf, (void)bytes, (void)peer, (void)tag;
    abort();
}

static void wait_sent(evo_comm *c) { (void)c; }

static int flag(evo_comm *c, int f)
{
    (void)c;
    return f != 0;
}

static void barrier(evo_comm *c, evo_group g) { (void)c, (void)g; }

static void free_single(evo_comm *c) { free(c); }

evo_comm *evo_comm_single(const evo_layout *l)
{
    static const evo_comm table = {.name = "single",
                                   .allreduce_sum = allreduce,
                                   .allreduce_sum_f64 = allreduce_f64,
                                   .reduce_scatter_sum = copy,
                                   .allgather = copy,
                                   .reduce_sum = reduce,
                                   .broadcast = broadcast,
                                   .send = send,
                                   .recv = recv,
                                   .wait_sent = wait_sent,
                                   .any = flag,
                                   .all = flag,
                                   .barrier = barrier,
                                   .free = free_single};
    evo_comm *c = evo_malloc(sizeof *c);
    *c = table;
    c->layout = *l;
    return c;
}
