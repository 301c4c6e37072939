/* folder.c - a save folder as a whole: ls and prune. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/log.h"
#include "evockpt.h"

/* The training loss of each step, from evo-train's metrics.jsonl: the
 * last line of a step wins (a run resumed from an earlier checkpoint
 * repeats steps). */
typedef struct {
    uint64_t *step;
    double *loss;
    size_t n, cap;
} losses;

static void read_losses(losses *l, const char *folder)
{
    *l = (losses){0};
    char *path = evo_path_join(folder, "metrics.jsonl");
    evo_buf text = {0};
    if (evo_read_file(path, &text, NULL) == 0) {
        evo_buf_push(&text, '\0');
        size_t cap2 = 0;
        for (char *line = strtok(text.data, "\n"); line; line = strtok(NULL, "\n")) {
            json_t *j = json_loads(line, 0, NULL);
            json_t *step = json_object_get(j, "step"), *loss = json_object_get(j, "loss");
            if (json_is_integer(step) && json_integer_value(step) >= 0 && json_is_number(loss)) {
                l->step = evo_grow(l->step, &l->cap, l->n + 1, sizeof *l->step, 64);
                l->loss = evo_grow(l->loss, &cap2, l->n + 1, sizeof *l->loss, 64);
                l->step[l->n] = (uint64_t)json_integer_value(step);
                l->loss[l->n++] = json_number_value(loss);
            }
            json_decref(j);
        }
    }
    evo_buf_free(&text);
    free(path);
}

static int loss_at(const losses *l, uint64_t step, double *loss)
{
    for (size_t i = l->n; i-- > 0;)
        if (l->step[i] == step) {
            *loss = l->loss[i];
            return 1;
        }
    return 0;
}

/* Bytes of the plain files in dir. */
static uint64_t dir_bytes(const char *dir)
{
    uint64_t total = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char *p = evo_path_join(dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
        free(p);
    }
    if (d)
        closedir(d);
    return total;
}

static void describe(char *buf, size_t n, const evo_ckpt_entry *en)
{
    switch (en->status) {
    case EVO_CKPT_COMPLETE: snprintf(buf, n, "complete"); break;
    case EVO_CKPT_INCOMPLETE: snprintf(buf, n, "incomplete: no marker (being written, or its save died)"); break;
    case EVO_CKPT_TEMP:
        snprintf(buf, n, "%s: %s (process %ld)", en->name, en->alive ? "being written" : "abandoned", en->pid);
        break;
    case EVO_CKPT_OLD:
        snprintf(buf, n, "%s: %s (process %ld)", en->name, en->alive ? "being replaced" : "abandoned", en->pid);
        break;
    }
}

static void scan_or_die(const char *dir, evo_ckpt_entry **en, size_t *n)
{
    struct stat st;
    evo_err e;
    if (stat(dir, &st) < 0)
        evo_fatal("%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        evo_fatal("%s: not a directory", dir);
    if (evo_ckpt_scan(dir, en, n, &e) < 0)
        evo_fatal("%s", e.msg);
}

int cmd_ls(const ckpt_opts *o, char **args, int n_args)
{
    (void)o;
    (void)n_args;
    const char *folder = args[0];
    evo_ckpt_entry *en;
    size_t n;
    scan_or_die(folder, &en, &n);
    losses l;
    read_losses(&l, folder);
    int rc = EVO_EXIT_OK;
    printf("%-8s %12s %10s %10s %-16s  %s\n", "step", "tokens", "loss", "size", "job", "status");
    for (size_t i = 0; i < n; i++) {
        char *dir = evo_path_join(folder, en[i].name), tokens[32] = "-", loss[32] = "-", size[32], status[160],
             job[64] = "-";
        if (en[i].status == EVO_CKPT_COMPLETE) {
            evo_ckpt_manifest m;
            evo_ckpt_state st;
            evo_err e;
            char *spath = evo_path_join(dir, EVO_CKPT_STATE_FILE);
            if (evo_ckpt_read_marker(&m, dir, &e) < 0 ||
                (evo_ckpt_manifest_find(&m, EVO_CKPT_STATE_FILE) && evo_ckpt_read_state(&st, spath, &e) < 0)) {
                evo_warn("%s", e.msg);
                snprintf(tokens, sizeof tokens, "?");
                rc = EVO_EXIT_FAIL;
            } else if (evo_ckpt_manifest_find(&m, EVO_CKPT_STATE_FILE)) {
                snprintf(tokens, sizeof tokens, "%" PRIu64, st.tokens);
                if (*st.job_id && st.job_restarts)
                    snprintf(job, sizeof job, "%s+%" PRIu64, st.job_id, st.job_restarts);
                else if (*st.job_id)
                    snprintf(job, sizeof job, "%s", st.job_id);
            }
            evo_ckpt_manifest_free(&m);
            free(spath);
        }
        double v;
        if (loss_at(&l, en[i].step, &v))
            snprintf(loss, sizeof loss, "%.4f", v);
        format_size(size, sizeof size, dir_bytes(dir));
        describe(status, sizeof status, &en[i]);
        printf("%-8" PRIu64 " %12s %10s %10s %-16s  %s\n", en[i].step, tokens, loss, size, job, status);
        free(dir);
    }
    free(l.step);
    free(l.loss);
    free(en);
    return rc;
}

int cmd_prune(const ckpt_opts *o, char **args, int n_args)
{
    (void)n_args;
    const char *folder = args[0];
    evo_ckpt_entry *before, *after;
    size_t n_before, n_after;
    evo_err e;
    scan_or_die(folder, &before, &n_before);
    if (evo_ckpt_prune(folder, o->keep, &e) < 0)
        evo_fatal("%s", e.msg);
    scan_or_die(folder, &after, &n_after);
    /* what the prune removed: complete before, gone after */
    evo_buf removed = {0};
    size_t n_removed = 0;
    for (size_t i = 0; i < n_before; i++) {
        int kept = 0;
        for (size_t j = 0; j < n_after && !kept; j++)
            kept = !strcmp(after[j].name, before[i].name);
        if (before[i].status == EVO_CKPT_COMPLETE && !kept) {
            evo_buf_append(&removed, " ", 1);
            evo_buf_append(&removed, before[i].name, strlen(before[i].name));
            n_removed++;
        }
    }
    evo_buf_push(&removed, '\0');
    evo_info("%s: removed %zu checkpoint%s%s%s, kept the newest %u", folder, n_removed, n_removed == 1 ? "" : "s",
             n_removed ? ":" : "", removed.data, o->keep);
    evo_buf_free(&removed);
    free(before);
    free(after);
    return EVO_EXIT_OK;
}
