/* safetensors.h - HuggingFace's safetensors files, read and written
 * (evo-convert2hf). The format (github.com/huggingface/safetensors):
 *
 *   offset 0   u64 N        little-endian: the header's length in bytes
 *   offset 8   N bytes      a JSON object, UTF-8, padded with spaces:
 *                 "__metadata__": {"key": "value", ...}     (optional)
 *                 "NAME": {"dtype": "BF16", "shape": [4096, 11008],
 *                          "data_offsets": [BEGIN, END]}     (per tensor)
 *   offset 8+N the data area: each tensor's bytes, row-major,
 *              little-endian, at [BEGIN, END) counted from 8+N.
 *
 * The reader trusts nothing in a file: before a byte of data is used, the
 * header length must fit the file (and 100 MB, the library's limit), the
 * JSON must parse with no duplicate name, every entry must have exactly the
 * three fields, a known dtype and non-negative integer dimensions, the
 * shape's byte size (overflow checked) must equal END - BEGIN, every range
 * must lie inside the data area and no two may overlap (in any order; gaps
 * are tolerated). Errors name the file and the offset of what is wrong.
 *
 * The writer lays a file out as the safetensors library does (and so as
 * Transformers' save_pretrained writes it): tensors ordered by dtype (the
 * library's enum order, descending), then by name; the header compact
 * JSON, __metadata__ first, then the tensors in data order, padded with
 * spaces to a multiple of 8. Data is streamed in that order after the
 * header, so a shard of any size goes through a small buffer. */
#ifndef EVO_SAFETENSORS_H
#define EVO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/fileio.h"

/* The library's dtypes, in its enum order (which orders a file's data). */
typedef enum {
    EVO_ST_BOOL, EVO_ST_U8, EVO_ST_I8, EVO_ST_F8_E5M2, EVO_ST_F8_E4M3, EVO_ST_I16, EVO_ST_U16, EVO_ST_F16,
    EVO_ST_BF16, EVO_ST_I32, EVO_ST_U32, EVO_ST_F32, EVO_ST_F64, EVO_ST_I64, EVO_ST_U64, EVO_ST_N_DTYPES
} evo_st_dtype;

#define EVO_ST_MAX_DIM 8
#define EVO_ST_MAX_HEADER 100000000u

typedef struct {
    char *name;
    evo_st_dtype dtype;
    uint32_t ndim;
    uint64_t shape[EVO_ST_MAX_DIM];
    uint64_t begin, end; /* bytes, from the start of the data area */
} evo_st_tensor;

const char *evo_st_dtype_name(evo_st_dtype dt);
uint64_t evo_st_numel(const evo_st_tensor *t);

/* --- reading ---------------------------------------------------------------- */

typedef struct {
    char *path;
    const uint8_t *map; /* the whole file, mapped read-only */
    uint64_t size;
    uint64_t data_offset;   /* 8 + N */
    evo_st_tensor *tensors; /* sorted by name */
    size_t n_tensors;
} evo_st_file;

/* Maps and validates path (see above). */
int evo_st_open(evo_st_file *f, const char *path, evo_err *e);
void evo_st_close(evo_st_file *f);
const evo_st_tensor *evo_st_find(const evo_st_file *f, const char *name);
static inline const uint8_t *evo_st_data(const evo_st_file *f, const evo_st_tensor *t)
{
    return f->map + f->data_offset + t->begin;
}

/* --- writing ---------------------------------------------------------------- */

typedef struct {
    evo_out out;
    evo_st_tensor *tensors; /* in file order, begin and end set */
    size_t *order;          /* tensors[k] is the caller's tensor order[k] */
    size_t n_tensors;
    uint64_t data_size, written;
} evo_st_writer;

/* Creates path (atomically, through evo_out), lays out the n tensors
 * (their begin/end are ignored) and writes the header. metadata is NULL or
 * NULL-terminated key, value pairs. The caller then writes each tensor's
 * bytes in file order: tensors[0], tensors[1], ... */
int evo_st_writer_open(evo_st_writer *w, const char *path, const evo_st_tensor *tensors, size_t n,
                       const char *const *metadata, evo_err *e);
int evo_st_writer_write(evo_st_writer *w, const void *p, size_t n, evo_err *e);
/* Appends n bytes of the file fd from offset, copied inside the kernel
 * where it can (copy_file_range), as cp does. */
int evo_st_writer_copy(evo_st_writer *w, int fd, uint64_t offset, uint64_t n, evo_err *e);
/* Checks every byte was written and commits the file. */
int evo_st_writer_finish(evo_st_writer *w, evo_err *e);
void evo_st_writer_abort(evo_st_writer *w);

#endif
