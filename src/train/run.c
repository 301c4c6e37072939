/* run.c - the training loop, InternEvo's train.py on every rank:
 *
 *   for batch in [batch, total_steps):
 *       rows = rampup(batch)  (micro_num without rampup), per data-parallel rank
 *       skip_batches: read the rows, drop them
 *       grads = 0
 *       for each of this rank's rows: loss_row = mean CE over its labelled tokens
 *                                     grads += d(loss_row * loss_scale / rows)
 *       optimizer step (optim.c: the gradients summed over the data-parallel
 *       ranks first); a step with inf/NaN gradients is skipped
 *       report; validate every valid_every steps; checkpoint every
 *       checkpoint_every steps; stop requests at the step boundary
 *
 * A batch is dp x rows consecutive rows of the pack, data-parallel rank d
 * taking rows [d rows, (d + 1) rows) of them: dp 2 x micro_num 2 trains on
 * the rows dp 1 x micro_num 4 does, in the same steps.
 *
 * The loss of a step is the mean of its rows' losses, so every row weighs
 * the same whatever its number of labelled tokens (InternEvo's loss). The
 * ranks add their rows' losses into one slot per row of the batch (the
 * others' slots are zero, and x + 0 is exact), so the sum is taken in row
 * order: on the same weights, the loss printed is the one-rank run's to
 * the bit. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "formats/ckpt_layout.h"
#include "train.h"

/* Whether this rank reports its rows' losses and tokens: one rank of each
 * data-parallel rank's pipeline and tensor group, the one with the loss. */
static int reports_rows(const evo_layout *l) { return l->pp_rank + 1 == l->pp && l->tp_rank == 0; }

/* Gathers the n row losses the data-parallel ranks' last stages filled
 * (each its own rows, zero elsewhere), and the `extra` slots after them,
 * which add up; returns the losses' sum, taken in row order. */
static double sum_row_losses(train_run *r, size_t n, size_t extra)
{
    r->comm->allreduce_sum_f64(r->comm, EVO_GROUP_WORLD, r->row_losses, n + extra);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += r->row_losses[i];
    return sum;
}

/* Mean loss over every row of the validation pack (no gradients), row i
 * on data-parallel rank i mod dp. */
static void validate(train_run *r)
{
    const evo_layout *l = &r->comm->layout;
    uint64_t n = r->valid.pack.meta.n_rows;
    size_t T = evo_pack_length(&r->valid.pack.meta);
    memset(r->row_losses, 0, n * sizeof *r->row_losses);
    for (uint64_t i = l->dp_rank; i < n; i += l->dp)
        train_pipeline_forward(r, &r->valid, i, (uint32_t)i, T);
    train_report_valid(r, sum_row_losses(r, n, 0) / (double)n, n);
}

static int save(train_run *r)
{
    evo_err e;
    if (!r->cfg->ckpt.enable_save_ckpt || !*r->cfg->ckpt.save_ckpt_folder || r->last_saved_step == r->st.step)
        return 0;
    if (train_checkpoint_save(r, &e) < 0) {
        if (e.msg[0]) /* the rank whose part failed says why */
            evo_warn("%s", e.msg);
        return -1;
    }
    return 0;
}

static double comm_seconds(const evo_comm *c)
{
    double sum = 0;
    for (int g = 0; g < EVO_N_GROUPS; g++)
        sum += c->seconds[g];
    return sum;
}

