/* train.h - evo-train's parts, driven by main.c.
 *
 *   main.c        options, config
 *   dryrun.c      --dry-run: what a config costs
 *   run.c         the training loop: batches, steps, validation, stops
 *   pipeline.c    a batch's rows through the pipeline stages (1F1B, interleaved)
 *   data.c        rows from evo-pack files, and where the run is in them
 *   optim.c       one optimizer step: norm, loss scaler, clipping, AdamW
 *   checkpoint.c  saving and resuming a run (evo-ckpt(5))
 *   report.c      the per-step line on stderr and the JSONL metrics
 *   control.c     signals, the job's time limit and InternEvo's stop file */
#ifndef EVO_TRAIN_H
#define EVO_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include "compute/schedule.h"
#include "compute/transformer.h"
#include "dist/comm.h"
#include "formats/batch_set.h"
#include "formats/config.h"
#include "formats/pack.h"

/* Exit code of a run stopped by SIGUSR1 or SIGTERM after saving a
 * checkpoint: sysexits' EX_TEMPFAIL, "try again", for requeueing scripts. */
enum { TRAIN_EXIT_REQUEUE = 75 };

typedef enum { TRAIN_BACKEND_AUTO, TRAIN_BACKEND_CPU, TRAIN_BACKEND_CUDA, TRAIN_BACKEND_GUARDED,
               TRAIN_BACKEND_EMULATED } train_backend;
typedef enum { TRAIN_COMM_AUTO, TRAIN_COMM_MPI, TRAIN_COMM_NCCL } train_comm;

/* Options from the command line that are not part of the config. */
typedef struct {
    const char *config_path;
    const char *metrics_path; /* NULL: SAVE_CKPT_FOLDER/metrics.jsonl when saving, else none */
    double peak_tflops;       /* for MFU; 0: not shown */
    const char *inject_nan;   /* batches whose gradients are poisoned (testing) */
    double comm_timeout;      /* seconds a collective may wait for its peers */
    train_backend backend;
    train_comm comm;
    int profile; /* --profile: time every backend op */
} train_options;

/* --- data.c ---------------------------------------------------------------- */

/* The rows of one pack, read in file order; a run that reaches the end
 * starts over (the next epoch). */
typedef struct {
    evo_pack pack;
    evo_pack_row row;
    uint64_t content_id; /* the pack's header checksum: which data a checkpoint saw */
} train_data;

int train_data_open(train_data *d, const char *path, const evo_config *c, const evo_model *m, evo_err *e);
void train_data_close(train_data *d);
/* Row number n of the stream (n counts from the start of training). */
const evo_pack_row *train_data_row(train_data *d, uint64_t n);

/* --- the run ---------------------------------------------------------------- */

/* Everything a checkpoint must hold to continue bit for bit (state.json),
 * besides weights and optimizer moments. */
typedef struct {
    uint64_t step;            /* optimizer steps taken */
    uint64_t adam_steps;      /* of them, those behind the AdamW moments (bias correction) */
    uint64_t batch;           /* batches consumed, skipped ones included */
    uint64_t rows;            /* rows consumed from the training pack */
    uint64_t tokens;          /* real (not padding) tokens in them */
    uint64_t skipped_nonfinite, nonfinite_in_row, skipped_batches;
    evo_loss_scaler scaler;
} train_state;

