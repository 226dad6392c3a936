# The process-wide settings the other extension modules' kernels read (src_c/threads.h, src_c/cpu.h):
# `from cnn_core._config cimport team_size`, then `prange(..., num_threads=team_size(work))`; the C
# kernels receive team_size and simd_level as function pointers at import.
from libc.stddef cimport ptrdiff_t

# min(get_num_threads(), work), at least 1; 1 inside a parallel region or in a fork-serial child.
cdef int team_size(ptrdiff_t work) noexcept nogil
# The instruction-set level in use (src_c/cpu.h's cnn_simd_level: 0 baseline, 1 avx2, 2 avx512).
cdef int simd_level() noexcept nogil

cdef extern from "threads.h" nogil:
    # the most threads set_num_threads accepts: the size of per-thread arrays
    enum: CNN_MAX_NUM_THREADS
    # where share t of `rows` rows split over nt threads starts, in whole units of `unit` rows (rows for t = nt)
    ptrdiff_t cnn_row_share(ptrdiff_t rows, int nt, int t, ptrdiff_t unit)
    # where share t of an array of n elements, in rows of `row`, split over nt threads starts (n for t = nt)
    ptrdiff_t cnn_array_share(ptrdiff_t n, ptrdiff_t row, int nt, int t)
    ctypedef void (*cnn_pool_job)(void *arg, int t) noexcept nogil
    ctypedef int (*cnn_pool_idle_fn)(void *arg) noexcept nogil
    ctypedef struct cnn_team_count:
        pass
# threads.h's small-job pool: job(arg, t) for t = 0..nt-1 (0 on the caller); -1 when it cannot take the
# job (the caller then runs it its own way). The GEMM receives it as a pointer at import.
cdef int pool_run(cnn_pool_job job, void *arg, int nt) noexcept nogil
# job(arg, t) for t = 0..nt-1 (t = 0 on the caller): on the small-job pool, else on an OpenMP team (nt < 2:
# on the caller alone). For kernels issued once or a few times a step with Python in between (fit's
# convolutions and poolings): the pool's workers spin across that gap, an OpenMP team's have gone to sleep.
cdef void run_team(cnn_pool_job job, void *arg, int nt) noexcept nogil
# threads.h's cnn_threads_team_start: called by each thread t of a team as its share starts (the leader,
# t = 0, keeps the members off its CPU on an otherwise idle machine).
cdef void team_start(int t) noexcept nogil
# threads.h's cnn_team_barrier: the g-th barrier of a team of nt threads on count c passes when the count
# reaches target = g * nt; waits with the pool's policy (the GEMM's shared-panel team, through a pointer).
cdef void team_barrier(cnn_team_count *c, int target) noexcept nogil
# Its halves: team_arrive counts one arrival (waking the sleepers at target), team_wait returns once the
# count reaches target (fit's batch gatherer, through pointers).
cdef void team_arrive(cnn_team_count *c, int target) noexcept nogil
cdef void team_wait(cnn_team_count *c, int target) noexcept nogil
# threads.h's idle hook: the pool's workers call fn(arg), one short piece of work per call, between their jobs
# while the process is alone on its cores (fit's batch gatherer); -1 when another client holds it or there
# is no pool. pool_idle_clear(arg) returns once no worker is inside fn.
cdef int pool_idle_set(cnn_pool_idle_fn fn, void *arg) noexcept nogil
cdef void pool_idle_clear(void *arg) noexcept nogil
