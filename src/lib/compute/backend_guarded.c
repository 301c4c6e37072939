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
#include "compute/backend_ops.h"

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
EVO_BACKEND_OPS(GUARDED)
#define GUARDED_ENTRY(op, params, args) .op = guarded_##op,

static const evo_backend guarded_backend = {
    .name = "guarded (the CPU backend, its memory unreadable outside its ops)",
    .host_memory = 0,
    .dtype = EVO_F32,
    .alloc = guarded_alloc,
    .free = guarded_free,
    EVO_BACKEND_OPS(GUARDED_ENTRY)
};

const evo_backend *evo_backend_guarded(void)
{
    cpu = evo_backend_cpu();
    return &guarded_backend;
}
