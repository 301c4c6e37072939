#include "base/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int evo_read_file(const char *path, evo_buf *buf, evo_err *e)
{
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    if (fd < 0)
        return evo_errf(e, "%s: %s", path, strerror(errno));
    for (;;) {
        evo_buf_reserve(buf, 1 << 16);
        ssize_t r = read(fd, buf->data + buf->len, buf->cap - buf->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            if (fd != STDIN_FILENO)
                close(fd);
            return evo_errf(e, "%s: %s", path, strerror(err));
        }
        if (r == 0)
            break;
        buf->len += (size_t)r;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    return 0;
}

int evo_write_file(const char *path, const void *p, size_t n, evo_err *e)
{
    evo_out o;
    if (evo_out_open(&o, path, e) < 0 || evo_out_write(&o, p, n, e) < 0) {
        evo_out_abort(&o);
        return -1;
    }
    return evo_out_commit(&o, e);
}

/* Temporaries still on disk, for evo_out_cleanup_all(): their names (the
 * outputs' own heap strings, alive until commit or abort forgets them,
 * even when the evo_out on some stack is gone). Tools open a handful of
 * outputs at most. */
#define MAX_OPEN_OUTPUTS 16
static char *volatile open_temporaries[MAX_OPEN_OUTPUTS];

static void track(evo_out *o, int on)
{
    static int at_exit;
    if (on && !at_exit) /* a tool that ends on an error (evo_fatal) leaves none */
        at_exit = atexit(evo_out_cleanup_all) == 0;
    for (int i = 0; i < MAX_OPEN_OUTPUTS; i++) {
        if (on ? open_temporaries[i] == NULL : open_temporaries[i] == o->tmp_path) {
            open_temporaries[i] = on ? o->tmp_path : NULL;
            return;
        }
    }
}

void evo_out_cleanup_all(void)
{
    for (int i = 0; i < MAX_OPEN_OUTPUTS; i++) {
        char *t = open_temporaries[i];
        if (t && t[0])
            unlink(t); /* async-signal-safe */
    }
}

static void on_signal(int sig)
{
    evo_out_cleanup_all(); /* never leave a temporary that looks like output */
    signal(sig, SIG_DFL);
    raise(sig);
}

void evo_out_cleanup_on_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        signal(sigs[i], on_signal);
}

static int is_stdout(const char *path) { return strcmp(path, "-") == 0; }

/* Outputs that are not regular files (/dev/null, a FIFO, a tty) cannot be
 * replaced by rename: they are written in place. */
static int is_special(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

int evo_out_open(evo_out *o, const char *path, evo_err *e)
{
    *o = (evo_out){.fd = -1, .dest_fd = -1};
    o->path = evo_strdup(path);
    if (is_stdout(path) || is_special(path)) {
        o->dest_fd = is_stdout(path) ? STDOUT_FILENO : open(path, O_WRONLY | O_CLOEXEC);
        if (o->dest_fd < 0)
            return evo_errf(e, "%s: %s", path, strerror(errno));
        /* Spool to an anonymous file so the reader gets only complete files. */
        const char *dir = getenv("TMPDIR");
        o->fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (o->fd < 0) {
            char tmpl[] = "/tmp/evo-spool-XXXXXX";
            o->fd = mkostemp(tmpl, O_CLOEXEC);
            if (o->fd >= 0)
                unlink(tmpl);
        }
        if (o->fd < 0)
            return evo_errf(e, "%s: cannot create a spool file: %s", path, strerror(errno));
        return 0;
    }
    size_t n = strlen(path) + 32;
    o->tmp_path = evo_malloc(n);
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    snprintf(o->tmp_path, n, "%.*s.%s.tmp-XXXXXX", dirlen, path, slash ? slash + 1 : path);
    o->fd = mkostemp(o->tmp_path, O_CLOEXEC);
    if (o->fd < 0) {
        int err = errno;
        free(o->tmp_path);
        o->tmp_path = NULL;
        return evo_errf(e, "%s: cannot create a temporary file: %s", path, strerror(err));
    }
    /* mkostemp makes 0600; the result should get the usual 0666 & ~umask. */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(o->fd, 0666 & ~mask);
    track(o, 1);
    return 0;
}

static int write_all(int fd, const void *p, size_t n, int64_t offset)
{
    const char *c = p;
    while (n) {
        ssize_t w = offset < 0 ? write(fd, c, n) : pwrite(fd, c, n, offset);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        c += w;
        n -= (size_t)w;
        if (offset >= 0)
            offset += w;
    }
    return 0;
}

int evo_out_write(evo_out *o, const void *p, size_t n, evo_err *e)
{
    if (write_all(o->fd, p, n, -1) < 0)
        return evo_errf(e, "%s: write failed: %s", o->path, strerror(errno));
    o->pos += n;
    return 0;
}

int evo_out_pwrite(evo_out *o, const void *p, size_t n, uint64_t offset, evo_err *e)
{
    if (write_all(o->fd, p, n, (int64_t)offset) < 0)
        return evo_errf(e, "%s: write failed: %s", o->path, strerror(errno));
    return 0;
}

static int copy_spool(evo_out *o, evo_err *e)
{
    if (lseek(o->fd, 0, SEEK_SET) < 0)
        return evo_errf(e, "stdout spool: %s", strerror(errno));
    char *buf = evo_malloc(1 << 20);
    int rc = 0;
    for (;;) {
        ssize_t r = read(o->fd, buf, 1 << 20);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = evo_errf(e, "stdout spool: %s", strerror(errno));
            break;
        }
        if (r == 0)
            break;
        if (write_all(o->dest_fd, buf, (size_t)r, -1) < 0) {
            rc = evo_errf(e, "%s: %s", is_stdout(o->path) ? "stdout" : o->path, strerror(errno));
            break;
        }
    }
    free(buf);
    return rc;
}

