/* archive.c - a checkpoint as one .tar.zst (libarchive): pack and unpack.
 *
 * The archive holds the directory STEP/ with the files its marker lists
 * and the marker, last. pack hashes each file as it copies it and checks
 * it against the marker, so the archive holds what the marker promises;
 * unpack hashes each file as it extracts it into a temporary directory,
 * checks them all against the marker, and only then renames the directory
 * into place and writes the marker: a failed or interrupted unpack leaves
 * nothing that looks like a checkpoint. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h> /* bulk XXH3 in AVX2/AVX-512 where the CPU has them */
#endif

#include "base/fileio.h"
#include "base/log.h"
#include "evockpt.h"

/* libarchive's message (it may have none). */
static const char *why(struct archive *a)
{
    const char *s = archive_error_string(a);
    return s ? s : "archive error";
}

/* --- pack ------------------------------------------------------------------------- */

static la_ssize_t to_out(struct archive *a, void *ctx, const void *p, size_t n)
{
    evo_err e;
    if (evo_out_write(ctx, p, n, &e) < 0) {
        archive_set_error(a, EIO, "%s", e.msg);
        return -1;
    }
    return (la_ssize_t)n;
}

static int to_archive(void *ctx, const void *p, size_t n, evo_err *e)
{
    struct archive *a = ctx;
    if (archive_write_data(a, p, n) != (la_ssize_t)n)
        return evo_errf(e, "%s", why(a));
    return 0;
}

/* One entry: path as name, the directory (name ends in '/') or a file
 * whose bytes must be those the marker lists (listed; NULL for the marker
 * itself). */
static int add_entry(struct archive *a, const char *name, const char *path, const evo_ckpt_listed *listed, evo_err *e)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return evo_errf(e, "%s: %s", path, strerror(errno));
    int is_file = name[strlen(name) - 1] != '/';
    if (is_file ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode))
        return evo_errf(e, "%s: not a %s", path, is_file ? "plain file" : "directory");
    struct archive_entry *en = archive_entry_new();
    archive_entry_set_pathname(en, name);
    archive_entry_set_filetype(en, is_file ? AE_IFREG : AE_IFDIR);
    archive_entry_set_perm(en, is_file ? 0644 : 0755);
    archive_entry_set_size(en, is_file ? st.st_size : 0);
    archive_entry_set_mtime(en, st.st_mtime, 0);
    int rc = archive_write_header(a, en) == ARCHIVE_OK ? 0 : evo_errf(e, "%s", why(a));
    archive_entry_free(en);
    uint64_t hash, size;
    if (rc == 0 && is_file && (rc = evo_ckpt_hash_file(path, &hash, &size, to_archive, a, e)) == 0 && listed &&
        (size != listed->size || hash != listed->hash))
        rc = evo_errf(e, "%s: changed since its marker was written (%" PRIu64 " bytes, checksum %016" PRIx64
                      "; the marker says %" PRIu64 ", %016" PRIx64 ")", path, size, hash, listed->size, listed->hash);
    return rc;
}

int cmd_pack(const ckpt_opts *o, char **args, int n)
{
    (void)n;
    const char *dir = args[0];
    refuse_terminal(o->output, "an archive");
    evo_ckpt_manifest m;
    evo_err e;
    uint64_t step;
    if (evo_ckpt_read_marker(&m, dir, &e) < 0)
        evo_fatal("%s", e.msg);
    evo_ckpt_dir_step(dir, &step);
    evo_out out;
    if (evo_out_open(&out, o->output, &e) < 0) {
        evo_out_abort(&out);
        evo_fatal("%s", e.msg);
    }
    struct archive *a = archive_write_new();
    /* Unpadded: libarchive would pad the compressed stream to 10 kB with
     * zeros, which zstd readers take for a bad frame. */
    int rc = archive_write_add_filter_zstd(a) == ARCHIVE_OK &&
                     archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
                     archive_write_set_bytes_in_last_block(a, 1) == ARCHIVE_OK &&
                     archive_write_open(a, &out, NULL, to_out, NULL) == ARCHIVE_OK
                 ? 0
                 : evo_errf(&e, "%s: %s", o->output, why(a));
    char name[300], marker[40];
    snprintf(name, sizeof name, "%" PRIu64 "/", step);
    if (rc == 0)
        rc = add_entry(a, name, dir, NULL, &e);
    snprintf(marker, sizeof marker, "%" PRIu64 ".step", step);
    for (size_t f = 0; f <= m.n && rc == 0; f++) { /* the marker last */
        const char *file = f < m.n ? m.files[f].name : marker;
        char *path = evo_path_join(dir, file);
        snprintf(name, sizeof name, "%" PRIu64 "/%s", step, file);
        rc = add_entry(a, name, path, f < m.n ? &m.files[f] : NULL, &e);
        free(path);
    }
    if (rc == 0 && archive_write_close(a) != ARCHIVE_OK)
        rc = evo_errf(&e, "%s: %s", o->output, why(a));
    archive_write_free(a);
    if (rc == 0)
        rc = evo_out_commit(&out, &e);
    else
        evo_out_abort(&out);
    if (rc < 0)
        evo_fatal("%s", e.msg);
    evo_ckpt_manifest_free(&m);
    return EVO_EXIT_OK;
}

