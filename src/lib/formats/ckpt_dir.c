/* ckpt_dir.c - checkpoint directories: the crash-safe save (temporary
 * directory, rename, marker last), the completion marker, what a save
 * folder holds, pruning, and state.json (evo-ckpt(5)). */
#include "formats/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h> /* bulk XXH3 in AVX2/AVX-512 where the CPU has them */
#endif

int evo_ckpt_hash_file(const char *path, uint64_t *hash, uint64_t *size, evo_ckpt_chunk_fn fn, void *ctx,
                       evo_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return evo_errf(e, "%s: %s", path, strerror(errno));
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = evo_malloc(CHUNK);
    int rc = 0;
    *size = 0;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = evo_errf(e, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        XXH3_64bits_update(st, buf, (size_t)n);
        *size += (uint64_t)n;
        if (fn && (rc = fn(ctx, buf, (size_t)n, e)) < 0)
            break;
    }
    *hash = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    free(buf);
    close(fd);
    return rc;
}

static char *marker_name(uint64_t step)
{
    char name[32];
    snprintf(name, sizeof name, "%" PRIu64 ".step", step);
    return evo_strdup(name);
}

/* n decimal digits, at most 19 (so the value fits a u64), written as
 * evo writes numbers: no leading zero but in "0" itself. */
static int parse_digits(const char *s, size_t n, uint64_t *v)
{
    if (!n || n > 19 || strspn(s, "0123456789") < n || (n > 1 && s[0] == '0'))
        return 0;
    *v = 0;
    for (size_t i = 0; i < n; i++)
        *v = *v * 10 + (uint64_t)(s[i] - '0');
    return 1;
}

int evo_ckpt_dir_step(const char *dir, uint64_t *step)
{
    char *folder, *base;
    evo_split_path(dir, &folder, &base);
    int ok = parse_digits(base, strlen(base), step);
    free(folder);
    free(base);
    return ok;
}

/* --- what a save folder holds -------------------------------------------------- */

int evo_ckpt_classify(const char *folder, const char *name, evo_ckpt_entry *out)
{
    *out = (evo_ckpt_entry){0};
    size_t len = strlen(name);
    if (len >= sizeof out->name)
        return 0;
    memcpy(out->name, name, len + 1);
    char *path = evo_path_join(folder, name);
    struct stat st;
    int found = 0;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        free(path);
        return 0;
    }
    if (parse_digits(name, len, &out->step)) {
        char *m = marker_name(out->step), *mpath = evo_path_join(path, m);
        out->status = stat(mpath, &st) == 0 && S_ISREG(st.st_mode) ? EVO_CKPT_COMPLETE : EVO_CKPT_INCOMPLETE;
        free(m);
        free(mpath);
        found = 1;
    } else if (len > 5 && (!strncmp(name, ".tmp-", 5) || !strncmp(name, ".old-", 5))) {
        /* .tmp-STEP-PID, .old-STEP-PID */
        const char *s = name + 5, *dash = strchr(s, '-');
        uint64_t pid;
        if (dash && parse_digits(s, (size_t)(dash - s), &out->step) &&
            parse_digits(dash + 1, strlen(dash + 1), &pid) && pid > 0 && pid <= INT32_MAX) {
            out->status = name[1] == 't' ? EVO_CKPT_TEMP : EVO_CKPT_OLD;
            out->pid = (long)pid;
            out->alive = kill((pid_t)pid, 0) == 0 || errno != ESRCH;
            found = 1;
        }
    }
    free(path);
    return found;
}

static int entry_order(const void *a, const void *b)
{
    const evo_ckpt_entry *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    if (x->status != y->status)
        return x->status < y->status ? -1 : 1;
    return strcmp(x->name, y->name);
}

