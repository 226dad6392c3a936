# distutils: sources = src_c/threads.c src_c/cpu.c
# distutils: depends = src_c/threads.h src_c/cpu.h src_c/thresholds.h
"""What the compiled core was built with, the one process-wide thread count and the one instruction-set
level (SIMD) every kernel uses.

The count is shared by all Python threads (like ``torch.set_num_threads``): every parallel region of the
kernels takes its team size from it explicitly, never from OpenMP's per-thread setting. It starts at
OpenMP's default (``OMP_NUM_THREADS``, else the number of cores), clamped to ``MAX_NUM_THREADS``.

A process forked (``os.fork``, ``multiprocessing``'s 'fork' start method) by a thread that had run a
parallel kernel cannot start OpenMP threads again (GNU OpenMP is not fork-safe): there, and in its own
children, every kernel runs serially and ``get_num_threads()`` is 1. A child forked before any parallel
kernel ran keeps the full count.

The SIMD level (``set_simd``/``get_simd``) starts at the best one the CPU can run; every kernel family (GEMM,
2x2 max pooling, activations) takes its kernels from that level's table (src_c/cpu.h).
"""
import numbers
import os
import warnings

cimport cython
from cython.parallel cimport prange
from libc.stddef cimport ptrdiff_t


cdef extern from "threads.h" nogil:
    int cnn_threads_init()
    int cnn_threads_openmp()
    int cnn_threads_get()
    void cnn_threads_set(int n)
    int cnn_threads_forked_serial()
    int cnn_threads_team(ptrdiff_t work)
    int cnn_pool_run(cnn_pool_job job, void *arg, int nt)
    void cnn_pool_stats(long out[4])
    void cnn_pool_set_spin_us(int us)
    void cnn_pool_set_load_file(const char *path)
    int cnn_pool_alone_now()
    void cnn_threads_team_start(int t)
    void cnn_team_barrier(cnn_team_count *c, int target)
    void cnn_team_arrive(cnn_team_count *c, int target)
    void cnn_team_wait(cnn_team_count *c, int target)
    int cnn_pool_idle_set(cnn_pool_idle_fn fn, void *arg)
    void cnn_pool_idle_clear(void *arg)

cdef extern from "cpu.h" nogil:
    int CNN_SIMD_NLEVELS
    unsigned cnn_cpu_levels()
    int cnn_cpu_best_level()
    int cnn_simd_get()
    int cnn_simd_set(int level)


# The largest thread count set_num_threads accepts (src_c/threads.h says why 256).
MAX_NUM_THREADS: int = CNN_MAX_NUM_THREADS


cdef int team_size(ptrdiff_t work) noexcept nogil:
    return cnn_threads_team(work)


cdef int pool_run(cnn_pool_job job, void *arg, int nt) noexcept nogil:
    return cnn_pool_run(job, arg, nt)


cdef void run_team(cnn_pool_job job, void *arg, int nt) noexcept nogil:
    cdef int t
    if nt < 2:
        job(arg, 0)
    elif cnn_pool_run(job, arg, nt) != 0:
        for t in prange(nt, schedule="static", num_threads=nt):
            job(arg, t)


cdef void team_start(int t) noexcept nogil:
    cnn_threads_team_start(t)


cdef void team_barrier(cnn_team_count *c, int target) noexcept nogil:
    cnn_team_barrier(c, target)


cdef void team_arrive(cnn_team_count *c, int target) noexcept nogil:
    cnn_team_arrive(c, target)


cdef void team_wait(cnn_team_count *c, int target) noexcept nogil:
    cnn_team_wait(c, target)


cdef int pool_idle_set(cnn_pool_idle_fn fn, void *arg) noexcept nogil:
    return cnn_pool_idle_set(fn, arg)


cdef void pool_idle_clear(void *arg) noexcept nogil:
    cnn_pool_idle_clear(arg)


