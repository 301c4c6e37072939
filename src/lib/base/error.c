#include "base/error.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const char *progname = "evo";

void evo_set_progname(const char *name) { progname = name; }
const char *evo_progname(void) { return progname; }

int evo_errf(evo_err *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int evo_err_prefix(evo_err *e, const char *fmt, ...)
{
    if (e) {
        char prefix[512], old[sizeof e->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, e->msg, sizeof old);
        size_t n = strlen(prefix);
        if (n > sizeof e->msg - 3)
            n = sizeof e->msg - 3;
        memcpy(e->msg, prefix, n);
        memcpy(e->msg + n, ": ", 2);
        size_t rest = sizeof e->msg - n - 3, oldlen = strlen(old);
        if (oldlen > rest)
            oldlen = rest;
        memcpy(e->msg + n + 2, old, oldlen);
        e->msg[n + 2 + oldlen] = '\0';
    }
    return -1;
}

static void vreport(const char *fmt, va_list ap)
{
    fflush(stdout);
    fprintf(stderr, "%s: ", progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static void (*fatal_exit)(int status);

void evo_set_fatal_exit(void (*fn)(int status)) { fatal_exit = fn; }

void evo_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    if (fatal_exit)
        fatal_exit(EVO_EXIT_FAIL);
    exit(EVO_EXIT_FAIL);
}

void evo_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", progname);
    exit(EVO_EXIT_USAGE);
}

void evo_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
}

static void *check(void *p, size_t n)
{
    if (!p && n)
        evo_fatal("out of memory (allocating %zu bytes)", n);
    return p;
}

void *evo_malloc(size_t n) { return check(malloc(n ? n : 1), n); }
void *evo_calloc(size_t n, size_t size) { return check(calloc(n ? n : 1, size ? size : 1), n * size); }
void *evo_realloc(void *p, size_t n) { return check(realloc(p, n ? n : 1), n); }
char *evo_strdup(const char *s) { return check(strdup(s), strlen(s) + 1); }

/* jansson (the JSON of configs, state.json, tokenizer.json, JSONL input)
 * allocates through evo_malloc: memory running out inside a parse ends
 * with our one line, where jansson 2.14 itself crashes (a 200 MB JSONL
 * record under ulimit -v). A constructor, so that no tool can forget it. */
__attribute__((constructor)) static void json_allocates_checked(void) { json_set_alloc_funcs(evo_malloc, free); }

void *evo_malloc_large(size_t n)
{
    const size_t huge = (size_t)2 << 20;
    if (n < huge)
        return evo_malloc(n);
    void *p = NULL;
    size_t rounded = (n + huge - 1) / huge * huge;
    if (posix_memalign(&p, huge, rounded) != 0)
        evo_fatal("out of memory (%zu bytes)", n);
    madvise(p, rounded, MADV_HUGEPAGE); /* a hint: without THP it is plain memory */
    return p;
}

uint64_t evo_usage_number(const char *s, const char *what, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || s[0] == '-' || errno || v < min || v > max)
        evo_usage_error("%s wants a whole number from %llu to %llu, not '%s'", what, (unsigned long long)min,
                        (unsigned long long)max, s);
    return v;
}
