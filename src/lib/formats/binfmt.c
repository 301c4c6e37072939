#include "formats/binfmt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h> /* bulk XXH3 in AVX2/AVX-512 where the CPU has them */
#endif

#include "base/buf.h"

static uint64_t header_size_for(uint32_t meta_size, uint32_t n_sections)
{
    return EVO_PREFIX_SIZE + evo_align_up(meta_size) + evo_align_up((uint64_t)n_sections * EVO_SECTION_ENTRY_SIZE);
}

/* Whether a checksum read from a file differs from the one computed. The
 * fuzz harnesses' build (tests/fuzz, libFuzzer's convention) defines
 * FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION and takes every checksum as
 * matching, so that mutated inputs reach the validation behind it
 * instead of stopping at the first hash; every other build checks. */
static int checksum_differs(uint64_t computed, uint64_t stored)
{
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    (void)computed, (void)stored;
    return 0;
#else
    return computed != stored;
#endif
}

static uint64_t header_checksum(const uint8_t *hdr, uint64_t size)
{
    /* The checksum field itself (bytes 24..32) counts as zero. */
    XXH3_state_t *st = XXH3_createState();
    static const uint8_t zero[8];
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, hdr, 24);
    XXH3_64bits_update(st, zero, 8);
    XXH3_64bits_update(st, hdr + 32, size - 32);
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

static int load(evo_binfile *f, const char *path, evo_err *e)
{
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    if (fd < 0)
        return evo_errf(e, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            if (fd != STDIN_FILENO)
                close(fd);
            return evo_errf(e, "%s: mmap: %s", path, strerror(errno));
        }
        f->fd = fd; /* kept for verify_section's reads */
        madvise(p, (size_t)st.st_size, MADV_SEQUENTIAL);
        f->data = p;
        f->size = (uint64_t)st.st_size;
        f->mapped = 1;
        return 0;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    evo_buf b = {0};
    if (evo_read_file(path, &b, e) < 0)
        return -1;
    f->data = (const uint8_t *)b.data;
    f->size = b.len;
    return 0;
}

/* Every byte is accounted for: the alignment gaps between sections are not
 * covered by a checksum, so they must be zero. */
static int check_padding(const evo_binfile *f, uint64_t hsize, evo_err *e)
{
    uint64_t pos = hsize;
    for (;;) {
        const evo_section *next = NULL;
        for (uint32_t i = 0; i < f->n_sections; i++)
            if (f->sections[i].size && f->sections[i].offset >= pos &&
                (!next || f->sections[i].offset < next->offset))
                next = &f->sections[i];
        uint64_t end = next ? next->offset : f->size;
        for (; pos < end; pos++)
            if (f->data[pos])
                return evo_errf(e, "%s: offset %llu: nonzero byte outside every section", f->path,
                                (unsigned long long)pos);
        if (!next)
            return 0;
        pos = next->offset + next->size;
    }
}

