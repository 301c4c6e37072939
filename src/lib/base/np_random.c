#include "base/np_random.h"

enum { N = 624, M = 397 };

void evo_np_random_seed(evo_np_random *r, uint32_t seed)
{
    /* Knuth's initializer, as numpy's mt19937_seed. */
    r->key[0] = seed;
    for (int i = 1; i < N; i++)
        r->key[i] = 1812433253u * (r->key[i - 1] ^ (r->key[i - 1] >> 30)) + (uint32_t)i;
    r->pos = N;
}

static void regenerate(evo_np_random *r)
{
    static const uint32_t mag01[2] = {0, 0x9908b0dfu};
    for (int i = 0; i < N; i++) {
        uint32_t y = (r->key[i] & 0x80000000u) | (r->key[(i + 1) % N] & 0x7fffffffu);
        r->key[i] = r->key[(i + M) % N] ^ (y >> 1) ^ mag01[y & 1];
    }
    r->pos = 0;
}

uint32_t evo_np_random_u32(evo_np_random *r)
{
    if (r->pos == N)
        regenerate(r);
    uint32_t y = r->key[r->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t evo_np_random_interval(evo_np_random *r, uint64_t max)
{
    if (max == 0)
        return 0;
    uint64_t mask = max, v;
    for (int s = 1; s <= 32; s *= 2)
        mask |= mask >> s;
    if (max <= 0xffffffffu) {
        while ((v = evo_np_random_u32(r) & mask) > max)
            ;
    } else { /* two draws, high word first */
        do {
            uint64_t hi = evo_np_random_u32(r);
            v = ((hi << 32) | evo_np_random_u32(r)) & mask;
        } while (v > max);
    }
    return v;
}
