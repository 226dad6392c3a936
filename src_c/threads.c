/* Process-wide thread count, its cap and fork safety for every parallel region, and the small-job pool
 * (see threads.h). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE   /* sched_getaffinity's CPU_COUNT */
#endif
#include "threads.h"
#include "cpu.h"
#include "thresholds.h"

#include <stdatomic.h>

#if CNN_CORE_OPENMP
#include <omp.h>
#if !defined(_WIN32)
#include <pthread.h>
#endif
#endif

static atomic_int cnn_nthreads = 1;
/* Set in the child of a fork by a thread that had started a team, and inherited by its children. */
static atomic_int cnn_fork_serial = 0;

#if CNN_CORE_OPENMP
/* This thread has started a team of more than one thread, so libgomp keeps a worker pool for it. Set
 * before the region starts (a harmless false positive if the runtime then gives fewer threads). */
static _Thread_local int cnn_owns_team = 0;

#if !defined(_WIN32)
/* Runs in the child, on the copy of the thread that called fork(): only that thread's pool matters. */
static void cnn_pool_atfork_child(void);
static void cnn_threads_atfork_child(void)
{
    if (cnn_owns_team)
        atomic_store(&cnn_fork_serial, 1);
    cnn_pool_atfork_child();
}
#endif
#endif

int cnn_threads_init(void)
{
#if CNN_CORE_OPENMP
    static int registered = 0;   /* called under the GIL; once more if the module is imported again */
    const int requested = omp_get_max_threads();
    atomic_store(&cnn_nthreads, requested < 1 ? 1 : requested > CNN_MAX_NUM_THREADS ? CNN_MAX_NUM_THREADS
                                                                                   : requested);
#if !defined(_WIN32)
    if (!registered && pthread_atfork(NULL, NULL, cnn_threads_atfork_child) != 0)
        return -1;
#endif
    registered = 1;
    return requested;
#else
    return 1;
#endif
}

int cnn_threads_openmp(void)
{
    return CNN_CORE_OPENMP;
}

int cnn_threads_get(void)
{
#if CNN_CORE_OPENMP
    return atomic_load(&cnn_fork_serial) ? 1 : atomic_load(&cnn_nthreads);
#else
    return 1;
#endif
}

void cnn_threads_set(int n)
{
    atomic_store(&cnn_nthreads, n);
}

int cnn_threads_forked_serial(void)
{
    return atomic_load(&cnn_fork_serial);
}

#if CNN_CORE_OPENMP
static int cnn_threads_alone(void);
#endif

int cnn_threads_team(ptrdiff_t work)
{
#if CNN_CORE_OPENMP
    if (omp_in_parallel())
        return 1;
    const int n = cnn_threads_get();
    const int team = work < n ? (int)work : n;
    if (team <= 1 || !cnn_threads_alone())
        return 1;
    cnn_owns_team = 1;
    return team;
#else
    (void)work;
    return 1;
#endif
}

/* ---- the small-job pool ---------------------------------------------------------------------------
 *
 * Workers 1..nworkers wait on `word`, the job word: a job count in the high bits and the job's thread count
 * nt in the low CNN_POOL_NT_BITS, bumped by the caller once the job is in place. A worker whose index is
 * below the new nt runs its share and counts one in `done`; the others go back to waiting. A worker reads
 * job/arg only when it takes part, and the caller changes them only after every taker has been counted, so
 * a worker that wakes late never sees a half-written job.
 *
 * Waiting for the next job: while the process is alone on its cores (the running tasks of /proc/loadavg,
 * this worker and the caller among them, no more than the cores in this process's affinity mask; read at
 * most every CNN_POOL_BUSY_CHECK_NS) a worker spins for CNN_POOL_SPIN_US, yielding every few microseconds,
 * then sleeps on a futex; when the process is not alone, or the spin was preempted (a gap of
 * CNN_POOL_PREEMPTED_NS between two looks at the clock: another thread wanted the core), it sleeps at once.
 * While it spins, a worker does the idle hook's work first, piece by piece (cnn_pool_idle_set: fit's batch
 * gather), the spin window starting again after each piece.
 * The caller, once its own share is done, waits for the others (cnn_team_wait, as plan.c's barrier does):
 * CNN_POOL_PAUSES pauses, up to CNN_POOL_YIELDS sched_yield()s (while the process is alone: yields for up
 * to the spin window), then a futex; the GEMM's shared-panel driver waits at its barriers the same way. So
 * under load nothing spins for long, which is what made the original 30x collapse (threads spinning for a
 * partner the scheduler had not run). A caller woken from the futex is put on the CPU of the worker that
 * woke it (see "where team members run" below), so on a quiet machine it keeps yielding instead of
 * sleeping: asleep, it would follow a late worker to its CPU. */
