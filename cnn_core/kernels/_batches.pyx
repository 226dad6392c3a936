"""fit's batch gatherer (cnn_core.data.DataLoader._gathered): each shuffled batch's rows of X, y and the
labels copied into reused buffers by one compiled call, X's rows screened for NaN/inf as they land, on a
worker thread that holds no GIL from the start of an epoch to its end.

Why compiled end to end: a Python prefetch thread needs the GIL to start each job and to hand it over, so
every time the training thread released the GIL (each GEMM, each small kernel) the prefetch thread could take
it, and the training thread then waited for it back, a scheduler wake-up or a time slice when the two cores
were busy with the GEMM team. Here the worker waits on two PyThread locks (no GIL needed) and the hand-over is
one lock release each way.
"""
from cpython.pythread cimport (NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock,
                               PyThread_free_lock, PyThread_release_lock, PyThread_type_lock)
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy

from cnn_core.kernels._finite cimport bad32, bad64

cdef enum:
    MAX_ARRAYS = 3   # arrays per batch at most: X, y and the labels fit scores against


cdef class Gatherer:
    """Gathers batch k of an epoch: rows order[k * batch : (k + 1) * batch] of each source array into slot
    k % 2 of its two buffers (the last batch may be shorter; it fills the first rows).

    sources: up to 3 C-contiguous arrays viewed as (n, row bytes) uint8 (any dtype); buffers[s][j]: the
    (batch, row bytes) uint8 view of slot s's buffer for sources[j]; order: int64 indices in [0, n) (a
    permutation, unchecked); check: 4 or 8 to screen source 0's rows as float32/float64 for NaN/inf, 0 not.

    The protocol (one caller thread, one worker running `run`): submit(k) hands job k over; result() returns
    its outcome, taking back a job the worker has not started and running it on the caller's thread (whoever
    acquires the job's `go` signal runs it: on a busy machine the worker may wait milliseconds for a core,
    the caller gathers a batch in tens of microseconds); close() ends the worker, dropping a job it has not
    started. Without a worker (`run` never called), result() runs every job on the caller's thread.
    """

    cdef const unsigned char* src[MAX_ARRAYS]
    cdef unsigned char* dst[2][MAX_ARRAYS]
    cdef Py_ssize_t row[MAX_ARRAYS]
    cdef const int64_t* order
    cdef Py_ssize_t n, batch, narrays
    cdef int check
    cdef object keep            # the arrays behind the pointers, alive as long as this object
    cdef PyThread_type_lock go, done
    cdef Py_ssize_t job         # the batch submitted last
    cdef Py_ssize_t bad         # the worker's outcome: index in the source of the first bad row, or -1
    cdef bint stop
    cdef readonly Py_ssize_t claimed   # jobs result() took back and gathered on the caller's thread

    def __cinit__(self):
        self.go = PyThread_allocate_lock()
        self.done = PyThread_allocate_lock()
        if self.go == NULL or self.done == NULL:
            raise MemoryError("Gatherer: cannot allocate its locks")
        # both start taken: `go` is released by submit, `done` by the worker after each job
        PyThread_acquire_lock(self.go, WAIT_LOCK)
        PyThread_acquire_lock(self.done, WAIT_LOCK)

    def __init__(self, sources, buffers, const int64_t[::1] order not None, Py_ssize_t batch, int check):
        cdef const unsigned char[:, ::1] s
        cdef unsigned char[:, ::1] d
        cdef Py_ssize_t j, slot
        if not 0 < len(sources) <= MAX_ARRAYS or len(buffers) != 2 or check not in (0, 4, 8) or batch < 1:
            raise ValueError("Gatherer: expected 1-3 sources, 2 buffer slots, check 0/4/8 and batch >= 1")
        self.narrays = len(sources)
        self.n = order.shape[0]
        self.batch = batch
        self.check = check
        self.order = &order[0] if self.n else NULL
        self.job, self.bad, self.stop, self.claimed = 0, -1, False, 0
        self.keep = (sources, buffers, order)
        for j in range(self.narrays):
            s = sources[j]
            if s.shape[0] != self.n:
                raise ValueError(f"sources[{j}]: expected {self.n} rows, got {s.shape[0]}")
            self.row[j] = s.shape[1]
            self.src[j] = &s[0, 0] if s.shape[0] and s.shape[1] else NULL
            for slot in range(2):
                d = buffers[slot][j]
                if d.shape[1] != s.shape[1] or d.shape[0] < min(batch, self.n):
                    raise ValueError(f"buffers[{slot}][{j}]: expected at least {min(batch, self.n)} rows of "
                                     f"{s.shape[1]} bytes, got ({d.shape[0]}, {d.shape[1]})")
                self.dst[slot][j] = &d[0, 0] if d.shape[0] and d.shape[1] else NULL

    def __dealloc__(self):
        if self.go != NULL:
            PyThread_free_lock(self.go)
        if self.done != NULL:
            PyThread_free_lock(self.done)

    cdef Py_ssize_t gather(self, Py_ssize_t k) noexcept nogil:
        """Job k: copy its rows into slot k % 2; return the source index of its first row (in batch order)
        with a NaN/inf in source 0 when screening, else -1. The rows are copied back to back (the copy waits
        on memory: screening each row between copies made it ~20% slower), then source 0's batch is screened
        in one pass while it is in cache, row by row only when it holds a bad value."""
        cdef Py_ssize_t lo = k * self.batch, hi = min(lo + self.batch, self.n), r, j, rb
        cdef int slot = k & 1
        cdef unsigned char* out
        for j in range(self.narrays):
            rb = self.row[j]
            if rb == 0:
                continue
            out = self.dst[slot][j]
            for r in range(hi - lo):
                memcpy(out + r * rb, self.src[j] + self.order[lo + r] * rb, rb)
        rb = self.row[0]
        out = self.dst[slot][0]
        if self.check == 0 or rb == 0 or not self.bad_in(out, (hi - lo) * rb):
            return -1
        for r in range(hi - lo):
            if self.bad_in(out + r * rb, rb):
                return self.order[lo + r]
        return -1

    cdef inline bint bad_in(self, const unsigned char* p, Py_ssize_t nbytes) noexcept nogil:
        """Whether the nbytes at p, as source 0's floats, hold a NaN or infinity."""
        if self.check == 4:
            return bad32(<const uint32_t*>p, nbytes // 4)
        return bad64(<const uint64_t*>p, nbytes // 8)

    def run(self) -> None:
        """The worker's loop (a thread's target): each submitted job, until close(); never takes the GIL."""
        with nogil:
            while True:
                PyThread_acquire_lock(self.go, WAIT_LOCK)
                if self.stop:
                    break
                self.bad = self.gather(self.job)
                PyThread_release_lock(self.done)

    def submit(self, Py_ssize_t k) -> None:
        """Hand job k over (the previous job's result taken first)."""
        self.job = k
        PyThread_release_lock(self.go)

    def result(self) -> int:
        """The submitted job's outcome (see gather): -1, or the index of the first bad row of source 0."""
        cdef Py_ssize_t bad
        if PyThread_acquire_lock(self.go, NOWAIT_LOCK):   # not started: the job is the caller's now
            self.claimed += 1
            with nogil:
                bad = self.gather(self.job)
            return bad
        if not PyThread_acquire_lock(self.done, NOWAIT_LOCK):
            with nogil:
                PyThread_acquire_lock(self.done, WAIT_LOCK)
        return self.bad

    def close(self) -> None:
        """Let the worker end (the caller then joins its thread). Called on every exit path, after a Ctrl-C
        between any two statements of submit or result too: whatever state `go` was in, after the non-
        blocking acquire it is taken (a job not started is thereby dropped), and its one release lets the
        worker see `stop`: at once if it waits, after its job if it runs one."""
        self.stop = True
        PyThread_acquire_lock(self.go, NOWAIT_LOCK)
        PyThread_release_lock(self.go)