/* Runs one batch; returns 0 to go on, else an exit code. */
static int run_batch(train_run *r, const evo_batch_set *skip, const evo_batch_set *poison, const evo_rampup *rampup)
{
    const evo_config *c = r->cfg;
    train_state *st = &r->st;
    const evo_layout *l = &r->comm->layout;
    uint32_t rows = evo_rampup_rows(rampup, st->batch), global_rows = rows * l->dp;
    size_t T = (size_t)c->data.seq_len * c->data.micro_bsz;
    if (evo_batch_set_has(skip, st->batch)) {
        st->rows += global_rows;
        st->batch++;
        st->skipped_batches++;
        train_report_skip(r, global_rows);
        return 0;
    }
    double t0 = evo_now();
    uint64_t sent[EVO_N_GROUPS];
    double waited = comm_seconds(r->comm);
    memcpy(sent, r->comm->bytes, sizeof sent);
    train_zero_grads(r);
    /* slots: the batch's row losses, then its real token count */
    memset(r->row_losses, 0, (global_rows + 1) * sizeof *r->row_losses);
    uint32_t mine = l->dp_rank * rows;
    for (uint32_t i = 0; i < rows && reports_rows(l); i++)
        r->row_losses[global_rows] += (double)(T - train_data_row(&r->train, st->rows + mine + i)->n_pad);
    train_pipeline_batch(r, &r->train, st->rows + mine, mine, rows, T, (float)(st->scaler.scale / rows));
    double loss = sum_row_losses(r, global_rows, 1);
    st->rows += global_rows;
    st->tokens += (uint64_t)r->row_losses[global_rows];
    if (evo_batch_set_has(poison, st->batch))
        train_poison_grads(r);
    train_report rep = {.loss = loss / global_rows, .rows = global_rows, .step = train_optim_step(r)};
    for (int g = 0; g < EVO_N_GROUPS; g++)
        rep.comm_bytes[g] = r->comm->bytes[g] - sent[g];
    rep.comm_seconds = comm_seconds(r->comm) - waited;
    st->batch++;
    if (rep.step.applied) {
        st->step++;
        st->adam_steps++;
        st->nonfinite_in_row = 0;
    } else {
        st->skipped_nonfinite++;
        st->nonfinite_in_row++;
    }
    rep.seconds = r->last_step_seconds = evo_now() - t0;
    train_report_step(r, &rep);
    uint32_t max_in_row = c->hybrid_zero_optimizer.max_skipped_in_row;
    if (max_in_row && st->nonfinite_in_row >= max_in_row) {
        evo_warn("step %" PRIu64 ": %" PRIu64 " steps in a row had inf/NaN gradients (loss scale %g); stopping. "
                 "The last checkpoint holds the run before it diverged; lower adam.lr or raise "
                 "hybrid_zero_optimizer.max_skipped_in_row",
                 st->batch, st->nonfinite_in_row, st->scaler.scale);
        return EVO_EXIT_FAIL;
    }
    if (!rep.step.applied)
        return 0;
    if (r->has_valid && c->data.valid_every && st->step % c->data.valid_every == 0)
        validate(r);
    if (c->ckpt.checkpoint_every && st->step % c->ckpt.checkpoint_every == 0 && save(r) < 0)
        return EVO_EXIT_FAIL;
    return 0;
}

static int open_data(train_run *r, evo_err *e)
{
    const evo_config *c = r->cfg;
    if (!*c->data.train_folder)
        return evo_errf(e, "[data] train_folder is not set: give the evo-pack file to train on");
    if (train_data_open(&r->train, c->data.train_folder, c, &r->whole, e) < 0)
        return -1;
    if (*c->data.valid_folder && c->data.valid_every) {
        if (train_data_open(&r->valid, c->data.valid_folder, c, &r->whole, e) < 0)
            return -1;
        r->has_valid = 1;
    }
    return 0;
}

static FILE *open_metrics(const evo_config *c, const train_options *opt, char **name, evo_err *e)
{
    char path[4200];
    if (opt->metrics_path)
        snprintf(path, sizeof path, "%s", opt->metrics_path);
    else if (c->ckpt.enable_save_ckpt && *c->ckpt.save_ckpt_folder)
        snprintf(path, sizeof path, "%s/metrics.jsonl", c->ckpt.save_ckpt_folder);
    else
        return NULL;
    *name = evo_strdup(path);
    if (!strcmp(path, "-"))
        return stdout;
    if (!opt->metrics_path && evo_make_dirs(c->ckpt.save_ckpt_folder, e) < 0)
        return NULL;
    FILE *f = fopen(path, "a");
    if (!f)
        evo_errf(e, "%s: %s", path, strerror(errno));
    return f;
}

