/* fault-inject.c - an LD_PRELOAD library that makes one chosen call of a
 * writing program fail, as a full disk or a failing device would:
 *
 *   EVO_FAULT_DIR=DIR       only calls on files under DIR count (the
 *                           program's outputs; its inputs and stderr not)
 *   EVO_FAULT_AT=N          the N-th counted call fails (0 or unset: none)
 *   EVO_FAULT_ERRNO=E       ENOSPC (default) or EIO
 *   EVO_FAULT_KILL=1        the N-th call does not fail: the process dies
 *                           of SIGKILL there, as on a node taken away
 *   EVO_FAULT_UNLINK=1      unlink and rmdir under DIR count too (evo-ckpt
 *                           prune's removals)
 *   EVO_FAULT_LOG=FILE      at exit, "calls K" is appended: how many calls
 *                           counted, so a driver knows the points to try;
 *                           and "fail N CALL PATH" when one was made to fail
 *
 * Counted calls: write, pwrite, fsync, fdatasync of a descriptor open on
 * a file under DIR, close of one open for writing; rename, renameat2 and link to a path under DIR;
 * mkostemp, mkdir and open with O_CREAT of a path under DIR; fflush of a
 * stdio stream on a file under DIR and fclose of one open for writing (stdio's own writes are
 * internal to glibc and cannot be interposed, so a full disk surfaces
 * where it does for a buffered stream: at the flush). A failing write
 * writes nothing; a failing close still closes (as close(2) does, the
 * descriptor is gone either way); a failing rename renames nothing.
 *
 * Test code (tests/t0710-faults.sh), not part of any tool. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static char dir[PATH_MAX];
static size_t dir_len;
static long fail_at;
static int fail_errno = ENOSPC;
static _Atomic long calls;
static int count_unlink, kill_at;
static char failed_what[PATH_MAX + 64];

__attribute__((constructor)) static void init(void)
{
    const char *d = getenv("EVO_FAULT_DIR"), *at = getenv("EVO_FAULT_AT"), *en = getenv("EVO_FAULT_ERRNO");
    if (d && realpath(d, dir))
        dir_len = strlen(dir);
    fail_at = at ? atol(at) : 0;
    kill_at = getenv("EVO_FAULT_KILL") && !strcmp(getenv("EVO_FAULT_KILL"), "1");
    count_unlink = getenv("EVO_FAULT_UNLINK") && !strcmp(getenv("EVO_FAULT_UNLINK"), "1");
    if (en && !strcmp(en, "EIO"))
        fail_errno = EIO;
}

__attribute__((destructor)) static void report(void)
{
    const char *log = getenv("EVO_FAULT_LOG");
    if (!log || !dir_len)
        return;
    __typeof__(&fopen) real_fopen = (__typeof__(&fopen))dlsym(RTLD_NEXT, "fopen");
    FILE *f = real_fopen(log, "a");
    if (!f)
        return;
    fprintf(f, "calls %ld\n", (long)calls);
    if (*failed_what)
        fprintf(f, "fail %ld %s\n", fail_at, failed_what);
    fclose(f);
}

/* Whether path (made absolute against the working directory, its last
 * component not resolved: it may not exist yet) lies under DIR. */
static int under_dir(const char *path)
{
    if (!dir_len || !path)
        return 0;
    char parent[PATH_MAX], real[PATH_MAX], cwd[PATH_MAX];
    int n = path[0] == '/'       ? snprintf(parent, sizeof parent, "%s", path)
            : getcwd(cwd, sizeof cwd) ? snprintf(parent, sizeof parent, "%s/%s", cwd, path)
                                    : -1;
    if (n < 0 || (size_t)n >= sizeof parent)
        return 0;
    char *slash = strrchr(parent, '/');
    *slash = '\0';
    if (!realpath(*parent ? parent : "/", real))
        memcpy(real, parent, strlen(parent) + 1);
    return !strncmp(real, dir, dir_len) && (real[dir_len] == '/' || real[dir_len] == '\0');
}

static int fd_under_dir(int fd, char *path, size_t n)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, path, n - 1);
    if (k <= 0)
        return 0;
    path[k] = '\0';
    return !strncmp(path, dir, dir_len) && (path[dir_len] == '/' || path[dir_len] == '\0');
}

