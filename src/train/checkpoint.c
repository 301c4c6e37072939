/* checkpoint.c - saving a run and starting one from a checkpoint
 * (evo-ckpt(5) has the layout; ckpt.c writes and validates the files).
 *
 * A run resumed from step N continues bit for bit as if it had never
 * stopped: weights and AdamW moments are saved as the exact fp32 values,
 * the schedules are functions of the step, the loss scaler's counters and
 * the data position are in state.json (doubles printed with 17 digits,
 * which read back to the same bits). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "formats/ckpt.h"
#include "formats/ckpt_layout.h"
#include "train.h"

/* Each file of a checkpoint is written by one of these into the
 * checkpoint's temporary directory, and recorded for its marker. */
typedef int (*file_writer)(evo_ckpt_writer *w, const train_run *r, evo_err *e);

static int write_config(evo_ckpt_writer *w, const train_run *r, evo_err *e)
{
    return evo_ckpt_add_config(w, r->cfg, e);
}

/* The Slurm job saving the checkpoint, for evo-ckpt ls: the job's id (an
 * array task's as ARRAYID_TASK), its name, how often it was requeued. */
static void slurm_job(evo_ckpt_state *st)
{
    const char *id = getenv("SLURM_JOB_ID"), *array = getenv("SLURM_ARRAY_JOB_ID"),
               *task = getenv("SLURM_ARRAY_TASK_ID"), *name = getenv("SLURM_JOB_NAME"),
               *restarts = getenv("SLURM_RESTART_COUNT");
    if (!id || !*id)
        return;
    if (array && *array && task && *task)
        snprintf(st->job_id, sizeof st->job_id, "%s_%s", array, task);
    else
        snprintf(st->job_id, sizeof st->job_id, "%s", id);
    snprintf(st->job_name, sizeof st->job_name, "%s", name ? name : "");
    st->job_restarts = restarts ? strtoull(restarts, NULL, 10) : 0;
}

static int write_state(evo_ckpt_writer *w, const train_run *r, evo_err *e)
{
    const train_state *st = &r->st;
    evo_ckpt_state saved = {.step = st->step,
                            .adam_steps = st->adam_steps,
                            .batch = st->batch,
                            .rows = st->rows,
                            .tokens = st->tokens,
                            .skipped_nonfinite = st->skipped_nonfinite,
                            .nonfinite_in_row = st->nonfinite_in_row,
                            .skipped_batches = st->skipped_batches,
                            .scaler_clean_steps = st->scaler.clean_steps,
                            .scaler_overflows = st->scaler.overflows,
                            .train_pack_rows = r->train.pack.meta.n_rows,
                            .loss_scale = st->scaler.scale,
                            .next_lr = evo_lr_at(r->cfg, st->step)};
    snprintf(saved.train_pack, sizeof saved.train_pack, "%s", r->cfg->data.train_folder);
    snprintf(saved.train_pack_id, sizeof saved.train_pack_id, "%016" PRIx64, r->train.content_id);
    slurm_job(&saved);
    return evo_ckpt_add_state(w, &saved, e);
}

/* masters: the part's fp32 master weights (train_master_weights) */
static int write_model(evo_ckpt_writer *w, const train_run *r, const float *masters, evo_err *e)
{
    return evo_ckpt_add_model(w, &r->model, masters, EVO_F32, e);
}

static int write_optimizer(evo_ckpt_writer *w, const train_run *r, evo_err *e)
{
    const evo_layout *l = &r->comm->layout;
    size_t n = r->n_moments;
    float *host = evo_malloc_large((2 * n + 1) * sizeof *host);
    r->be->download(r->be, host, r->adam_m, n * sizeof *host);
    r->be->download(r->be, host + n, r->adam_v, n * sizeof *host);
    int rc = evo_ckpt_add_optimizer(w, &r->model, l->zero1_rank, l->zero1, host, e);
    free(host);
    return rc;
}

/* Rank 0 begins the save and writes config and state; the ranks of data
 * rank 0 write their part's weights (one model file per tensor and
 * pipeline rank), those of the first block of zero1 ranks their optimizer
 * shard, all into the same temporary directory at the same time, and hand
 * rank 0 their files' marker lines; rank 0 commits once all have. Every
 * rank returns the same verdict; e is left empty on a rank whose own part
 * went well. */
