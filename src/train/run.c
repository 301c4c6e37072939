/* run.c - the training loop, InternEvo's train.py on one rank:
 *
 *   for batch in [batch, total_steps):
 *       rows = rampup(batch)  (micro_num without rampup)
 *       skip_batches: read the rows, drop them
 *       grads = 0
 *       for each row: loss_row = mean CE over its labelled tokens
 *                     grads += d(loss_row * loss_scale / rows)
 *       optimizer step (optim.c); a step with inf/NaN gradients is skipped
 *       report; validate every valid_every steps; checkpoint every
 *       checkpoint_every steps; stop requests at the step boundary
 *
 * The loss of a step is the mean of its rows' losses, so every row weighs
 * the same whatever its number of labelled tokens (InternEvo's loss). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "base/log.h"
#include "train.h"

/* Mean loss over every row of the validation pack (no gradients). */
static void validate(train_run *r)
{
    uint64_t n = r->valid.pack.meta.n_rows;
    size_t T = evo_pack_length(&r->valid.pack.meta);
    double sum = 0;
    for (uint64_t i = 0; i < n; i++)
        sum += evo_transformer_forward(&r->tf, train_data_row(&r->valid, i), T);
    train_report_valid(r, sum / (double)n, n);
}

static int save(train_run *r)
{
    evo_err e;
    if (!r->cfg->ckpt.enable_save_ckpt || !*r->cfg->ckpt.save_ckpt_folder || r->last_saved_step == r->st.step)
        return 0;
    if (train_checkpoint_save(r, &e) < 0) {
        evo_warn("%s", e.msg);
        return -1;
    }
    return 0;
}

/* Runs one batch; returns 0 to go on, else an exit code. */
static int run_batch(train_run *r, const evo_batch_set *skip, const evo_batch_set *poison, const evo_rampup *rampup)
{
    const evo_config *c = r->cfg;
    train_state *st = &r->st;
    uint32_t rows = evo_rampup_rows(rampup, st->batch);
    size_t T = (size_t)c->data.seq_len * c->data.micro_bsz;
    if (evo_batch_set_has(skip, st->batch)) {
        st->rows += rows;
        st->batch++;
        st->skipped_batches++;
        train_report_skip(r, rows);
        return 0;
    }
    double t0 = evo_now(), loss = 0;
    evo_transformer_zero_grad(&r->tf);
    for (uint32_t i = 0; i < rows; i++) {
        const evo_pack_row *row = train_data_row(&r->train, st->rows++);
        st->tokens += T - row->n_pad;
        loss += evo_transformer_forward(&r->tf, row, T);
        evo_transformer_backward(&r->tf, (float)(st->scaler.scale / rows));
    }
    if (evo_batch_set_has(poison, st->batch))
        r->be->fill(r->be, r->tf.grads, NAN, 1);
    train_report rep = {.loss = loss / rows, .rows = rows, .step = train_optim_step(r)};
    st->batch++;
    if (rep.step.applied) {
        st->step++;
        st->adam_steps++;
        st->nonfinite_in_row = 0;
    } else {
        st->skipped_nonfinite++;
        st->nonfinite_in_row++;
    }
    rep.seconds = evo_now() - t0;
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
    if (train_data_open(&r->train, c->data.train_folder, c, &r->model, e) < 0)
        return -1;
    if (*c->data.valid_folder && c->data.valid_every) {
        if (train_data_open(&r->valid, c->data.valid_folder, c, &r->model, e) < 0)
            return -1;
        r->has_valid = 1;
    }
    return 0;
}

static FILE *open_metrics(const evo_config *c, const train_options *opt, evo_err *e)
{
    char path[4200];
    if (opt->metrics_path)
        snprintf(path, sizeof path, "%s", opt->metrics_path);
    else if (c->ckpt.enable_save_ckpt && *c->ckpt.save_ckpt_folder)
        snprintf(path, sizeof path, "%s/metrics.jsonl", c->ckpt.save_ckpt_folder);
    else
        return NULL;
    if (!strcmp(path, "-"))
        return stdout;
    if (!opt->metrics_path && evo_make_dirs(c->ckpt.save_ckpt_folder, e) < 0)
        return NULL;
    FILE *f = fopen(path, "a");
    if (!f)
        evo_errf(e, "%s: %s", path, strerror(errno));
    return f;
}

int train_run_main(evo_config *c, const train_options *opt)
{
    train_run r = {.cfg = c, .opt = opt, .be = evo_backend_cpu(), .comm = evo_comm_single(),
                   .last_saved_step = UINT64_MAX, .valid_loss = NAN};
    evo_err e;
    evo_batch_set skip, poison;
    evo_rampup rampup;
    if (evo_model_describe(&r.model, c, &e) < 0 || evo_batch_set_parse(&skip, c->data.skip_batches, &e) < 0 ||
        evo_batch_set_parse(&poison, opt->inject_nan ? opt->inject_nan : "", &e) < 0 ||
        evo_rampup_parse(&rampup, c->data.rampup_batch_size, c->data.micro_num, &e) < 0 || open_data(&r, &e) < 0)
        evo_fatal("%s", e.msg);
    evo_transformer_init(&r.tf, &r.model, r.be, (size_t)c->data.seq_len * c->data.micro_bsz,
                         (float)c->loss.label_smoothing);
    train_optim_init(&r);
    evo_loss_scaler_init(&r.st.scaler, c);
    if (train_checkpoint_start(&r, &e) < 0)
        evo_fatal("%s", e.msg);
    e.msg[0] = 0;
    r.metrics = open_metrics(c, opt, &e);
    if (!r.metrics && *e.msg)
        evo_fatal("%s", e.msg);
    train_control_init();
    if (r.st.batch < c->data.total_steps)
        evo_info("%s: %.2f M parameters, %" PRIu64 " rows of %u x %u tokens, backend %s; steps %" PRIu64
                 " to %" PRIu64,
                 c->job_name, (double)r.model.n_params / 1e6, r.train.pack.meta.n_rows, c->data.seq_len,
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
            evo_info("signal: stopped at step %" PRIu64 "%s; exit %d", r.st.step,
                     r.last_saved_step == r.st.step ? ", checkpoint saved" : "", rc);
            break;
        }
    }
    train_report_summary(&r);
    if (rc == -1)
        rc = 0;
    else if (!rc && save(&r) < 0)
        rc = EVO_EXIT_FAIL;
    if (r.metrics && r.metrics != stdout)
        fclose(r.metrics);
    train_optim_free(&r);
    evo_transformer_free(&r.tf);
    train_data_close(&r.train);
    if (r.has_valid)
        train_data_close(&r.valid);
    evo_batch_set_free(&skip);
    evo_batch_set_free(&poison);
    evo_model_free(&r.model);
    return rc;
}