int evo_ckpt_scan(const char *folder, evo_ckpt_entry **entries, size_t *n, evo_err *e)
{
    *entries = NULL;
    *n = 0;
    DIR *d = opendir(folder);
    if (!d)
        return errno == ENOENT ? 0 : evo_errf(e, "%s: %s", folder, strerror(errno));
    size_t cap = 0;
    struct dirent *de;
    evo_ckpt_entry en;
    while ((de = readdir(d)))
        if (evo_ckpt_classify(folder, de->d_name, &en)) {
            *entries = evo_grow(*entries, &cap, *n + 1, sizeof **entries, 16);
            (*entries)[(*n)++] = en;
        }
    closedir(d);
    if (*n)
        qsort(*entries, *n, sizeof **entries, entry_order);
    return 0;
}

/* Puts the checkpoint moved aside to old back at final, dropping what
 * stands at final (the incomplete save that was to replace it). */
static void restore_old(const char *old, const char *final)
{
    evo_remove_dir(final);
    rename(old, final);
}

/* The temporaries of saves whose process died (kill -9, a node failure).
 * A .tmp-STEP-PID is never complete: dropped. A .old-STEP-PID is the
 * checkpoint STEP that a save of the same step was replacing: dropped if
 * the new STEP is complete, else put back. */
static void remove_stale(const char *folder)
{
    evo_ckpt_entry *en;
    size_t n;
    if (evo_ckpt_scan(folder, &en, &n, NULL) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if ((en[i].status != EVO_CKPT_TEMP && en[i].status != EVO_CKPT_OLD) || en[i].alive)
            continue;
        char *p = evo_path_join(folder, en[i].name), step[32];
        snprintf(step, sizeof step, "%" PRIu64, en[i].step);
        char *final = evo_path_join(folder, step);
        evo_ckpt_entry now;
        if (en[i].status == EVO_CKPT_OLD &&
            (!evo_ckpt_classify(folder, step, &now) || now.status != EVO_CKPT_COMPLETE))
            restore_old(p, final);
        else
            evo_remove_dir(p);
        free(final);
        free(p);
    }
    free(en);
}

/* The steps of folder's complete checkpoints, ascending. */
static int list_steps(const char *folder, uint64_t **steps, size_t *n, evo_err *e)
{
    evo_ckpt_entry *en;
    size_t n_en;
    *steps = NULL;
    *n = 0;
    if (evo_ckpt_scan(folder, &en, &n_en, e) < 0)
        return -1;
    if (n_en)
        *steps = evo_malloc(n_en * sizeof **steps);
    for (size_t i = 0; i < n_en; i++)
        if (en[i].status == EVO_CKPT_COMPLETE)
            (*steps)[(*n)++] = en[i].step;
    free(en);
    return 0;
}

int evo_ckpt_latest(const char *folder, uint64_t *step, char **dir, evo_err *e)
{
    uint64_t *steps;
    size_t n;
    if (list_steps(folder, &steps, &n, e) < 0)
        return -1;
    if (n) {
        char name[32];
        *step = steps[n - 1];
        snprintf(name, sizeof name, "%" PRIu64, *step);
        *dir = evo_path_join(folder, name);
    }
    free(steps);
    return n > 0;
}

int evo_ckpt_prune(const char *folder, uint32_t keep, evo_err *e)
{
    uint64_t *steps;
    size_t n;
    if (list_steps(folder, &steps, &n, e) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; keep && i + keep < n && rc == 0; i++) {
        char name[32];
        snprintf(name, sizeof name, "%" PRIu64, steps[i]);
        char *dir = evo_path_join(folder, name), *m = marker_name(steps[i]), *mpath = evo_path_join(dir, m);
        /* the marker first: a half-removed checkpoint must not look complete */
        if (unlink(mpath) < 0 && errno != ENOENT)
            rc = evo_errf(e, "%s: cannot remove its marker %s (the checkpoint stays whole): %s", dir, m,
                          strerror(errno));
        else if (evo_remove_dir(dir) < 0)
            rc = evo_errf(e, "%s: only partly removed (no longer a complete checkpoint): %s", dir, strerror(errno));
        free(dir);
        free(m);
        free(mpath);
    }
    free(steps);
    return rc;
}

