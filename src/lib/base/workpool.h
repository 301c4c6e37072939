/* workpool.h - a fixed set of worker threads running one parallel loop at
 * a time. The submitter does other work (reading the next batch) while the
 * loop runs, then waits, and waiting means working: the caller is one of
 * the n workers (n - 1 threads are started), so "-j N" keeps N cores busy
 * and no more, the pipeline evo-tokenize uses. Items are claimed
 * dynamically, so uneven items balance out; results must be written per
 * item, which keeps output independent of thread count. */
#ifndef EVO_WORKPOOL_H
#define EVO_WORKPOOL_H

#include <stddef.h>

typedef struct evo_pool evo_pool;
/* fn(ctx, item, worker): worker in [0, n_workers) indexes per-thread state. */
typedef void (*evo_pool_fn)(void *ctx, size_t item, int worker);

/* With one worker there is no thread at all: submit runs the loop in the
 * caller, so "-j 1" means one thread, start to end. */
evo_pool *evo_pool_new(int n_workers);
void evo_pool_free(evo_pool *p);
/* Starts fn over items [0, n) and returns at once. */
void evo_pool_submit(evo_pool *p, size_t n, evo_pool_fn fn, void *ctx);
/* Runs items of the submitted loop on the calling thread (worker n - 1)
 * until none is left, then blocks until the loop has finished. */
void evo_pool_wait(evo_pool *p);

/* Usable CPUs (affinity-aware, so a Slurm allocation is respected). */
int evo_cpu_count(void);

#endif
