/* control.c - stopping a run from outside, at a step boundary, with a
 * checkpoint:
 *   - SIGUSR1 or SIGTERM (Slurm sends them before a time limit or a
 *     preemption, e.g. sbatch --signal=USR1@300): save, exit 75;
 *   - the Slurm job's end time (SLURM_JOB_END_TIME, else scontrol's
 *     EndTime), for jobs without --signal: when what is left of it would
 *     not hold ckpt.limit_margin seconds plus another step and a save (as
 *     long as the last ones took), save, exit 75;
 *   - InternEvo's stop file (ckpt.stop_file_path), read at every step: a
 *     number N > 0 saves and stops when N steps are done, -N saves at step
 *     N and goes on, 0 (or no file) does nothing. As in InternEvo, the step
 *     must be reached, not passed: a run resumed beyond N ignores it.
 * Every rank must take the same decision at the same step, so each flag
 * goes through comm->any. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "train.h"

static volatile sig_atomic_t stop_signal;
static double job_end; /* epoch seconds; 0: no end known */

static void on_signal(int sig) { stop_signal = sig; }

/* The end of the Slurm job this process runs in, 0 if it has none (or is
 * not in one): SLURM_JOB_END_TIME (epoch seconds, set by recent Slurm),
 * else EndTime from scontrol (local time; "Unknown" without a limit). */
static double slurm_job_end(void)
{
    const char *end = getenv("SLURM_JOB_END_TIME"), *id = getenv("SLURM_JOB_ID");
    if (end && *end)
        return strtod(end, NULL);
    if (!id || !*id || strspn(id, "0123456789") != strlen(id))
        return 0;
    char cmd[96], line[8192];
    snprintf(cmd, sizeof cmd, "scontrol show job -o %s 2>/dev/null", id);
    FILE *p = popen(cmd, "r");
    double t = 0;
    if (p && fgets(line, sizeof line, p)) {
        const char *at = strstr(line, " EndTime=");
        struct tm tm = {0};
        if (at && strptime(at + 9, "%Y-%m-%dT%H:%M:%S", &tm)) {
            tm.tm_isdst = -1;
            t = (double)mktime(&tm);
        }
    }
    if (p)
        pclose(p);
    return t;
}

void train_control_find_end(const evo_config *c, uint32_t rank)
{
    if (rank == 0 && c->ckpt.limit_margin > 0)
        job_end = slurm_job_end();
}

void train_control_init(const train_run *r)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (job_end > 0)
        evo_info("the job ends in %.0f s: saving on its own %.0f s before (ckpt.limit_margin)",
                 job_end - (double)time(NULL), r->cfg->ckpt.limit_margin);
}

/* Rank 0: whether the job's end is too near for another step and a save. */
static int out_of_time(const train_run *r)
{
    if (job_end <= 0)
        return 0;
    double need = r->cfg->ckpt.limit_margin + r->last_step_seconds + r->last_save_seconds;
    return (double)time(NULL) + need >= job_end;
}

/* The stop file's number, 0 when there is none or it says nothing. */
static long long read_stop_file(const char *path)
{
    FILE *f = *path ? fopen(path, "r") : NULL;
    long long n = 0;
    if (f) {
        if (fscanf(f, "%lld", &n) != 1)
            n = 0;
        fclose(f);
    }
    return n;
}

train_action train_control_poll(const train_run *r)
{
    evo_comm *comm = r->comm;
    if (comm->any(comm, stop_signal != 0 || (comm->layout.rank == 0 && out_of_time(r)))) {
        if (!stop_signal)
            evo_info("the job's time limit is %.0f s away: saving to go on in a requeued job",
                     job_end - (double)time(NULL));
        return TRAIN_REQUEUE;
    }
    long long n = comm->layout.rank == 0 ? read_stop_file(r->cfg->ckpt.stop_file_path) : 0;
    long long step = (long long)r->st.step;
    if (comm->any(comm, n > 0 && step == n))
        return TRAIN_SAVE_AND_STOP;
    if (comm->any(comm, n < 0 && step == -n))
        return TRAIN_SAVE;
    return TRAIN_GO_ON;
}
