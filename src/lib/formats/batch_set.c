/* batch_set.c - batch sets and the batch size ramp (batch_set.h). */
#include "formats/batch_set.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* A decimal batch index at *p, advancing it. */
static int parse_index(const char **p, uint64_t *out)
{
    char *end;
    if (**p < '0' || **p > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(*p, &end, 10);
    if (errno)
        return -1;
    *out = v;
    *p = end;
    return 0;
}

int evo_batch_set_parse(evo_batch_set *set, const char *text, evo_err *e)
{
    *set = (evo_batch_set){0};
    const char *p = text;
    size_t cap = 0;
    while (*p) {
        uint64_t a, b;
        while (*p == ' ')
            p++;
        if (parse_index(&p, &a) < 0)
            goto bad;
        b = a;
        if (*p == '-') {
            p++;
            if (parse_index(&p, &b) < 0 || b < a)
                goto bad;
        }
        while (*p == ' ')
            p++;
        if (*p && *p++ != ',')
            goto bad;
        if (set->n == cap) {
            cap = cap ? 2 * cap : 8;
            set->ranges = evo_realloc(set->ranges, cap * sizeof *set->ranges);
        }
        set->ranges[set->n][0] = a;
        set->ranges[set->n++][1] = b;
    }
    return 0;
bad:
    evo_batch_set_free(set);
    return evo_errf(e, "'%s': want batch numbers and ranges like \"100-200,350\" (at '%.20s')", text, p);
}

int evo_batch_set_has(const evo_batch_set *set, uint64_t batch)
{
    for (size_t i = 0; i < set->n; i++)
        if (batch >= set->ranges[i][0] && batch <= set->ranges[i][1])
            return 1;
    return 0;
}

void evo_batch_set_free(evo_batch_set *set)
{
    free(set->ranges);
    *set = (evo_batch_set){0};
}

int evo_rampup_parse(evo_rampup *r, const char *text, uint32_t micro_num, evo_err *e)
{
    *r = (evo_rampup){.start = micro_num, .incr = 0, .every = 1, .max = micro_num};
    if (!*text)
        return 0;
    unsigned start, incr, every;
    char rest;
    if (sscanf(text, "%u %u %u %c", &start, &incr, &every, &rest) != 3 || !start || !every)
        return evo_errf(e, "rampup_batch_size '%s': want \"start incr every\", start and every at least 1", text);
    if (start > micro_num)
        return evo_errf(e, "rampup_batch_size '%s': start %u exceeds micro_num %u", text, start, micro_num);
    r->start = start;
    r->incr = incr;
    r->every = every;
    return 0;
}

uint32_t evo_rampup_rows(const evo_rampup *r, uint64_t batch)
{
    if (!r->incr)
        return r->start;
    uint64_t k = batch / r->every, to_max = (r->max - r->start + r->incr - 1) / r->incr;
    return k >= to_max ? r->max : r->start + r->incr * (uint32_t)k;
}
