/* address_space.c - refuses an address-space limit (ulimit -v) too small
 * for OpenBLAS, before OpenBLAS can hang on it.
 *
 * OpenBLAS 0.3.21 (Debian 12's) maps a 128 MiB work buffer for each of its
 * threads when it is loaded, and one for each thread that calls a GEMM
 * (the CPU backend maps those at once: backend_cpu.c), and when mmap fails
 * it retries forever: under too small a limit evo-train would spin before
 * main, deaf to SIGTERM. A function in .preinit_array runs after the
 * libraries are mapped and before any of their constructors, so it can
 * try the room OpenBLAS will want and say so in one line instead.
 *
 * The room wanted, per thread t (OMP_NUM_THREADS, else the CPUs this
 * process may run on): OpenBLAS's load-time buffer (for at most as many
 * threads as CPUs), the buffer of its first GEMM, 64 MiB of address space
 * for the thread's malloc arena and 8 MiB for its stack, beyond the 48 MiB
 * mapped by then. The least limit that trains tests/lib.sh's tiny model,
 * measured on 2 cores, and what this asks: 1 thread 321 MiB (376), 2
 * threads 646 MiB (704), 4 threads 1019 MiB (1104). */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

enum { MIB = 1 << 20, BLAS_BUFFER = 128, ARENA = 64, STACK = 8 };

static long cpus_usable(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

/* getenv() before libc's own constructor has run: the environment as the
 * kernel gave it. */
static const char *env_value(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/* What the process has mapped already (its libraries: about 50 MiB). */
static size_t mapped_bytes(void)
{
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void check_address_space(int argc, char **argv, char **envp)
{
    (void)argc, (void)argv;
    struct rlimit lim;
    if (getrlimit(RLIMIT_AS, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY)
        return;
    long cpus = cpus_usable(), threads = cpus;
    const char *omp = env_value(envp, "OMP_NUM_THREADS");
    if (omp && atol(omp) > 0)
        threads = atol(omp);
    long blas = threads < cpus ? threads : cpus;
    size_t want = (size_t)(blas * BLAS_BUFFER + threads * (BLAS_BUFFER + ARENA + STACK)) * MIB;
    void *p = mmap(NULL, want, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
        munmap(p, want);
        return;
    }
    fprintf(stderr,
            "evo-train: ulimit -v %llu is too small: OpenBLAS hangs without %zu MiB more for %ld thread%s "
            "(ulimit -v %zu in all); raise the limit or lower OMP_NUM_THREADS\n",
            (unsigned long long)(lim.rlim_cur / 1024), want / MIB, threads, threads == 1 ? "" : "s",
            (want + mapped_bytes()) / 1024);
    _exit(1);
}

__attribute__((used, section(".preinit_array"))) static void (*const run_check)(int, char **,
                                                                              char **) = check_address_space;
