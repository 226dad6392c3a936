# distutils: sources = src_c/gather.c
# distutils: depends = src_c/gather.h src_c/threads.h
"""fit's batch gatherer (cnn_core.data.DataLoader._gathered): each shuffled batch's rows of X, y and the
labels copied into reused buffers by compiled code (src_c/gather.c), X's rows screened for NaN/inf as they
land, in pieces taken by whichever thread gets there first: the pool's workers between their products
(threads.h's idle hook), a helper thread that holds no GIL from the start of an epoch to its end, and the
training thread for whatever is left when it needs the batch.

Why the pool's workers: training on two threads, the pool's worker has idle time between the products of a
step (an MLP 784-100-10 step: ~680 us, the worker's shares a fraction of it) but spins through it on its core,
while the helper thread runs at the lowest priority (data.py's _lowest_priority) and gets little of either
core; a gather is bound by memory (~35 us for a shuffled batch of 64 Fashion-MNIST rows on the 2-vCPU Xeon,
~5 GB/s) and was left to the training thread. Why pieces: the training thread then waits at most for pieces
already under way, never for a whole job started by a helper that was preempted.

Why compiled end to end: a Python prefetch thread needs the GIL to start each job and to hand it over, so
every time the training thread released the GIL (each GEMM, each small kernel) the prefetch thread could take
it, and the training thread then waited for it back, a scheduler wake-up or a time slice when the two cores
were busy with the GEMM team. Here the helper thread waits on a PyThread lock (no GIL needed).
"""
from cpython.pythread cimport (NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock,
                               PyThread_free_lock, PyThread_release_lock, PyThread_type_lock)
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int64_t

from cnn_core._config cimport cnn_team_count, pool_idle_clear, pool_idle_set, team_arrive, team_wait
from cnn_core._finite cimport nonfinite


cdef extern from "gather.h" nogil:
    enum:
        CNN_GATHER_MAX_ARRAYS
        CNN_GATHER_THREAD
        CNN_GATHER_WHO
    ctypedef int (*cnn_rows_bad_fn)(const unsigned char *p, ptrdiff_t nbytes) noexcept nogil
    ctypedef void (*cnn_team_barrier_fn)(cnn_team_count *c, int target) noexcept nogil
    void cnn_gather_set_wait(cnn_team_barrier_fn arrive, cnn_team_barrier_fn wait)
    ctypedef struct cnn_gather:
        pass
    cnn_gather *cnn_gather_new(int narrays, const unsigned char **src, unsigned char **dst,
                               const ptrdiff_t *row, const int64_t *order, ptrdiff_t n, ptrdiff_t batch,
                               ptrdiff_t piece_rows, cnn_rows_bad_fn bad)
    void cnn_gather_free(cnn_gather *g)
    void cnn_gather_submit(cnn_gather *g, ptrdiff_t k)
    int cnn_gather_piece(cnn_gather *g, int who)
    int cnn_gather_pool_piece(void *g) noexcept
    int64_t cnn_gather_result(cnn_gather *g)
    void cnn_gather_counts(cnn_gather *g, long *out)

cnn_gather_set_wait(team_arrive, team_wait)

# A piece: rows of about this many bytes over all the arrays (at least one row). A pool worker's piece
# delays a product that arrives meanwhile by its copy, ~3 us at the ~5 GB/s a shuffled gather reaches on
# the 2-vCPU Xeon; smaller pieces pay the bookkeeping (a compare-and-swap and two atomic adds) more often.
PIECE_BYTES = 16384


