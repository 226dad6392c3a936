/* Instruction-set levels, the CPU's support for them, and the one process-wide level every kernel uses.
 *
 * A level names a set of kernels, not just CPU flags: baseline is portable C (SSE2 on x86-64), avx2 needs
 * AVX2 and FMA, avx512 needs AVX-512 F, VL, BW and DQ (Skylake-X and later, Zen 4). Each kernel family keeps
 * one table of kernels per level (gemm.c, maxpool2x2.c, activations.c), BLIS's context per architecture,
 * and indexes it by the level in use. Only the packed GEMM has AVX-512 kernels (gemm_avx512.c); the other
 * entries of the avx512 tables are the AVX2 kernels.
 *
 * cpu.c is compiled into cnn_core._config alone, so the process holds one copy of the level (as threads.c
 * holds the thread count); every other extension module reads it through the cnn_simd_level_fn its C
 * kernels receive at import (cnn_gemm_init, cnn_act_init, cnn_maxpool2x2_init).
 */
#ifndef CNN_CORE_CPU_H
#define CNN_CORE_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define CNN_X86 1
#else
#define CNN_X86 0
#endif

typedef enum {
    CNN_SIMD_BASELINE = 0,
    CNN_SIMD_AVX2 = 1,
    CNN_SIMD_AVX512 = 2,
    CNN_SIMD_NLEVELS = 3
} cnn_simd_level;

/* The level in use: what the kernels' dispatch tables are indexed by. */
typedef int (*cnn_simd_level_fn)(void);

/* Bit (1 << level) set for every level this CPU can run; baseline always. */
unsigned cnn_cpu_levels(void);
/* The best level this CPU can run. */
int cnn_cpu_best_level(void);
/* The level in use (the best one until cnn_simd_set changes it). */
int cnn_simd_get(void);
/* Use `level` from now on; returns 0, or -1 (nothing changed) when the CPU cannot run it. Kernels already
 * running keep the level they started with. */
int cnn_simd_set(int level);

#ifdef __cplusplus
}
#endif

#endif