def _pool_stats() -> tuple:
    """(jobs the small-job pool ran, idle waits it slept through at once on a busy machine, changes of the
    team members' CPU masks, its workers started); for tests."""
    cdef long out[4]
    cnn_pool_stats(out)
    return out[0], out[1], out[2], out[3]


def _pool_set_spin_us(int us) -> None:
    """How long an idle pool worker spins for the next job while the process is alone on its cores, in
    microseconds (-1: the default, CNN_POOL_SPIN_US of src_c/thresholds.h); for tests and benchmarks."""
    cnn_pool_set_spin_us(us)


def _pool_set_load_file(path) -> None:
    """Read the load from `path` (a str, in /proc/loadavg's format) instead of /proc/loadavg, or from
    /proc/loadavg again (None); forgets the looks so far. For tests."""
    if path is None:
        cnn_pool_set_load_file(NULL)
    else:
        encoded = os.fsencode(path)
        cnn_pool_set_load_file(encoded)


def _pool_alone() -> bool:
    """Whether the process counts as alone on its cores now (the pool's look at the load, taken when the
    last is older than CNN_POOL_BUSY_CHECK_NS, 2 ms); for tests."""
    return bool(cnn_pool_alone_now())


cdef int simd_level() noexcept nogil:
    return cnn_simd_get()


# The instruction-set levels by their index in src_c/cpu.h, lowest first.
SIMD_LEVELS: tuple = ("baseline", "avx2", "avx512")
if len(SIMD_LEVELS) != CNN_SIMD_NLEVELS:
    raise ImportError(f"cnn_core._config: SIMD_LEVELS names {len(SIMD_LEVELS)} levels, src_c/cpu.h has {CNN_SIMD_NLEVELS}")


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


def cpu_simd_levels() -> tuple:
    """The SIMD levels this CPU can run, lowest first: ``"baseline"`` always, ``"avx2"`` with AVX2 and FMA,
    ``"avx512"`` with AVX-512 F, VL, BW and DQ."""
    levels = cnn_cpu_levels()
    return tuple(name for i, name in enumerate(SIMD_LEVELS) if levels & (1 << i))


def get_simd() -> str:
    """The SIMD level every kernel uses now: ``"baseline"``, ``"avx2"`` or ``"avx512"`` (see set_simd)."""
    return SIMD_LEVELS[cnn_simd_get()]


@cython.annotation_typing(False)   # the hint documents; the check below gives the policy's TypeError
def set_simd(level: str) -> None:
    """Choose the instruction set of every kernel, process-wide: ``"auto"`` (the default at import: the best
    level this CPU can run), ``"avx512"``, ``"avx2"`` or ``"baseline"`` (portable C; SSE2 on x86-64).

    For tests and benchmarks that compare code paths; every level computes the same results up to rounding.
    At ``"avx512"`` the packed GEMM (``cnn_core.kernels.gemm`` and every layer built on it) runs AVX-512
    micro-kernels; its unpacked small-problem and A @ B.T weight-gradient kernels and every other family
    (pooling, activations) run their AVX2 versions. A kernel call already running in another thread may
    finish on the level it started with.

    Raises TypeError when level is not a str, ValueError when it names no level or one this CPU cannot run.
    """
    if not isinstance(level, str):
        raise TypeError(f"level: expected a str, one of 'auto', {', '.join(map(repr, SIMD_LEVELS[::-1]))}; "
                        f"got {type(level).__name__}")
    if level == "auto":
        index = cnn_cpu_best_level()
    elif level in SIMD_LEVELS:
        index = SIMD_LEVELS.index(level)
    else:
        raise ValueError(f"level: expected one of 'auto', {', '.join(map(repr, SIMD_LEVELS[::-1]))}; got {level!r}")
    if cnn_simd_set(index) != 0:
        raise ValueError(f"level: this CPU cannot run {level!r}; it has {', '.join(cpu_simd_levels())}")