#if CNN_CORE_OPENMP && defined(__linux__)
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CNN_POOL_NT_BITS 9           /* nt <= CNN_MAX_NUM_THREADS = 256 */
#define CNN_POOL_PAUSES 256
#define CNN_POOL_YIELDS 200

static struct {
    atomic_uint word;                /* job count << CNN_POOL_NT_BITS | nt */
    cnn_team_count done;             /* takers of the current job that have finished */
    atomic_int sleepers;             /* workers asleep (or about to be) on word */
    atomic_flag busy;                /* a caller holds the pool */
    cnn_pool_job job;
    void *arg;
    int nworkers;                    /* started so far; only the holder of busy changes it */
    unsigned start_word[CNN_MAX_NUM_THREADS];   /* the job word when worker t was started */
    atomic_long jobs, busy_sleeps;   /* counters for the tests */
    atomic_int spin_us;
    atomic_llong alone_checked;      /* when `alone` was last looked at (CLOCK_MONOTONIC ns), 0: never */
    atomic_int alone;
    atomic_int busy_looks;           /* busy looks in a row */
    atomic_int load_unknown;         /* the last look could not read the load */
    atomic_flag idle_held;           /* a client holds the idle hook */
    _Atomic(cnn_pool_idle_fn) idle_fn;
    _Atomic(void *) idle_arg;        /* the hook's argument, NULL: no idle work */
    atomic_int idle_inside;          /* workers inside idle_fn */
} cnn_pool = {.busy = ATOMIC_FLAG_INIT, .spin_us = CNN_POOL_SPIN_US, .idle_held = ATOMIC_FLAG_INIT};

static long long cnn_pool_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void cnn_pool_pause(void)
{
#if CNN_X86
    __builtin_ia32_pause();
#endif
}

