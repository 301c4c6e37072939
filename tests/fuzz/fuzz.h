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
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"

static char fuzz_dir[64], fuzz_path[128];

/* The scratch folder goes when the run ends (a crash leaves it, beside
 * the crashing input libFuzzer saves). */
static inline void fuzz_cleanup(void)
{
    if (*fuzz_path)
        unlink(fuzz_path);
    rmdir(fuzz_dir);
}

/* The bytes as the file NAME in this process's scratch folder (in
 * /dev/shm when there is one: a harness writes its input once per run),
 * for readers that take a path. The path stays valid until the next call,
 * which may name another file: each harness names one. */
static inline const char *fuzz_file(const uint8_t *data, size_t size, const char *name)
{
    if (!*fuzz_dir) {
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/evo-fuzz.%ld", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
                 (long)getpid());
        if (mkdir(fuzz_dir, 0700) != 0)
            abort();
        atexit(fuzz_cleanup);
    }
    snprintf(fuzz_path, sizeof fuzz_path, "%s/%s", fuzz_dir, name);
    FILE *f = fopen(fuzz_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    return fuzz_path;
}

/* Errors name the program, as in the tools; a library error is an answer,
 * not a finding (an evo_fatal, which exits, would be one). */
static inline void fuzz_init(void)
{
    evo_set_progname("evo-fuzz");
}

#endif
