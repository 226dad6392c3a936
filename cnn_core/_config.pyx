"""What the compiled core was built with, and the OpenMP thread count it uses."""
import numbers

cdef extern from *:
    """
    #if CNN_CORE_OPENMP
    #include <omp.h>
    static int cnn_openmp_enabled(void) { return 1; }
    static int cnn_get_num_threads(void) { return omp_get_max_threads(); }
    static void cnn_set_num_threads(int n) { omp_set_num_threads(n); }
    #else
    static int cnn_openmp_enabled(void) { return 0; }
    static int cnn_get_num_threads(void) { return 1; }
    static void cnn_set_num_threads(int n) { (void)n; }
    #endif
    """
    int cnn_openmp_enabled() noexcept nogil
    int cnn_get_num_threads() noexcept nogil
    void cnn_set_num_threads(int n) noexcept nogil


def openmp_enabled() -> bool:
    """True when the kernels were compiled with OpenMP."""
    return bool(cnn_openmp_enabled())


def get_num_threads() -> int:
    """Number of threads the OpenMP kernels use (1 in a serial build)."""
    return cnn_get_num_threads()


def set_num_threads(n) -> None:
    """Set the number of threads the OpenMP kernels use (ignored in a serial build)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected an int thread count, got {type(n).__name__}")
    if not 1 <= n <= 1 << 16:
        raise ValueError(f"n: expected a thread count in 1..65536, got {n}")
    cnn_set_num_threads(<int>n)
