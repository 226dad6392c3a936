/* CPU detection, done once, and the process-wide instruction-set level (see cpu.h). */
#include "cpu.h"

#include <stdatomic.h>

unsigned cnn_cpu_levels(void)
{
    static atomic_uint levels = 0;   /* 0: not detected yet (baseline's bit is always set once it is) */
    unsigned found = atomic_load(&levels);
    if (found != 0)
        return found;
    found = 1u << CNN_SIMD_BASELINE;
#if CNN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        found |= 1u << CNN_SIMD_AVX2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
            found |= 1u << CNN_SIMD_AVX512;
    }
#endif
    atomic_store(&levels, found);   /* two threads detecting at once store the same value */
    return found;
}

int cnn_cpu_best_level(void)
{
    const unsigned levels = cnn_cpu_levels();
    int best = CNN_SIMD_BASELINE;
    for (int level = 0; level < CNN_SIMD_NLEVELS; ++level)
        if (levels & (1u << level))
            best = level;
    return best;
}

static atomic_int cnn_level = -1;   /* -1: the best level, decided at first use */

int cnn_simd_get(void)
{
    int level = atomic_load(&cnn_level);
    if (level < 0) {
        level = cnn_cpu_best_level();
        atomic_store(&cnn_level, level);
    }
    return level;
}

int cnn_simd_set(int level)
{
    if (level < 0 || level >= CNN_SIMD_NLEVELS || !(cnn_cpu_levels() & (1u << level)))
        return -1;
    atomic_store(&cnn_level, level);
    return 0;
}