cdef int rows_bad32(const unsigned char *p, ptrdiff_t nbytes) noexcept nogil:
    return nonfinite(p, nbytes // 4, 4)


cdef int rows_bad64(const unsigned char *p, ptrdiff_t nbytes) noexcept nogil:
    return nonfinite(p, nbytes // 8, 8)


cdef class Gatherer:
    """Gathers batch k of an epoch: rows order[k * batch : (k + 1) * batch] of each source array into slot
    k % 2 of its two buffers (the last batch may be shorter; it fills the first rows).

    sources: up to 3 C-contiguous arrays viewed as (n, row bytes) uint8 (any dtype); buffers[s][j]: the
    (batch, row bytes) uint8 view of slot s's buffer for sources[j]; order: int64 indices in [0, n) (a
    permutation, unchecked); check: 4 or 8 to screen source 0's rows as float32/float64 for NaN/inf, 0 not.

    The protocol (one caller thread): submit(k) hands job k over; result() gathers what no helper has taken
    of it and returns its outcome once the pieces under way have finished; close() ends the helpers. Helpers:
    a thread running `run` (woken by each submit), the pool's workers once use_pool() is called. Without
    either, result() gathers every job on the caller's thread.
    """

    cdef cnn_gather *g
    cdef object keep            # the arrays behind the pointers, alive as long as this object
    cdef PyThread_type_lock go  # released by submit (and close) to wake the helper thread
    cdef bint stop, pooled

    def __cinit__(self):
        self.go = PyThread_allocate_lock()
        if self.go == NULL:
            raise MemoryError("Gatherer: cannot allocate its lock")
        PyThread_acquire_lock(self.go, WAIT_LOCK)

    def __init__(self, sources, buffers, const int64_t[::1] order not None, Py_ssize_t batch, int check):
        cdef const unsigned char[:, ::1] s
        cdef unsigned char[:, ::1] d
        cdef const unsigned char *src[CNN_GATHER_MAX_ARRAYS]
        cdef unsigned char *dst[2 * CNN_GATHER_MAX_ARRAYS]
        cdef ptrdiff_t row[CNN_GATHER_MAX_ARRAYS]
        cdef Py_ssize_t j, slot, n = order.shape[0], row_bytes = 0
        cdef cnn_rows_bad_fn bad = NULL
        if self.g != NULL:
            raise RuntimeError("Gatherer: already initialized")
        if not 0 < len(sources) <= CNN_GATHER_MAX_ARRAYS or len(buffers) != 2 or check not in (0, 4, 8) \
                or batch < 1:
            raise ValueError("Gatherer: expected 1-3 sources, 2 buffer slots, check 0/4/8 and batch >= 1")
        for j in range(len(sources)):
            s = sources[j]
            if s.shape[0] != n:
                raise ValueError(f"sources[{j}]: expected {n} rows, got {s.shape[0]}")
            row[j] = s.shape[1]
            row_bytes += s.shape[1]
            src[j] = &s[0, 0] if s.shape[0] and s.shape[1] else NULL
            for slot in range(2):
                d = buffers[slot][j]
                if d.shape[1] != s.shape[1] or d.shape[0] < min(batch, n):
                    raise ValueError(f"buffers[{slot}][{j}]: expected at least {min(batch, n)} rows of "
                                     f"{s.shape[1]} bytes, got ({d.shape[0]}, {d.shape[1]})")
                dst[slot * CNN_GATHER_MAX_ARRAYS + j] = &d[0, 0] if d.shape[0] and d.shape[1] else NULL
        if check:
            bad = rows_bad32 if check == 4 else rows_bad64
        self.keep = (sources, buffers, order)
        self.g = cnn_gather_new(len(sources), src, dst, row, &order[0] if n else NULL, n, batch,
                                max(1, PIECE_BYTES // max(1, row_bytes)), bad)
        if self.g == NULL:
            raise MemoryError("Gatherer: cannot allocate its state")

    def __dealloc__(self):
        if self.g != NULL:
            if self.pooled:
                pool_idle_clear(self.g)
            cnn_gather_free(self.g)
        if self.go != NULL:
            PyThread_free_lock(self.go)

    cdef inline int ready(self) except -1:
        if self.g == NULL:
            raise RuntimeError("Gatherer: not initialized")
        return 0

    def run(self) -> None:
        """The helper thread's loop (a thread's target): the pieces of each submitted job it can take,
        until close(); never takes the GIL."""
        self.ready()
        with nogil:
            while True:
                PyThread_acquire_lock(self.go, WAIT_LOCK)
                if self.stop:
                    break
                while cnn_gather_piece(self.g, CNN_GATHER_THREAD):
                    pass

    def use_pool(self) -> bool:
        """Let the pool's workers take pieces between their jobs (threads.h's idle hook) until close():
        False when the hook is another's or there is no pool."""
        self.ready()
        if not self.pooled and not self.stop:
            self.pooled = pool_idle_set(cnn_gather_pool_piece, self.g) == 0
        return self.pooled

    def submit(self, Py_ssize_t k) -> None:
        """Hand job k over (the previous job's result taken first), and wake the helper thread."""
        self.ready()
        cnn_gather_submit(self.g, k)
        PyThread_acquire_lock(self.go, NOWAIT_LOCK)   # taken, whether or not the last wake was seen
        PyThread_release_lock(self.go)

    def result(self) -> int:
        """The submitted job's outcome: -1, or the index in source 0 of its first row (in batch order)
        holding a NaN or infinity."""
        cdef int64_t bad
        self.ready()
        with nogil:
            bad = cnn_gather_result(self.g)
        return bad

    @property
    def pieces(self) -> tuple:
        """Pieces gathered so far by (the caller, the helper thread, the pool's workers)."""
        cdef long out[CNN_GATHER_WHO]
        self.ready()
        cnn_gather_counts(self.g, out)
        return out[0], out[1], out[2]

    def close(self) -> None:
        """End the helpers: the pool's workers take no piece after this returns; the thread ends at once if
        it waits, after its current job's pieces if it runs them (the caller then joins it). Called on every
        exit path, after a Ctrl-C between any two statements of submit or result too: whatever state `go`
        was in, after the non-blocking acquire it is taken, and its one release lets the thread see
        `stop`. A job nobody collects may be finished by the thread meanwhile, into buffers this object
        keeps alive."""
        self.stop = True
        if self.pooled:
            pool_idle_clear(self.g)
            self.pooled = False
        PyThread_acquire_lock(self.go, NOWAIT_LOCK)
        PyThread_release_lock(self.go)