/* --- writing ---------------------------------------------------------------- */

static int start(evo_ckpt_writer *w, char *folder, char *final, uint64_t step, int replace, evo_err *e)
{
    *w = (evo_ckpt_writer){.folder = folder, .final = final, .step = step, .replace = replace};
    char name[64];
    snprintf(name, sizeof name, ".tmp-%" PRIu64 "-%ld", step, (long)getpid());
    w->tmp = evo_path_join(folder, name);
    if (evo_make_dirs(folder, e) < 0) {
        evo_ckpt_abort(w);
        return -1;
    }
    remove_stale(folder);
    /* A directory of this name is left by a dead process whose pid we got
     * again (containers reuse pids): nothing of it belongs here. */
    evo_remove_dir(w->tmp);
    if (evo_make_dirs(w->tmp, e) < 0) {
        evo_ckpt_abort(w);
        return -1;
    }
    return 0;
}

int evo_ckpt_begin(evo_ckpt_writer *w, const char *folder, uint64_t step, evo_err *e)
{
    char name[32];
    snprintf(name, sizeof name, "%" PRIu64, step);
    return start(w, evo_strdup(folder), evo_path_join(folder, name), step, 1, e);
}

int evo_ckpt_begin_at(evo_ckpt_writer *w, const char *dir, uint64_t step, evo_err *e)
{
    *w = (evo_ckpt_writer){0};
    uint64_t named;
    struct stat st;
    if (!evo_ckpt_dir_step(dir, &named) || named != step)
        return evo_errf(e, "%s: a checkpoint of step %" PRIu64 " goes in a directory named %" PRIu64, dir, step,
                        step);
    if (lstat(dir, &st) == 0)
        return evo_errf(e, "%s: already exists", dir);
    char *folder, *base;
    evo_split_path(dir, &folder, &base);
    free(base);
    return start(w, folder, evo_strdup(dir), step, 0, e);
}

void evo_ckpt_join(evo_ckpt_writer *w, const char *tmp, uint64_t step)
{
    *w = (evo_ckpt_writer){.tmp = evo_strdup(tmp), .step = step, .joined = 1};
}

void evo_ckpt_add_listed(evo_ckpt_writer *w, const char *lines, size_t n) { evo_buf_append(&w->manifest, lines, n); }

char *evo_ckpt_tmp_path(const evo_ckpt_writer *w, const char *name) { return evo_path_join(w->tmp, name); }

void evo_ckpt_add_hashed(evo_ckpt_writer *w, const char *name, uint64_t hash, uint64_t size)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%016" PRIx64 "  %" PRIu64 "  %s\n", hash, size, name);
    evo_buf_append(&w->manifest, line, (size_t)n);
}

int evo_ckpt_add_bytes(evo_ckpt_writer *w, const char *name, const void *p, size_t n, evo_err *e)
{
    char *path = evo_path_join(w->tmp, name);
    int rc = evo_write_file(path, p, n, e);
    free(path);
    if (rc == 0)
        evo_ckpt_add_hashed(w, name, XXH3_64bits(p, n), n);
    return rc;
}

