/* An output directory built beside its final name and renamed into place
 * when every file in it is written and synced: a directory of that name is
 * always complete. An interrupted run leaves nothing (or, killed with -9,
 * a hidden .NAME.tmp-XXXXXX directory), never a half-written model. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "convert.h"

volatile sig_atomic_t convert_signal;

static void on_signal(int sig) { convert_signal = sig; }

void convert_catch_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        signal(sigs[i], on_signal);
}

int convert_check_signal(evo_err *e)
{
    return convert_signal ? evo_errf(e, "interrupted by signal %d", (int)convert_signal) : 0;
}

int outdir_begin(outdir *d, const char *path, evo_err *e)
{
    *d = (outdir){0};
    struct stat st;
    if (lstat(path, &st) == 0)
        return evo_errf(e, "%s: already exists (the output must be a new directory)", path);
    char *base;
    evo_split_path(path, &d->parent, &base);
    d->path = evo_strdup(path);
    for (size_t n = strlen(d->path); n > 1 && d->path[n - 1] == '/'; n--)
        d->path[n - 1] = '\0'; /* "hf/" is hf */
    size_t n = strlen(base) + 16;
    char *name = evo_malloc(n);
    snprintf(name, n, ".%s.tmp-XXXXXX", base);
    d->tmp = evo_path_join(d->parent, name);
    free(base);
    free(name);
    if (!mkdtemp(d->tmp)) {
        evo_errf(e, "%s: cannot create a temporary directory beside it: %s", path, strerror(errno));
        free(d->tmp);
        d->tmp = NULL;
        outdir_abort(d);
        return -1;
    }
    /* mkdtemp makes 0700; the result should get the usual 0777 & ~umask. */
    mode_t mask = umask(0);
    umask(mask);
    chmod(d->tmp, 0777 & ~mask);
    return 0;
}

char *outdir_file(const outdir *d, const char *name) { return evo_path_join(d->tmp, name); }

int outdir_write(const outdir *d, const char *name, const void *p, size_t n, evo_err *e)
{
    char *path = outdir_file(d, name);
    int rc = evo_write_file(path, p, n, e);
    free(path);
    return rc;
}

int outdir_commit(outdir *d, evo_err *e)
{
    int rc = evo_fsync_path(d->tmp, e);
    /* No replacing: rename() would silently replace an empty directory
     * created at path since outdir_begin. */
    if (rc == 0 && evo_rename_noreplace(d->tmp, d->path) < 0)
        rc = evo_errf(e, "%s: %s", d->path, strerror(errno));
    /* The rename made durable, or taken back (outdir_abort then removes
     * the directory under its temporary name): a failure leaves no output. */
    if (rc == 0 && (rc = evo_fsync_path(d->parent, e)) < 0 && rename(d->path, d->tmp) < 0)
        evo_remove_dir(d->path);
    if (rc == 0) {
        free(d->tmp);
        d->tmp = NULL;
    }
    outdir_abort(d);
    return rc;
}

void outdir_abort(outdir *d)
{
    if (d->tmp)
        evo_remove_dir(d->tmp);
    free(d->tmp);
    free(d->path);
    free(d->parent);
    *d = (outdir){0};
}