static void cnn_futex_wait(void *addr, unsigned expected)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void cnn_futex_wake(void *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Where the load is read (a test's own file, cnn_pool_set_load_file). */
static _Atomic(const char *) cnn_pool_load_file = "/proc/loadavg";

/* One look at the load: 1 when the other tasks that run leave fewer cores than this process's threads (the
 * process-wide count, at most its cores) need, 0 when not, -1 if unreadable. The cores: its main thread's
 * mask (a steered member's own mask is narrower). The other tasks: the running tasks (the 4th field of
 * /proc/loadavg, "running/total") less this process's own, taken as the looking thread (or the caller of
 * the pool's job, which runs while a worker looks) and the pool's workers not asleep. Any other thread that
 * runs counts as another task, this process's own too: OpenBLAS's threads, which spin for tens of
 * milliseconds after each numpy.matmul (512^3 float32 on the pool's team right after two numpy.matmul
 * calls: 2.9-3.6 ms, on the calling thread 1.7 ms, 0.9 ms after a pause), the caller's other Python
 * threads, and an OpenMP team's threads in their ~50 us spin after a region (one reason a single busy look
 * is no evidence, CNN_POOL_BUSY_LOOKS). Counting the others rather than every running task: with one
 * spinning process beside it and its worker asleep, the process ran 2 tasks on 2 cores and looked alone,
 * so its teams of 2 kept starting, each waiting for a member that shared a core with the spinner (see
 * cnn_threads_team). */
static int cnn_pool_busy_look(void)
{
    int busy = -1;
    FILE *f = fopen(atomic_load_explicit(&cnn_pool_load_file, memory_order_acquire), "r");
    if (f != NULL) {
        double l1, l5, l15;
        int running, total;
        cpu_set_t set;
        if (fscanf(f, "%lf %lf %lf %d/%d", &l1, &l5, &l15, &running, &total) == 5
                && sched_getaffinity(getpid(), sizeof set, &set) == 0) {
            const int cores = CPU_COUNT(&set), threads = cnn_threads_get();
            const int asleep = atomic_load_explicit(&cnn_pool.sleepers, memory_order_relaxed);
            const int ours = 1 + cnn_pool.nworkers - asleep;
            const int others = running > ours ? running - ours : 0;
            busy = others + (threads < cores ? threads : cores) > cores;
        }
        fclose(f);
    }
    return busy;
}

/* 1 while the process is alone on its cores: no task waits for a core. Looked at most every
 * CNN_POOL_BUSY_CHECK_NS, by one thread at a time (the others take the last answer), and not alone only
 * from the CNN_POOL_BUSY_LOOKS-th busy look in a row (thresholds.h says why); alone again at the first
 * calm look. 0 if the load is unreadable. */
static int cnn_pool_alone(long long now)
{
    long long last = atomic_load_explicit(&cnn_pool.alone_checked, memory_order_relaxed);
    if ((last != 0 && now - last < CNN_POOL_BUSY_CHECK_NS)
            || !atomic_compare_exchange_strong_explicit(&cnn_pool.alone_checked, &last, now,
                                                        memory_order_relaxed, memory_order_relaxed))
        return atomic_load_explicit(&cnn_pool.alone, memory_order_relaxed);
    const int busy = cnn_pool_busy_look();
    atomic_store_explicit(&cnn_pool.load_unknown, busy < 0, memory_order_relaxed);
    const int looks = busy == 1 ? atomic_load_explicit(&cnn_pool.busy_looks, memory_order_relaxed) + 1 : 0;
    atomic_store_explicit(&cnn_pool.busy_looks, looks, memory_order_relaxed);
    const int alone = busy == 0 || (busy == 1 && looks < CNN_POOL_BUSY_LOOKS);
    atomic_store_explicit(&cnn_pool.alone, alone, memory_order_relaxed);
    return alone;
}

/* Where team members run. Once the cores have been busy for a while, Linux wakes a thread sleeping on a
 * futex on the CPU of the thread that woke it (it skips its search for an idle CPU when the last-level
 * cache's recent use is high), and there a team's members run one after the other while the other core
 * idles: traced on the 2-vCPU EPYC, 256^3 float32 on the pool's 2 threads, calls in blocks of 30 after a
 * 0.2 s pause, 170 us while the worker ran on the other CPU, then from one block on 359 us (29 of 30 calls
 * with both threads on one CPU, every block after; one thread: 315 us); the worker's spin, preempted by its
 * own caller, went to sleep every time and was woken onto the caller's CPU again. A member that moves
 * itself once it runs comes too late when it is queued behind a busy leader (512^3 float64 on an OpenMP
 * team: 4.5-5.9 ms, one thread 5.1 ms, two 2.6 ms). So, while the process is alone on its cores, the
 * leader steers: every thread that has run a share as a member (registered at its first share) gets the
 * leader's affinity mask without the leader's CPU, and the kernel moves a member waiting or running there
 * at once and wakes a sleeping one elsewhere. The masks change only when the leader's CPU, the set of
 * members or the alone look changes; when the process is not alone the members get the leader's whole
 * mask back, and the scheduler places them freely (the GEMM's back-off handles a team that shares a core
 * then). Not done for OpenMP threads bound by OMP_PROC_BIND (the user's placement). */
static struct {
    atomic_int tids[2 * CNN_MAX_NUM_THREADS];   /* the members registered so far (pool and OpenMP threads) */
    atomic_int n;
    atomic_flag busy;                /* a leader is changing the masks */
    atomic_int cpu;                  /* the CPU the masks leave out, -1: whole masks */
    atomic_int steered;              /* members whose masks follow `cpu` */
    atomic_long changes;             /* mask changes applied, for the tests */
} cnn_team = {.busy = ATOMIC_FLAG_INIT, .cpu = -1};
static _Thread_local int cnn_team_registered = 0;

static void cnn_team_register(void)
{
    if (cnn_team_registered)
        return;
    cnn_team_registered = 1;
    const int i = atomic_fetch_add(&cnn_team.n, 1);
    if (i < 2 * CNN_MAX_NUM_THREADS)
        atomic_store(&cnn_team.tids[i], (int)syscall(SYS_gettid));
}

/* The leader, before (pool) or at the start of (OpenMP) a team's shares. */
static void cnn_team_steer(void)
{
    const int cpu = cnn_pool_alone(cnn_pool_now()) ? sched_getcpu() : -1;
    int n = atomic_load_explicit(&cnn_team.n, memory_order_relaxed);
    if (n > 2 * CNN_MAX_NUM_THREADS)
        n = 2 * CNN_MAX_NUM_THREADS;
    if ((cpu == atomic_load_explicit(&cnn_team.cpu, memory_order_relaxed)
         && n == atomic_load_explicit(&cnn_team.steered, memory_order_relaxed))
            || atomic_flag_test_and_set_explicit(&cnn_team.busy, memory_order_acquire))
        return;
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) == 0) {
        if (cpu >= 0 && CPU_COUNT(&mask) > 1)
            CPU_CLR(cpu, &mask);
        for (int i = 0; i < n; ++i) {
            const int tid = atomic_load_explicit(&cnn_team.tids[i], memory_order_relaxed);
            char task[64];
            if (tid <= 0)
                continue;
            snprintf(task, sizeof task, "/proc/self/task/%d", tid);
            if (access(task, F_OK) != 0)        /* exited (an OpenMP team of a finished Python thread) */
                atomic_store_explicit(&cnn_team.tids[i], 0, memory_order_relaxed);
            else
                sched_setaffinity(tid, sizeof mask, &mask);
        }
        atomic_store_explicit(&cnn_team.cpu, cpu, memory_order_relaxed);
        atomic_store_explicit(&cnn_team.steered, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&cnn_team.changes, 1, memory_order_relaxed);
    }
    atomic_flag_clear_explicit(&cnn_team.busy, memory_order_release);
}

