/* log.h - informational messages and the progress meter (stderr only).
 *
 * Progress shows only when stderr is a terminal or the user asked for it
 * (--progress), so logs of batch jobs stay clean; -q silences evo_info. */
#ifndef EVO_LOG_H
#define EVO_LOG_H

#include <stdint.h>

extern int evo_quiet;

/* "evo-xxx: message" on stderr unless -q. */
void evo_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Wall-clock seconds from a monotonic clock. */
double evo_now(void);

typedef struct {
    int enabled;
    double start, last;
    uint64_t total; /* input bytes expected, 0 if unknown (a pipe) */
} evo_progress;

/* mode: 1 = forced on (--progress), 0 = auto (on if stderr is a tty and
 * not quiet). */
void evo_progress_start(evo_progress *p, int forced, uint64_t total_bytes);
/* Redraws at most 5 times a second: bytes done, MB/s, ETA, items done. */
void evo_progress_update(evo_progress *p, uint64_t done_bytes, uint64_t items, const char *unit);
void evo_progress_end(evo_progress *p);

#endif