/* The transformer's sums over its tensor group (transformer.h). */
static void tensor_allreduce(void *ctx, evo_dtype dt, void *buf, size_t n)
{
    train_run *r = ctx;
    r->comm->allreduce_sum(r->comm, EVO_GROUP_TENSOR, r->be, dt, buf, n);
}

static void tensor_allgather(void *ctx, evo_dtype dt, void *out, const void *in, size_t n)
{
    train_run *r = ctx;
    r->comm->allgather(r->comm, EVO_GROUP_TENSOR, r->be, dt, out, in, n);
}

static void tensor_reduce_scatter(void *ctx, evo_dtype dt, void *out, const void *in, size_t n)
{
    train_run *r = ctx;
    r->comm->reduce_scatter_sum(r->comm, EVO_GROUP_TENSOR, r->be, dt, out, in, n);
}

/* The backend of this rank: its GPU by PMIx local rank where the build has
 * CUDA and the node a GPU (auto, cuda), else the CPU. Asking for cuda
 * from a build without it is an error; on a node without a GPU the run
 * goes on, on the CPU, with one line saying so. The GPU and the emulated
 * backend compute in model.dtype (tf32: fp32 storage, TF32 GEMMs); the
 * CPU backend in fp32. */
static const evo_backend *pick_backend(const evo_config *c, const train_options *opt, const evo_world *w)
{
    evo_dtype dt = c->model.dtype == EVO_DT_BF16 ? EVO_BF16 : c->model.dtype == EVO_DT_F16 ? EVO_F16 : EVO_F32;
    if (opt->backend == TRAIN_BACKEND_GUARDED)
        return evo_backend_guarded();
    if (opt->backend == TRAIN_BACKEND_EMULATED)
        return evo_backend_emulated(dt);
    if (opt->backend == TRAIN_BACKEND_CPU || (opt->backend == TRAIN_BACKEND_AUTO && !evo_cuda_built))
        return evo_backend_cpu();
    if (!evo_cuda_built)
        evo_fatal("--backend cuda: this evo-train was built without CUDA (make CUDA=1)");
    evo_err e;
    const evo_backend *be = evo_backend_cuda((int)w->local_rank, dt, c->model.dtype == EVO_DT_TF32, &e);
    if (be)
        return be;
    if (opt->backend == TRAIN_BACKEND_CUDA && w->rank == 0)
        evo_warn("--backend cuda: %s: using the CPU backend", e.msg);
    return evo_backend_cpu();
}

/* A rank that fails ends the job: its peers would wait for it in their
 * next collective until the watchdog gave up. */
static evo_world *the_world;

static void end_the_job(int status) { evo_world_abort(the_world, status, "a rank failed"); }

/* The comm of several ranks: NCCL where the ranks are GPUs (auto, nccl),
 * else Open MPI, which also carries GPU ranks, staged through the host. */
static evo_comm *open_comm(const evo_layout *l, const evo_world *w, const evo_backend *be,
                           const train_options *opt, evo_err *e)
{
    if (w->size == 1)
        return evo_comm_single(l);
    if (opt->comm == TRAIN_COMM_NCCL || (opt->comm == TRAIN_COMM_AUTO && !strncmp(be->name, "cuda", 4))) {
        evo_comm *c = evo_comm_nccl(l, w, be, opt->comm_timeout, e);
        if (c || opt->comm == TRAIN_COMM_NCCL)
            return c;
        if (w->rank == 0)
            evo_warn("%s: using Open MPI, staged through the host", e->msg);
    }
    return evo_comm_mpi(l, w, opt->comm_timeout, e);
}

/* The world from PMIx, its layout checked against the model before
 * anything big is allocated (every rank finds the same answer; rank 0
 * says it), this rank's backend, and the comm. */
