/* binfmt.h - the container every evo binary file shares.
 *
 * One layout for token files, pack files and checkpoint shards, so one
 * reader validates them all before a single byte is used:
 *
 *   offset 0   prefix (64 bytes)
 *                char  magic[8]        format name, e.g. "EVOTOKS\0"
 *                u32   version         format version
 *                u32   header_size     prefix + meta + section table, multiple of 64
 *                u64   file_size       the whole file: a short file is caught at once
 *                u64   header_xxh3     XXH3-64 of bytes [0, header_size) with this field zero
 *                u32   meta_size       bytes of format metadata after the prefix
 *                u32   n_sections
 *                u8    reserved[24]    zero
 *   offset 64  meta (meta_size bytes, zero-padded to 64)
 *   then       section table: n_sections entries of 32 bytes
 *                u32 id, u32 reserved, u64 offset, u64 size, u64 xxh3 (XXH3-64 of the bytes)
 *   then       sections, each starting on a 64-byte boundary (mmap and SIMD friendly)
 *
 * All integers are little-endian. Section ids are format-specific; a
 * section listed once, in-bounds, aligned and not overlapping another. */
#ifndef EVO_BINFMT_H
#define EVO_BINFMT_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/fileio.h"

#define EVO_ALIGN 64
#define EVO_PREFIX_SIZE 64
#define EVO_SECTION_ENTRY_SIZE 32

typedef struct {
    uint32_t id;
    uint64_t offset, size, xxh3;
} evo_section;

/* A validated, read-only view of a whole file (mmap'ed when it is a
 * regular file, read into memory when it is a pipe). */
typedef struct {
    char *path;
    const uint8_t *data;
    uint64_t size;
    int mapped; /* data is an mmap of the file */
    int owned;  /* data is released on close (not a caller's buffer) */
    int fd;     /* the mapped file, for reads that bypass the mapping; -1 if none */
    uint32_t version;
    const uint8_t *meta;
    uint32_t meta_size;
    evo_section *sections;
    uint32_t n_sections;
} evo_binfile;

enum {
    EVO_VERIFY_CHECKSUMS = 1,
    EVO_FILE_BACKED = 2 /* open_mem: the bytes are a read-only file mapping (pages may be dropped) */
};

/* Opens and validates path ("-" = stdin) as a file of format magic with a
 * version in [1, max_version]: prefix, header checksum, size, section
 * table; with EVO_VERIFY_CHECKSUMS also every section's XXH3. Errors name
 * the file and the offset of the bad field. */
int evo_binfile_open(evo_binfile *f, const char *path, const char magic[8], uint32_t max_version,
                     unsigned flags, evo_err *e);
/* The same over bytes the caller owns and keeps alive (a file embedded in
 * another); name is used in messages. */
int evo_binfile_open_mem(evo_binfile *f, const char *name, const uint8_t *data, uint64_t size,
                         const char magic[8], uint32_t max_version, unsigned flags, evo_err *e);
void evo_binfile_close(evo_binfile *f);

/* Verifies one section's XXH3 in chunks, calling check (if not NULL) on
 * each chunk with its offset inside the section, so a format can validate
 * its contents in the same pass over memory (when both fail, the error is
 * the checksum's, which names the section). Pages of a mapped file are
 * released as it goes: verifying never makes a big file resident. */
typedef int (*evo_chunk_fn)(void *ctx, const uint8_t *p, uint64_t n, uint64_t at, evo_err *e);
int evo_binfile_verify_section(const evo_binfile *f, const evo_section *sec, evo_chunk_fn check, void *ctx,
                               evo_err *e);
/* The section with this id, or NULL. */
const evo_section *evo_binfile_section(const evo_binfile *f, uint32_t id);

/* Writer: sections are streamed one after another; the header is written
 * last, so a file whose header checks out is complete. */
typedef struct {
    evo_out out;
    char magic[8];
    uint32_t version, meta_size, n_sections, n_written;
    evo_section *sections;
    void *hash; /* XXH3 state of the section being written */
} evo_binwriter;

int evo_binwriter_open(evo_binwriter *w, const char *path, const char magic[8], uint32_t version,
                       uint32_t meta_size, uint32_t n_sections, evo_err *e);
int evo_binwriter_begin(evo_binwriter *w, uint32_t section_id, evo_err *e);
int evo_binwriter_write(evo_binwriter *w, const void *p, size_t n, evo_err *e);
int evo_binwriter_end(evo_binwriter *w, evo_err *e);
/* Writes prefix, meta and section table, then commits the file atomically. */
int evo_binwriter_finish(evo_binwriter *w, const void *meta, evo_err *e);
void evo_binwriter_abort(evo_binwriter *w);

/* Writer of a file whose sections are all in memory: one sequential pass,
 * atomically. The sections are hashed first (in memory), so the header
 * goes out first and everything after it in file order, and the XXH3-64
 * of the whole file is taken on the way (*sum, if not NULL): whoever lists
 * the file's checksum elsewhere (a checkpoint's marker) need not read it
 * back from disk. */
typedef struct {
    uint32_t id;
    const void *data;
    uint64_t size;
} evo_section_data;
typedef struct {
    uint64_t hash, size; /* XXH3-64 and bytes of a whole file */
} evo_file_sum;
int evo_binfile_write(const char *path, const char magic[8], uint32_t version, const void *meta, uint32_t meta_size,
                      const evo_section_data *secs, uint32_t n_sections, evo_file_sum *sum, evo_err *e);

/* Little-endian field access; the formats are little-endian on every host. */
static inline uint16_t evo_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t evo_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t evo_le64(const uint8_t *p) { return evo_le32(p) | (uint64_t)evo_le32(p + 4) << 32; }
static inline void evo_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void evo_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void evo_put64(uint8_t *p, uint64_t v)
{
    evo_put32(p, (uint32_t)v);
    evo_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t evo_align_up(uint64_t x) { return (x + EVO_ALIGN - 1) & ~(uint64_t)(EVO_ALIGN - 1); }

#endif