typedef struct {
    evo_config *cfg;
    const train_options *opt;
    const evo_backend *be;
    evo_comm *comm;
    double *row_losses;     /* host, one slot per row of a global batch or the validation pack */
    evo_model whole;        /* the configured model */
    evo_model model;        /* the part of it this rank holds (tensor and pipeline rank) */
    evo_transformer tf;
    /* AdamW's moments (backend memory) of the tensors this rank keeps:
     * with ZeRO-1 its zero1 rank's share (InternEvo's deal,
     * evo_ckpt_zero_owned), without it all; packed in model order. */
    float *adam_m, *adam_v;
    /* The fp32 master weights of the same tensors, laid out as the
     * moments, when the backend computes in another dtype (the layers
     * read tf.weights, their working copy); NULL in fp32, where the
     * masters are tf.params, whole on every rank. */
    float *master;
    /* ZeRO-2 (train_shards_grads): the fp32 gradients of the same
     * tensors, laid out as the moments, summed over the step's rows and
     * the data-parallel ranks as the backward hands them over
     * (train_flush_grads); NULL: they are tf.grads, whole. */
    float *grad_shard;
    uint32_t *owner;     /* the zero1 rank keeping each tensor's moments and master weights */
    uint64_t *moment_at; /* each tensor's place in adam_m/adam_v/master; UINT64_MAX: another rank's */
    uint64_t n_moments;
    double *sqnorm;         /* one double of backend memory */
    train_state st;
    train_data train, valid;
    int has_valid;
    uint64_t last_saved_step; /* UINT64_MAX: none this run */
    FILE *metrics;
    char *metrics_name; /* its path, for errors */
    /* for the closing summary: step losses of this process's first and
     * last REPORT_WINDOW steps, time and tokens, the last validation loss */
    double first_losses[10], last_losses[10], seconds, valid_loss;
    double last_step_seconds, last_save_seconds; /* to see a time limit coming */
    uint64_t n_losses, tokens_run;
} train_run;

/* run.c: the whole of training; returns the exit code. */
int train_run_main(evo_config *c, const train_options *opt);

/* --- pipeline.c ------------------------------------------------------------ */

/* Forward and backward of rows first .. first + n - 1 of d (this
 * data-parallel rank's of a batch; backward scaled by scale) through the
 * pipeline stages; the last stage puts row first + k's loss in
 * r->row_losses[slot0 + k]. */
void train_pipeline_batch(train_run *r, train_data *d, uint64_t first, uint32_t slot0, uint32_t n, size_t T,
                          float scale);
/* The forward alone of row `row` of d (validation), its loss into
 * r->row_losses[slot]. */
void train_pipeline_forward(train_run *r, train_data *d, uint64_t row, uint32_t slot, size_t T);
/* The (row, chunk) activations stage s of p, with v chunks each, holds at
 * most on a batch of n rows: its warm-up forwards and one more. */
uint32_t train_pipeline_in_flight(uint32_t s, uint32_t p, uint32_t v, uint32_t n);

/* --- optim.c --------------------------------------------------------------- */

typedef struct {
    int applied;      /* 0: gradients held inf/NaN, the step was skipped */
    double grad_norm; /* of the unscaled gradient, before clipping (NaN/inf when skipped) */
    double lr, beta2;
} train_step_result;

/* Consecutive tensors [first, end) whose moments one zero1 rank keeps
 * (owner): one call of a collective or an op covers them. */
typedef struct {
    size_t first, end;
    uint32_t owner;
    uint64_t offset, numel; /* in the flat parameter buffer */
} train_tensor_run;
/* The run that starts at tensor i; 0 past the last tensor. */
int train_next_run(const evo_model *m, const uint32_t *owner, size_t i, train_tensor_run *run);
/* The elements of the next bucket of gradients to reduce, left of them
 * still to go: hybrid_zero_optimizer.reduce_bucket_size at most (0: all). */
static inline uint64_t train_bucket(uint64_t bucket_size, uint64_t left)
{
    return bucket_size && bucket_size < left ? bucket_size : left;
}
/* Whether the step reduces each run's gradients to its owner (ZeRO-1 over
 * the whole data-parallel group) rather than all-reducing them. */
int train_reduce_to_owners(const evo_layout *l);
/* Whether the gradients are cut as the moments (ZeRO-2): asked for
 * (parallel.zero1.shard_grads) and a zero1 group of several ranks. */
int train_shards_grads(const evo_config *c, const evo_layout *l);
/* One data-parallel reduction of the gradients: n elements from the
 * flat offset, reduced to zero1 rank root, or all-reduced (root -1). */