void cnn_threads_team_start(int t)
{
    if (t > 0) {
        if (omp_get_proc_bind() == omp_proc_bind_false)
            cnn_team_register();
    } else {
        cnn_team_steer();
    }
}

void cnn_team_arrive(cnn_team_count *c, int target)
{
    /* seq_cst: the shares' writes before the count, and against a waiter's increment of sleepers then
     * load of the count */
    if (atomic_fetch_add(&c->count, 1) + 1 == target && atomic_load(&c->sleepers) > 0)
        cnn_futex_wake(&c->count);
}

void cnn_team_wait(cnn_team_count *c, int target)
{
    long long yield_until = 0;       /* set at the first yield: while alone, yield up to the spin window */
    int seen;
    for (int i = 0; (seen = atomic_load_explicit(&c->count, memory_order_acquire)) < target; ++i) {
        if (i < CNN_POOL_PAUSES) {
            cnn_pool_pause();
        } else if (i < CNN_POOL_PAUSES + CNN_POOL_YIELDS || cnn_pool_now() < yield_until) {
            if (i == CNN_POOL_PAUSES) {
                const long long now = cnn_pool_now();
                if (cnn_pool_alone(now))
                    yield_until = now + 1000LL * atomic_load_explicit(&cnn_pool.spin_us, memory_order_relaxed);
            }
            sched_yield();
        } else {
            atomic_fetch_add(&c->sleepers, 1);
            if ((seen = atomic_load(&c->count)) < target)
                cnn_futex_wait(&c->count, (unsigned)seen);
            atomic_fetch_sub(&c->sleepers, 1);
        }
    }
}