int evo_ckpt_commit(evo_ckpt_writer *w, evo_err *e)
{
    char name[64];
    char *marker = marker_name(w->step), *old = NULL;
    int rc = -1;
    if (evo_fsync_path(w->tmp, e) < 0)
        goto out;
    /* A checkpoint of the same step (a run resumed from it that saves it
     * again) is moved aside first and removed once the new one is whole. */
    struct stat st;
    if (lstat(w->final, &st) == 0) {
        if (!w->replace) {
            evo_errf(e, "%s: already exists", w->final);
            goto out;
        }
        snprintf(name, sizeof name, ".old-%" PRIu64 "-%ld", w->step, (long)getpid());
        old = evo_path_join(w->folder, name);
        if (rename(w->final, old) < 0) {
            evo_errf(e, "%s: cannot move the old checkpoint aside: %s", w->final, strerror(errno));
            goto out;
        }
    }
    /* No replacing: rename() would silently replace an empty directory
     * made at that name since the check above. */
    if (evo_rename_noreplace(w->tmp, w->final) < 0) {
        evo_errf(e, "%s: %s", w->final, errno == EEXIST ? "already exists" : strerror(errno));
        if (old)
            rename(old, w->final);
        goto out;
    }
    /* The marker last: its presence says every file above is complete. */
    char *mpath = evo_path_join(w->final, marker);
    rc = evo_fsync_path(w->folder, e);
    if (rc == 0)
        rc = evo_write_file(mpath, w->manifest.data, w->manifest.len, e);
    free(mpath);
    if (rc < 0) {
        /* Incomplete: taken back under its temporary name (the caller's
         * abort removes it), so that a failed save leaves no directory
         * in the step's place, and what it replaced is put back. */
        if (rename(w->final, w->tmp) < 0)
            evo_remove_dir(w->final);
        if (old)
            rename(old, w->final);
    } else if (old) {
        evo_remove_dir(old);
    }
out:
    free(marker);
    free(old);
    if (rc == 0) {
        free(w->tmp);
        w->tmp = NULL;
    }
    return rc;
}

void evo_ckpt_abort(evo_ckpt_writer *w)
{
    if (w->tmp && !w->joined)
        evo_remove_dir(w->tmp);
    free(w->tmp);
    free(w->folder);
    free(w->final);
    evo_buf_free(&w->manifest);
    *w = (evo_ckpt_writer){0};
}

/* --- the completion marker ------------------------------------------------------ */

/* By name, then by place in the marker: a name listed twice sorts in file
 * order. */
static int listed_by_name(const void *a, const void *b)
{
    const evo_ckpt_listed *x = *(const evo_ckpt_listed *const *)a, *y = *(const evo_ckpt_listed *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x > y) - (x < y);
}

static int name_vs_listed(const void *key, const void *elem)
{
    return strcmp(key, (*(const evo_ckpt_listed *const *)elem)->name);
}

const evo_ckpt_listed *evo_ckpt_manifest_find(const evo_ckpt_manifest *m, const char *name)
{
    const evo_ckpt_listed *const *hit = m->n ? bsearch(name, m->by_name, m->n, sizeof *m->by_name, name_vs_listed) : NULL;
    return hit ? *hit : NULL;
}

/* Sorts the index; a name listed twice is then next to itself. The
 * error names the first line that repeats an earlier one. */
static int index_by_name(evo_ckpt_manifest *m, const char *path, evo_err *e)
{
    m->by_name = evo_malloc((m->n ? m->n : 1) * sizeof *m->by_name);
    for (size_t i = 0; i < m->n; i++)
        m->by_name[i] = &m->files[i];
    if (m->n)
        qsort(m->by_name, m->n, sizeof *m->by_name, listed_by_name);
    size_t first_repeat = m->n;
    for (size_t i = 1; i < m->n; i++)
        if (!strcmp(m->by_name[i - 1]->name, m->by_name[i]->name)) {
            size_t later = (size_t)(m->by_name[i] - m->files);
            first_repeat = later < first_repeat ? later : first_repeat;
        }
    if (first_repeat < m->n)
        return evo_errf(e, "%s:%zu: %s listed twice", path, first_repeat + 1, m->files[first_repeat].name);
    return 0;
}

void evo_ckpt_manifest_free(evo_ckpt_manifest *m)
{
    free(m->files);
    free(m->by_name);
    *m = (evo_ckpt_manifest){0};
}

