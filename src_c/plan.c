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

/* Threads (at most cap) for an op's own loop of `units` independent pieces of `work` multiply-adds: a team
 * only when the plan runs one chunk at a time on one thread (none inside a team) and each thread gets
 * enough work. */
static int cnn_plan_team_for(double work, ptrdiff_t units, int cap);

/* A team that runs one chunk together (plan_template.h's run_chunk) goes through the same sequence of
 * steps on every thread: an op, or a phase of one (a convolution's padded copy, then its tiles), each split
 * into units (channels, tiles, planes), and a step starts only when every unit of the one before is done.
 * The units are not dealt out in fixed shares: each thread claims the next few from a counter shared by
 * every step of the call, and a step's end waits only until every claimed unit is finished. So a thread
 * that runs slower (its core shared with another process, or a vCPU the hypervisor runs at half speed)
 * takes fewer units instead of holding the team up, and one that has not woken yet costs nothing: the
 * other runs its units and moves on, and the late one finds them claimed. With a fixed split the team ran
 * at its slowest thread's pace: small_cnn at one image took 447-454 us a call in some processes against
 * 218-226 us in most and 360 us on one thread alone (stop 19).
 *
 * Claims are global: a step's units are numbers cbase .. cbase + n of one count over the call's shared
 * steps, so a claim that runs past the step's end is the next step's, kept for it (pending). Finished units
 * count in `done`, over every step (a step that thread 0 runs alone counts one), and step s has ended when
 * done reaches the units of steps 0 .. s: no unit of a later step starts before, so the count cannot run
 * ahead. Which thread runs a unit never changes what the unit computes: any team's results are one
 * thread's, bit for bit.
 *
 * A thread waiting for a step's end spins CNN_PLAN_SPIN pauses (25-33 ns each on the Zen 4 this was tuned
 * on: ~8 us), then looks again after each of up to CNN_PLAN_YIELDS sched_yield()s, then sleeps in the
 * kernel (Linux's futex; elsewhere it keeps yielding). Yielding, not spinning, for the longer waits: on a
 * busy machine the scheduler may put both threads on one core, where a spinning thread holds off the
 * partner it waits for until its time slice ends (measured, small_cnn at one image under load 7: 3.6 ms a
 * call with 8192 pauses, 0.6 ms with 256 before the futex, 0.33 ms quiet). */
#define CNN_PLAN_SPIN 256
#define CNN_PLAN_YIELDS 200

typedef struct {
    int nth;                                 /* the team's threads */
    int next __attribute__((aligned(64)));   /* units claimed so far in the call (claim numbers) */
    int done __attribute__((aligned(64)));   /* units finished so far, every step's */
    int sleepers;                            /* threads asleep (or about to be) on done */
} cnn_plan_barrier;

/* threads.h's cnn_threads_team_start, called by every thread of a team as it starts (installed by
 * cnn_plan_set_team_start; NULL: nothing is called): keeps the members off the leader's CPU on an
 * otherwise idle machine. */
static cnn_team_start_fn cnn_plan_team_start = NULL;

void cnn_plan_set_team_start(cnn_team_start_fn team_start)
{
    cnn_plan_team_start = team_start;
}

/* A thread's place in the team that runs an op or a chunk: thread tid of nth, with the team's counters
 * (NULL for one thread), and where it is in the call's steps; tid < 0: a thread the runtime added beyond
 * the team asked for, which does nothing. */
typedef struct {
    int tid, nth;
    cnn_plan_barrier *bar;
    int max_team;        /* one thread: the most threads an op may take for a team of its own */
    int step_n;          /* units of the current step (0 before its first claim) */
    int solo;            /* the current step is thread 0's alone */
    int in_step;         /* one thread: the step's units have been handed out */
    int cbase;           /* claim number of the current step's first unit */
    int dbase;           /* units of every step before the current one */
    int ran;             /* units this thread finished in the current step, not yet counted in done */
    int have_lo, have_hi;   /* claimed, not yet run (claim numbers, from this step on) */
} cnn_plan_thread;