void cnn_team_barrier(cnn_team_count *c, int target)
{
    cnn_team_arrive(c, target);
    cnn_team_wait(c, target);
}

int cnn_pool_idle_set(cnn_pool_idle_fn fn, void *arg)
{
    if (fn == NULL || arg == NULL || atomic_flag_test_and_set_explicit(&cnn_pool.idle_held, memory_order_acquire))
        return -1;
    atomic_store_explicit(&cnn_pool.idle_fn, fn, memory_order_relaxed);
    atomic_store(&cnn_pool.idle_arg, arg);             /* seq_cst: fn before it, against a worker's look */
    return 0;
}

void cnn_pool_idle_clear(void *arg)
{
    if (arg == NULL || atomic_load(&cnn_pool.idle_arg) != arg)
        return;
    /* seq_cst store then load, against a worker's increment of idle_inside then load of idle_arg: either
     * the worker sees NULL, or this sees it inside and waits for it to leave */
    atomic_store(&cnn_pool.idle_arg, NULL);
    while (atomic_load(&cnn_pool.idle_inside) > 0)
        cnn_pool_pause();
    atomic_flag_clear_explicit(&cnn_pool.idle_held, memory_order_release);
}

/* One piece of the idle hook's work, if there is a hook: 1 when a piece was done. */
static int cnn_pool_idle_piece(void)
{
    if (atomic_load_explicit(&cnn_pool.idle_arg, memory_order_relaxed) == NULL)
        return 0;
    atomic_fetch_add(&cnn_pool.idle_inside, 1);
    void *arg = atomic_load(&cnn_pool.idle_arg);
    const int did = arg != NULL && atomic_load_explicit(&cnn_pool.idle_fn, memory_order_relaxed)(arg);
    atomic_fetch_sub_explicit(&cnn_pool.idle_inside, 1, memory_order_release);
    return did;
}

/* Wait until the job word differs from `seen`; returns the new word. While alone, idle work first. */
static unsigned cnn_pool_wait_job(unsigned seen)
{
    unsigned w;
    long long t0 = cnn_pool_now();
    if (cnn_pool_alone(t0)) {
        const long long spin = 1000LL * atomic_load_explicit(&cnn_pool.spin_us, memory_order_relaxed);
        long long end = t0 + spin, prev = t0;
        for (int i = 1;; ++i) {
            if ((w = atomic_load_explicit(&cnn_pool.word, memory_order_acquire)) != seen)
                return w;
            if (cnn_pool_idle_piece()) {
                /* Then let a thread waiting for this CPU have it, as the spin below yields: the team members
                 * share one CPU (see "where team members run"), and one queued behind a worker running a
                 * job's pieces back to back (~170 us) would hold its team up. A gap since the last look
                 * means that thread ran: sleep, as a preempted spin does. Else the window starts again.
                 * (MLP 784-100-10 epochs with / without the yield, 3 alternating runs: 513-551 / 536-584 ms.) */
                sched_yield();
                const long long now = cnn_pool_now();
                if (now - prev >= CNN_POOL_PREEMPTED_NS)
                    break;
                prev = now;
                end = now + spin;
                continue;
            }
            cnn_pool_pause();
            if (i % 64 == 0) {               /* ~2 us of pauses on Zen 4 */
                const long long now = cnn_pool_now();
                if (now >= end || now - prev >= CNN_POOL_PREEMPTED_NS || !cnn_pool_alone(now))
                    break;
                prev = now;
                if (i % 512 == 0)
                    sched_yield();           /* let a task that became runnable on this core have it */
            }
        }
    } else {
        atomic_fetch_add_explicit(&cnn_pool.busy_sleeps, 1, memory_order_relaxed);
    }
    for (;;) {
        /* seq_cst increment then load, against the caller's bump then load of sleepers */
        atomic_fetch_add(&cnn_pool.sleepers, 1);
        if ((w = atomic_load(&cnn_pool.word)) == seen)
            cnn_futex_wait(&cnn_pool.word, seen);
        atomic_fetch_sub(&cnn_pool.sleepers, 1);
        if ((w = atomic_load_explicit(&cnn_pool.word, memory_order_acquire)) != seen)
            return w;
    }
}

