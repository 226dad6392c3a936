/* Probes of the machine's floating-point peak, for benchmarks/bench_gemm.py's "fraction of peak" column
 * (the library's kernels never call them).
 *
 * cnn_fma_probe(kind, iters) returns the seconds of CPU time the calling thread spends on:
 *   kind 0: iters dependent float FMAs, one chain: iters * latency cycles (4 on the x86 cores that have
 *           FMA, Haswell to Zen 5), so the clock frequency is iters * 4 / seconds;
 *   kind 1: iters steps of 12 independent chains of 256-bit float FMAs (AVX2): 12 * 16 FLOPs a step;
 *   kind 2: the same with 512-bit FMAs (AVX-512): 12 * 32 FLOPs a step.
 * 12 chains of latency 4 keep up to 3 FMA pipes busy, so kinds 1 and 2 run at the core's FMA throughput.
 * Returns -1 where the CPU or the build lacks the instructions. */
#include "gemm.h"

#include <time.h>

#if CNN_X86
#include <immintrin.h>
#include "avx2.h"
#include "avx512.h"
#endif

/* The calling thread's CPU time: the time slices other processes take on a busy machine do not count. */
static double cnn_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#if CNN_X86
/* x stays near 1 and the chains near 0 (x * c + y, |x - 1| tiny, y tiny): no overflow, no denormals. */
#define FMA_CHAINS(W, SET1, FMA)                                                                         \
    W c0 = SET1(0.f), c1 = SET1(1e-3f), c2 = SET1(2e-3f), c3 = SET1(3e-3f), c4 = SET1(4e-3f);             \
    W c5 = SET1(5e-3f), c6 = SET1(6e-3f), c7 = SET1(7e-3f), c8 = SET1(8e-3f), c9 = SET1(9e-3f);           \
    W c10 = SET1(1e-2f), c11 = SET1(1.1e-2f);                                                            \
    const W x = SET1(0.9999999f), y = SET1(1e-7f);                                                       \
    const double t0 = cnn_seconds();                                                                     \
    for (long i = 0; i < iters; ++i) {                                                                   \
        c0 = FMA(c0, x, y); c1 = FMA(c1, x, y); c2 = FMA(c2, x, y); c3 = FMA(c3, x, y);                   \
        c4 = FMA(c4, x, y); c5 = FMA(c5, x, y); c6 = FMA(c6, x, y); c7 = FMA(c7, x, y);                   \
        c8 = FMA(c8, x, y); c9 = FMA(c9, x, y); c10 = FMA(c10, x, y); c11 = FMA(c11, x, y);               \
    }                                                                                                    \
    const double t = cnn_seconds() - t0;                                                                 \
    /* keep the chains live: their sum goes to a volatile */                                            \
    volatile W sink = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;                        \
    (void)sink;                                                                                          \
    return t;

CNN_AVX2 static double cnn_probe_avx2(long iters)
{
    FMA_CHAINS(__m256, _mm256_set1_ps, _mm256_fmadd_ps)
}

CNN_AVX512 static double cnn_probe_avx512(long iters)
{
    FMA_CHAINS(__m512, _mm512_set1_ps, _mm512_fmadd_ps)
}

CNN_AVX2 static double cnn_probe_latency(long iters)
{
    __m128 c = _mm_set1_ps(0.f);
    const __m128 x = _mm_set1_ps(0.9999999f), y = _mm_set1_ps(1e-7f);
    const double t0 = cnn_seconds();
    for (long i = 0; i < iters; ++i)
        c = _mm_fmadd_ss(c, x, y);
    const double t = cnn_seconds() - t0;
    volatile __m128 sink = c;
    (void)sink;
    return t;
}
#endif

double cnn_fma_probe(int kind, long iters)
{
#if CNN_X86
    /* the CPU's own flags: cpu.c's detection lives in another extension module */
    __builtin_cpu_init();
    const int fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (kind == 0 && fma)
        return cnn_probe_latency(iters);
    if (kind == 1 && fma)
        return cnn_probe_avx2(iters);
    if (kind == 2 && fma && __builtin_cpu_supports("avx512f"))
        return cnn_probe_avx512(iters);
#endif
    (void)kind;
    (void)iters;
    return -1;
}