int evo_ckpt_parse_marker(evo_ckpt_manifest *m, const char *text, size_t len, const char *path, evo_err *e)
{
    *m = (evo_ckpt_manifest){0};
    if (memchr(text, '\0', len))
        return evo_errf(e, "%s: not a completion marker (binary data)", path);
    char *copy = evo_malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    size_t line = 0, cap = 0;
    int rc = 0;
    for (char *p = copy, *nl; *p; p = nl + 1) {
        line++;
        nl = strchr(p, '\n');
        if (!nl) {
            rc = evo_errf(e, "%s:%zu: unterminated line", path, line);
            break;
        }
        *nl = 0;
        evo_ckpt_listed f = {0};
        /* Exactly as written: 16 hex digits, two spaces, the size in
         * decimal, two spaces, a plain file name. */
        int ok = strspn(p, "0123456789abcdef") == 16 && !strncmp(p + 16, "  ", 2);
        size_t digits = ok ? strspn(p + 18, "0123456789") : 0;
        const char *name = p + 18 + digits + 2;
        ok = ok && parse_digits(p + 18, digits, &f.size) && !strncmp(p + 18 + digits, "  ", 2) && *name &&
             !strpbrk(name, "/ \r\t") && strcmp(name, ".") && strcmp(name, "..") && strlen(name) < sizeof f.name;
        if (ok)
            f.hash = strtoull(p, NULL, 16);
        if (!ok) {
            rc = evo_errf(e, "%s:%zu: want \"<xxh3 hex>  <bytes>  <file>\"", path, line);
            break;
        }
        strcpy(f.name, name);
        m->files = evo_grow(m->files, &cap, m->n + 1, sizeof *m->files, 8);
        m->files[m->n++] = f;
    }
    if (rc == 0 && !line)
        rc = evo_errf(e, "%s: empty completion marker", path);
    if (rc == 0)
        rc = index_by_name(m, path, e);
    free(copy);
    if (rc < 0)
        evo_ckpt_manifest_free(m);
    return rc;
}

/* Why dir (not a complete checkpoint) cannot be read, in the words of
 * what it is. */
static int not_complete(const char *dir, const char *folder, const char *base, evo_err *e)
{
    struct stat st;
    evo_ckpt_entry en;
    if (stat(dir, &st) < 0)
        return evo_errf(e, "%s: %s", dir, strerror(errno));
    if (!evo_ckpt_classify(folder, base, &en))
        return evo_errf(e, "%s: not a checkpoint directory (its name is not a step number)", dir);
    switch (en.status) {
    case EVO_CKPT_TEMP:
        return en.alive ? evo_errf(e, "%s: a checkpoint being written (by process %ld), not complete yet", dir,
                                   en.pid)
                        : evo_errf(e, "%s: an abandoned save (process %ld is gone), not a checkpoint", dir, en.pid);
    case EVO_CKPT_OLD:
        return en.alive ? evo_errf(e, "%s: a checkpoint being replaced (by process %ld)", dir, en.pid)
                        : evo_errf(e, "%s: the leftover of a replaced checkpoint (process %ld is gone)", dir, en.pid);
    case EVO_CKPT_INCOMPLETE:
        return evo_errf(e, "%s: incomplete checkpoint: no completion marker %" PRIu64 ".step (being written, or its "
                        "save died)", dir, en.step);
    case EVO_CKPT_COMPLETE:
        break;
    }
    return 0;
}

