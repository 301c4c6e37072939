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
 * How a model is cut into model_tp{t}_pp{p}.evo and
 * optimizer_tp{t}_pp{p}_zo{z}.evo shards: ckpt_layout.h.
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

#include "base/buf.h"
#include "base/dtype.h"
#include "formats/binfmt.h"
#include "formats/config.h"
#include "formats/model.h"

#define EVO_CKPT_MAGIC "EVOCKPT"
#define EVO_CKPT_VERSION 1
#define EVO_CKPT_META_SIZE 256
#define EVO_CKPT_MARKER_MAX (1 << 20) /* bytes: a marker is a line per file */
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
/* The same without the sections' checksums (header and structure are
 * still checked): for a quick look at a big file. */
int evo_ckpt_open_unchecked(evo_ckpt_file *c, const char *path, evo_err *e);
const evo_ckpt_tensor *evo_ckpt_find(const evo_ckpt_file *c, const char *name);
/* "[8000, 32]": a shape of ndim dimensions, for messages. */
void evo_ckpt_format_shape(char *buf, size_t n, uint32_t ndim, const uint64_t *shape);
/* "f32", "bf16", "f16". */
const char *evo_ckpt_dtype_name(evo_dtype dt);

/* --- the files of a checkpoint, as evo-train writes them ------------------- */

#define EVO_CKPT_MODEL_FILE "model_tp0_pp0.evo"
#define EVO_CKPT_STATE_FILE "state.json"
#define EVO_CKPT_CONFIG_FILE "config.ini"

/* The model's table with names prefixed and offsets from element base. */
void evo_ckpt_table(evo_ckpt_tensor *t, const evo_model *m, const char *prefix, uint64_t base);

/* A checkpoint's model, whole, in host memory: its config, shapes and the
 * flat fp32 weights in the model's tensor order. */
typedef struct {
    evo_config cfg;
    evo_model model;
    float *weights;
} evo_ckpt_model;

/* Reads DIR (a complete checkpoint: the marker is checked first), in any
 * layout: the shards are merged (ckpt_layout.c). */
int evo_ckpt_load_model(evo_ckpt_model *out, const char *dir, evo_err *e);
void evo_ckpt_model_free(evo_ckpt_model *m);

/* --- a checkpoint directory (ckpt_dir.c) ------------------------------------ */

/* One line of the completion marker: a file of the checkpoint. */
typedef struct {
    char name[256];
    uint64_t hash, size; /* XXH3-64 and bytes */
} evo_ckpt_listed;

typedef struct {
    evo_ckpt_listed *files; /* in the marker's order */
    size_t n;
    const evo_ckpt_listed **by_name; /* the same, sorted by name: lookups */
} evo_ckpt_manifest;

/* Parses marker text (path names it in messages): at least one line, no
 * name twice, none with a '/'. A marker may list tens of thousands of
 * shards, so names are looked up in a sorted index, never by a scan. */
int evo_ckpt_parse_marker(evo_ckpt_manifest *m, const char *text, size_t len, const char *path, evo_err *e);
/* Reads DIR's marker. A directory that is not a complete checkpoint (a
 * save under way or abandoned, no marker) gets an error that says which. */
int evo_ckpt_read_marker(evo_ckpt_manifest *m, const char *dir, evo_err *e);
/* Checks every listed file of DIR: its size, and its XXH3-64 as hash
 * says: all files, none, or only those that are not .evo containers (whose
 * every byte the container's own checksums cover, for a reader that opens
 * them with evo_ckpt_open: hashing them twice would read them twice). */
enum { EVO_CKPT_HASH_NONE, EVO_CKPT_HASH_ALL, EVO_CKPT_HASH_TEXT };
int evo_ckpt_check_files(const char *dir, const evo_ckpt_manifest *m, int hash, evo_err *e);
/* The file of that name, NULL if not listed (m from parse or read). */
const evo_ckpt_listed *evo_ckpt_manifest_find(const evo_ckpt_manifest *m, const char *name);
void evo_ckpt_manifest_free(evo_ckpt_manifest *m);

/* XXH3-64 and size of a file read in 1 MB pieces; each piece is also
 * handed to fn (if not NULL), so a copy can hash what it copies. */
typedef int (*evo_ckpt_chunk_fn)(void *ctx, const void *p, size_t n, evo_err *e);
int evo_ckpt_hash_file(const char *path, uint64_t *hash, uint64_t *size, evo_ckpt_chunk_fn fn, void *ctx,
                       evo_err *e);

/* The step a checkpoint directory's name gives (trailing slashes
 * ignored): 1 if the last component is a step number, else 0. */
int evo_ckpt_dir_step(const char *dir, uint64_t *step);

typedef struct {
    char *folder, *tmp, *final; /* FOLDER, FOLDER/.tmp-STEP-PID, the directory it becomes */
    uint64_t step;
    int replace;        /* an existing final directory is replaced (evo-train) */
    int joined;         /* writes into another process's save (evo_ckpt_join) */
    evo_buf manifest;   /* the marker's lines so far */
} evo_ckpt_writer;

/* Creates FOLDER (and parents) and the temporary directory, removing the
 * temporaries of saves whose process died. The checkpoint becomes
 * FOLDER/STEP, replacing one of the same step. */
int evo_ckpt_begin(evo_ckpt_writer *w, const char *folder, uint64_t step, evo_err *e);
/* The same for a checkpoint that becomes DIR, named by its step, which
 * must not exist (evo-ckpt's outputs). */
int evo_ckpt_begin_at(evo_ckpt_writer *w, const char *dir, uint64_t step, evo_err *e);
/* A writer for files of a save that another process (rank 0 of a
 * training job) began and commits: they go into its temporary directory
 * tmp, and the lines this writer's manifest gathers are handed to it
 * (evo_ckpt_add_listed). Aborting it leaves the directory alone. */