static int validate(evo_binfile *f, const char magic[8], uint32_t max_version, unsigned flags, evo_err *e)
{
    const char *path = f->path;
    const uint8_t *d = f->data;
    if (f->size < EVO_PREFIX_SIZE) {
        evo_errf(e, "%s: file is %llu bytes, too short for an evo header (%d bytes)", path,
                 (unsigned long long)f->size, EVO_PREFIX_SIZE);
        goto fail;
    }
    if (memcmp(d, magic, 8) != 0) {
        evo_errf(e, "%s: offset 0: not a %.7s file (bad magic)", path, magic);
        goto fail;
    }
    f->version = evo_le32(d + 8);
    if (f->version < 1 || f->version > max_version) {
        evo_errf(e, "%s: offset 8: format version %u not supported (this build reads 1..%u)", path,
                 f->version, max_version);
        goto fail;
    }
    uint64_t hsize = evo_le32(d + 12), fsize = evo_le64(d + 16);
    f->meta_size = evo_le32(d + 32);
    f->n_sections = evo_le32(d + 36);
    if (fsize != f->size) {
        evo_errf(e, "%s: offset 16: header says %llu bytes but the file has %llu (truncated or appended to)",
                 path, (unsigned long long)fsize, (unsigned long long)f->size);
        goto fail;
    }
    if (f->meta_size > (1u << 20) || f->n_sections > 4096 || hsize != header_size_for(f->meta_size, f->n_sections) ||
        hsize > f->size) {
        evo_errf(e, "%s: offset 12: inconsistent header size", path);
        goto fail;
    }
    if (checksum_differs(header_checksum(d, hsize), evo_le64(d + 24))) {
        evo_errf(e, "%s: offset 24: header checksum mismatch (corrupt header)", path);
        goto fail;
    }
    f->meta = d + EVO_PREFIX_SIZE;
    const uint8_t *tab = d + EVO_PREFIX_SIZE + evo_align_up(f->meta_size);
    f->sections = evo_calloc(f->n_sections, sizeof *f->sections);
    for (uint32_t i = 0; i < f->n_sections; i++) {
        const uint8_t *s = tab + (size_t)i * EVO_SECTION_ENTRY_SIZE;
        evo_section *sec = &f->sections[i];
        sec->id = evo_le32(s);
        sec->offset = evo_le64(s + 8);
        sec->size = evo_le64(s + 16);
        sec->xxh3 = evo_le64(s + 24);
        uint64_t at = (uint64_t)(s - d);
        if (sec->offset % EVO_ALIGN || sec->offset < hsize || sec->offset > f->size ||
            sec->size > f->size - sec->offset) {
            evo_errf(e, "%s: offset %llu: section %u lies outside the file or is misaligned", path,
                     (unsigned long long)at, sec->id);
            goto fail;
        }
        for (uint32_t j = 0; j < i; j++) {
            const evo_section *o = &f->sections[j];
            if (o->id == sec->id || (sec->offset < o->offset + o->size && o->offset < sec->offset + sec->size)) {
                evo_errf(e, "%s: offset %llu: section %u duplicates or overlaps section %u", path,
                         (unsigned long long)at, sec->id, o->id);
                goto fail;
            }
        }
    }
    if (flags & EVO_VERIFY_CHECKSUMS)
        for (uint32_t i = 0; i < f->n_sections; i++)
            if (evo_binfile_verify_section(f, &f->sections[i], NULL, NULL, e) < 0)
                goto fail;
    if (check_padding(f, hsize, e) < 0)
        goto fail;
    return 0;
fail:
    evo_binfile_close(f);
    return -1;
}

/* Sections are hashed in chunks that stay in the L2 cache, so a format's
 * check runs on bytes just hashed. A file opened by path is read with
 * pread rather than through its mapping: no page faults, and verifying a
 * 10 GB file does not make it resident. Other file-backed bytes drop
 * their pages once hashed (they stay in the page cache). */
#define VERIFY_CHUNK ((uint64_t)1 << 18)

int evo_binfile_verify_section(const evo_binfile *f, const evo_section *sec, evo_chunk_fn check, void *ctx,
                               evo_err *e)
{
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    uint8_t *buf = f->fd >= 0 ? evo_malloc(VERIFY_CHUNK) : NULL;
    /* A content check that fails does not stop the hashing: if the
     * checksum fails too, the data was damaged after it was written, and
     * that is what the error says (naming the section); only data whose
     * checksum holds gets the content check's error. */
    int rc = 0, bad_content = 0;
    evo_err content;
    for (uint64_t done = 0; done < sec->size && rc == 0;) {
        uint64_t n = sec->size - done < VERIFY_CHUNK ? sec->size - done : VERIFY_CHUNK;
        const uint8_t *p = f->data + sec->offset + done;
        if (buf) {
            ssize_t got = pread(f->fd, buf, n, (off_t)(sec->offset + done));
            if (got != (ssize_t)n) {
                rc = evo_errf(e, "%s: offset %llu: read failed: %s", f->path,
                              (unsigned long long)(sec->offset + done), got < 0 ? strerror(errno) : "short read");
                break;
            }
            p = buf;
        }
        XXH3_64bits_update(st, p, n);
        if (check && !bad_content)
            bad_content = check(ctx, p, n, done, &content) < 0;
        if (f->mapped && !buf) {
            /* madvise wants page-aligned starts: drop the whole pages inside the chunk. */
            uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, z = ((uintptr_t)p + n) & ~(uintptr_t)4095;
            if (z > a)
                madvise((void *)a, z - a, MADV_DONTNEED);
        }
        done += n;
    }
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    free(buf);
    if (rc == 0 && checksum_differs(h, sec->xxh3))
        rc = evo_errf(e, "%s: offset %llu: checksum mismatch in section %u (%llu bytes; corrupt data)", f->path,
                      (unsigned long long)sec->offset, sec->id, (unsigned long long)sec->size);
    else if (rc == 0 && bad_content) {
        if (e)
            *e = content;
        rc = -1;
    }
    return rc;
}