static void *cnn_pool_worker(void *p)
{
    const int t = (int)(ptrdiff_t)p;
    unsigned seen = cnn_pool.start_word[t];   /* the job that started it comes next */
    cnn_team_register();
    for (;;) {
        seen = cnn_pool_wait_job(seen);
        if (t >= (int)(seen & ((1u << CNN_POOL_NT_BITS) - 1)))
            continue;
        cnn_pool.job(cnn_pool.arg, t);
        cnn_team_arrive(&cnn_pool.done, (int)(seen & ((1u << CNN_POOL_NT_BITS) - 1)) - 1);
    }
    return NULL;
}

/* Start workers up to nworkers = want; 0, or -1 if a thread could not start (those started stay). */
static int cnn_pool_grow(int want)
{
    if (cnn_pool.nworkers >= want)
        return 0;
    pthread_attr_t attr;
    sigset_t all, old;
    if (pthread_attr_init(&attr) != 0)
        return -1;
    pthread_attr_setstacksize(&attr, 1 << 20);         /* the GEMM's buffers are on the heap */
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);         /* signals stay with Python's threads */
    int err = 0;
    while (cnn_pool.nworkers < want) {
        pthread_t th;
        const int t = cnn_pool.nworkers + 1;
        cnn_pool.start_word[t] = atomic_load(&cnn_pool.word);   /* pthread_create publishes it */
        if (pthread_create(&th, &attr, cnn_pool_worker, (void *)(ptrdiff_t)t) != 0) {
            err = -1;
            break;
        }
        cnn_pool.nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return err;
}

int cnn_pool_run(cnn_pool_job job, void *arg, int nt)
{
    if (nt < 2 || nt > CNN_MAX_NUM_THREADS || atomic_load(&cnn_fork_serial) || omp_in_parallel())
        return -1;
    if (atomic_flag_test_and_set_explicit(&cnn_pool.busy, memory_order_acquire))
        return -1;                                     /* another Python thread's job: use OpenMP */
    if (cnn_pool_grow(nt - 1) != 0) {
        atomic_flag_clear_explicit(&cnn_pool.busy, memory_order_release);
        return -1;
    }
    cnn_pool.job = job;
    cnn_pool.arg = arg;
    cnn_team_steer();
    atomic_store_explicit(&cnn_pool.done.count, 0, memory_order_relaxed);
    const unsigned word = atomic_load_explicit(&cnn_pool.word, memory_order_relaxed);
    /* seq_cst: the job is in place before the word changes, and against a worker going to sleep */
    atomic_store(&cnn_pool.word, ((word >> CNN_POOL_NT_BITS) + 1) << CNN_POOL_NT_BITS | (unsigned)nt);
    if (atomic_load(&cnn_pool.sleepers) > 0)
        cnn_futex_wake(&cnn_pool.word);
    job(arg, 0);
    cnn_team_wait(&cnn_pool.done, nt - 1);
    atomic_fetch_add_explicit(&cnn_pool.jobs, 1, memory_order_relaxed);
    atomic_flag_clear_explicit(&cnn_pool.busy, memory_order_release);
    return 0;
}

/* In a forked child only the forking thread exists: forget the workers (new ones start on demand). If
 * the fork came from inside a job, the child's pool stays held, and its jobs fall back to the caller. */
