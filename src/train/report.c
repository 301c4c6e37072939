/* report.c - what a user reads while a run goes: one line per batch on
 * stderr, and the same numbers as one JSON object per line in the metrics
 * file (appended to, so a resumed run continues it).
 *
 * Batches are numbered from 0 in the metrics (the numbers skip_batches
 * takes, as InternEvo's batch_count) and from 1 of total_steps on stderr.
 * "step" is the count of optimizer steps taken.
 *
 * Throughput counts every token of the rows (padding too: the model ran on
 * it); TFLOPS uses InternEvo's Megatron formula over seq_len windows, so it
 * compares with InternEvo's logs; MFU divides it by --peak-tflops. */
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <errno.h>

#include "base/log.h"
#include "train.h"

/* A JSON number, or null for inf/NaN (which JSON cannot hold). */
static void json_num(FILE *f, const char *key, double v)
{
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.17g", key, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

/* A line is whole in the file or the run ends: a metrics file that
 * silently lost steps (a full disk) would be believed. */
static void flush_metrics(train_run *r)
{
    if (fflush(r->metrics) != 0 || ferror(r->metrics))
        evo_fatal("%s: write failed: %s", r->metrics_name, strerror(errno));
}

void train_report_step(train_run *r, const train_report *rep)
{
    const evo_config *c = r->cfg;
    double tokens = (double)rep->rows * c->data.seq_len * c->data.micro_bsz;
    double tok_s = rep->seconds > 0 ? tokens / rep->seconds : 0;
    double tflops = tok_s * evo_model_train_flops_per_token(&r->whole, c->data.seq_len, c->model.checkpoint) / 1e12;
    double mfu = r->opt->peak_tflops > 0 ? tflops / r->opt->peak_tflops : NAN;
    const train_state *st = &r->st;
    if (rep->step.applied && isfinite(rep->loss)) {
        size_t window = sizeof r->first_losses / sizeof *r->first_losses;
        if (r->n_losses < window)
            r->first_losses[r->n_losses] = rep->loss;
        r->last_losses[r->n_losses++ % window] = rep->loss;
    }
    r->seconds += rep->seconds;
    r->tokens_run += (uint64_t)tokens;
    if (!evo_quiet) {
        char mfu_text[32] = "";
        if (isfinite(mfu))
            snprintf(mfu_text, sizeof mfu_text, " | mfu %.1f%%", 100 * mfu);
        fprintf(stderr,
                "evo-train: step %" PRIu64 "/%" PRIu64 " | loss %.4f | lr %.3e | grad norm %.3f | %.0f tok/s | "
                "%.3f TFLOPS%s | scale %g | skipped %" PRIu64 "%s\n",
                st->batch, c->data.total_steps, rep->loss, rep->step.lr, rep->step.grad_norm, tok_s, tflops, mfu_text,
                st->scaler.scale, st->skipped_nonfinite + st->skipped_batches,
                rep->step.applied ? "" : " | inf/NaN gradients: step skipped");
    }
    if (!r->metrics)
        return;
    fprintf(r->metrics, "{\"batch\":%" PRIu64 ",\"step\":%" PRIu64 ",\"applied\":%s", st->batch - 1, st->step,
            rep->step.applied ? "true" : "false");
    json_num(r->metrics, "loss", rep->loss);
    json_num(r->metrics, "lr", rep->step.lr);
    json_num(r->metrics, "beta2", rep->step.beta2);
    json_num(r->metrics, "grad_norm", rep->step.grad_norm);
    fprintf(r->metrics, ",\"rows\":%u,\"tokens\":%" PRIu64, rep->rows, st->tokens);
    json_num(r->metrics, "seconds", rep->seconds);
    json_num(r->metrics, "tokens_per_s", tok_s);
    json_num(r->metrics, "tflops", tflops);
    json_num(r->metrics, "mfu", mfu);
    json_num(r->metrics, "loss_scale", st->scaler.scale);
    fprintf(r->metrics, ",\"skipped_nonfinite\":%" PRIu64 ",\"skipped_batches\":%" PRIu64, st->skipped_nonfinite,
            st->skipped_batches);
    if (r->comm->layout.world > 1) {
        for (int g = 0; g < EVO_N_GROUPS; g++)
            fprintf(r->metrics, "%s\"%s\":%" PRIu64, g ? "," : ",\"comm_bytes\":{", evo_group_name((evo_group)g),
                    rep->comm_bytes[g]);
        fputc('}', r->metrics);
        json_num(r->metrics, "comm_seconds", rep->comm_seconds);
    }
    fputs("}\n", r->metrics);
    flush_metrics(r);
}

void train_report_skip(train_run *r, uint32_t rows)
{
    const train_state *st = &r->st;
    if (!evo_quiet)
        fprintf(stderr, "evo-train: step %" PRIu64 "/%" PRIu64 " | skipped (data.skip_batches): %u rows read and dropped\n",
                st->batch, r->cfg->data.total_steps, rows);
    if (r->metrics) {
        fprintf(r->metrics, "{\"batch\":%" PRIu64 ",\"step\":%" PRIu64 ",\"skipped_batch\":true,\"rows\":%u}\n",
                st->batch - 1, st->step, rows);
        flush_metrics(r);
    }
}

void train_report_valid(train_run *r, double loss, uint64_t rows)
{
    r->valid_loss = loss;
    if (!evo_quiet)
        fprintf(stderr, "evo-train: step %" PRIu64 " | validation loss %.4f (%" PRIu64 " rows) | ppl %.2f\n",
                r->st.batch, loss, rows, exp(loss));
    if (r->metrics) {
        fprintf(r->metrics, "{\"batch\":%" PRIu64 ",\"step\":%" PRIu64, r->st.batch - 1, r->st.step);
        json_num(r->metrics, "valid_loss", loss);
        fprintf(r->metrics, ",\"valid_rows\":%" PRIu64 "}\n", rows);
        fflush(r->metrics);
    }
}

void train_report_summary(const train_run *r)
{
    size_t window = sizeof r->first_losses / sizeof *r->first_losses;
    size_t n = r->n_losses < window ? (size_t)r->n_losses : window;
    if (evo_quiet || !n)
        return;
    double first = 0, last = 0;
    for (size_t i = 0; i < n; i++) {
        first += r->first_losses[i];
        last += r->last_losses[i];
    }
    char valid[64] = "";
    if (isfinite(r->valid_loss))
        snprintf(valid, sizeof valid, "; validation loss %.4f", r->valid_loss);
    fprintf(stderr,
            "evo-train: done: %" PRIu64 " steps in %.1f s, %.0f tok/s; loss %.4f -> %.4f (means of the first and "
            "last %zu steps)%s\n",
            r->n_losses, r->seconds, r->seconds > 0 ? (double)r->tokens_run / r->seconds : 0, first / (double)n,
            last / (double)n, n, valid);
}
