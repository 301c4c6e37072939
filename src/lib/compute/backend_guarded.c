/* backend_guarded.c - the CPU backend with its memory out of the host's
 * reach: every buffer from alloc() is its own mapping, PROT_NONE except
 * while one of the table's functions runs. A host read or write of backend
 * memory anywhere else (what would read garbage or crash with a GPU's
 * memory) is a SIGSEGV at the line that does it; and as host_memory is 0,
 * the comms stage their buffers as for a GPU. Results are the CPU
 * backend's, bit for bit. evo-train --backend guarded; tests/t0600. */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/error.h"
#include "compute/backend.h"

typedef struct {
    void *p;
    size_t bytes;
} region;

static const evo_backend *cpu;
static region *regions;
static size_t n_regions, cap_regions;
static int open_depth; /* table calls under way (one thread calls the backend) */

static void protect_all(int prot)
{
    for (size_t i = 0; i < n_regions; i++)
        if (mprotect(regions[i].p, regions[i].bytes, prot) != 0)
            evo_fatal("guarded backend: mprotect failed");
}

static void open_memory(void)
{
    if (open_depth++ == 0)
        protect_all(PROT_READ | PROT_WRITE);
}

static void close_memory(void)
{
    if (--open_depth == 0)
        protect_all(PROT_NONE);
}