static int save_ranks(train_run *r, evo_err *e)
{
    static const file_writer rank0_files[] = {write_config, write_state};
    evo_comm *comm = r->comm;
    const evo_layout *l = &comm->layout;
    int writes_model = l->dp_rank == 0, writes_optimizer = l->dp_rank < l->zero1, failed = 0;
    char tmp[4200] = "", lines[1024];
    evo_ckpt_writer w = {0};
    if (l->rank == 0) {
        failed = evo_ckpt_begin(&w, r->cfg->ckpt.save_ckpt_folder, r->st.step, e) < 0;
        if (!failed && snprintf(tmp, sizeof tmp, "%s", w.tmp) >= (int)sizeof tmp)
            failed = evo_errf(e, "%s: the path is too long to hand to the other ranks", w.tmp) < 0;
    }
    if (comm->any(comm, failed)) {
        evo_ckpt_abort(&w);
        return -1;
    }
    comm->broadcast(comm, EVO_GROUP_WORLD, NULL, tmp, sizeof tmp, 0);
    if (l->rank != 0 && writes_optimizer)
        evo_ckpt_join(&w, tmp, r->st.step);
    for (size_t i = 0; l->rank == 0 && !failed && i < sizeof rank0_files / sizeof *rank0_files; i++)
        failed = rank0_files[i](&w, r, e) < 0;
    if (writes_optimizer) { /* the zero1 group of data rank 0 gathers its master weights there */
        float *masters = writes_model ? evo_malloc_large(r->model.n_params * sizeof *masters) : NULL;
        train_master_weights(r, masters);
        if (writes_model && !failed)
            failed = write_model(&w, r, masters, e) < 0;
        free(masters);
    }
    if (writes_optimizer && !failed)
        failed = write_optimizer(&w, r, e) < 0;
    if (!failed && l->rank != 0 && w.manifest.len >= sizeof lines)
        failed = evo_errf(e, "%s: its marker line is too long to hand to rank 0", w.tmp) < 0;
    /* the writers' lines, one writer at a time, in rank order */
    for (uint32_t p = 0; p < l->pp; p++)
        for (uint32_t d = 0; d < l->zero1; d++)
            for (uint32_t t = 0; t < l->tp; t++) {
                uint32_t k = evo_layout_global(l, p, d, t);
                if (k == 0)
                    continue;
                memset(lines, 0, sizeof lines);
                if (l->rank == k && !failed)
                    memcpy(lines, w.manifest.data, w.manifest.len);
                comm->broadcast(comm, EVO_GROUP_WORLD, NULL, lines, sizeof lines, k);
                if (l->rank == 0)
                    evo_ckpt_add_listed(&w, lines, strlen(lines));
            }
    if (!comm->any(comm, failed) && l->rank == 0)
        failed = evo_ckpt_commit(&w, e) < 0;
    evo_ckpt_abort(&w); /* frees the writer; removes the directory unless committed or joined */
    return comm->any(comm, failed) ? -1 : 0;
}

int train_checkpoint_save(train_run *r, evo_err *e)
{
    const char *folder = r->cfg->ckpt.save_ckpt_folder;
    double t0 = evo_now();
    e->msg[0] = 0;
    if (save_ranks(r, e) < 0)
        return -1;
    r->last_saved_step = r->st.step;
    r->last_save_seconds = evo_now() - t0;
    evo_info("checkpoint: %s/%" PRIu64 " saved (%.2f s)", folder, r->st.step, r->last_save_seconds);
    int failed = r->comm->layout.rank == 0 && r->cfg->ckpt.keep_last &&
                 evo_ckpt_prune(folder, r->cfg->ckpt.keep_last, e) < 0;
    return r->comm->any(r->comm, failed) ? -1 : 0;
}

/* --- loading -------------------------------------------------------------- */

/* Uploads tensor kind of every piece this rank holds: the weights
 * (train_set_tensor), or an AdamW moment into dst where moment_at says
 * (those of the pieces it keeps); each read from the checkpoint's pieces
 * that overlap it, whatever the layout they were saved in. host holds the
 * largest piece. */
static void upload_kind(train_run *r, const evo_ckpt_shards *s, int kind, float *dst, float *host)
{
    const evo_model *m = &r->model;
    for (size_t i = 0, wi = 0; i < m->n_tensors; i++) {
        const evo_tensor_info *t = &m->tensors[i];
        uint64_t at = kind == EVO_CKPT_WEIGHTS ? t->offset : r->moment_at[i];
        while (strcmp(s->model.tensors[wi].name, t->name)) /* the part is in model order */
            wi++;
        if (at == UINT64_MAX)
            continue;
        evo_ckpt_shards_read_piece_f32(s, kind, wi, m->tp_rank, m->tp, host);
        if (kind == EVO_CKPT_WEIGHTS)
            train_set_tensor(r, i, host);
        else
            r->be->upload(r->be, dst + at, host, t->numel * sizeof *host);
    }
}

/* The tensors of a checkpoint of any layout: a run saved by many ranks
 * (tp x pp x zero) continues on this one. The checkpoint's model (its
 * config.ini) must be the configured one, tensor for tensor. */