int evo_binfile_open(evo_binfile *f, const char *path, const char magic[8], uint32_t max_version,
                     unsigned flags, evo_err *e)
{
    *f = (evo_binfile){.fd = -1};
    f->path = evo_strdup(path);
    if (load(f, path, e) < 0) {
        free(f->path);
        f->path = NULL;
        return -1;
    }
    f->owned = 1;
    return validate(f, magic, max_version, flags, e);
}

int evo_binfile_open_mem(evo_binfile *f, const char *name, const uint8_t *data, uint64_t size,
                         const char magic[8], uint32_t max_version, unsigned flags, evo_err *e)
{
    *f = (evo_binfile){.fd = -1};
    f->path = evo_strdup(name);
    f->data = data;
    f->size = size;
    f->mapped = (flags & EVO_FILE_BACKED) != 0;
    return validate(f, magic, max_version, flags, e);
}

void evo_binfile_close(evo_binfile *f)
{
    if (f->fd > STDIN_FILENO)
        close(f->fd);
    if (f->data && f->owned) {
        if (f->mapped)
            munmap((void *)f->data, f->size);
        else
            free((void *)f->data);
    }
    free(f->sections);
    free(f->path);
    *f = (evo_binfile){.fd = -1};
}

const evo_section *evo_binfile_section(const evo_binfile *f, uint32_t id)
{
    for (uint32_t i = 0; i < f->n_sections; i++)
        if (f->sections[i].id == id)
            return &f->sections[i];
    return NULL;
}

int evo_binwriter_open(evo_binwriter *w, const char *path, const char magic[8], uint32_t version,
                       uint32_t meta_size, uint32_t n_sections, evo_err *e)
{
    *w = (evo_binwriter){0};
    memcpy(w->magic, magic, 8);
    w->version = version;
    w->meta_size = meta_size;
    w->n_sections = n_sections;
    w->sections = evo_calloc(n_sections, sizeof *w->sections);
    w->hash = XXH3_createState();
    if (evo_out_open(&w->out, path, e) < 0) {
        free(w->sections);
        XXH3_freeState(w->hash);
        return -1;
    }
    /* Reserve the header; it is written last. */
    uint64_t hsize = header_size_for(meta_size, n_sections);
    uint8_t zero[EVO_ALIGN] = {0};
    for (uint64_t i = 0; i < hsize; i += EVO_ALIGN)
        if (evo_out_write(&w->out, zero, EVO_ALIGN, e) < 0)
            return -1;
    return 0;
}

int evo_binwriter_begin(evo_binwriter *w, uint32_t section_id, evo_err *e)
{
    if (w->n_written >= w->n_sections)
        return evo_errf(e, "internal error: more sections than declared");
    uint8_t zero[EVO_ALIGN] = {0};
    uint64_t pad = evo_align_up(w->out.pos) - w->out.pos;
    if (pad && evo_out_write(&w->out, zero, pad, e) < 0)
        return -1;
    evo_section *s = &w->sections[w->n_written];
    s->id = section_id;
    s->offset = w->out.pos;
    XXH3_64bits_reset(w->hash);
    return 0;
}

int evo_binwriter_write(evo_binwriter *w, const void *p, size_t n, evo_err *e)
{
    XXH3_64bits_update(w->hash, p, n);
    return evo_out_write(&w->out, p, n, e);
}

int evo_binwriter_end(evo_binwriter *w, evo_err *e)
{
    (void)e;
    evo_section *s = &w->sections[w->n_written++];
    s->size = w->out.pos - s->offset;
    s->xxh3 = XXH3_64bits_digest(w->hash);
    return 0;
}

/* Prefix, meta and section table, checksummed: the header of a file of
 * file_size bytes (hsize of them). */
