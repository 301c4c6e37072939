/* np_random.h - numpy's legacy RandomState (MT19937), bit for bit.
 *
 * InternEvo shuffles documents with np.random.RandomState(1024).shuffle and
 * its batch sampler shuffles rows the same way; reproducing the generator
 * exactly lets an evo run see the very order an InternEvo run would, and
 * lets tests compare against numpy itself. */
#ifndef EVO_NP_RANDOM_H
#define EVO_NP_RANDOM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint32_t key[624];
    int pos;
} evo_np_random;

/* RandomState(seed) for an integer seed in [0, 2^32). */
void evo_np_random_seed(evo_np_random *r, uint32_t seed);
uint32_t evo_np_random_u32(evo_np_random *r);
/* A uniform integer in [0, max] by masked rejection (numpy's random_interval). */
uint64_t evo_np_random_interval(evo_np_random *r, uint64_t max);
/* rng.shuffle(a) for a 1-D array of n elements of size bytes (at most 64):
 * Fisher-Yates from the end. Inline, so a constant size becomes plain moves. */
static inline void evo_np_random_shuffle(evo_np_random *r, void *base, size_t n, size_t size)
{
    unsigned char *a = base, tmp[64];
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)evo_np_random_interval(r, i);
        memcpy(tmp, a + i * size, size);
        memcpy(a + i * size, a + j * size, size);
        memcpy(a + j * size, tmp, size);
    }
}

#endif