typedef struct {
    uint64_t offset, n;
    int64_t root;
} train_reduction;
/* The reductions of the gradients in span, one a call (red zeroed before
 * the first); 0 after the last: each run's (train_next_run) to its owner
 * (train_reduce_to_owners), else all of them, in buckets of
 * hybrid_zero_optimizer.reduce_bucket_size elements (bucket_size). */
int train_next_reduction(const evo_model *m, const uint32_t *owner, const evo_layout *l, uint64_t bucket_size,
                         evo_grad_unit span, train_reduction *red);
/* ZeRO-2's gradient sink (evo_grad_sink.flush, ctx the train_run): the
 * unit's gradient of one row reduced, and what this rank keeps of it
 * added into grad_shard. */
void train_flush_grads(void *ctx, float *grad, evo_grad_unit unit);
/* Zeroes the step's gradients, whole or sharded. */
void train_zero_grads(train_run *r);
/* Makes the step's gradients inf/NaN (--inject-nan). */
void train_poison_grads(train_run *r);

void train_optim_init(train_run *r);
void train_optim_free(train_run *r);
/* Tensor i of the part's fp32 weights, from the host (initialised or
 * loaded): into the layers' weights and, where this rank keeps them, the
 * master weights. */
void train_set_tensor(train_run *r, size_t i, const float *host);
/* The part's fp32 master weights whole in host (n_params floats), laid
 * out by the tensor table, on zero1 rank 0, where the others that keep
 * some send theirs (host NULL on those). Collective over the zero1
 * group. */
void train_master_weights(train_run *r, float *host);
/* Takes the optimizer step on the accumulated (loss-scaled) gradients. */
train_step_result train_optim_step(train_run *r);

/* --- checkpoint.c ------------------------------------------------------------ */

/* Starts the run: resumes from the newest checkpoint (auto_resume), from
 * load_ckpt_folder, loads weights only (load_model_only_folder), or
 * initialises from the seed. Says which on stderr. */
int train_checkpoint_start(train_run *r, evo_err *e);
/* Saves the run at its current step into save_ckpt_folder; every rank
 * calls it, each writes its part, all get the same verdict (e says why on
 * the rank that failed, and is empty on the others). */
int train_checkpoint_save(train_run *r, evo_err *e);

/* --- report.c ---------------------------------------------------------------- */

typedef struct {
    double loss, seconds;
    uint32_t rows;
    train_step_result step;
    uint64_t comm_bytes[EVO_N_GROUPS]; /* sent by this rank for the step's rows and optimizer */
    double comm_seconds;               /* of seconds, those in collectives */
} train_report;

void train_report_step(train_run *r, const train_report *rep);
void train_report_skip(train_run *r, uint32_t rows);
void train_report_valid(train_run *r, double loss, uint64_t rows);
/* The closing line: steps, time, throughput, loss at the start and end. */
void train_report_summary(const train_run *r);

/* --- control.c --------------------------------------------------------------- */

typedef enum { TRAIN_GO_ON, TRAIN_SAVE, TRAIN_SAVE_AND_STOP, TRAIN_REQUEUE } train_action;

/* Rank 0 learns the Slurm job's end time (before MPI starts: it may run
 * scontrol, and an MPI process should not fork). */
void train_control_find_end(const evo_config *c, uint32_t rank);
/* Installs the SIGUSR1/SIGTERM handlers. */
void train_control_init(const train_run *r);
/* What to do at this step boundary: a signal arrived (save, exit 75), or
 * the stop file names this step (N: save and stop; -N: save, go on). */
train_action train_control_poll(const train_run *r);

/* --- dryrun.c ----------------------------------------------------------------- */

/* --dry-run: the resolved config, parameter count, FLOPs per token and
 * memory per GPU for world_size ranks (0 = the smallest layout the
 * parallel section allows); with memory_gib > 0, exit 1 when the fullest
 * rank needs more (--memory). */
int train_dry_run(const evo_config *c, uint32_t world_size, double memory_gib);

#endif
