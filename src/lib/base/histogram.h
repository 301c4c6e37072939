/* histogram.h - lengths in power-of-two buckets, printed as a bar chart
 * (evo-tokenize --info and evo-pack --info show document lengths alike). */
#ifndef EVO_HISTOGRAM_H
#define EVO_HISTOGRAM_H

#include <stdint.h>

/* Bucket 0 holds 0, bucket 1 holds 1, bucket b holds [2^(b-1), 2^b). */
typedef struct {
    uint64_t count[65];
} evo_histogram;

static inline void evo_histogram_add(evo_histogram *h, uint64_t len)
{
    h->count[len ? 64 - __builtin_clzll(len) : 0]++;
}

/* Prints "title" and one line per bucket up to the last non-empty one. */
void evo_histogram_print(const evo_histogram *h, const char *title);

#endif