int evo_ckpt_read_marker(evo_ckpt_manifest *m, const char *dir, evo_err *e)
{
    *m = (evo_ckpt_manifest){0};
    char *folder, *base;
    evo_split_path(dir, &folder, &base);
    int rc = not_complete(dir, folder, base, e);
    if (rc == 0) {
        char name[40]; /* base is a step number: the marker is STEP.step */
        snprintf(name, sizeof name, "%s.step", base);
        char *mpath = evo_path_join(dir, name);
        evo_buf text = {0};
        rc = evo_read_file(mpath, &text, e);
        if (rc == 0 && text.len > EVO_CKPT_MARKER_MAX)
            rc = evo_errf(e, "%s: %zu bytes: not a completion marker (at most %d)", mpath, text.len,
                          EVO_CKPT_MARKER_MAX);
        if (rc == 0)
            rc = evo_ckpt_parse_marker(m, text.data ? text.data : "", text.len, mpath, e);
        evo_buf_free(&text);
        free(mpath);
    }
    free(folder);
    free(base);
    return rc;
}

int evo_ckpt_check_files(const char *dir, const evo_ckpt_manifest *m, int hash, evo_err *e)
{
    int rc = 0;
    for (size_t i = 0; i < m->n && rc == 0; i++) {
        const evo_ckpt_listed *f = &m->files[i];
        char *path = evo_path_join(dir, f->name);
        uint64_t h = f->hash, size = 0;
        struct stat st;
        size_t len = strlen(f->name);
        int container = len > 4 && !strcmp(f->name + len - 4, ".evo");
        if (hash == EVO_CKPT_HASH_ALL || (hash == EVO_CKPT_HASH_TEXT && !container))
            rc = evo_ckpt_hash_file(path, &h, &size, NULL, NULL, e);
        else if (stat(path, &st) < 0)
            rc = evo_errf(e, "%s: %s", path, strerror(errno));
        else
            size = (uint64_t)st.st_size;
        if (rc == 0 && size != f->size)
            rc = evo_errf(e, "%s: %" PRIu64 " bytes, the marker says %" PRIu64, path, size, f->size);
        else if (rc == 0 && h != f->hash)
            rc = evo_errf(e, "%s: checksum %016" PRIx64 ", the marker says %016" PRIx64, path, h, f->hash);
        free(path);
    }
    return rc;
}

/* --- state.json ------------------------------------------------------------------- */

