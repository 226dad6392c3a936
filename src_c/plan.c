/* The plan interpreter (plan.h): plan_template.h's ops instantiated per dtype and instruction-set level,
 * one table of chunk runners per level, and the batch loop over chunks with its thread team. */
#include "plan.h"
#include "activations.h"
#include "gemm.h"
#include "thresholds.h"
#include "winograd.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if CNN_CORE_OPENMP
#include <omp.h>
#include <sched.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

/* Threads for an op's own loop of `units` independent pieces of `work` multiply-adds: a team only when the
 * plan runs one chunk at a time on one thread (none inside a team) and each thread gets enough work. */
static int cnn_plan_team_for(double work, ptrdiff_t units);

/* The barrier of a team that runs one chunk together (plan_template.h's run_chunk), between the steps of
 * its ops, a few microseconds apart. OpenMP's barrier spins GOMP_SPINCOUNT times (cnn_core sets 1000 at
 * import, for the machine's other processes: __init__.py) and then sleeps in the kernel, so a thread that
 * arrives a few microseconds early would sleep and cost a wake-up (tens of microseconds on this VM) at
 * nearly every op. This one spins CNN_PLAN_SPIN pauses (25-33 ns each on the Zen 4 this was tuned on:
 * ~8 us), then looks again after each of up to CNN_PLAN_YIELDS sched_yield()s, then sleeps in the kernel
 * (Linux's futex; elsewhere it keeps yielding). Yielding, not spinning, for the longer waits: on a busy
 * machine the scheduler may put both threads on one core, where a spinning thread holds off the partner
 * it waits for until its time slice ends (measured, small_cnn at one image under load 7: 3.6 ms a call
 * with 8192 pauses, 0.6 ms with 256 before the futex, 0.33 ms quiet). */
#define CNN_PLAN_SPIN 256
#define CNN_PLAN_YIELDS 200

typedef struct {
    int nth;         /* the team's threads */
    int arrived;     /* threads at the barrier in this phase */
    int phase;       /* bumped by the last to arrive */
    int sleepers;    /* threads asleep (or about to be) on phase */
} cnn_plan_barrier;

/* A thread's place in the team that runs an op or a chunk: thread tid of nth, with the team's barrier (NULL
 * for one thread); tid < 0: a thread the runtime added beyond the team asked for, which does nothing. */
typedef struct {
    int tid, nth;
    cnn_plan_barrier *bar;
} cnn_plan_thread;

static const cnn_plan_thread cnn_plan_alone = {0, 1, NULL};

#if CNN_CORE_OPENMP
static void cnn_plan_barrier_wait(cnn_plan_barrier *b)
{
    const int phase = __atomic_load_n(&b->phase, __ATOMIC_ACQUIRE);
    /* acq_rel: the last to arrive sees every thread's writes before the barrier, and releases them */
    if (__atomic_add_fetch(&b->arrived, 1, __ATOMIC_ACQ_REL) == b->nth) {
        __atomic_store_n(&b->arrived, 0, __ATOMIC_RELAXED);
        /* seq_cst store then load, against the sleeper's increment then load: one of the two sees the other */
        __atomic_store_n(&b->phase, phase + 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&b->sleepers, __ATOMIC_SEQ_CST) > 0) {
#ifdef __linux__
            syscall(SYS_futex, &b->phase, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#endif
        }
        return;
    }
    for (int spin = 0; spin < CNN_PLAN_SPIN + CNN_PLAN_YIELDS; ++spin) {
        if (__atomic_load_n(&b->phase, __ATOMIC_ACQUIRE) != phase)
            return;
        if (spin >= CNN_PLAN_SPIN)
            sched_yield();
#if CNN_X86
        else
            __builtin_ia32_pause();
#endif
    }
    __atomic_add_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&b->phase, __ATOMIC_SEQ_CST) == phase) {
#ifdef __linux__
        /* returns at once if phase has moved on already */
        syscall(SYS_futex, &b->phase, FUTEX_WAIT_PRIVATE, phase, NULL, NULL, 0);
#else
        sched_yield();
#endif
    }
    __atomic_sub_fetch(&b->sleepers, 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
}
#else
static void cnn_plan_barrier_wait(cnn_plan_barrier *b)
{
    (void)b;        /* teams of one only */
}
#endif

static inline void cnn_plan_barrier_init(cnn_plan_barrier *b, int nth)
{
    b->nth = nth;
    b->arrived = 0;
    b->phase = 0;
    b->sleepers = 0;
}

/* The calling thread's place in a parallel region whose barrier b was set up for b->nth threads (a region
 * with another count, which OpenMP may give under a thread limit, runs on its thread 0 alone). */