static inline cnn_plan_thread cnn_plan_alone(int max_team)
{
    cnn_plan_thread th;
    memset(&th, 0, sizeof th);
    th.nth = 1;
    th.max_team = max_team;
    return th;
}

#if CNN_CORE_OPENMP
/* Until b->done reaches target. */
static void cnn_plan_wait_done(cnn_plan_barrier *b, int target)
{
    int seen = 0;
    for (int spin = 0; spin < CNN_PLAN_SPIN + CNN_PLAN_YIELDS; ++spin) {
        seen = __atomic_load_n(&b->done, __ATOMIC_ACQUIRE);
        if (seen >= target)
            return;
        if (spin >= CNN_PLAN_SPIN)
            sched_yield();
#if CNN_X86
        else
            __builtin_ia32_pause();
#endif
    }
    /* seq_cst increment then load, against the finisher's add then load of sleepers: one sees the other */
    __atomic_add_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
    while ((seen = __atomic_load_n(&b->done, __ATOMIC_SEQ_CST)) < target) {
#ifdef __linux__
        /* returns at once if done has moved on already */
        syscall(SYS_futex, &b->done, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
#else
        sched_yield();
#endif
    }
    __atomic_sub_fetch(&b->sleepers, 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
}

/* The end of the current step on a team: th's finished units counted, then the wait for everyone's. */
static void cnn_plan_step_end(cnn_plan_thread *th)
{
    cnn_plan_barrier *b = th->bar;
    if (th->ran > 0) {
        /* release: the units' writes before the count that says they are done */
        __atomic_add_fetch(&b->done, th->ran, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&b->sleepers, __ATOMIC_SEQ_CST) > 0) {
#ifdef __linux__
            syscall(SYS_futex, &b->done, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#endif
        }
    }
    const int target = th->dbase + (th->solo ? 1 : th->step_n);
    cnn_plan_wait_done(b, target);
    th->dbase = target;
    if (!th->solo)
        th->cbase += th->step_n;
}

/* The next claim numbers for a step that ends at claim number `end`: a share of what is left of it, as
 * OpenMP's guided schedule (a quarter of the step first on two threads, single units at its end, so that a
 * claim runs at most one unit into the next step and the threads end a step together). */
static inline void cnn_plan_claim(cnn_plan_thread *th, int end)
{
    const int left = end - __atomic_load_n(&th->bar->next, __ATOMIC_RELAXED);
    const int grain = left / (2 * th->nth) > 1 ? left / (2 * th->nth) : 1;
    th->have_lo = __atomic_fetch_add(&th->bar->next, grain, __ATOMIC_RELAXED);
    th->have_hi = th->have_lo + grain;
}
#else
static void cnn_plan_step_end(cnn_plan_thread *th)
{
    (void)th;       /* teams of one only */
}

static inline void cnn_plan_claim(cnn_plan_thread *th, int end)
{
    (void)th, (void)end;
}
#endif

static inline void cnn_plan_barrier_init(cnn_plan_barrier *b, int nth)
{
    b->nth = nth;
    b->next = 0;
    b->done = 0;
    b->sleepers = 0;
}

/* The calling thread's place in a parallel region whose counters b were set up for b->nth threads (a
 * region with another count, which OpenMP may give under a thread limit, runs on its thread 0 alone). */
static inline cnn_plan_thread cnn_plan_thread_of(cnn_plan_barrier *b)
{
    cnn_plan_thread th = cnn_plan_alone(1);
#if CNN_CORE_OPENMP
    if (omp_get_num_threads() == b->nth) {
        th.tid = omp_get_thread_num();
        th.nth = b->nth;
        th.bar = b;
        if (cnn_plan_team_start != NULL)
            cnn_plan_team_start(th.tid);
    } else if (omp_get_thread_num() != 0) {
        th.tid = -1;
    }
#else
    (void)b;
#endif
    return th;
}

/* The next piece [*lo, *hi) of the current step's n units for thread th, or 0 when none is left for it
 * (then cnn_plan_sync ends the step). Every thread of the team calls it until it returns 0:
 *     while (cnn_plan_take(th, n, &lo, &hi)) ...
 * One thread gets all n at once; a team's threads claim shares of what is left (cnn_plan_claim). */
static inline int cnn_plan_take(cnn_plan_thread *th, ptrdiff_t n, ptrdiff_t *lo, ptrdiff_t *hi)
{
    th->step_n = (int)n;
    if (th->nth == 1) {
        if (th->in_step || n <= 0)
            return 0;
        th->in_step = 1;
        *lo = 0;
        *hi = n;
        return 1;
    }
    const int end = th->cbase + (int)n;
    if (th->have_lo >= th->have_hi)
        cnn_plan_claim(th, end);
    /* nothing claimed before this step's units: every earlier unit was claimed before its step ended */
    if (th->have_lo >= end)
        return 0;          /* the next step's, kept */
    *lo = th->have_lo - th->cbase;
    *hi = (th->have_hi < end ? th->have_hi : end) - th->cbase;
    th->have_lo = th->cbase + (int)*hi;
    th->ran += (int)(*hi - *lo);
    return 1;
}

/* A step that thread 0 runs alone (a GEMM, a softmax): true on thread 0; every thread then ends it with
 * cnn_plan_sync. */
static inline int cnn_plan_solo(cnn_plan_thread *th)
{
    th->solo = 1;
    if (th->tid != 0)
        return 0;
    th->ran = 1;
    return 1;
}

/* The end of a step: every unit of it is done, on every thread of th's team. */
static inline void cnn_plan_sync(cnn_plan_thread *th)
{
    if (th->nth > 1)
        cnn_plan_step_end(th);
    th->step_n = 0;
    th->solo = 0;
    th->in_step = 0;
    th->ran = 0;
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
                          cnn_plan_thread *);
typedef int (*d_chunk_fn)(const cnn_plan_op *, int, ptrdiff_t, const void *, double *, double *,
                          cnn_plan_thread *);

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

static int cnn_plan_team_for(double work, ptrdiff_t units, int cap)
{
    const double by_work = work / CNN_GEMM_MIN_WORK_PER_THREAD;
    ptrdiff_t want = by_work < (double)units ? (ptrdiff_t)by_work : units;
    if (want > cap)
        want = cap;
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
    if (want <= 1 ||
        cnn_plan_team_for((double)m * cnn_plan_serial_work(ops, nops), PTRDIFF_MAX, INT_MAX) > 1)
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
                    cnn_plan_thread one = cnn_plan_alone(team_threads);                                 \
                    err = cnn_plan_table[level].RUN(ops, nops, m, (const char *)x + s * x_row,          \
                                                    y + s * y_row, arena, &one);                        \
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
        cnn_plan_thread th = cnn_plan_thread_of(&bar);                                                  \
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
            cnn_plan_thread one = cnn_plan_alone(1);                                                    \
            err |= cnn_plan_table[level].RUN(ops, nops, m, (const char *)x + s * x_row, y + s * y_row,  \
                                             arena + t * arena_row, &one) != 0;                         \
        }                                                                                               \
    }                                                                                                   \
    err = err ? -1 : 0;
#else
#define PLAN_TEAM(RUN)                                                                                  \
    for (ptrdiff_t c = 0; c < nchunks && err == 0; ++c) {                                               \
        const ptrdiff_t s = c * chunk, m = n - s < chunk ? n - s : chunk;                               \
        cnn_plan_thread one = cnn_plan_alone(1);                                                        \
        err = cnn_plan_table[level].RUN(ops, nops, m, (const char *)x + s * x_row, y + s * y_row, arena, \
                                        &one);                                                          \
    }
#define PLAN_PARALLEL(RUN) (void)arena_row;
#endif

PLAN_RUN(float, f32, s_run)
PLAN_RUN(double, f64, d_run)