static int state_u64(json_t *j, const char *key, uint64_t *out, const char *path, evo_err *e)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return evo_errf(e, "%s: \"%s\" missing or not a count", path, key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int evo_ckpt_read_state(evo_ckpt_state *st, const char *path, evo_err *e)
{
    *st = (evo_ckpt_state){0};
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        return evo_errf(e, "%s:%d: %s", path, je.line, je.text);
    static const struct {
        const char *key;
        size_t at;
    } counts[] = {
        {"step", offsetof(evo_ckpt_state, step)},
        {"adam_steps", offsetof(evo_ckpt_state, adam_steps)},
        {"batch", offsetof(evo_ckpt_state, batch)},
        {"rows", offsetof(evo_ckpt_state, rows)},
        {"tokens", offsetof(evo_ckpt_state, tokens)},
        {"skipped_nonfinite", offsetof(evo_ckpt_state, skipped_nonfinite)},
        {"nonfinite_in_row", offsetof(evo_ckpt_state, nonfinite_in_row)},
        {"skipped_batches", offsetof(evo_ckpt_state, skipped_batches)},
        {"scaler_clean_steps", offsetof(evo_ckpt_state, scaler_clean_steps)},
        {"scaler_overflows", offsetof(evo_ckpt_state, scaler_overflows)},
    };
    int rc = 0;
    json_t *format = json_object_get(j, "format"), *version = json_object_get(j, "version");
    json_t *scale = json_object_get(j, "loss_scale"), *rows = json_object_get(j, "train_pack_rows");
    if (!json_is_string(format) || strcmp(json_string_value(format), "evo-ckpt state") || !json_is_integer(version) ||
        json_integer_value(version) != 1)
        rc = evo_errf(e, "%s: not an evo-ckpt state file of version 1", path);
    for (size_t i = 0; rc == 0 && i < sizeof counts / sizeof *counts; i++)
        rc = state_u64(j, counts[i].key, (uint64_t *)((char *)st + counts[i].at), path, e);
    if (rc == 0 && (!json_is_number(scale) || !(json_number_value(scale) > 0)))
        rc = evo_errf(e, "%s: \"loss_scale\" missing or not positive", path);
    if (rc == 0) {
        st->loss_scale = json_number_value(scale);
        st->next_lr = json_number_value(json_object_get(j, "next_lr"));
        if (json_is_integer(rows) && json_integer_value(rows) > 0)
            st->train_pack_rows = (uint64_t)json_integer_value(rows);
        const char *pack = json_string_value(json_object_get(j, "train_pack"));
        const char *id = json_string_value(json_object_get(j, "train_pack_id"));
        snprintf(st->train_pack, sizeof st->train_pack, "%s", pack ? pack : "");
        snprintf(st->train_pack_id, sizeof st->train_pack_id, "%s", id ? id : "");
        const char *job = json_string_value(json_object_get(j, "job_id"));
        const char *name = json_string_value(json_object_get(j, "job_name"));
        json_t *restarts = json_object_get(j, "job_restarts");
        snprintf(st->job_id, sizeof st->job_id, "%s", job ? job : "");
        snprintf(st->job_name, sizeof st->job_name, "%s", name ? name : "");
        st->job_restarts = json_is_integer(restarts) && json_integer_value(restarts) > 0
                               ? (uint64_t)json_integer_value(restarts)
                               : 0;
    }
    json_decref(j);
    return rc;
}

int evo_ckpt_resolve(const char *given, char **dir, evo_err *e)
{
    char *path = evo_strdup(given);
    for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
        path[n - 1] = '\0';
    const char *base = strrchr(path, '/');
    char marker[64];
    snprintf(marker, sizeof marker, "%.40s.step", base ? base + 1 : path);
    char *m = evo_path_join(path, marker);
    struct stat st;
    int complete = stat(m, &st) == 0;
    free(m);
    if (complete) {
        *dir = path;
        return 0;
    }
    uint64_t step;
    int found = evo_ckpt_latest(path, &step, dir, e);
    if (found == 0)
        evo_errf(e, "%s: not a complete checkpoint (no marker %s) nor a folder holding one", path, marker);
    free(path);
    return found > 0 ? 0 : -1;
}

int evo_ckpt_add_state(evo_ckpt_writer *w, const evo_ckpt_state *st, evo_err *e)
{
    json_t *j = json_pack(
        "{s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:f, s:s, s:s, s:I}", "format",
        "evo-ckpt state", "version", 1, "step", (json_int_t)st->step, "adam_steps", (json_int_t)st->adam_steps,
        "batch", (json_int_t)st->batch, "rows", (json_int_t)st->rows, "tokens", (json_int_t)st->tokens,
        "skipped_nonfinite", (json_int_t)st->skipped_nonfinite, "nonfinite_in_row", (json_int_t)st->nonfinite_in_row,
        "skipped_batches", (json_int_t)st->skipped_batches, "loss_scale", st->loss_scale, "scaler_clean_steps",
        (json_int_t)st->scaler_clean_steps, "scaler_overflows", (json_int_t)st->scaler_overflows, "next_lr",
        st->next_lr, "train_pack", st->train_pack, "train_pack_id", st->train_pack_id, "train_pack_rows",
        (json_int_t)st->train_pack_rows);
    if (*st->job_id) { /* who saved it, under Slurm */
        json_t *job = json_pack("{s:s, s:s, s:I}", "job_id", st->job_id, "job_name", st->job_name, "job_restarts",
                                (json_int_t)st->job_restarts);
        json_object_update(j, job);
        json_decref(job);
    }
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(j);
    size_t n = strlen(text);
    text = evo_realloc(text, n + 2);
    memcpy(text + n, "\n", 2);
    int rc = evo_ckpt_add_bytes(w, EVO_CKPT_STATE_FILE, text, n + 1, e);
    free(text);
    return rc;
}