static evo_comm *open_world(evo_world *w, const evo_config *c, const evo_model *m, const train_options *opt,
                            const evo_backend **be)
{
    evo_err e;
    evo_layout l;
    if (evo_world_init(w, &e) < 0)
        evo_fatal("%s", e.msg);
    if (w->size > 1) {
        static char name[64];
        snprintf(name, sizeof name, "evo-train: rank %u", w->rank);
        evo_set_progname(name);
        if (w->rank)
            evo_quiet = 1;
        the_world = w;
        evo_set_fatal_exit(end_the_job);
    }
    int rc = evo_layout_make(&l, c, m, w->size, w->rank, &e);
    uint64_t T = (uint64_t)c->data.seq_len * c->data.micro_bsz;
    if (rc == 0 && l.tp > 1 && !strcmp(l.mode, "isp"))
        rc = evo_errf(&e, "parallel.tensor.mode isp is not implemented yet: use mtp or msp (fsp runs as msp)");
    else if (rc == 0 && evo_layout_sequence_parallel(&l) && T % l.tp)
        rc = evo_errf(&e,
                      "parallel.tensor.mode %s cuts every row's %" PRIu64 " tokens (data.seq_len x micro_bsz) into "
                      "parallel.tensor.size %u pieces: they do not divide",
                      l.mode, T, l.tp);
    if (rc < 0) {
        if (w->rank == 0)
            evo_warn("%s", e.msg);
        evo_world_finalize(w);
        exit(EVO_EXIT_FAIL);
    }
    train_control_find_end(c, w->rank);
    *be = pick_backend(c, opt, w);
    if (opt->profile)
        *be = evo_backend_profiled(*be);
    evo_comm *comm = open_comm(&l, w, *be, opt, &e);
    if (!comm)
        evo_fatal("%s", e.msg);
    char text[160];
    evo_layout_describe(&l, text, sizeof text);
    if (w->size > 1)
        evo_info("%u ranks on %u node%s (PMIx), comm %s: %s", w->size, w->nodes, w->nodes > 1 ? "s" : "",
                 comm->name, text);
    return comm;
}

