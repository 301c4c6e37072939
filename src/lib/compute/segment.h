/* segment.h - which document of a packed row a token is in: the segment
 * [s0, s1) of cu_seqlens (backend.h's attention) holding token t, by binary
 * search; cu[0] = 0 <= t < cu[n_seg]. Shared by the CPU reference
 * attention and the GPU's kernels. */
#ifndef EVO_SEGMENT_H
#define EVO_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "base/host_device.h"

EVO_HOST_DEVICE static inline void evo_segment_of(const int32_t *cu, int n_seg, size_t t, size_t *s0, size_t *s1)
{
    int lo = 0, hi = n_seg - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if ((size_t)cu[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    *s0 = (size_t)cu[lo];
    *s1 = (size_t)cu[lo + 1];
}

#endif