/* A counted call: 1 when it is the one to fail (errno set). */
static int fault(const char *what, const char *path)
{
    long n = ++calls;
    if (n != fail_at)
        return 0;
    if (kill_at)
        raise(SIGKILL);
    snprintf(failed_what, sizeof failed_what, "%s %s", what, path);
    errno = fail_errno;
    return 1;
}

static int fault_fd(const char *what, int fd)
{
    char path[PATH_MAX];
    return dir_len && fd_under_dir(fd, path, sizeof path) && fault(what, path);
}

/* Closing a descriptor opened only to read cannot lose data: not counted. */
static int fault_close(const char *what, int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl != -1 && (fl & O_ACCMODE) != O_RDONLY && fault_fd(what, fd);
}

/* The libc function this one stands in front of. */
#define REAL(name) __typeof__(&name) real = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n)
{
    REAL(write);
    return fault_fd("write", fd) ? -1 : real(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    REAL(pwrite);
    return fault_fd("pwrite", fd) ? -1 : real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    REAL(pwrite64);
    return fault_fd("pwrite", fd) ? -1 : real(fd, buf, n, off);
}

int fsync(int fd)
{
    REAL(fsync);
    return fault_fd("fsync", fd) ? -1 : real(fd);
}

int fdatasync(int fd)
{
    REAL(fdatasync);
    return fault_fd("fdatasync", fd) ? -1 : real(fd);
}

int close(int fd)
{
    REAL(close);
    if (fault_close("close", fd)) {
        real(fd);
        errno = fail_errno;
        return -1;
    }
    return real(fd);
}

int rename(const char *from, const char *to)
{
    REAL(rename);
    return under_dir(to) && fault("rename", to) ? -1 : real(from, to);
}

int renameat2(int fromfd, const char *from, int tofd, const char *to, unsigned flags)
{
    REAL(renameat2);
    return tofd == AT_FDCWD && under_dir(to) && fault("renameat2", to) ? -1 : real(fromfd, from, tofd, to, flags);
}

int link(const char *from, const char *to)
{
    REAL(link);
    return under_dir(to) && fault("link", to) ? -1 : real(from, to);
}

int unlink(const char *path)
{
    REAL(unlink);
    return count_unlink && under_dir(path) && fault("unlink", path) ? -1 : real(path);
}

int rmdir(const char *path)
{
    REAL(rmdir);
    return count_unlink && under_dir(path) && fault("rmdir", path) ? -1 : real(path);
}

int mkostemp(char *tmpl, int flags)
{
    REAL(mkostemp);
    return under_dir(tmpl) && fault("mkostemp", tmpl) ? -1 : real(tmpl, flags);
}

int mkdir(const char *path, mode_t mode)
{
    REAL(mkdir);
    return under_dir(path) && fault("mkdir", path) ? -1 : real(path, mode);
}

static int open_fault(const char *path, int flags)
{
    return (flags & O_CREAT) && under_dir(path) && fault("open", path);
}

/* open and fopen under both their names: code built for large files
 * (libarchive) calls the *64 ones. */
#define OPEN_SHIM(name)                                                                                               \
    int name(const char *path, int flags, ...)                                                                       \
    {                                                                                                                \
        REAL(name);                                                                                                  \
        va_list ap;                                                                                                  \
        va_start(ap, flags);                                                                                         \
        mode_t mode = (flags & O_CREAT) ? (mode_t)va_arg(ap, int) : 0;                                               \
        va_end(ap);                                                                                                  \
        return open_fault(path, flags) ? -1 : real(path, flags, mode);                                               \
    }
OPEN_SHIM(open)
OPEN_SHIM(open64)

#define FOPEN_SHIM(name)                                                                                              \
    FILE *name(const char *path, const char *how)                                                                    \
    {                                                                                                                \
        REAL(name);                                                                                                  \
        return how[0] != 'r' && under_dir(path) && fault("fopen", path) ? NULL : real(path, how);                    \
    }
FOPEN_SHIM(fopen)
FOPEN_SHIM(fopen64)

int fflush(FILE *f)
{
    REAL(fflush);
    return f && fault_fd("fflush", fileno(f)) ? EOF : real(f);
}

int fclose(FILE *f)
{
    REAL(fclose);
    if (fault_close("fclose", fileno(f))) {
        real(f);
        errno = fail_errno;
        return EOF;
    }
    return real(f);
}
