/* error.h - error reporting shared by every evo tool.
 *
 * Library code never exits: it fills an evo_err and returns -1 (or NULL).
 * Programs decide: evo_fatal() prints "evo-xxx: what went wrong" on stderr
 * and exits with EVO_EXIT_FAIL. Exit codes follow the Unix convention every
 * tool documents: 0 ok, 1 failure, 2 usage. */
#ifndef EVO_ERROR_H
#define EVO_ERROR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum { EVO_EXIT_OK = 0, EVO_EXIT_FAIL = 1, EVO_EXIT_USAGE = 2 };

typedef struct {
    char msg[1024];
} evo_err;

/* Formats a message into e (if not NULL) and returns -1, so that a library
 * function can end with `return evo_errf(e, "...")`. */
int evo_errf(evo_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the existing message: "prefix: old message". Returns -1. */
int evo_err_prefix(evo_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The program name used in every message ("evo-tokenize"); set once by main. */
void evo_set_progname(const char *name);
const char *evo_progname(void);

/* "evo-xxx: <message>\n" on stderr, then exit(EVO_EXIT_FAIL), or the
 * fatal exit a program set. */
_Noreturn void evo_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* What evo_fatal calls instead of exit (it should not return; exit follows
 * if it does): a process whose failure must end more than itself, a rank
 * of a multi-rank job whose peers would wait for it, sets it. NULL: exit. */
void evo_set_fatal_exit(void (*fn)(int status));
/* Same for usage errors: adds a hint to --help and exits EVO_EXIT_USAGE. */
_Noreturn void evo_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A whole number from min to max given on the command line for option
 * what; anything else is a usage error. */
uint64_t evo_usage_number(const char *s, const char *what, uint64_t min, uint64_t max);
/* "evo-xxx: <message>\n" on stderr without exiting. */
void evo_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation that cannot fail: out of memory is fatal in every tool. */
void *evo_malloc(size_t n);
void *evo_calloc(size_t n, size_t size);
void *evo_realloc(void *p, size_t n);
char *evo_strdup(const char *s);
/* For arrays of many megabytes: 2 MB aligned and marked for transparent
 * huge pages, so that first use faults once per 2 MB rather than once per
 * 4 KB page (a fault is costly, on VMs above all). Released with free(). */
void *evo_malloc_large(size_t n);

#endif