static uint8_t *build_header(const char magic[8], uint32_t version, const void *meta, uint32_t meta_size,
                             const evo_section *sections, uint32_t n_sections, uint64_t file_size, uint64_t hsize)
{
    uint8_t *h = evo_calloc(1, hsize);
    memcpy(h, magic, 8);
    evo_put32(h + 8, version);
    evo_put32(h + 12, (uint32_t)hsize);
    evo_put64(h + 16, file_size);
    evo_put32(h + 32, meta_size);
    evo_put32(h + 36, n_sections);
    memcpy(h + EVO_PREFIX_SIZE, meta, meta_size);
    uint8_t *tab = h + EVO_PREFIX_SIZE + evo_align_up(meta_size);
    for (uint32_t i = 0; i < n_sections; i++) {
        uint8_t *s = tab + (size_t)i * EVO_SECTION_ENTRY_SIZE;
        evo_put32(s, sections[i].id);
        evo_put64(s + 8, sections[i].offset);
        evo_put64(s + 16, sections[i].size);
        evo_put64(s + 24, sections[i].xxh3);
    }
    evo_put64(h + 24, header_checksum(h, hsize));
    return h;
}

int evo_binwriter_finish(evo_binwriter *w, const void *meta, evo_err *e)
{
    if (w->n_written != w->n_sections)
        return evo_errf(e, "internal error: %u of %u sections written", w->n_written, w->n_sections);
    uint64_t hsize = header_size_for(w->meta_size, w->n_sections);
    uint8_t *h = build_header(w->magic, w->version, meta, w->meta_size, w->sections, w->n_sections, w->out.pos, hsize);
    int rc = evo_out_pwrite(&w->out, h, hsize, 0, e);
    free(h);
    if (rc == 0)
        rc = evo_out_commit(&w->out, e); /* removes the temporary itself on failure */
    else
        evo_out_abort(&w->out);
    free(w->sections);
    XXH3_freeState(w->hash);
    w->sections = NULL;
    w->hash = NULL;
    return rc;
}

void evo_binwriter_abort(evo_binwriter *w)
{
    evo_out_abort(&w->out);
    free(w->sections);
    if (w->hash)
        XXH3_freeState(w->hash);
    w->sections = NULL;
    w->hash = NULL;
}

/* Writes n bytes and adds them to the file's running hash, a chunk at a
 * time: the chunk just hashed is still in cache when it is copied out. */
static int write_hashed(evo_out *out, XXH3_state_t *st, const uint8_t *p, uint64_t n, evo_err *e)
{
    enum { CHUNK = 1 << 18 };
    for (uint64_t done = 0; done < n;) {
        size_t k = n - done < CHUNK ? (size_t)(n - done) : CHUNK;
        XXH3_64bits_update(st, p + done, k);
        if (evo_out_write(out, p + done, k, e) < 0)
            return -1;
        done += k;
    }
    return 0;
}

int evo_binfile_write(const char *path, const char magic[8], uint32_t version, const void *meta, uint32_t meta_size,
                      const evo_section_data *secs, uint32_t n_sections, evo_file_sum *sum, evo_err *e)
{
    static const uint8_t zero[EVO_ALIGN];
    uint64_t hsize = header_size_for(meta_size, n_sections), pos = hsize;
    evo_section *sections = evo_calloc(n_sections ? n_sections : 1, sizeof *sections);
    for (uint32_t i = 0; i < n_sections; i++) {
        pos = evo_align_up(pos);
        sections[i] = (evo_section){.id = secs[i].id, .offset = pos, .size = secs[i].size,
                                    .xxh3 = XXH3_64bits(secs[i].data, secs[i].size)};
        pos += secs[i].size;
    }
    uint8_t *h = build_header(magic, version, meta, meta_size, sections, n_sections, pos, hsize);
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    evo_out out;
    int rc = evo_out_open(&out, path, e);
    if (rc == 0)
        rc = write_hashed(&out, st, h, hsize, e);
    for (uint32_t i = 0; i < n_sections && rc == 0; i++) {
        uint64_t pad = sections[i].offset - out.pos;
        if ((rc = write_hashed(&out, st, zero, pad, e)) == 0)
            rc = write_hashed(&out, st, secs[i].data, secs[i].size, e);
    }
    if (rc == 0)
        rc = evo_out_commit(&out, e);
    else
        evo_out_abort(&out);
    if (rc == 0 && sum)
        *sum = (evo_file_sum){XXH3_64bits_digest(st), pos};
    XXH3_freeState(st);
    free(h);
    free(sections);
    return rc;
}
