/* comm_single.c - the world of one rank: every collective is the identity. */
#include "dist/comm.h"

static void allreduce_f32(const evo_comm *c, const evo_backend *be, float *buf, size_t n)
{
    (void)c, (void)be, (void)buf, (void)n;
}

static int any(const evo_comm *c, int flag)
{
    (void)c;
    return flag != 0;
}

const evo_comm *evo_comm_single(void)
{
    static const evo_comm single = {"single", 0, 1, allreduce_f32, any};
    return &single;
}
