/* One process-wide thread count for every OpenMP region of cnn_core, a fixed cap on it, and fork safety.
 *
 * OpenMP's own setting (omp_set_num_threads) belongs to the calling thread: a count set in the main thread
 * would not reach kernels called from other Python threads. So threads.c keeps a single atomic count, and
 * every parallel region asks cnn_threads_team() for its size and passes it explicitly (num_threads(...) in
 * C, num_threads= in Cython's prange, the GEMM's team).
 *
 * threads.c is compiled into cnn_core._config alone, so the process holds one copy of this state; the
 * other extension modules reach cnn_threads_team() through _config.pxd's team_size (a Cython cimport),
 * and the C GEMM through the pointer its module hands to cnn_gemm_init() at import.
 *
 * Fork: GNU OpenMP is not fork-safe. A thread that has started a team keeps a pool of worker threads; a
 * child forked by that thread inherits the pool's bookkeeping but not its threads, and its next team of
 * more than one thread waits for them forever. A team of one never touches the pool, so in such a child
 * every region runs serially (cnn_threads_get() returns 1 there and in its own children). A child forked
 * by a thread that never started a team keeps the full count.
 */
#ifndef CNN_CORE_THREADS_H
#define CNN_CORE_THREADS_H

#include <stddef.h>
#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The largest count set_num_threads accepts (cnn_core._config.MAX_NUM_THREADS). libgomp's team start
 * allocas ~150 bytes a thread on the calling thread's stack: 256 threads start from a 64 KiB thread stack
 * (measured), 1024 need more than 128 KiB, 65536 overflow the 8 MiB main stack (SIGSEGV). Every thread
 * also costs a task and a stack reservation (8 MiB of address space by default). 256 keeps all of that
 * small on any machine and stays above the hardware thread count of the machines this library targets;
 * more threads than cores stays allowed. */
#define CNN_MAX_NUM_THREADS 256

/* A region's team size for `work` independent items: min(count, work), at least 1; 1 inside a parallel
 * region (no nested teams), and 1 while other processes' running tasks leave the team no cores (the
 * pool's look at the load, below). The GEMM takes this through a pointer (cnn_gemm_init). */
typedef int (*cnn_team_size_fn)(ptrdiff_t work);

/* Once, at import: the initial count from the OpenMP runtime (OMP_NUM_THREADS, else the cores), clamped
 * to 1..CNN_MAX_NUM_THREADS, and the at-fork child handler. Returns the runtime's count before clamping
 * (the caller warns when OMP_NUM_THREADS asked for more than the cap), or -1 if the handler could not be
 * registered. */
int cnn_threads_init(void);
/* 1 when the kernels were built with OpenMP. */
int cnn_threads_openmp(void);
/* The count every region uses: 1 in a serial build and in a child forked after its parent's team. */
int cnn_threads_get(void);
/* Set the count (1..CNN_MAX_NUM_THREADS, checked by the caller); no effect in a serial build. */
void cnn_threads_set(int n);
/* 1 in a process forked by a thread that had started a team (the kernels then run serially). */
int cnn_threads_forked_serial(void);
int cnn_threads_team(ptrdiff_t work);

/* Called by each thread of a team (the pool's or an OpenMP team of the GEMM or the plan) as its share
 * starts, t its place in the team: t = 0, the leader, keeps the other members off its CPU while the process
 * is alone on its cores; t > 0 registers the thread as a member (threads.c, "where team members run").
 * Linux with OpenMP; elsewhere a no-op. */
typedef void (*cnn_team_start_fn)(int t);
void cnn_threads_team_start(int t);

/* ---- the small-job pool (threads.c, "pool") ----
 * Persistent worker threads for short parallel jobs issued back to back with a little serial work in
 * between (the GEMM's small products: an MLP step's 30-100 us products ~100-300 us apart). An OpenMP
 * team's workers go to sleep after GOMP_SPINCOUNT pauses (cnn_core sets 1000, for busy machines), so each
 * such product paid a futex wake-up; the pool's workers keep spinning between jobs while the process is
 * alone on its cores, and sleep at once when it is not. */

/* ---- row shares of a parameter ----
 * Where share t of `rows` rows split over nt threads starts (share nt: `rows`), in whole units of `unit`
 * rows. The kernels that write or read a weight during a training step (the forward and weight-gradient
 * products of a Linear layer, the optimizer's step and fit's gradient scan) split its first axis with this
 * one function, so thread t (the pool's share t, which stays on its core) touches the same rows of the
 * weight, its gradient and its optimizer state in every kernel of the step. Why: a cache line another core
 * has read must be taken back from that core before it is written, and on the 2-vCPU Xeon VM (model 0xA7)
 * that costs ~50 ns a line, one line after the other: an MLP's 784 x 100 SGD step took 139 us on 2
 * threads after one thread had read the whole weight against 7-8 us when each thread had read only its own
 * rows. */