/* --- unpack ------------------------------------------------------------------------ */

typedef struct {
    struct archive *a;
    const char *path; /* the archive, for messages */
    uint64_t step;
    evo_ckpt_writer w;
    evo_ckpt_listed *got; /* the files extracted: name, hash, size */
    size_t n_got, cap;
    evo_buf marker;
} unpacker;

/* The file name inside STEP/ of an entry, "" for the directory itself,
 * NULL for anything else. */
static const char *entry_file(const unpacker *u, struct archive_entry *en, evo_err *e)
{
    const char *p = archive_entry_pathname(en);
    char dir[32];
    int n = snprintf(dir, sizeof dir, "%" PRIu64, u->step);
    if (!p || strncmp(p, dir, (size_t)n) || (p[n] && p[n] != '/')) {
        size_t digits = p ? strspn(p, "0123456789") : 0;
        if (digits && (p[digits] == '/' || !p[digits]))
            evo_errf(e, "%s: holds checkpoint %.*s, not %" PRIu64 " (name the output after its step)", u->path,
                     (int)digits, p, u->step);
        else
            evo_errf(e, "%s: entry %s is not in the checkpoint directory %" PRIu64 "/", u->path, p ? p : "(unnamed)",
                     u->step);
        return NULL;
    }
    const char *name = p[n] ? p + n + 1 : p + n;
    if (!*name) {
        if (archive_entry_filetype(en) == AE_IFDIR)
            return name;
        evo_errf(e, "%s: entry %s is not a directory", u->path, p);
        return NULL;
    }
    if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") || strlen(name) >= sizeof u->got->name ||
        archive_entry_filetype(en) != AE_IFREG || archive_entry_hardlink(en)) {
        evo_errf(e, "%s: entry %s is not a plain file of the checkpoint directory", u->path, p);
        return NULL;
    }
    return name;
}

/* The most files a marker can list: its shortest line ("<16 hex>  0  x\n")
 * is 23 bytes. An archive with more entries is not a checkpoint, and is
 * refused before it fills a directory with them. */
enum { MAX_FILES = EVO_CKPT_MARKER_MAX / 23 };

/* Extracts one file into the temporary directory, hashing it. */
static int extract(unpacker *u, const char *name, evo_err *e)
{
    if (u->n_got == MAX_FILES)
        return evo_errf(e, "%s: more than %d files, more than a completion marker can list", u->path, MAX_FILES);
    char *path = evo_ckpt_tmp_path(&u->w, name);
    struct stat seen;
    if (lstat(path, &seen) == 0) { /* the directory is ours: only this archive put it there */
        free(path);
        return evo_errf(e, "%s: %s is in the archive twice", u->path, name);
    }
    enum { CHUNK = 1 << 20 };
    char *buf = evo_malloc(CHUNK);
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    evo_ckpt_listed got = {0};
    snprintf(got.name, sizeof got.name, "%s", name);
    evo_out out;
    int rc = evo_out_open(&out, path, e);
    for (la_ssize_t r; rc == 0 && (r = archive_read_data(u->a, buf, CHUNK)) != 0;) {
        if (r < 0)
            rc = evo_errf(e, "%s: %s: %s", u->path, name, why(u->a));
        else if ((rc = evo_out_write(&out, buf, (size_t)r, e)) == 0) {
            XXH3_64bits_update(st, buf, (size_t)r);
            got.size += (uint64_t)r;
        }
    }
    if (rc == 0)
        rc = evo_out_commit(&out, e);
    else
        evo_out_abort(&out);
    got.hash = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    free(buf);
    free(path);
    if (rc == 0) {
        u->got = evo_grow(u->got, &u->cap, u->n_got + 1, sizeof *u->got, 8);
        u->got[u->n_got++] = got;
    }
    return rc;
}