static int load_tensors(train_run *r, const char *dir, int with_moments, evo_err *e)
{
    evo_ckpt_shards s;
    if (evo_ckpt_shards_open(&s, dir, EVO_CKPT_CHECKSUMS, e) < 0)
        return -1;
    const evo_model *m = &r->whole, *saved = &s.model;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < m->n_tensors; i++) {
        const evo_tensor_info *a = &m->tensors[i], *b = i < saved->n_tensors ? &saved->tensors[i] : NULL;
        if (!b || strcmp(a->name, b->name) || a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1])
            rc = evo_errf(e, "%s: tensor %s has another shape than the configured model's [%" PRIu64 ", %" PRIu64
                             "] (was the model changed in the config?)",
                          dir, a->name, a->shape[0], a->shape[1]);
    }
    if (rc == 0 && saved->n_tensors != m->n_tensors)
        rc = evo_errf(e, "%s: %zu tensors, the configured model has %zu", dir, saved->n_tensors, m->n_tensors);
    if (rc == 0 && with_moments && !s.layout.zero)
        rc = evo_errf(e, "%s: a model-only checkpoint (no optimizer state): load it with ckpt.load_model_only_folder",
                      dir);
    if (rc == 0) {
        float *host = evo_malloc_large(evo_model_largest_tensor(m) * sizeof *host);
        upload_kind(r, &s, EVO_CKPT_WEIGHTS, NULL, host);
        if (with_moments) {
            upload_kind(r, &s, EVO_CKPT_ADAM_M, r->adam_m, host);
            upload_kind(r, &s, EVO_CKPT_ADAM_V, r->adam_v, host);
        }
        free(host);
    }
    evo_ckpt_shards_close(&s);
    return rc;
}

static int load_state(train_run *r, const char *dir, evo_err *e)
{
    char *path = evo_path_join(dir, EVO_CKPT_STATE_FILE);
    evo_ckpt_state saved;
    int rc = evo_ckpt_read_state(&saved, path, e);
    if (rc == 0) {
        train_state *st = &r->st;
        st->step = saved.step;
        st->adam_steps = saved.adam_steps;
        st->batch = saved.batch;
        st->rows = saved.rows;
        st->tokens = saved.tokens;
        st->skipped_nonfinite = saved.skipped_nonfinite;
        st->nonfinite_in_row = saved.nonfinite_in_row;
        st->skipped_batches = saved.skipped_batches;
        st->scaler.scale = saved.loss_scale;
        st->scaler.clean_steps = (uint32_t)saved.scaler_clean_steps;
        st->scaler.overflows = (uint32_t)saved.scaler_overflows;
        char want[17];
        snprintf(want, sizeof want, "%016" PRIx64, r->train.content_id);
        if (strcmp(saved.train_pack_id, want))
            evo_warn("%s: saved while training on another pack than %s; the data position (row %" PRIu64
                     ") is kept, on the new pack",
                     path, r->cfg->data.train_folder, st->rows);
    }
    free(path);
    return rc;
}

typedef enum { LOAD_ALL, LOAD_NO_OPTIMIZER, LOAD_MODEL_ONLY } load_what;

static int load_checkpoint(train_run *r, const char *dir, load_what what, evo_err *e)
{
    if (load_tensors(r, dir, what == LOAD_ALL, e) < 0)
        return -1;
    if (what == LOAD_MODEL_ONLY)
        return 0;
    if (load_state(r, dir, e) < 0)
        return -1;
    if (what == LOAD_NO_OPTIMIZER)
        r->st.adam_steps = 0; /* fresh moments: bias correction starts over */
    return 0;
}

/* Every tensor from the seed (evo_transformer_init_tensor). */
static void init_weights(train_run *r, uint64_t seed)
{
    const evo_model *m = &r->model;
    float *host = evo_malloc_large(evo_model_largest_tensor(m) * sizeof *host);
    for (size_t i = 0; i < m->n_tensors; i++) {
        evo_transformer_init_tensor(m, seed, i, host);
        train_set_tensor(r, i, host);
    }
    free(host);
}

int train_checkpoint_start(train_run *r, evo_err *e)
{
    const evo_config *c = r->cfg;
    char *dir = NULL;
    uint64_t step;
    int rc;
    if (c->ckpt.auto_resume && *c->ckpt.save_ckpt_folder &&
        (rc = evo_ckpt_latest(c->ckpt.save_ckpt_folder, &step, &dir, e)) != 0) {
        if (rc < 0 || load_checkpoint(r, dir, LOAD_ALL, e) < 0)
            goto fail;
        r->last_saved_step = r->st.step;
        evo_info("resuming from %s (step %" PRIu64 ", batch %" PRIu64 ")", dir, r->st.step, r->st.batch);
    } else if (*c->ckpt.load_ckpt_folder) {
        if (evo_ckpt_resolve(c->ckpt.load_ckpt_folder, &dir, e) < 0 ||
            load_checkpoint(r, dir, c->ckpt.load_optimizer ? LOAD_ALL : LOAD_NO_OPTIMIZER, e) < 0)
            goto fail;
        evo_info("continuing from %s (step %" PRIu64 "%s)", dir, r->st.step,
                 c->ckpt.load_optimizer ? "" : ", fresh optimizer state");
    } else if (*c->ckpt.load_model_only_folder) {
        if (evo_ckpt_resolve(c->ckpt.load_model_only_folder, &dir, e) < 0 || load_checkpoint(r, dir, LOAD_MODEL_ONLY, e) < 0)
            goto fail;
        evo_info("weights from %s; optimizer, schedule and data start afresh", dir);
    } else {
        init_weights(r, c->data.seed);
        evo_info("weights initialised from seed %" PRIu64, c->data.seed);
    }
    free(dir);
    return 0;
fail:
    if (dir)
        evo_err_prefix(e, "cannot start from checkpoint %s", dir);
    free(dir);
    return -1;
}
