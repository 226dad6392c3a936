/* The plan interpreter (plan.h): plan_template.h's ops instantiated per dtype and instruction-set level,
 * one table of chunk runners per level, and the batch loop over chunks with its thread team. */
#include "plan.h"
#include "activations.h"
#include "gemm.h"
#include "thresholds.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if CNN_CORE_OPENMP
#include <omp.h>
#endif

/* Threads for an op's own loop of `units` independent pieces of `work` multiply-adds: a team only when the
 * plan runs one chunk at a time (none inside its chunk team) and each thread gets enough work. */
static int cnn_plan_team_for(double work, ptrdiff_t units);

/* baseline (portable C; SSE2 on x86-64) */
#define T float
#define UINT uint32_t
#define G(name) s_base_##name
#define GEMM cnn_sgemm_strided
#define ACT_FWD cnn_act_forward_f32
#define EXP expf
#define LOG logf
#define NV 1
#include "plan_template.h"
#define T double
#define UINT uint64_t
#define G(name) d_base_##name
#define GEMM cnn_dgemm_strided
#define ACT_FWD cnn_act_forward_f64
#define EXP exp
#define LOG log
#define NV 1
#include "plan_template.h"

#if CNN_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define T float
#define UINT uint32_t
#define G(name) s_avx2_##name
#define GEMM cnn_sgemm_strided
#define ACT_FWD cnn_act_forward_f32
#define EXP expf
#define LOG logf
#define NV 2
#include "plan_template.h"
#define T double
#define UINT uint64_t
#define G(name) d_avx2_##name
#define GEMM cnn_dgemm_strided
#define ACT_FWD cnn_act_forward_f64
#define EXP exp
#define LOG log
#define NV 2
#include "plan_template.h"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define T float
#define UINT uint32_t
#define G(name) s_avx512_##name
#define GEMM cnn_sgemm_strided
#define ACT_FWD cnn_act_forward_f32
#define EXP expf
#define LOG logf
#define NV 8
#include "plan_template.h"
#define T double
#define UINT uint64_t
#define G(name) d_avx512_##name
#define GEMM cnn_dgemm_strided
#define ACT_FWD cnn_act_forward_f64
#define EXP exp
#define LOG log
#define NV 8
#include "plan_template.h"
#pragma GCC pop_options
#endif

typedef int (*s_chunk_fn)(const cnn_plan_op *, int, ptrdiff_t, const void *, float *, float *);
typedef int (*d_chunk_fn)(const cnn_plan_op *, int, ptrdiff_t, const void *, double *, double *);

static const struct {
    s_chunk_fn s_run;
    d_chunk_fn d_run;
} cnn_plan_table[CNN_SIMD_NLEVELS] = {
    [CNN_SIMD_BASELINE] = {s_base_run_chunk, d_base_run_chunk},
#if CNN_X86
    [CNN_SIMD_AVX2] = {s_avx2_run_chunk, d_avx2_run_chunk},
    [CNN_SIMD_AVX512] = {s_avx512_run_chunk, d_avx512_run_chunk},
#else
    [CNN_SIMD_AVX2] = {s_base_run_chunk, d_base_run_chunk},
    [CNN_SIMD_AVX512] = {s_base_run_chunk, d_base_run_chunk},
#endif
};

static int cnn_plan_serial_team(ptrdiff_t work)
{
    (void)work;
    return 1;
}

static int cnn_plan_baseline(void)
{
    return CNN_SIMD_BASELINE;
}

static cnn_team_size_fn cnn_plan_team = cnn_plan_serial_team;
static cnn_simd_level_fn cnn_plan_level = cnn_plan_baseline;

void cnn_plan_init(cnn_team_size_fn team_size, cnn_simd_level_fn simd_level)
{
    cnn_plan_team = team_size;
    cnn_plan_level = simd_level;
}

static int cnn_plan_team_for(double work, ptrdiff_t units)
{
    const double by_work = work / CNN_GEMM_MIN_WORK_PER_THREAD;
    const ptrdiff_t want = by_work < (double)units ? (ptrdiff_t)by_work : units;
    return want <= 1 ? 1 : cnn_plan_team(want);
}

static int plan_level(void)
{
    const int level = cnn_plan_level();
    return level >= 0 && level < CNN_SIMD_NLEVELS ? level : CNN_SIMD_BASELINE;
}

ptrdiff_t cnn_plan_linear_block(int dtype)
{
    /* whole vectors of 64 bytes, every level's (plan_template.h's vec) */
    return (ptrdiff_t)(64 / (dtype ? sizeof(double) : sizeof(float)));
}

int cnn_plan_threads(ptrdiff_t n, ptrdiff_t chunk, int max_threads, double work_per_sample)
{
    const ptrdiff_t nchunks = (n + chunk - 1) / chunk;
    const double by_work = (double)n * work_per_sample / CNN_GEMM_MIN_WORK_PER_THREAD;
    ptrdiff_t want = by_work < (double)nchunks ? (ptrdiff_t)by_work : nchunks;
    if (want > max_threads)
        want = max_threads;
    return want <= 1 ? 1 : cnn_plan_team(want);
}

/* The batch loop, per dtype: chunks in order on one thread, or handed out dynamically to a team whose
 * threads each own one block of the arena. */
#define PLAN_RUN(T, SFX, RUN)                                                                           \
    int cnn_plan_run_##SFX(const cnn_plan_op *ops, int nops, ptrdiff_t n, ptrdiff_t chunk, const void *x,\
                           ptrdiff_t x_row, T *y, ptrdiff_t y_row, T *arena, ptrdiff_t arena_row,       \
                           int max_threads, double work_per_sample)                                     \
    {                                                                                                   \
        const int level = plan_level();                                                                \
        const int nt = cnn_plan_threads(n, chunk, max_threads, work_per_sample);                        \
        const ptrdiff_t nchunks = (n + chunk - 1) / chunk;                                              \
        int err = 0;                                                                                    \
        if (nt <= 1) {                                                                                  \
            for (ptrdiff_t c = 0; c < nchunks && err == 0; ++c) {                                       \
                const ptrdiff_t s = c * chunk, m = n - s < chunk ? n - s : chunk;                       \
                err = cnn_plan_table[level].RUN(ops, nops, m, (const char *)x + s * x_row, y + s * y_row,   \
                                               arena);                                          \
            }                                                                                           \
            return err;                                                                                 \
        }                                                                                               \
        PLAN_PARALLEL(RUN)                                                                              \
        return err;                                                                                     \
    }

#if CNN_CORE_OPENMP
#define PLAN_PARALLEL(RUN)                                                                              \
    _Pragma("omp parallel num_threads(nt) reduction(|:err)")                                            \
    {                                                                                                   \
        const int t = omp_get_thread_num();                                                             \
        _Pragma("omp for schedule(dynamic, 1)")                                                         \
        for (ptrdiff_t c = 0; c < nchunks; ++c) {                                                       \
            const ptrdiff_t s = c * chunk, m = n - s < chunk ? n - s : chunk;                           \
            err |= cnn_plan_table[level].RUN(ops, nops, m, (const char *)x + s * x_row, y + s * y_row,  \
                                             arena + t * arena_row) != 0;                               \
        }                                                                                               \
    }                                                                                                   \
    err = err ? -1 : 0;
#else
#define PLAN_PARALLEL(RUN) (void)arena_row;
#endif

PLAN_RUN(float, f32, s_run)
PLAN_RUN(double, f64, d_run)
