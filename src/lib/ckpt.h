/* ckpt.h - evo checkpoints (evo-ckpt(5)): written by evo-train, read by
 * evo-train (resume), evo-ckpt and evo-convert2hf.
 *
 * A checkpoint is a directory FOLDER/STEP/ (STEP in decimal, as InternEvo):
 *
 *   config.ini                  the resolved training config (evo-train(1))
 *   state.json                  step, tokens seen, data position, scheduler,
 *                               loss scaler, skip counters (text, see below)
 *   model_tp0_pp0.evo           weights: tensor table + flat data
 *   optimizer_tp0_pp0_zo0.evo   AdamW moments, mirroring the weights' table
 *   STEP.step                   the completion marker, written last: one line
 *                               "<xxh3-64 hex>  <bytes>  <file>" per file above
 *
 * File names carry the (tensor, pipeline, zero) ranks of the shard they
 * hold, as InternEvo's do; a single-process run writes rank 0 of size 1.
 *
 * Saving is crash-safe: the files go into FOLDER/.tmp-STEP-PID/, each
 * fsync'ed, the directory is fsync'ed and renamed to FOLDER/STEP, and the
 * marker is written (temp file, fsync, rename) last. A directory without
 * its marker is not a checkpoint: auto-resume skips it, evo-ckpt says so.
 *
 * The .evo files are evo binfmt containers (binfmt.h), magic "EVOCKPT\0",
 * version 1, meta EVO_CKPT_META_SIZE bytes:
 *     0 u32 kind        1 model weights, 2 optimizer state
 *     4 u32 dtype       of DATA: 0 f32, 1 bf16, 2 f16 (evo_dtype)
 *     8 u32 tp_rank, tp_size, pp_rank, pp_size, zero_rank, zero_size
 *    32 u64 step        optimizer steps taken when saved
 *    40 u64 n_tensors
 *    48 u64 n_elements  of DATA
 *    56 ...             zero
 *   sections
 *     1 TENSORS  n_tensors entries of EVO_CKPT_TENSOR_SIZE bytes:
 *                  0 char name[64] (NUL-padded, at least one NUL)
 *                 64 u32 ndim (1..4), 68 u32 zero
 *                 72 u64 shape[4] (unused dims 0)
 *                104 u64 offset (elements into DATA), 112 u64 numel
 *                120 zero
 *                tensors are in DATA order, contiguous, non-overlapping,
 *                numel = product of the shape, and together fill DATA.
 *     2 DATA     n_elements values of dtype, little-endian.
 * The optimizer file names its tensors "adam.m.<param>" and "adam.v.<param>"
 * for every <param> of the model file, fp32. */
#ifndef EVO_CKPT_H
#define EVO_CKPT_H

#include <stdint.h>

#include "backend.h"
#include "binfmt.h"
#include "buf.h"
#include "config.h"
#include "model.h"

#define EVO_CKPT_MAGIC "EVOCKPT"
#define EVO_CKPT_VERSION 1
#define EVO_CKPT_META_SIZE 256
#define EVO_CKPT_TENSOR_SIZE 128
#define EVO_CKPT_NAME_MAX 64

enum { EVO_CKPT_MODEL = 1, EVO_CKPT_OPTIMIZER = 2 };
enum { EVO_CKPT_SEC_TENSORS = 1, EVO_CKPT_SEC_DATA = 2 };

typedef struct {
    uint32_t kind;
    evo_dtype dtype;
    uint32_t tp_rank, tp_size, pp_rank, pp_size, zero_rank, zero_size;
    uint64_t step, n_tensors, n_elements;
} evo_ckpt_meta;

typedef struct {
    char name[EVO_CKPT_NAME_MAX];
    uint32_t ndim;
    uint64_t shape[4];
    uint64_t offset, numel;
} evo_ckpt_tensor;

/* --- one .evo file ------------------------------------------------------- */

/* Writes a tensor file atomically: meta (n_tensors and n_elements are
 * taken from the table), the table, then data (n_elements of meta->dtype). */
int evo_ckpt_write_file(const char *path, const evo_ckpt_meta *meta, const evo_ckpt_tensor *tensors,
                        size_t n_tensors, const void *data, evo_err *e);

