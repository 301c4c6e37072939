/* fuzz.h - what the libFuzzer harnesses of tests/fuzz/ share. Each harness
 * (fuzz-NAME.c) hands one reader of evo's arbitrary bytes as its file and
 * asks it for everything it offers; a reader must answer with an error or
 * a result, never a crash, a leak, a hang or a sanitizer report.
 * Built and run by `make fuzz` (tests/fuzz/README.md). */
#ifndef EVO_FUZZ_H
#define EVO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"

/* The bytes as the file NAME in this process's scratch folder (in
 * /dev/shm when there is one: a harness writes its input once per run),
 * for readers that take a path. The path stays valid until the next call. */
static inline const char *fuzz_file(const uint8_t *data, size_t size, const char *name)
{
    static char dir[64], path[128];
    if (!*dir) {
        snprintf(dir, sizeof dir, "%s/evo-fuzz.%ld", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
                 (long)getpid());
        char cmd[96];
        snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
        if (system(cmd) != 0)
            abort();
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    return path;
}

/* A library error is an answer, not a finding: errors go to the evo_err,
 * and a fatal one (evo_fatal) would be a bug the harness reports by
 * aborting. Quiet warnings keep libFuzzer's output readable. */
static inline void fuzz_init(void)
{
    static int done;
    if (!done) {
        done = 1;
        evo_set_progname("evo-fuzz");
    }
}

#endif