static void cnn_pool_atfork_child(void)
{
    cnn_pool.nworkers = 0;
    atomic_store(&cnn_pool.sleepers, 0);
    atomic_store(&cnn_pool.done.sleepers, 0);
    atomic_store(&cnn_team.n, 0);                      /* the registered threads are the parent's */
    atomic_store(&cnn_team.cpu, -1);
    atomic_store(&cnn_team.steered, 0);
    atomic_flag_clear(&cnn_team.busy);
    atomic_store(&cnn_pool.idle_arg, NULL);            /* no worker will run the parent's idle work */
    atomic_store(&cnn_pool.idle_inside, 0);
    atomic_flag_clear(&cnn_pool.idle_held);
}

void cnn_pool_stats(long out[4])
{
    out[0] = atomic_load(&cnn_pool.jobs);
    out[1] = atomic_load(&cnn_pool.busy_sleeps);
    out[2] = atomic_load(&cnn_team.changes);
    out[3] = cnn_pool.nworkers;
}

void cnn_pool_set_spin_us(int us)
{
    atomic_store(&cnn_pool.spin_us, us < 0 ? CNN_POOL_SPIN_US : us);
}

void cnn_pool_set_load_file(const char *path)
{
    /* a copy, never freed: another thread may be opening the previous one */
    const char *copy = path == NULL ? NULL : strdup(path);
    atomic_store(&cnn_pool_load_file, copy != NULL ? copy : "/proc/loadavg");
    atomic_store(&cnn_pool.busy_looks, 0);
    atomic_store(&cnn_pool.alone_checked, 0);
}

int cnn_pool_alone_now(void)
{
    return cnn_pool_alone(cnn_pool_now());
}

/* Teams only while the process is alone on its cores (or the load cannot be read: then as if it were).
 * Once other tasks hold a core, a team's members share the rest with them: each share waits its turn
 * behind the other task's time slice, and the team finishes at the pace of its slowest member. Measured on
 * the 2-vCPU Xeon beside one spinning process, MLP 784-100-10 epochs of 20,000 Fashion-MNIST samples
 * through fit, 5 alternating each: 2 threads 0.39-1.11 s, 1 thread 0.18 s (quiet: 0.12-0.13 s on 2). */
static int cnn_threads_alone(void)
{
    return cnn_pool_alone(cnn_pool_now()) || atomic_load_explicit(&cnn_pool.load_unknown, memory_order_relaxed);
}

#else  /* no OpenMP build, or no futex: every job runs the caller's own way */
#if defined(_WIN32)
#include <windows.h>
#else
#include <sched.h>
#endif

#if CNN_CORE_OPENMP && !defined(_WIN32)
static void cnn_pool_atfork_child(void) {}
#endif

int cnn_pool_run(cnn_pool_job job, void *arg, int nt)
{
    (void)job;
    (void)arg;
    (void)nt;
    return -1;
}

void cnn_threads_team_start(int t)
{
    (void)t;
}

void cnn_pool_stats(long out[4])
{
    out[0] = out[1] = out[2] = out[3] = 0;
}

int cnn_pool_idle_set(cnn_pool_idle_fn fn, void *arg)
{
    (void)fn;
    (void)arg;
    return -1;
}

void cnn_pool_idle_clear(void *arg)
{
    (void)arg;
}

/* Without a futex: a spin that yields the core. */
void cnn_team_arrive(cnn_team_count *c, int target)
{
    (void)target;
    atomic_fetch_add(&c->count, 1);
}

void cnn_team_wait(cnn_team_count *c, int target)
{
    while (atomic_load(&c->count) < target) {
#if defined(_WIN32)
        SwitchToThread();
#else
        sched_yield();
#endif
    }
}

void cnn_team_barrier(cnn_team_count *c, int target)
{
    cnn_team_arrive(c, target);
    cnn_team_wait(c, target);
}

void cnn_pool_set_spin_us(int us)
{
    (void)us;
}

void cnn_pool_set_load_file(const char *path)
{
    (void)path;
}

int cnn_pool_alone_now(void)
{
    return 0;
}

#if CNN_CORE_OPENMP
/* Without the load's figures (no /proc/loadavg): teams always. */
static int cnn_threads_alone(void)
{
    return 1;
}
#endif
#endif