static void *guarded_alloc(const evo_backend *be, size_t bytes)
{
    (void)be;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len = bytes ? (bytes + page - 1) / page * page : page;
    void *p = mmap(NULL, len, open_depth ? PROT_READ | PROT_WRITE : PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        evo_fatal("out of memory allocating %zu bytes", bytes);
    if (n_regions == cap_regions) {
        cap_regions = cap_regions ? 2 * cap_regions : 64;
        regions = evo_realloc(regions, cap_regions * sizeof *regions);
    }
    regions[n_regions++] = (region){p, len};
    return p;
}

static void guarded_free(const evo_backend *be, void *p)
{
    (void)be;
    for (size_t i = 0; i < n_regions; i++)
        if (regions[i].p == p) {
            munmap(p, regions[i].bytes);
            regions[i] = regions[--n_regions];
            return;
        }
    if (p)
        evo_fatal("guarded backend: free of memory it did not allocate");
}

/* Each op: the CPU backend's, with the memory opened around it. */
#define GUARDED(op, params, args)                                                                              \
    static void guarded_##op params                                                                           \
    {                                                                                                          \
        open_memory();                                                                                         \
        cpu->op args;                                                                                          \
        close_memory();                                                                                        \
    }
GUARDED(upload, (const evo_backend *be, void *d, const void *s, size_t b), (be, d, s, b))
GUARDED(download, (const evo_backend *be, void *d, const void *s, size_t b), (be, d, s, b))
GUARDED(fill, (const evo_backend *be, float *d, float v, size_t n), (be, d, v, n))
GUARDED(add, (const evo_backend *be, float *d, const float *s, size_t n), (be, d, s, n))
GUARDED(copy, (const evo_backend *be, void *d, const void *s, size_t b), (be, d, s, b))
GUARDED(cast, (const evo_backend *be, void *d, evo_dtype dd, const void *s, evo_dtype sd, size_t n),
        (be, d, dd, s, sd, n))
GUARDED(working_copy, (const evo_backend *be, float *d, const float *s, size_t n), (be, d, s, n))
GUARDED(embedding_fwd, (const evo_backend *be, float *o, const int32_t *i, const float *t, size_t T, size_t C),
        (be, o, i, t, T, C))
GUARDED(embedding_bwd, (const evo_backend *be, float *o, const int32_t *i, const float *t, size_t T, size_t C),
        (be, o, i, t, T, C))
GUARDED(matmul_fwd,
        (const evo_backend *be, float *o, const float *i, const float *w, const float *b, size_t T, size_t C,
         size_t OC),
        (be, o, i, w, b, T, C, OC))
GUARDED(matmul_bwd,
        (const evo_backend *be, float *di, float *dw, float *db, const float *d, const float *i, const float *w,
         size_t T, size_t C, size_t OC, evo_grad_mode m),
        (be, di, dw, db, d, i, w, T, C, OC, m))
GUARDED(rmsnorm_fwd,
        (const evo_backend *be, float *o, float *r, const float *i, const float *w, float e, size_t T, size_t C),
        (be, o, r, i, w, e, T, C))
GUARDED(rmsnorm_bwd,
        (const evo_backend *be, float *di, float *dw, const float *d, const float *i, const float *w, const float *r,
         size_t T, size_t C, evo_grad_mode m),
        (be, di, dw, d, i, w, r, T, C, m))
GUARDED(rope_fwd, (const evo_backend *be, float *o, const float *i, const int32_t *p, size_t T, int H, int hd, float b),
        (be, o, i, p, T, H, hd, b))
GUARDED(rope_bwd, (const evo_backend *be, float *o, const float *i, const int32_t *p, size_t T, int H, int hd, float b),
        (be, o, i, p, T, H, hd, b))
GUARDED(attention_fwd,
        (const evo_backend *be, float *o, float *l, const float *q, const float *k, const float *v, const int32_t *cu,
         int ns, size_t T, int H, int KVH, int hd),
        (be, o, l, q, k, v, cu, ns, T, H, KVH, hd))
GUARDED(attention_bwd,
        (const evo_backend *be, float *dq, float *dk, float *dv, float *s, const float *d, const float *q,
         const float *k, const float *v, const float *o, const float *l, const int32_t *cu, int ns, size_t T, int H,
         int KVH, int hd),
        (be, dq, dk, dv, s, d, q, k, v, o, l, cu, ns, T, H, KVH, hd))
GUARDED(swiglu_fwd, (const evo_backend *be, float *o, const float *g, const float *u, size_t n), (be, o, g, u, n))
GUARDED(swiglu_bwd, (const evo_backend *be, float *dg, float *du, const float *d, const float *g, const float *u, size_t n),
        (be, dg, du, d, g, u, n))
GUARDED(crossentropy_fwd,
        (const evo_backend *be, float *ls, float *l, const float *z, const int32_t *y, float e, size_t T, size_t V),
        (be, ls, l, z, y, e, T, V))
GUARDED(crossentropy_bwd,
        (const evo_backend *be, float *dz, const float *dl, const float *z, const float *l, const int32_t *y, float e,
         size_t T, size_t V, size_t v0, size_t Vl),
        (be, dz, dl, z, l, y, e, T, V, v0, Vl))
GUARDED(crossentropy_shard_fwd,
        (const evo_backend *be, float *p, const float *z, const int32_t *y, size_t T, size_t v0, size_t Vl),
        (be, p, z, y, T, v0, Vl))
GUARDED(copy2d, (const evo_backend *be, float *d, size_t ds, const float *s, size_t ss, size_t r, size_t c),
        (be, d, ds, s, ss, r, c))
GUARDED(adamw,
        (const evo_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
         float e, float wd, float gs, int t),
        (be, p, g, m, v, n, lr, b1, b2, e, wd, gs, t))
GUARDED(sqnorm, (const evo_backend *be, double *a, const float *x, size_t n), (be, a, x, n))

static const evo_backend guarded_backend = {
    .name = "guarded (the CPU backend, its memory unreadable outside its ops)",
    .host_memory = 0,
    .dtype = EVO_F32,
    .alloc = guarded_alloc,
    .free = guarded_free,
    .upload = guarded_upload,
    .download = guarded_download,
    .fill = guarded_fill,
    .add = guarded_add,
    .copy = guarded_copy,
    .cast = guarded_cast,
    .working_copy = guarded_working_copy,
    .embedding_fwd = guarded_embedding_fwd,
    .embedding_bwd = guarded_embedding_bwd,
    .matmul_fwd = guarded_matmul_fwd,
    .matmul_bwd = guarded_matmul_bwd,
    .rmsnorm_fwd = guarded_rmsnorm_fwd,
    .rmsnorm_bwd = guarded_rmsnorm_bwd,
    .rope_fwd = guarded_rope_fwd,
    .rope_bwd = guarded_rope_bwd,
    .attention_fwd = guarded_attention_fwd,
    .attention_bwd = guarded_attention_bwd,
    .swiglu_fwd = guarded_swiglu_fwd,
    .swiglu_bwd = guarded_swiglu_bwd,
    .crossentropy_fwd = guarded_crossentropy_fwd,
    .crossentropy_bwd = guarded_crossentropy_bwd,
    .crossentropy_shard_fwd = guarded_crossentropy_shard_fwd,
    .copy2d = guarded_copy2d,
    .adamw = guarded_adamw,
    .sqnorm = guarded_sqnorm,
};

const evo_backend *evo_backend_guarded(void)
{
    cpu = evo_backend_cpu();
    return &guarded_backend;
}
