/* common.c - what several subcommands print or check the same way. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evockpt.h"

void open_or_die(evo_ckpt_shards *s, const char *dir, unsigned flags)
{
    evo_err e;
    if (evo_ckpt_shards_open(s, dir, flags, &e) < 0)
        evo_fatal("%s", e.msg);
}

void format_size(char *buf, size_t n, uint64_t bytes)
{
    static const char *const units[] = {"kB", "MB", "GB", "TB"};
    if (bytes < 1000) {
        snprintf(buf, n, "%" PRIu64 " B", bytes);
        return;
    }
    double v = (double)bytes / 1000;
    int u = 0;
    for (; v >= 1000 && u < 3; u++)
        v /= 1000;
    snprintf(buf, n, "%.2f %s", v, units[u]);
}

uint64_t output_step(const char *dir)
{
    uint64_t step;
    struct stat st;
    if (!evo_ckpt_dir_step(dir, &step))
        evo_usage_error("%s: a checkpoint directory is named by its step (e.g. %s/20)", dir, dir);
    if (lstat(dir, &st) == 0)
        evo_fatal("%s: already exists", dir);
    return step;
}

void refuse_terminal(const char *output, const char *what)
{
    if (!strcmp(output, "-") && isatty(STDOUT_FILENO))
        evo_usage_error("refusing to write %s to a terminal (use -o FILE or a pipe)", what);
}
