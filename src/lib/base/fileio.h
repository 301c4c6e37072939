/* fileio.h - whole-file reads and crash-safe writes.
 *
 * Every output of every evo tool goes through evo_out: data is written to a
 * temporary file beside the target, fsync'ed, and renamed over it only when
 * complete, so a crash, a full disk or a kill never leaves a file that looks
 * finished. "-" means stdout: the bytes are spooled to an unlinked
 * temporary file and copied out at commit, so a reader on the pipe sees a
 * complete file or an error, never a silently short one. */
#ifndef EVO_FILEIO_H
#define EVO_FILEIO_H

#include <stdint.h>
#include <stdio.h>

#include "base/buf.h"
#include "base/error.h"

/* Reads a whole file ("-" = stdin) into buf (appending). */
int evo_read_file(const char *path, evo_buf *buf, evo_err *e);
/* Writes a whole file (evo_out: atomically). */
int evo_write_file(const char *path, const void *p, size_t n, evo_err *e);

typedef struct {
    char *path;     /* the final name, or "-" */
    char *tmp_path; /* the temporary beside it (NULL when spooling) */
    int fd;         /* the temporary or the spool */
    int dest_fd;    /* spooling: where the spool is copied at commit; else -1 */
    uint64_t pos; /* bytes written so far = current offset */
    int held;     /* evo_out_hold: commit stops before the rename */
} evo_out;

/* fsync of a file or directory by path (a directory: to make the renames
 * in it durable). */
int evo_fsync_path(const char *path, evo_err *e);
/* Renames from to to unless to exists (then -1 with errno EEXIST): a
 * directory built beside its final name goes into place without replacing
 * one made there meanwhile. Filesystems without RENAME_NOREPLACE (NFS,
 * FUSE) get a check and a plain rename, with that small window. */
int evo_rename_noreplace(const char *from, const char *to);
/* Removes a directory of plain files (a checkpoint's, an output being
 * built), best effort: what cannot be removed stays, and -1 with the
 * first failure's errno says so (a directory already gone is 0). */
int evo_remove_dir(const char *dir);
/* path without its trailing slashes, split into the folder holding it
 * ("." if none) and its last component; both malloc'ed. */
void evo_split_path(const char *path, char **folder, char **base);
/* "dir/name", malloc'ed. */
char *evo_path_join(const char *dir, const char *name);
/* mkdir -p: creates path and its missing parents. */
int evo_make_dirs(const char *path, evo_err *e);

/* Opens a temporary for path. */
int evo_out_open(evo_out *o, const char *path, evo_err *e);
/* Appends bytes at the current position. */
int evo_out_write(evo_out *o, const void *p, size_t n, evo_err *e);
/* Overwrites bytes already written (e.g. a header finished last). */
int evo_out_pwrite(evo_out *o, const void *p, size_t n, uint64_t offset, evo_err *e);
/* fsync + rename (or copy to stdout); the file now exists complete. The
 * folder's fsync after the rename is best effort: if it fails, a crash
 * may bring back the file the rename replaced, never a partial one. */
int evo_out_commit(evo_out *o, evo_err *e);
/* Removes the temporary; safe after a failed write or commit. */
void evo_out_abort(evo_out *o);
/* Outputs that appear together or not at all (evo-pack's training and
 * validation packs). After evo_out_hold, commit makes the temporary
 * durable but leaves it under its temporary name; evo_out_publish then
 * renames each into place. The files they replace are kept as hard links
 * until all are in place: if one rename fails, those already renamed are
 * put back as they were, the temporaries removed, and it fails. Either
 * way every output is finished with (no abort needed). Spooled outputs
 * ("-", devices) are written at commit, not held. */
void evo_out_hold(evo_out *o);
int evo_out_publish(evo_out *const *outs, size_t n, evo_err *e);

/* Removes every temporary still open: called from a signal handler so that
 * Ctrl-C leaves nothing behind. */
void evo_out_cleanup_all(void);
/* Installs handlers for SIGINT, SIGTERM, SIGHUP and SIGPIPE that remove
 * the temporaries, then die of the signal as before. */
void evo_out_cleanup_on_signals(void);

#endif