int train_run_main(evo_config *c, const train_options *opt)
{
    train_run r = {.cfg = c, .opt = opt, .last_saved_step = UINT64_MAX, .valid_loss = NAN};
    evo_err e;
    evo_batch_set skip, poison;
    evo_rampup rampup;
    evo_world world;
    if (evo_model_describe(&r.whole, c, &e) < 0)
        evo_fatal("%s", e.msg);
    r.comm = open_world(&world, c, &r.whole, opt, &r.be);
    const evo_layout *l = &r.comm->layout;
    evo_ckpt_layout cut = {.tp = l->tp, .pp = l->pp, .zero = l->zero1};
    if (evo_model_part(&r.model, &r.whole, &cut, l->tp_rank, l->pp_rank, &e) < 0)
        evo_fatal("%s", e.msg);
    if (evo_batch_set_parse(&skip, c->data.skip_batches, &e) < 0 ||
        evo_batch_set_parse(&poison, opt->inject_nan ? opt->inject_nan : "", &e) < 0 ||
        evo_rampup_parse(&rampup, c->data.rampup_batch_size, c->data.micro_num, &e) < 0 || open_data(&r, &e) < 0)
        evo_fatal("%s", e.msg);
    uint64_t slots = (uint64_t)c->data.micro_num * l->dp + 1;
    if (r.has_valid && r.valid.pack.meta.n_rows > slots)
        slots = r.valid.pack.meta.n_rows;
    r.row_losses = evo_calloc(slots, sizeof *r.row_losses);
    /* the (row, chunk) pairs a stage keeps in flight (pipeline.c) */
    uint32_t in_flight = train_pipeline_in_flight(l->pp_rank, l->pp, r.model.chunks, c->data.micro_num);
    evo_tensor_group tensors = {.ctx = &r,
                                .allreduce = tensor_allreduce,
                                .allgather = tensor_allgather,
                                .reduce_scatter = tensor_reduce_scatter,
                                .sequence_parallel = evo_layout_sequence_parallel(l)};
    evo_grad_sink zero2 = {.ctx = &r, .flush = train_flush_grads};
    evo_transformer_opts tf_opts = {.T_max = (size_t)c->data.seq_len * c->data.micro_bsz,
                                    .label_smoothing = (float)c->loss.label_smoothing,
                                    .n_slots = (int)in_flight,
                                    .recompute = c->model.checkpoint,
                                    .tensors = &tensors,
                                    .grad_sink = train_shards_grads(c, l) ? &zero2 : NULL};
    evo_transformer_init(&r.tf, &r.model, r.be, &tf_opts);
    train_optim_init(&r);
    evo_loss_scaler_init(&r.st.scaler, c);
    if (train_checkpoint_start(&r, &e) < 0)
        evo_fatal("%s", e.msg);
    e.msg[0] = 0;
    r.metrics = r.comm->layout.rank == 0 ? open_metrics(c, opt, &r.metrics_name, &e) : NULL;
    if (!r.metrics && *e.msg)
        evo_fatal("%s", e.msg);
    train_control_init(&r);
    if (r.st.batch < c->data.total_steps)
        evo_info("%s: %.2f M parameters, %" PRIu64 " rows of %u x %u tokens, backend %s; steps %" PRIu64
                 " to %" PRIu64,
                 c->job_name, (double)r.whole.n_params / 1e6, r.train.pack.meta.n_rows, c->data.seq_len,
                 c->data.micro_bsz, r.be->name, r.st.batch + 1, c->data.total_steps);
    else if (c->data.total_steps)
        evo_info("%s: the run is complete (%" PRIu64 " of total_steps %" PRIu64 " batches done)", c->job_name,
                 r.st.batch, c->data.total_steps);

    int rc = 0;
    while (!rc && r.st.batch < c->data.total_steps) {
        rc = run_batch(&r, &skip, &poison, &rampup);
        if (rc)
            break;
        switch (train_control_poll(&r)) {
        case TRAIN_GO_ON: break;
        case TRAIN_SAVE: rc = save(&r) < 0 ? EVO_EXIT_FAIL : 0; break;
        case TRAIN_SAVE_AND_STOP:
            rc = save(&r) < 0 ? EVO_EXIT_FAIL : -1;
            evo_info("stop file %s: stopped at step %" PRIu64, c->ckpt.stop_file_path, r.st.step);
            break;
        case TRAIN_REQUEUE:
            rc = save(&r) < 0 ? EVO_EXIT_FAIL : TRAIN_EXIT_REQUEUE;
            evo_info("stopped at step %" PRIu64 "%s; exit %d", r.st.step,
                     r.last_saved_step == r.st.step ? ", checkpoint saved" : "", rc);
            break;
        }
    }
    train_report_summary(&r);
    if (opt->profile) {
        char prefix[64] = "evo-train: profile: ";
        if (world.size > 1)
            snprintf(prefix, sizeof prefix, "evo-train: profile of rank %u: ", (unsigned)world.rank);
        evo_backend_profile_print(stderr, prefix);
    }
    if (rc == -1)
        rc = 0;
    else if (!rc && save(&r) < 0)
        rc = EVO_EXIT_FAIL;
    if (r.metrics && r.metrics != stdout && fclose(r.metrics) != 0 && rc != EVO_EXIT_FAIL) {
        evo_warn("%s: write failed: %s", r.metrics_name, strerror(errno));
        rc = EVO_EXIT_FAIL; /* the run's record is short: it says so */
    }
    free(r.metrics_name);
    train_optim_free(&r);
    evo_transformer_free(&r.tf);
    train_data_close(&r.train);
    if (r.has_valid)
        train_data_close(&r.valid);
    evo_batch_set_free(&skip);
    evo_batch_set_free(&poison);
    evo_model_free(&r.model);
    evo_model_free(&r.whole);
    free(r.row_losses);
    r.comm->free(r.comm);
    evo_world_finalize(&world);
    return rc;
}