typedef struct {
    evo_binfile f;
    evo_ckpt_meta meta;
    evo_ckpt_tensor *tensors;
    const uint8_t *data; /* DATA, mapped: n_elements of meta.dtype */
} evo_ckpt_file;

/* Opens and validates a tensor file (every checksum, the meta, every table
 * entry); errors name the file and the offset of the bad field. */
int evo_ckpt_open(evo_ckpt_file *c, const char *path, evo_err *e);
void evo_ckpt_close(evo_ckpt_file *c);
const evo_ckpt_tensor *evo_ckpt_find(const evo_ckpt_file *c, const char *name);

/* Matches a file's tensors named prefix+<name> against the model's table:
 * every model tensor present with its shape, nothing else in the file
 * (beyond other prefixes' share of n_copies copies). found[i] receives
 * the file's entry for model tensor i. Errors say which tensor and why. */
int evo_ckpt_match(const evo_ckpt_file *c, const evo_model *m, const char *prefix, size_t n_copies,
                   const evo_ckpt_tensor **found, evo_err *e);

/* --- the files of a checkpoint, as evo-train writes them ------------------- */

#define EVO_CKPT_MODEL_FILE "model_tp0_pp0.evo"
#define EVO_CKPT_OPTIM_FILE "optimizer_tp0_pp0_zo0.evo"
#define EVO_CKPT_STATE_FILE "state.json"
#define EVO_CKPT_CONFIG_FILE "config.ini"

/* The model's table with names prefixed and offsets from element base. */
void evo_ckpt_table(evo_ckpt_tensor *t, const evo_model *m, const char *prefix, uint64_t base);
/* config.ini: the resolved config (loadable by evo_config_load). */
int evo_ckpt_write_config(const char *path, const evo_config *c, evo_err *e);
/* A single-shard model file of the flat fp32 weights, stored as dtype. */
int evo_ckpt_write_model(const char *path, const evo_model *m, const float *weights, evo_dtype dtype,
                         uint64_t step, evo_err *e);

/* A checkpoint's model, whole, in host memory: its config, shapes and the
 * flat fp32 weights in the model's tensor order. */
typedef struct {
    evo_config cfg;
    evo_model model;
    float *weights;
    uint64_t step;
    evo_dtype dtype; /* as stored */
} evo_ckpt_model;

/* Reads DIR (a complete checkpoint: the marker is checked first). */
int evo_ckpt_load_model(evo_ckpt_model *out, const char *dir, evo_err *e);
void evo_ckpt_model_free(evo_ckpt_model *m);

/* --- a checkpoint directory ---------------------------------------------- */

typedef struct {
    char *folder, *tmp; /* FOLDER and FOLDER/.tmp-STEP-PID */
    uint64_t step;
    evo_buf manifest;   /* the marker's lines so far */
} evo_ckpt_writer;

/* Creates FOLDER (and parents) and the temporary directory, removing the
 * temporaries of saves whose process died. */
int evo_ckpt_begin(evo_ckpt_writer *w, const char *folder, uint64_t step, evo_err *e);
/* FOLDER/.tmp-STEP-PID/name (malloc'ed): where to write a file. */
char *evo_ckpt_tmp_path(const evo_ckpt_writer *w, const char *name);
/* Records a file written (and committed) in the temporary directory:
 * hashes it for the marker. */
int evo_ckpt_add(evo_ckpt_writer *w, const char *name, evo_err *e);
/* fsyncs, renames to FOLDER/STEP (replacing one of the same step), writes
 * the marker, fsyncs FOLDER. */
int evo_ckpt_commit(evo_ckpt_writer *w, evo_err *e);
/* Removes the temporary directory (after a failure, or from a signal-free
 * context at exit). */
void evo_ckpt_abort(evo_ckpt_writer *w);

/* The newest complete checkpoint in folder: *step and *dir (malloc'ed).
 * Returns 1 if found, 0 if there is none (or no folder), -1 on error. */
int evo_ckpt_latest(const char *folder, uint64_t *step, char **dir, evo_err *e);
/* Checks a checkpoint directory against its marker: every file listed is
 * there with its size and hash. */
int evo_ckpt_verify_dir(const char *dir, evo_err *e);
/* Removes complete checkpoints of folder but the newest keep (keep >= 1). */
int evo_ckpt_prune(const char *folder, uint32_t keep, evo_err *e);

#endif
