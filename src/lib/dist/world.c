/* world.c - the job's ranks from PMIx (world.h). */
#include "dist/world.h"

#include <pmix.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A numeric PMIx value of any unsigned or signed width as uint32; -1 when
 * the key is missing or not a number. */
static int64_t get_number(const pmix_proc_t *proc, const char *key)
{
    pmix_value_t *v = NULL;
    if (PMIx_Get(proc, key, NULL, 0, &v) != PMIX_SUCCESS || !v)
        return -1;
    int64_t n = -1;
    switch (v->type) {
    case PMIX_UINT32: n = v->data.uint32; break;
    case PMIX_UINT16: n = v->data.uint16; break;
    case PMIX_UINT64: n = (int64_t)v->data.uint64; break;
    case PMIX_INT: n = v->data.integer; break;
    case PMIX_UINT: n = v->data.uint; break;
    case PMIX_PROC_RANK: n = v->data.rank; break;
    default: break;
    }
    PMIX_VALUE_RELEASE(v);
    return n;
}

int evo_world_init(evo_world *w, evo_err *e)
{
    *w = (evo_world){.size = 1, .local_size = 1, .nodes = 1};
    /* A launcher with a PMIx server (srun --mpi=pmix, mpirun) tells the
     * processes it starts their namespace: without it there is no server
     * to ask, and PMIx_Init would only search for one. */
    if (!getenv("PMIX_NAMESPACE"))
        return 0;
    pmix_proc_t me;
    if (PMIx_Init(&me, NULL, 0) != PMIX_SUCCESS)
        return 0; /* no server after all (PMIX_ERR_UNREACH): one rank */
    w->pmix = 1;
    snprintf(w->nspace, sizeof w->nspace, "%s", me.nspace);
    pmix_proc_t job;
    PMIX_PROC_CONSTRUCT(&job);
    PMIX_LOAD_PROCID(&job, me.nspace, PMIX_RANK_WILDCARD);
    int64_t size = get_number(&job, PMIX_JOB_SIZE), local_size = get_number(&job, PMIX_LOCAL_SIZE);
    int64_t local_rank = get_number(&me, PMIX_LOCAL_RANK), nodes = get_number(&job, PMIX_NUM_NODES);
    if (size < 1 || me.rank >= (uint32_t)size || local_rank < 0 || local_size < 1 || local_rank >= local_size) {
        evo_world_finalize(w);
        return evo_errf(e, "PMIx: the server did not give this job's size and local ranks (namespace %s)",
                        me.nspace);
    }
    w->rank = me.rank;
    w->size = (uint32_t)size;
    w->local_rank = (uint32_t)local_rank;
    w->local_size = (uint32_t)local_size;
    /* Slurm's plugin may not register PMIX_NUM_NODES; srun sets this. */
    const char *env = getenv("SLURM_STEP_NUM_NODES");
    w->nodes = nodes > 0 ? (uint32_t)nodes : env && atoi(env) > 0 ? (uint32_t)atoi(env) : 1;
    return 0;
}

void evo_world_finalize(evo_world *w)
{
    if (w->pmix)
        PMIx_Finalize(NULL, 0);
    w->pmix = 0;
}

static int need_pmix(const evo_world *w, const char *what, evo_err *e)
{
    if (w->pmix)
        return 0;
    return evo_errf(e, "PMIx %s: no PMIx server (start the ranks with srun --mpi=pmix or mpirun)", what);
}

int evo_world_put(const evo_world *w, const char *key, const void *data, size_t n, evo_err *e)
{
    if (need_pmix(w, "put", e) < 0)
        return -1;
    pmix_value_t v;
    PMIX_VALUE_CONSTRUCT(&v);
    v.type = PMIX_BYTE_OBJECT;
    v.data.bo.bytes = (char *)data;
    v.data.bo.size = n;
    pmix_status_t rc = PMIx_Put(PMIX_GLOBAL, key, &v);
    if (rc != PMIX_SUCCESS)
        return evo_errf(e, "PMIx_Put %s: %s", key, PMIx_Error_string(rc));
    rc = PMIx_Commit();
    if (rc != PMIX_SUCCESS)
        return evo_errf(e, "PMIx_Commit after %s: %s", key, PMIx_Error_string(rc));
    return 0;
}

int evo_world_fence(const evo_world *w, evo_err *e)
{
    if (need_pmix(w, "fence", e) < 0)
        return -1;
    /* Collected: every rank's committed values travel in the fence, so
     * the gets after it are local (Slurm's plugin honours this). */
    pmix_info_t info;
    bool collect = true;
    PMIX_INFO_CONSTRUCT(&info);
    PMIX_INFO_LOAD(&info, PMIX_COLLECT_DATA, &collect, PMIX_BOOL);
    pmix_status_t rc = PMIx_Fence(NULL, 0, &info, 1);
    PMIX_INFO_DESTRUCT(&info);
    if (rc != PMIX_SUCCESS)
        return evo_errf(e, "PMIx_Fence over namespace %s: %s", w->nspace, PMIx_Error_string(rc));
    return 0;
}

int evo_world_get(const evo_world *w, uint32_t rank, const char *key, void *out, size_t n, evo_err *e)
{
    if (need_pmix(w, "get", e) < 0)
        return -1;
    pmix_proc_t proc;
    PMIX_PROC_CONSTRUCT(&proc);
    PMIX_LOAD_PROCID(&proc, w->nspace, rank);
    pmix_value_t *v = NULL;
    pmix_status_t rc = PMIx_Get(&proc, key, NULL, 0, &v);
    if (rc != PMIX_SUCCESS || !v)
        return evo_errf(e, "PMIx_Get %s of rank %u: %s", key, rank, PMIx_Error_string(rc));
    int bad = v->type != PMIX_BYTE_OBJECT || v->data.bo.size != n;
    if (bad)
        evo_errf(e, "PMIx_Get %s of rank %u: not the %zu bytes put", key, rank, n);
    else
        memcpy(out, v->data.bo.bytes, n);
    PMIX_VALUE_RELEASE(v);
    return bad ? -1 : 0;
}

_Noreturn void evo_world_abort(const evo_world *w, int status, const char *why)
{
    if (w->pmix)
        PMIx_Abort(status, why, NULL, 0);
    _exit(status);
}