/* Reads the marker entry into memory (it is written last, on commit). */
static int read_marker(unpacker *u, evo_err *e)
{
    char buf[1 << 16];
    for (la_ssize_t r; (r = archive_read_data(u->a, buf, sizeof buf)) != 0;) {
        if (r < 0)
            return evo_errf(e, "%s: the marker: %s", u->path, why(u->a));
        if (u->marker.len + (size_t)r > EVO_CKPT_MARKER_MAX)
            return evo_errf(e, "%s: the marker is larger than %d bytes", u->path, EVO_CKPT_MARKER_MAX);
        evo_buf_append(&u->marker, buf, (size_t)r);
    }
    return 0;
}

static int listed_cmp(const void *a, const void *b)
{
    return strcmp(((const evo_ckpt_listed *)a)->name, ((const evo_ckpt_listed *)b)->name);
}

/* Every file the marker lists extracted with its size and hash, nothing
 * else: then they go into the new marker, in its order. */
static int check_against_marker(unpacker *u, evo_err *e)
{
    char mname[40];
    snprintf(mname, sizeof mname, "%" PRIu64 "/%" PRIu64 ".step", u->step, u->step);
    if (!u->marker.len)
        return evo_errf(e, "%s: no completion marker %s in the archive", u->path, mname);
    evo_ckpt_manifest m;
    if (evo_ckpt_parse_marker(&m, u->marker.data, u->marker.len, mname, e) < 0)
        return -1;
    int rc = 0;
    if (u->n_got)
        qsort(u->got, u->n_got, sizeof *u->got, listed_cmp);
    for (size_t i = 0; i < m.n && rc == 0; i++) {
        const evo_ckpt_listed *want = &m.files[i];
        const evo_ckpt_listed *got = u->n_got ? bsearch(want, u->got, u->n_got, sizeof *u->got, listed_cmp) : NULL;
        if (!got)
            rc = evo_errf(e, "%s: %s is listed in the marker but not in the archive", u->path, want->name);
        else if (got->size != want->size)
            rc = evo_errf(e, "%s: %s: %" PRIu64 " bytes, the marker says %" PRIu64, u->path, want->name, got->size,
                          want->size);
        else if (got->hash != want->hash)
            rc = evo_errf(e, "%s: %s: checksum %016" PRIx64 ", the marker says %016" PRIx64, u->path, want->name,
                          got->hash, want->hash);
        else
            evo_ckpt_add_hashed(&u->w, want->name, want->hash, want->size);
    }
    for (size_t k = 0; k < u->n_got && rc == 0; k++)
        if (!evo_ckpt_manifest_find(&m, u->got[k].name))
            rc = evo_errf(e, "%s: %s is not listed in the marker", u->path, u->got[k].name);
    evo_ckpt_manifest_free(&m);
    return rc;
}

int cmd_unpack(const ckpt_opts *o, char **args, int n)
{
    (void)n;
    unpacker u = {.path = args[0], .step = output_step(o->output)};
    evo_err e;
    char mname[32];
    snprintf(mname, sizeof mname, "%" PRIu64 ".step", u.step);
    u.a = archive_read_new();
    archive_read_support_filter_all(u.a);
    archive_read_support_format_tar(u.a);
    int rc = archive_read_open_filename(u.a, strcmp(u.path, "-") ? u.path : NULL, 1 << 16) == ARCHIVE_OK
                 ? 0
                 : evo_errf(&e, "%s: %s", u.path, why(u.a));
    if (rc == 0)
        rc = evo_ckpt_begin_at(&u.w, o->output, u.step, &e);
    struct archive_entry *en;
    int r = ARCHIVE_OK;
    while (rc == 0 && (r = archive_read_next_header(u.a, &en)) == ARCHIVE_OK) {
        const char *name = entry_file(&u, en, &e);
        if (!name)
            rc = -1;
        else if (!strcmp(name, mname))
            rc = read_marker(&u, &e);
        else if (*name)
            rc = extract(&u, name, &e);
    }
    if (rc == 0 && r != ARCHIVE_EOF)
        rc = evo_errf(&e, "%s: %s", u.path, why(u.a));
    if (rc == 0)
        rc = check_against_marker(&u, &e);
    if (rc == 0)
        rc = evo_ckpt_commit(&u.w, &e);
    evo_ckpt_abort(&u.w);
    archive_read_free(u.a);
    free(u.got);
    evo_buf_free(&u.marker);
    if (rc < 0)
        evo_fatal("%s", e.msg);
    evo_info("%s: unpacked and verified", o->output);
    return EVO_EXIT_OK;
}
