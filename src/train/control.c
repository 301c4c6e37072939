/* control.c - stopping a run from outside, at a step boundary, with a
 * checkpoint:
 *   - SIGUSR1 or SIGTERM (Slurm sends them before a time limit or a
 *     preemption, e.g. sbatch --signal=B:USR1@300): save, exit 75;
 *   - InternEvo's stop file (ckpt.stop_file_path), read at every step: a
 *     number N > 0 saves and stops when N steps are done, -N saves at step
 *     N and goes on, 0 (or no file) does nothing. As in InternEvo, the step
 *     must be reached, not passed: a run resumed beyond N ignores it.
 * Every rank must take the same decision at the same step, so each flag
 * goes through comm->any. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "train.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

void train_control_init(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
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
    if (comm->any(comm, stop_signal != 0))
        return TRAIN_REQUEUE;
    long long n = comm->layout.rank == 0 ? read_stop_file(r->cfg->ckpt.stop_file_path) : 0;
    long long step = (long long)r->st.step;
    if (comm->any(comm, n > 0 && step == n))
        return TRAIN_SAVE_AND_STOP;
    if (comm->any(comm, n < 0 && step == -n))
        return TRAIN_SAVE;
    return TRAIN_GO_ON;
}
