#include "base/histogram.h"

#include <stdio.h>

void evo_histogram_print(const evo_histogram *h, const char *title)
{
    int top = 0;
    uint64_t max_count = 0;
    for (int b = 0; b <= 64; b++)
        if (h->count[b]) {
            top = b;
            max_count = h->count[b] > max_count ? h->count[b] : max_count;
        }
    printf("%s\n", title);
    for (int b = 0; b <= top; b++) {
        char range[48];
        if (b <= 1)
            snprintf(range, sizeof range, "%d", b);
        else
            snprintf(range, sizeof range, "%llu-%llu", 1ULL << (b - 1), (1ULL << b) - 1);
        int bar = max_count ? (int)(40 * h->count[b] / max_count) : 0;
        printf("  %15s %12llu %.*s\n", range, (unsigned long long)h->count[b], bar,
               "########################################");
    }
}