static inline cnn_plan_thread cnn_plan_thread_of(cnn_plan_barrier *b)
{
    cnn_plan_thread th = cnn_plan_alone;
#if CNN_CORE_OPENMP
    if (omp_get_num_threads() == b->nth) {
        th.tid = omp_get_thread_num();
        th.nth = b->nth;
        th.bar = b;
    } else if (omp_get_thread_num() != 0) {
        th.tid = -1;
    }
#else
    (void)b;
#endif
    return th;
}

/* Between the steps of an op: every thread of th's team has finished the previous one. */
static inline void cnn_plan_sync(const cnn_plan_thread *th)
{
    if (th->nth > 1)
        cnn_plan_barrier_wait(th->bar);
}

/* Thread th's share [*lo, *hi) of n items cut into th->nth contiguous parts. */
static inline void cnn_plan_share(ptrdiff_t n, const cnn_plan_thread *th, ptrdiff_t *lo, ptrdiff_t *hi)
{
    *lo = n * th->tid / th->nth;
    *hi = n * (th->tid + 1) / th->nth;
}

/* baseline (portable C; SSE2 on x86-64) */
#define T float
#define UINT uint32_t
#define G(name) s_base_##name
#define GEMM cnn_sgemm_strided
#define WINO_IN cnn_swino_in
#define WINO_OUT cnn_swino_out
#define ACT_FWD cnn_act_forward_f32
#define EXP expf
#define LOG logf
#define NV 1
#include "plan_template.h"
#define T double
#define UINT uint64_t
#define G(name) d_base_##name
#define GEMM cnn_dgemm_strided
#define WINO_IN cnn_dwino_in
#define WINO_OUT cnn_dwino_out
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
#define WINO_IN cnn_swino_in
#define WINO_OUT cnn_swino_out
#define ACT_FWD cnn_act_forward_f32
#define EXP expf
#define LOG logf
#define NV 2
#include "plan_template.h"
#define T double
#define UINT uint64_t
#define G(name) d_avx2_##name
#define GEMM cnn_dgemm_strided
#define WINO_IN cnn_dwino_in
#define WINO_OUT cnn_dwino_out
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
#define WINO_IN cnn_swino_in
#define WINO_OUT cnn_swino_out
#define ACT_FWD cnn_act_forward_f32
#define EXP expf
#define LOG logf
#define NV 8
#include "plan_template.h"
#define T double
#define UINT uint64_t
#define G(name) d_avx512_##name
#define GEMM cnn_dgemm_strided
#define WINO_IN cnn_dwino_in
#define WINO_OUT cnn_dwino_out
#define ACT_FWD cnn_act_forward_f64
#define EXP exp
#define LOG log
#define NV 8
#include "plan_template.h"
#pragma GCC pop_options
#endif

typedef int (*s_chunk_fn)(const cnn_plan_op *, int, ptrdiff_t, const void *, float *, float *,
                          const cnn_plan_thread *);
typedef int (*d_chunk_fn)(const cnn_plan_op *, int, ptrdiff_t, const void *, double *, double *,
                          const cnn_plan_thread *);

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

/* Multiply-adds per sample of the ops a chunk's team leaves to thread 0 (plan_template.h's run_serial and
 * the im2col convolutions): GEMMs that would rather have a team of their own. */
static double cnn_plan_serial_work(const cnn_plan_op *ops, int nops)
{
    double work = 0;
    for (int o = 0; o < nops; ++o) {
        const ptrdiff_t *p = ops[o].p;
        if (ops[o].kind == CNN_OP_LINEAR)
            work += (double)p[0] * p[1];
        else if (ops[o].kind == CNN_OP_CONV && p[15] < 2)
            work += (double)p[3] * (p[0] / p[14]) * p[4] * p[5] * p[12] * p[13];
        else if (ops[o].kind == CNN_OP_RECURRENT)
            work += (double)p[0] * (p[3] == 2 ? 4 : p[3] == 3 ? 3 : 1) * p[2] * (p[1] + p[2]);
    }
    return work;
}

/* The team that runs each chunk together (plan_template.h's run_chunk with nth > 1: one parallel region per
 * call, the ops split among its threads), when the batch runs one chunk at a time: each thread must get
 * CNN_PLAN_TEAM_MIN_WORK multiply-adds of a chunk, and the ops left to thread 0 too little work for a team
 * of their own (else each op takes its own team, as the GEMM's). */