void evo_ckpt_join(evo_ckpt_writer *w, const char *tmp, uint64_t step);
/* Records files another writer joined to this save wrote: the lines of
 * its manifest, as they are. */
void evo_ckpt_add_listed(evo_ckpt_writer *w, const char *lines, size_t n);
/* FOLDER/.tmp-STEP-PID/name (malloc'ed): where to write a file. */
char *evo_ckpt_tmp_path(const evo_ckpt_writer *w, const char *name);
/* Records a file written (and committed) in the temporary directory, with
 * the hash and size its writer took as it wrote: no file of a checkpoint
 * is read back to be listed in the marker. */
void evo_ckpt_add_hashed(evo_ckpt_writer *w, const char *name, uint64_t hash, uint64_t size);
/* Writes bytes as file name of the checkpoint and records it. */
int evo_ckpt_add_bytes(evo_ckpt_writer *w, const char *name, const void *p, size_t n, evo_err *e);
/* Writes a tensor file as file name and records it: meta (n_tensors and
 * n_elements are taken from the table), the table, then data (n_elements
 * of meta->dtype). */
int evo_ckpt_add_tensors(evo_ckpt_writer *w, const char *name, const evo_ckpt_meta *meta,
                         const evo_ckpt_tensor *tensors, size_t n_tensors, const void *data, evo_err *e);
/* The files of a checkpoint as evo-train writes them, each recorded:
 * config.ini, the resolved config (loadable by evo_config_load); */
int evo_ckpt_add_config(evo_ckpt_writer *w, const evo_config *c, evo_err *e);
/* the model file of m's flat fp32 weights, stored as dtype:
 * model_tp{t}_pp{p}.evo of the part m is (evo_model_part; a whole model
 * is the single shard model_tp0_pp0.evo); */
int evo_ckpt_add_model(evo_ckpt_writer *w, const evo_model *m, const float *weights, evo_dtype dtype,
                       evo_err *e);
/* the optimizer file of ZeRO rank z of zero (zero 1: the whole state),
 * optimizer_tp{t}_pp{p}_zo{z}.evo of part m: AdamW's moments of the tensors that
 * evo_ckpt_zero_ranks deals to z, fp32, moments holding their first
 * moments in model order, then their second (adam.m.<name>, then
 * adam.v.<name>). */
int evo_ckpt_add_optimizer(evo_ckpt_writer *w, const evo_model *m, uint32_t z, uint32_t zero, const float *moments,
                           evo_err *e);
/* fsyncs, renames to its final directory, writes the marker, fsyncs
 * FOLDER. */
int evo_ckpt_commit(evo_ckpt_writer *w, evo_err *e);
/* Removes the temporary directory (after a failure, or from a signal-free
 * context at exit). */
void evo_ckpt_abort(evo_ckpt_writer *w);

/* What a directory of a save folder is. */
typedef enum {
    EVO_CKPT_COMPLETE,   /* STEP with its marker */
    EVO_CKPT_INCOMPLETE, /* STEP without: being committed, or its save died */
    EVO_CKPT_TEMP,       /* .tmp-STEP-PID: a save being written */
    EVO_CKPT_OLD         /* .old-STEP-PID: a checkpoint being replaced */
} evo_ckpt_status;

typedef struct {
    char name[64]; /* in the folder */
    evo_ckpt_status status;
    uint64_t step;
    long pid;  /* TEMP, OLD: the saving process */
    int alive; /* that process is running */
} evo_ckpt_entry;

/* Classifies folder/name; 0 if it is nothing of a checkpoint's. */
int evo_ckpt_classify(const char *folder, const char *name, evo_ckpt_entry *out);
/* The checkpoints and temporaries of folder, by step (complete and
 * incomplete before temporaries); none if folder does not exist. */
int evo_ckpt_scan(const char *folder, evo_ckpt_entry **entries, size_t *n, evo_err *e);

/* The newest complete checkpoint in folder: *step and *dir (malloc'ed).
 * Returns 1 if found, 0 if there is none (or no folder), -1 on error. */
int evo_ckpt_latest(const char *folder, uint64_t *step, char **dir, evo_err *e);
/* given is a checkpoint directory (its marker exists; trailing slashes
 * allowed) or a save folder (then its newest complete checkpoint), as
 * evo-train's load folders and evo-convert2hf's input are: *dir
 * (malloc'ed). */
int evo_ckpt_resolve(const char *given, char **dir, evo_err *e);
/* Removes complete checkpoints of folder but the newest keep (keep >= 1). */
int evo_ckpt_prune(const char *folder, uint32_t keep, evo_err *e);

/* state.json (evo-ckpt(5)): the counts evo-train reads back, and what it
 * records for people (next_lr, the pack; zero or empty when absent). */
typedef struct {
    uint64_t step, adam_steps, batch, rows, tokens, skipped_nonfinite, nonfinite_in_row, skipped_batches,
        scaler_clean_steps, scaler_overflows, train_pack_rows;
    double loss_scale, next_lr;
    char train_pack[4096], train_pack_id[17];
    /* the Slurm job that saved it (empty, 0 outside Slurm): its id
     * (ARRAYID_TASK for an array task), name and SLURM_RESTART_COUNT */
    char job_id[32], job_name[128];
    uint64_t job_restarts;
} evo_ckpt_state;

int evo_ckpt_read_state(evo_ckpt_state *st, const char *path, evo_err *e);
/* Writes st as state.json of w and records it: indented JSON, reals with
 * 17 digits (they read back to the same bits). */
int evo_ckpt_add_state(evo_ckpt_writer *w, const evo_ckpt_state *st, evo_err *e);

#endif
