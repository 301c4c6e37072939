#include "base/workpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"

struct evo_pool {
    int n;
    int inline_only; /* one worker: the caller runs the loop itself, no thread */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    unsigned long generation; /* bumped per submitted loop */
    int busy, quit;           /* workers still in the current loop */
    evo_pool_fn fn;
    void *ctx;
    size_t n_items;
    atomic_size_t next;
};

typedef struct {
    evo_pool *p;
    int index;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *w = arg;
    evo_pool *p = w->p;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->generation == seen && !p->quit)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        for (size_t i; (i = atomic_fetch_add(&p->next, 1)) < p->n_items;)
            p->fn(p->ctx, i, w->index);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
    free(w);
    return NULL;
}

evo_pool *evo_pool_new(int n_workers)
{
    evo_pool *p = evo_calloc(1, sizeof *p);
    p->n = n_workers < 1 ? 1 : n_workers;
    p->inline_only = p->n == 1;
    p->threads = evo_calloc((size_t)p->n, sizeof *p->threads);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    /* n - 1 threads: the caller is worker n - 1 while it waits. */
    for (int i = 0; i < p->n - 1; i++) {
        worker_arg *w = evo_malloc(sizeof *w);
        *w = (worker_arg){p, i};
        int rc = pthread_create(&p->threads[i], NULL, worker_main, w);
        if (rc != 0)
            evo_fatal("cannot start worker thread %d (of %d): %s", i, p->n - 1, strerror(rc));
    }
    return p;
}

void evo_pool_free(evo_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n - 1; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

void evo_pool_submit(evo_pool *p, size_t n, evo_pool_fn fn, void *ctx)
{
    if (p->inline_only) {
        for (size_t i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_items = n;
    atomic_store(&p->next, 0);
    p->busy = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
}

void evo_pool_wait(evo_pool *p)
{
    if (p->inline_only)
        return;
    /* The caller's work (reading, writing) is done: it takes items too. */
    for (size_t i; (i = atomic_fetch_add(&p->next, 1)) < p->n_items;)
        p->fn(p->ctx, i, p->n - 1);
    pthread_mutex_lock(&p->mu);
    while (p->busy)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int evo_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
