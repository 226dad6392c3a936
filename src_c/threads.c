/* Process-wide thread count, its cap and fork safety for every parallel region (see threads.h). */
#include "threads.h"

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
static void cnn_threads_atfork_child(void)
{
    if (cnn_owns_team)
        atomic_store(&cnn_fork_serial, 1);
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

int cnn_threads_team(ptrdiff_t work)
{
#if CNN_CORE_OPENMP
    if (omp_in_parallel())
        return 1;
    const int n = cnn_threads_get();
    const int team = work < n ? (int)work : n;
    if (team <= 1)
        return 1;
    cnn_owns_team = 1;
    return team;
#else
    (void)work;
    return 1;
#endif
}
