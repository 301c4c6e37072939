#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"

int evo_quiet;

void evo_info(const char *fmt, ...)
{
    if (evo_quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", evo_progname());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double evo_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void evo_progress_start(evo_progress *p, int forced, uint64_t total_bytes)
{
    p->enabled = forced || (!evo_quiet && isatty(STDERR_FILENO));
    p->start = p->last = evo_now();
    p->total = total_bytes;
}

void evo_progress_update(evo_progress *p, uint64_t done_bytes, uint64_t items, const char *unit)
{
    if (!p->enabled)
        return;
    double now = evo_now();
    if (now - p->last < 0.2)
        return;
    p->last = now;
    double secs = now - p->start, mb = (double)done_bytes / 1e6, rate = secs > 0 ? mb / secs : 0;
    if (p->total && done_bytes <= p->total && rate > 0) {
        double eta = ((double)(p->total - done_bytes) / 1e6) / rate;
        fprintf(stderr, "\r%s: %.1f/%.1f MB (%.0f%%) %.1f MB/s ETA %02d:%02d, %llu %s   ", evo_progname(), mb,
                (double)p->total / 1e6, 100.0 * (double)done_bytes / (double)p->total, rate, (int)eta / 60,
                (int)eta % 60, (unsigned long long)items, unit);
    } else {
        fprintf(stderr, "\r%s: %.1f MB %.1f MB/s, %llu %s   ", evo_progname(), mb, rate, (unsigned long long)items,
                unit);
    }
    fflush(stderr);
}

void evo_progress_end(evo_progress *p)
{
    if (p->enabled && p->last > p->start)
        fputc('\n', stderr);
}
