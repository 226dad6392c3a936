# distutils: sources = src_c/gemm.c src_c/gemm_nt.c src_c/gemm_avx512.c src_c/gemm_peak.c
# distutils: depends = src_c/gemm.h src_c/gemm_cntx.h src_c/gemm_template.h src_c/avx2.h src_c/avx512.h src_c/cpu.h src_c/threads.h src_c/thresholds.h
"""Cython binding of the blocked C GEMM in src_c/gemm.c (validation lives in gemm.py)."""
from cython cimport floating
import numpy as np
from libc.stddef cimport ptrdiff_t

from cnn_core._config cimport simd_level, team_size


cdef extern from "gemm.h" nogil:
    ctypedef int (*cnn_team_size_fn)(ptrdiff_t work) noexcept nogil
    ctypedef int (*cnn_simd_level_fn)() noexcept nogil
    int cnn_gemm_init(cnn_team_size_fn team_size, cnn_simd_level_fn simd_level)
    int cnn_sgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                  float alpha, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                  float beta, float *c, ptrdiff_t ldc)
    int cnn_dgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                  double alpha, const double *a, ptrdiff_t lda, const double *b, ptrdiff_t ldb,
                  double beta, double *c, ptrdiff_t ldc)
    int cnn_sgemm_strided(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                          const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                          const float *b, ptrdiff_t rsb, ptrdiff_t csb,
                          float beta, float *c, ptrdiff_t ldc)
    int cnn_dgemm_strided(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                          const double *a, ptrdiff_t rsa, ptrdiff_t csa,
                          const double *b, ptrdiff_t rsb, ptrdiff_t csb,
                          double beta, double *c, ptrdiff_t ldc)
    int cnn_sgemm_nt_acc(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,
                         const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc)
    int cnn_dgemm_nt_acc(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda,
                         const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)
    void cnn_gemm_set_unpacked(int mode)
    void cnn_gemm_set_partition(int mode)
    double cnn_fma_probe(int kind, long iters)
    void cnn_gemm_blocking(int dtype, int *out)


if cnn_gemm_init(team_size, simd_level) != 0:
    raise ImportError("cnn_core.kernels._gemm: could not create the thread-local key of the packing buffers")


cdef int gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
              floating alpha, const floating *a, Py_ssize_t lda, const floating *b, Py_ssize_t ldb,
              floating beta, floating *c, Py_ssize_t ldc) noexcept nogil:
    if floating is float:
        return cnn_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    else:
        return cnn_dgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


cdef int gemm_nt_acc(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *a, Py_ssize_t lda,
                     const floating *b, Py_ssize_t ldb, floating *c, Py_ssize_t ldc) noexcept nogil:
    if floating is float:
        return cnn_sgemm_nt_acc(m, n, k, a, lda, b, ldb, c, ldc)
    else:
        return cnn_dgemm_nt_acc(m, n, k, a, lda, b, ldb, c, ldc)


cdef inline bint _overlap(const char *x, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t rs, Py_ssize_t cs,
                          const char *y, Py_ssize_t size_y) noexcept nogil:
    """Whether the bytes spanned by the rows x cols view at x (byte strides rs, cs) meet [y, y + size_y):
    the extents' test of numpy.may_share_memory, without its Python call."""
    cdef const char *lo = x
    cdef const char *hi = x
    if rows == 0 or cols == 0:
        return False
    if rs < 0:
        lo += (rows - 1) * rs
    else:
        hi += (rows - 1) * rs
    if cs < 0:
        lo += (cols - 1) * cs
    else:
        hi += (cols - 1) * cs
    return lo < y + size_y and y <= hi


def gemm_into(const floating[:, :] opa, const floating[:, :] opb, floating[:, ::1] c,
              double alpha, double beta, bint check_overlap=False):
    """c = alpha * opa @ opb + beta * c, with opa (M, K) and opb (K, N) any strided views, c (M, N).

    The views' strides go straight to the C packing routines, so transposes and slices cost no copy.
    Strides must be whole elements (the caller copies other arrays). With check_overlap, a c that overlaps
    opa or opb (named a and b in the message) is a ValueError (the product is written while they are read).
    """
    cdef Py_ssize_t m = c.shape[0], n = c.shape[1], k = opa.shape[1]
    cdef Py_ssize_t size = sizeof(floating)
    cdef Py_ssize_t rsa = opa.strides[0] // size, csa = opa.strides[1] // size
    cdef Py_ssize_t rsb = opb.strides[0] // size, csb = opb.strides[1] // size
    cdef const floating *pa = NULL
    cdef const floating *pb = NULL
    cdef int err
    if m == 0 or n == 0:
        return
    if k > 0:
        pa = &opa[0, 0]
        pb = &opb[0, 0]
        if check_overlap:
            name = None
            if _overlap(<const char *>pa, m, k, opa.strides[0], opa.strides[1], <const char *>&c[0, 0], m * n * size):
                name = "a"
            elif _overlap(<const char *>pb, k, n, opb.strides[0], opb.strides[1], <const char *>&c[0, 0], m * n * size):
                name = "b"
            if name is not None:
                raise ValueError(f"c: must not overlap {name} (the product is written while {name} is read)")
    with nogil:
        if floating is float:
            err = cnn_sgemm_strided(m, n, k, <float>alpha, pa, rsa, csa, pb, rsb, csb,
                                    <float>beta, &c[0, 0], c.shape[1])
        else:
            err = cnn_dgemm_strided(m, n, k, alpha, pa, rsa, csa, pb, rsb, csb, beta, &c[0, 0], c.shape[1])
    if err != 0:
        raise MemoryError("gemm: could not allocate the packing buffers")


def set_unpacked(mode: int) -> None:
    """Packing policy (for tests and benchmarks): -1 by problem shape (default), 0 always pack,
    1 skip packing wherever the level's unpacked kernel applies. Not safe while another thread is in gemm."""
    cnn_gemm_set_unpacked(mode)


def set_partition(mode: int) -> None:
    """The parallel packed driver (for tests and benchmarks): -1 by problem size (default), 0 always the
    team sharing packed panels, 1 always one static panel of C per thread. Not safe while another thread
    is in gemm."""
    cnn_gemm_set_partition(mode)


def blocking(dtype) -> dict:
    """The packed GEMM's blocking at the SIMD level in use for `dtype` (float32 or float64): the micro-tile
    mr x nr and the cache blocks mc, kc, nc (src_c/gemm.c's table). For tests and benchmarks."""
    cdef int out[5]
    cnn_gemm_blocking(1 if dtype == np.float64 else 0, out)
    return dict(mr=out[0], nr=out[1], mc=out[2], kc=out[3], nc=out[4])


def fma_probe(kind: int, iters: int) -> float:
    """Seconds for src_c/gemm_peak.c's probe `kind` (0: one dependent FMA chain, 1: AVX2 and 2: AVX-512
    FMA throughput) over `iters` steps, or -1 where the CPU lacks it. For benchmarks/bench_gemm.py."""
    cdef int c_kind = kind
    cdef long c_iters = iters
    cdef double t
    with nogil:
        t = cnn_fma_probe(c_kind, c_iters)
    return t
