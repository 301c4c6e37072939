/* backend_profiled.c - a backend timing every op of another: the op, then
 * finish() so that a GPU's queued work is counted where it was asked for,
 * wall time around both. The ops see this table as their backend; it has
 * the inner one's name, memory kind and dtype, so nothing else changes.
 * evo-train --profile prints what it measured. */
#include <stdlib.h>

#include "base/log.h"
#include "compute/backend_ops.h"

#define OP_INDEX(op, params, args) OP_##op,
enum { EVO_BACKEND_OPS(OP_INDEX) N_OPS };
#define OP_NAME(op, params, args) #op,
static const char *const op_names[N_OPS] = {EVO_BACKEND_OPS(OP_NAME)};

static const evo_backend *inner;
static evo_backend profiled;
static struct {
    uint64_t calls;
    double seconds;
} stats[N_OPS];

#define PROFILED(op, params, args)                                                                             \
    static void profiled_##op params                                                                          \
    {                                                                                                          \
        double t0 = evo_now();                                                                                 \
        inner->op args;                                                                                        \
        inner->finish(inner);                                                                                  \
        stats[OP_##op].calls++;                                                                                \
        stats[OP_##op].seconds += evo_now() - t0;                                                              \
    }
EVO_BACKEND_OPS(PROFILED)
#define PROFILED_ENTRY(op, params, args) profiled.op = profiled_##op;

const evo_backend *evo_backend_profiled(const evo_backend *be)
{
    inner = be;
    profiled = *be;
    EVO_BACKEND_OPS(PROFILED_ENTRY)
    return &profiled;
}

static int by_time(const void *a, const void *b)
{
    double x = stats[*(const int *)a].seconds, y = stats[*(const int *)b].seconds;
    return (x < y) - (x > y);
}

void evo_backend_profile_print(FILE *f, const char *prefix)
{
    int order[N_OPS];
    double total = 0;
    for (int i = 0; i < N_OPS; i++) {
        order[i] = i;
        total += stats[i].seconds;
    }
    qsort(order, N_OPS, sizeof *order, by_time);
    fprintf(f, "%s%-22s %9s %10s %6s %10s\n", prefix, "op", "calls", "seconds", "share", "mean ms");
    for (int k = 0; k < N_OPS; k++) {
        int i = order[k];
        if (!stats[i].calls)
            continue;
        fprintf(f, "%s%-22s %9llu %10.3f %5.1f%% %10.3f\n", prefix, op_names[i], (unsigned long long)stats[i].calls,
                stats[i].seconds, total > 0 ? 100 * stats[i].seconds / total : 0.0,
                1e3 * stats[i].seconds / (double)stats[i].calls);
    }
    fprintf(f, "%s%-22s %9s %10.3f\n", prefix, "all ops", "", total);
}