/* Closes the descriptors and forgets the output (the temporary, if any,
 * was renamed or removed by the caller). */
static void release(evo_out *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    if (o->dest_fd > STDOUT_FILENO)
        close(o->dest_fd);
    o->dest_fd = -1;
    free(o->path);
    o->path = NULL;
}

/* Makes a rename into path's folder durable. */
static void sync_folder_of(const char *path)
{
    char *dir = evo_strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir ? 1 : 0] = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
}

int evo_out_commit(evo_out *o, evo_err *e)
{
    int rc = 0;
    if (o->dest_fd >= 0) {
        rc = copy_spool(o, e);
    } else if (fsync(o->fd) < 0) {
        rc = evo_errf(e, "%s: fsync failed: %s", o->path, strerror(errno));
    } else if (close(o->fd) < 0) {
        o->fd = -1;
        rc = evo_errf(e, "%s: close failed: %s", o->path, strerror(errno));
    } else if (o->held) {
        o->fd = -1;
        return 0; /* evo_out_publish renames it */
    } else {
        o->fd = -1;
        if (rename(o->tmp_path, o->path) < 0) {
            rc = evo_errf(e, "%s: %s", o->path, strerror(errno));
        } else {
            sync_folder_of(o->path);
            track(o, 0);
            free(o->tmp_path);
            o->tmp_path = NULL;
        }
    }
    if (rc < 0) {
        evo_out_abort(o);
        return rc;
    }
    release(o);
    return 0;
}

void evo_out_abort(evo_out *o)
{
    if (o->tmp_path) {
        track(o, 0);
        unlink(o->tmp_path);
        free(o->tmp_path);
        o->tmp_path = NULL;
    }
    release(o);
}

void evo_out_hold(evo_out *o)
{
    if (o->tmp_path)
        o->held = 1;
}

int evo_out_publish(evo_out *const *outs, size_t n, evo_err *e)
{
    char **backup = evo_calloc(n, sizeof *backup);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct stat st;
        if (!outs[i]->held || lstat(outs[i]->path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        size_t len = strlen(outs[i]->tmp_path) + 5;
        backup[i] = evo_malloc(len);
        snprintf(backup[i], len, "%s.old", outs[i]->tmp_path);
        if (link(outs[i]->path, backup[i]) < 0)
            rc = evo_errf(e, "%s: cannot keep the file it replaces: %s", outs[i]->path, strerror(errno));
    }
    size_t renamed = 0;
    for (; rc == 0 && renamed < n; renamed++)
        if (outs[renamed]->held && rename(outs[renamed]->tmp_path, outs[renamed]->path) < 0) {
            rc = evo_errf(e, "%s: %s", outs[renamed]->path, strerror(errno));
            break;
        }
    for (size_t i = 0; i < n; i++) {
        evo_out *o = outs[i];
        if (o->held && i < renamed) { /* in place: kept, or undone */
            if (rc == 0)
                sync_folder_of(o->path);
            else if (backup[i])
                rename(backup[i], o->path);
            else
                unlink(o->path);
            track(o, 0);
            free(o->tmp_path);
            o->tmp_path = NULL;
        }
        if (backup[i])
            unlink(backup[i]); /* gone already where it was put back */
        free(backup[i]);
        o->held = 0;
        evo_out_abort(o); /* removes a temporary not renamed; frees the rest */
    }
    free(backup);
    return rc;
}

int evo_make_dirs(const char *path, evo_err *e)
{
    char *p = evo_strdup(path);
    for (char *s = p + 1;; s++) {
        if (*s && *s != '/')
            continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0777) < 0 && errno != EEXIST) {
            evo_errf(e, "%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = c;
        if (!c)
            break;
    }
    free(p);
    return 0;
}

char *evo_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = evo_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int evo_fsync_path(const char *path, evo_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return evo_errf(e, "%s: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    return rc < 0 ? evo_errf(e, "%s: fsync failed: %s", path, strerror(errno)) : 0;
}

void evo_split_path(const char *path, char **folder, char **base)
{
    char *p = evo_strdup(path);
    for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--)
        p[n - 1] = '\0';
    char *slash = strrchr(p, '/');
    *base = evo_strdup(slash ? slash + 1 : p);
    if (!slash)
        *folder = evo_strdup(".");
    else {
        slash[slash == p] = '\0'; /* "/20" is 20 in "/" */
        *folder = p;
        p = NULL;
    }
    free(p);
}

int evo_rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    struct stat st;
    if (lstat(to, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(from, to);
}

int evo_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int err = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *p = evo_path_join(dir, de->d_name);
        if (unlink(p) < 0 && errno != ENOENT && !err)
            err = errno;
        free(p);
    }
    closedir(d);
    if (rmdir(dir) < 0 && !err)
        err = errno;
    errno = err;
    return err ? -1 : 0;
}
