/* simd.h - hot loops that the compiler vectorizes, built for the widest
 * vector unit the CPU has.
 *
 * The build's baseline stays plain x86-64 (SSE2), so the binaries run on
 * any x86-64 machine; a function marked EVO_VECTOR_CLONES is compiled once
 * more for x86-64-v3 (AVX2) and x86-64-v4 (AVX-512), and the loader picks
 * the clone the CPU runs (an ifunc, resolved once). Every clone gives the
 * same bits: with -std=c11 GCC does not contract a*b+c into an FMA, and it
 * never reorders a float sum (a sum vectorizes only where the code spells
 * out its lanes, as evo_cpu_sum does), so wider vectors change the speed
 * of a loop and nothing else. */
#ifndef EVO_SIMD_H
#define EVO_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EVO_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define EVO_VECTOR_CLONES
#endif

#endif
