# distutils: sources = src_c/threads.c
# distutils: depends = src_c/threads.h
"""What the compiled core was built with, and the one process-wide thread count every kernel uses.

The count is shared by all Python threads (like ``torch.set_num_threads``): every parallel region of the
kernels takes its team size from it explicitly, never from OpenMP's per-thread setting. It starts at
OpenMP's default (``OMP_NUM_THREADS``, else the number of cores), clamped to ``MAX_NUM_THREADS``.

A process forked (``os.fork``, ``multiprocessing``'s 'fork' start method) by a thread that had run a
parallel kernel cannot start OpenMP threads again (GNU OpenMP is not fork-safe): there, and in its own
children, every kernel runs serially and ``get_num_threads()`` is 1. A child forked before any parallel
kernel ran keeps the full count.
"""
import numbers
import os
import warnings

from libc.stddef cimport ptrdiff_t


cdef extern from "threads.h" nogil:
    int CNN_MAX_NUM_THREADS
    int cnn_threads_init()
    int cnn_threads_openmp()
    int cnn_threads_get()
    void cnn_threads_set(int n)
    int cnn_threads_forked_serial()
    int cnn_threads_team(ptrdiff_t work)


# The largest thread count set_num_threads accepts (src_c/threads.h says why 256).
MAX_NUM_THREADS: int = CNN_MAX_NUM_THREADS


cdef int team_size(ptrdiff_t work) noexcept nogil:
    return cnn_threads_team(work)


cdef int _requested = cnn_threads_init()
if _requested < 0:
    raise ImportError("cnn_core._config: could not register the at-fork handler (pthread_atfork)")
if "OMP_NUM_THREADS" in os.environ and _requested > MAX_NUM_THREADS:
    warnings.warn(f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']!r} asks for {_requested} threads, more "
                  f"than cnn_core's cap of {MAX_NUM_THREADS}: using {MAX_NUM_THREADS}", RuntimeWarning)


def openmp_enabled() -> bool:
    """True when the kernels were compiled with OpenMP."""
    return bool(cnn_threads_openmp())


def get_num_threads() -> int:
    """Number of threads every parallel kernel uses, in any Python thread.

    1 in a serial build, and in a process forked after its parent ran a parallel kernel (see the module
    docstring).
    """
    return cnn_threads_get()


def set_num_threads(n) -> None:
    """Set the number of threads every parallel kernel uses, process-wide (ignored in a serial build).

    n: 1 <= n <= MAX_NUM_THREADS (256); more threads than cores is allowed. A kernel runs at most as many
    threads as it has independent pieces of work. In a process forked after its parent ran a parallel
    kernel, n is recorded but kernels stay serial (a RuntimeWarning says so when n > 1).

    Raises TypeError when n is not an int, ValueError when it is out of range.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected an int thread count, got {type(n).__name__}")
    if not 1 <= n <= MAX_NUM_THREADS:
        raise ValueError(f"n: expected a thread count in 1..{MAX_NUM_THREADS} (MAX_NUM_THREADS), got {n}")
    cnn_threads_set(<int>n)
    if n > 1 and cnn_threads_forked_serial():
        warnings.warn(f"set_num_threads({n}): this process was forked after its parent ran OpenMP threads, "
                      "which GNU OpenMP cannot start again here; the kernels stay serial",
                      RuntimeWarning, stacklevel=2)