int cnn_plan_chunk_team(const cnn_plan_op *ops, int nops, ptrdiff_t m, double work_per_sample, int max_threads)
{
    const double by_work = (double)m * work_per_sample / CNN_PLAN_TEAM_MIN_WORK;
    ptrdiff_t want = by_work < (double)max_threads ? (ptrdiff_t)by_work : max_threads;
    if (want <= 1 || cnn_plan_team_for((double)m * cnn_plan_serial_work(ops, nops), PTRDIFF_MAX) > 1)
        return 1;
    return cnn_plan_team(want);
}

/* The batch loop, per dtype: chunks in order (on one thread, or each by the whole team), or handed out
 * dynamically to a team whose threads each own one block of the arena. */
#define PLAN_RUN(T, SFX, RUN)                                                                           \
    int cnn_plan_run_##SFX(const cnn_plan_op *ops, int nops, ptrdiff_t n, ptrdiff_t chunk, const void *x,\
                           ptrdiff_t x_row, T *y, ptrdiff_t y_row, T *arena, ptrdiff_t arena_row,       \
                           int max_threads, int team_threads, double work_per_sample)                   \
    {                                                                                                   \
        const int level = plan_level();                                                                \
        const int nt = cnn_plan_threads(n, chunk, max_threads, work_per_sample);                        \
        const ptrdiff_t nchunks = (n + chunk - 1) / chunk;                                              \
        int err = 0;                                                                                    \
        if (nt <= 1) {                                                                                  \
            const int team = cnn_plan_chunk_team(ops, nops, n < chunk ? n : chunk, work_per_sample,     \
                                                 team_threads);                                         \
            if (team <= 1) {                                                                            \
                for (ptrdiff_t c = 0; c < nchunks && err == 0; ++c) {                                   \
                    const ptrdiff_t s = c * chunk, m = n - s < chunk ? n - s : chunk;                   \
                    err = cnn_plan_table[level].RUN(ops, nops, m, (const char *)x + s * x_row,          \
                                                    y + s * y_row, arena, &cnn_plan_alone);                        \
                }                                                                                       \
                return err;                                                                             \
            }                                                                                           \
            PLAN_TEAM(RUN)                                                                              \
            return err;                                                                                 \
        }                                                                                               \
        PLAN_PARALLEL(RUN)                                                                              \
        return err;                                                                                     \
    }

#if CNN_CORE_OPENMP
/* every chunk by the whole team, on the arena's first block */
#define PLAN_TEAM(RUN)                                                                                  \
    cnn_plan_barrier bar;                                                                               \
    cnn_plan_barrier_init(&bar, team);                                                                  \
    _Pragma("omp parallel num_threads(team) reduction(|:err)")                                          \
    {                                                                                                   \
        const cnn_plan_thread th = cnn_plan_thread_of(&bar);                                            \
        for (ptrdiff_t c = 0; c < nchunks && th.tid >= 0; ++c) {                                        \
            const ptrdiff_t s = c * chunk, m = n - s < chunk ? n - s : chunk;                           \
            err |= cnn_plan_table[level].RUN(ops, nops, m, (const char *)x + s * x_row, y + s * y_row,  \
                                             arena, &th) != 0;                                          \
        }                                                                                               \
    }                                                                                                   \
    err = err ? -1 : 0;
#define PLAN_PARALLEL(RUN)                                                                              \
    _Pragma("omp parallel num_threads(nt) reduction(|:err)")                                            \
    {                                                                                                   \
        const int t = omp_get_thread_num();                                                             \
        _Pragma("omp for schedule(dynamic, 1)")                                                         \
        for (ptrdiff_t c = 0; c < nchunks; ++c) {                                                       \
            const ptrdiff_t s = c * chunk, m = n - s < chunk ? n - s : chunk;                           \
            err |= cnn_plan_table[level].RUN(ops, nops, m, (const char *)x + s * x_row, y + s * y_row,  \
                                             arena + t * arena_row, &cnn_plan_alone) != 0;                         \
        }                                                                                               \
    }                                                                                                   \
    err = err ? -1 : 0;
#else
#define PLAN_TEAM(RUN)                                                                                  \
    for (ptrdiff_t c = 0; c < nchunks && err == 0; ++c) {                                               \
        const ptrdiff_t s = c * chunk, m = n - s < chunk ? n - s : chunk;                               \
        err = cnn_plan_table[level].RUN(ops, nops, m, (const char *)x + s * x_row, y + s * y_row, arena,     \
                                        &cnn_plan_alone);                                               \
    }
#define PLAN_PARALLEL(RUN) (void)arena_row;
#endif

PLAN_RUN(float, f32, s_run)
PLAN_RUN(double, f64, d_run)
