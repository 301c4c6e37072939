/* dtype-check - the bit-level fp16 roundings of base/dtype_bits.h (shared
 * by the host casts and the GPU's cast kernel) against the compiler's
 * _Float16 conversions, IEEE 754 round-to-nearest-even:
 *   - fp16 -> fp32 for all 65536 fp16 values;
 *   - fp32 -> fp16 for every fp32 whose low 13 bits sit at or next to a
 *     rounding boundary (0, 0xfff, 0x1000, 0x1001, 0x1fff: exact, just
 *     below, on and just above a tie, just below the next value), for
 *     every sign and exponent, plus 2^24 values from a fixed random stream.
 * NaNs must stay NaN with the sign kept (payloads are not compared).
 * And evo_dtype_round (the emulated backend's rounding in place) against
 * evo_dtype_cast there and back, to bf16 and to fp16, on the same random
 * stream: the same bits, and rounding twice changes nothing.
 * Prints one line per family and "ok" or the first mismatches; exit 1 on any. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/dtype.h"
#include "base/dtype_bits.h"

static unsigned long long bad;

static int is_nan16(uint16_t h)
{
    return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
}

static void check_to_f16(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    _Float16 r = (_Float16)f;
    uint16_t want, got = evo_f16_from_f32_bits(u);
    memcpy(&want, &r, 2);
    int same = isnan(f) ? is_nan16(got) && (got & 0x8000u) == (u >> 16 & 0x8000u) : got == want;
    if (!same && bad++ < 5)
        printf("  f32 0x%08x: got 0x%04x, want 0x%04x\n", u, got, want);
}

int main(void)
{
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 x;
        uint16_t b = (uint16_t)h;
        memcpy(&x, &b, 2);
        float want = (float)x, got;
        uint32_t g = evo_f16_to_f32_bits(b);
        memcpy(&got, &g, 4);
        int same = isnan(want) ? isnan(got) : memcmp(&want, &got, 4) == 0;
        if (!same && bad++ < 5)
            printf("  f16 0x%04x: got %a, want %a\n", h, (double)got, (double)want);
    }
    printf("fp16 -> fp32, all 65536 values: %s\n", bad ? "MISMATCH" : "ok");
    unsigned long long before = bad;
    static const uint32_t low[] = {0, 0xfff, 0x1000, 0x1001, 0x1fff};
    for (uint32_t top = 0; top < (1u << 19); top++)
        for (size_t i = 0; i < sizeof low / sizeof low[0]; i++)
            check_to_f16(top << 13 | low[i]);
    uint64_t s = 0x5eed;
    for (int i = 0; i < 1 << 24; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        check_to_f16((uint32_t)(s >> 32));
    }
    printf("fp32 -> fp16, 2.6M boundary and 16.8M random values: %s\n", bad > before ? "MISMATCH" : "ok");
    enum { N = 1 << 20 };
    static float x[N], rounded[N], again[N];
    static uint16_t half[N];
    for (evo_dtype dt = EVO_BF16; dt <= EVO_F16; dt++) {
        before = bad;
        for (int i = 0; i < N; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t u = (uint32_t)(s >> 32);
            memcpy(&x[i], &u, 4);
        }
        memcpy(rounded, x, sizeof x);
        evo_dtype_round(rounded, dt, N);
        evo_dtype_cast(half, dt, x, EVO_F32, N);
        evo_dtype_cast(again, EVO_F32, half, dt, N);
        for (int i = 0; i < N; i++) {
            int same = isnan(again[i]) ? isnan(rounded[i]) : memcmp(&again[i], &rounded[i], 4) == 0;
            if (!same && bad++ < 5)
                printf("  round %a: got %a, want %a\n", (double)x[i], (double)rounded[i], (double)again[i]);
        }
        memcpy(again, rounded, sizeof rounded);
        evo_dtype_round(again, dt, N);
        for (int i = 0; i < N; i++)
            if (!isnan(rounded[i]) && memcmp(&again[i], &rounded[i], 4) != 0 && bad++ < 5)
                printf("  round twice %a: %a then %a\n", (double)x[i], (double)rounded[i], (double)again[i]);
        printf("evo_dtype_round to %s = cast there and back, and idempotent, 1M random values: %s\n",
               dt == EVO_BF16 ? "bf16" : "fp16", bad > before ? "MISMATCH" : "ok");
    }
    return bad ? 1 : 0;
}