static inline ptrdiff_t cnn_row_share(ptrdiff_t rows, int nt, int t, ptrdiff_t unit)
{
    return t >= nt ? rows : (ptrdiff_t)t * rows / nt / unit * unit;
}

/* Where share t of an array of n elements, in rows of `row` elements, split over nt threads starts (share
 * nt: n): whole rows, the row shares the GEMM gives the same threads for a Linear layer's products (so the
 * optimizer's step and fit's gradient scan touch the rows each thread has just written); or, for a 1-D
 * array or one with fewer rows than threads, whole cache lines of float64 (8 elements). */
static inline ptrdiff_t cnn_array_share(ptrdiff_t n, ptrdiff_t row, int nt, int t)
{
    if (row > 1 && n / row >= nt)
        return cnn_row_share(n / row, nt, t, 1) * row;
    return cnn_row_share(n, nt, t, 8);
}

/* One job: share t of nt (t = 0 on the calling thread). */
typedef void (*cnn_pool_job)(void *arg, int t);
/* Run job(arg, t) for t = 0..nt-1, t = 0 on the calling thread, and return once all have finished: 0; or
 * -1 without running anything when the pool cannot take the job (another thread is using it, nt out of
 * range, no OpenMP build, not Linux, workers could not start): the caller then runs its shares its own
 * way. Never nest: call it from outside any parallel region or pool job. */
typedef int (*cnn_pool_run_fn)(cnn_pool_job job, void *arg, int nt);
int cnn_pool_run(cnn_pool_job job, void *arg, int nt);
/* ---- idle work for the pool's workers ----
 * A client (fit's batch gatherer, gather.h) may give the workers work for the time between jobs: while a
 * worker waits for the next job and the process is alone on its cores, it calls fn(arg) again and again,
 * each call one short piece of work (a few microseconds: a job that arrives meanwhile waits for it) that
 * returns 0 when none is left; the worker's spin window starts again after each piece. One client at a
 * time. cnn_pool_idle_set returns 0, or -1 when another client holds the hook or there is no pool (the
 * client then gets its work done elsewhere); cnn_pool_idle_clear(arg) ends the client's hook and returns
 * once no worker is inside fn. */
typedef int (*cnn_pool_idle_fn)(void *arg);
int cnn_pool_idle_set(cnn_pool_idle_fn fn, void *arg);
void cnn_pool_idle_clear(void *arg);
/* ---- waiting for a team's other threads, with the pool's wait policy ----
 * A count that only grows while a job runs (set to 0 before it starts), and the threads asleep on it.
 * cnn_team_arrive counts one arrival: the writes made before it are seen by the waiters it releases;
 * the one that brings the count to `target` wakes the sleepers. cnn_team_wait returns once the count has
 * reached target: it pauses, then yields (for up to the pool's spin window while the process is alone on
 * its cores: asleep on a futex, a thread is woken on the CPU of the thread that woke it, see threads.c's
 * "where team members run"), then sleeps. cnn_team_barrier is both: the g-th barrier of a team of nt
 * threads on one count passes when it reaches g * nt. */
typedef struct {
    atomic_int count;
    atomic_int sleepers;
} cnn_team_count;
void cnn_team_arrive(cnn_team_count *c, int target);
void cnn_team_wait(cnn_team_count *c, int target);
typedef void (*cnn_team_barrier_fn)(cnn_team_count *c, int target);
void cnn_team_barrier(cnn_team_count *c, int target);

/* Counters for the tests: jobs the pool ran, idle waits that ended asleep without spinning because the
 * machine was busy, changes of the team members' CPU masks, and the workers started (out[0..3]); the spin
 * window in microseconds can be set (-1 restores the default). */
void cnn_pool_stats(long out[4]);
void cnn_pool_set_spin_us(int us);
/* For the tests: the file read in place of /proc/loadavg (NULL: /proc/loadavg again), which also forgets
 * the looks so far; and whether the process counts as alone now (a look, if the last is old enough). */
void cnn_pool_set_load_file(const char *path);
int cnn_pool_alone_now(void);

#ifdef __cplusplus
}
#endif

#endif
