# distutils: sources = src_c/gemm.c src_c/gemm_nt.c src_c/gemm_avx512.c src_c/gemm_peak.c
# distutils: depends = src_c/gemm.h src_c/gemm_cntx.h src_c/gemm_template.h src_c/avx2.h src_c/avx512.h src_c/cpu.h src_c/threads.h src_c/thresholds.h
"""Cython binding of the blocked C GEMM in src_c/gemm.c (validation lives in gemm.py)."""
from cython cimport floating
import numpy as np
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_STRIDES, PyBuffer_Release, PyObject_GetBuffer
from cnn_core.kernels._buffer cimport float_kind
from libc.stddef cimport ptrdiff_t

from cnn_core._config cimport cnn_pool_job, cnn_team_count, pool_run, simd_level, team_barrier, team_size, team_start


cdef extern from "gemm.h" nogil:
    ctypedef int (*cnn_team_size_fn)(ptrdiff_t work) noexcept nogil
    ctypedef int (*cnn_simd_level_fn)() noexcept nogil
    int cnn_gemm_init(cnn_team_size_fn team_size, cnn_simd_level_fn simd_level)
    ctypedef int (*cnn_pool_run_fn)(cnn_pool_job job, void *arg, int nt) noexcept nogil
    void cnn_gemm_set_pool(cnn_pool_run_fn pool)
    ctypedef void (*cnn_team_start_fn)(int t) noexcept nogil
    void cnn_gemm_set_team_start(cnn_team_start_fn team_start)
    ctypedef void (*cnn_team_barrier_fn)(cnn_team_count *c, int target) noexcept nogil
    void cnn_gemm_set_barrier(cnn_team_barrier_fn barrier)
    int cnn_sgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                  float alpha, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                  float beta, float *c, ptrdiff_t ldc)
    int cnn_dgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                  double alpha, const double *a, ptrdiff_t lda, const double *b, ptrdiff_t ldb,
                  double beta, double *c, ptrdiff_t ldc)
    int cnn_sgemm_row_shares(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                             float alpha, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                             float beta, float *c, ptrdiff_t ldc)
    int cnn_dgemm_row_shares(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
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
    int cnn_sgemm_batch(int trans_a, ptrdiff_t m, ptrdiff_t w, ptrdiff_t k, ptrdiff_t batch, float alpha,
                        const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, ptrdiff_t sb, float beta,
                        float *c, ptrdiff_t ldc, ptrdiff_t sc)
    int cnn_dgemm_batch(int trans_a, ptrdiff_t m, ptrdiff_t w, ptrdiff_t k, ptrdiff_t batch, double alpha,
                        const double *a, ptrdiff_t lda, const double *b, ptrdiff_t ldb, ptrdiff_t sb, double beta,
                        double *c, ptrdiff_t ldc, ptrdiff_t sc)
    int cnn_sgemm_nt_batch(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, ptrdiff_t batch, const float *a, ptrdiff_t lda,
                           ptrdiff_t sa, const float *b, ptrdiff_t ldb, ptrdiff_t sb, float beta, float *c,
                           ptrdiff_t ldc)
    int cnn_dgemm_nt_batch(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, ptrdiff_t batch, const double *a, ptrdiff_t lda,
                           ptrdiff_t sa, const double *b, ptrdiff_t ldb, ptrdiff_t sb, double beta, double *c,
                           ptrdiff_t ldc)
    int cnn_sgemm_nt_acc(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,
                         const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc)
    int cnn_dgemm_nt_acc(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda,
                         const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)
    void cnn_gemm_set_unpacked(int mode)
    void cnn_gemm_set_partition(int mode)
    int cnn_gemm_backoff_left()
    void cnn_gemm_reset_backoff()
    double cnn_fma_probe(int kind, long iters)
    void cnn_gemm_blocking(int dtype, Py_ssize_t *out)


if cnn_gemm_init(team_size, simd_level) != 0:
    raise ImportError("cnn_core.kernels._gemm: could not create the thread-local key of the packing buffers")
cnn_gemm_set_pool(pool_run)
cnn_gemm_set_team_start(team_start)
cnn_gemm_set_barrier(team_barrier)


def set_pool(bint on) -> None:
    """Small products' teams on cnn_core._config's small-job pool (True, the default) or on OpenMP teams
    (False); for tests and benchmarks, not thread-safe against concurrent gemm calls."""
    cnn_gemm_set_pool(pool_run if on else <cnn_pool_run_fn>NULL)


cdef int gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
              floating alpha, const floating *a, Py_ssize_t lda, const floating *b, Py_ssize_t ldb,
              floating beta, floating *c, Py_ssize_t ldc, bint row_shares=False) noexcept nogil:
    if floating is float:
        if row_shares:
            return cnn_sgemm_row_shares(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return cnn_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    else:
        if row_shares:
            return cnn_dgemm_row_shares(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return cnn_dgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


cdef int gemm_nt_acc(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *a, Py_ssize_t lda,
                     const floating *b, Py_ssize_t ldb, floating *c, Py_ssize_t ldc) noexcept nogil:
    if floating is float:
        return cnn_sgemm_nt_acc(m, n, k, a, lda, b, ldb, c, ldc)
    else:
        return cnn_dgemm_nt_acc(m, n, k, a, lda, b, ldb, c, ldc)


cdef int gemm_batch(bint trans_a, Py_ssize_t m, Py_ssize_t w, Py_ssize_t k, Py_ssize_t batch, floating alpha,
                    const floating *a, Py_ssize_t lda, const floating *b, Py_ssize_t ldb, Py_ssize_t sb,
                    floating beta, floating *c, Py_ssize_t ldc, Py_ssize_t sc) noexcept nogil:
    if floating is float:
        return cnn_sgemm_batch(trans_a, m, w, k, batch, alpha, a, lda, b, ldb, sb, beta, c, ldc, sc)
    else:
        return cnn_dgemm_batch(trans_a, m, w, k, batch, alpha, a, lda, b, ldb, sb, beta, c, ldc, sc)


cdef int gemm_nt_batch(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, Py_ssize_t batch, const floating *a,
                       Py_ssize_t lda, Py_ssize_t sa, const floating *b, Py_ssize_t ldb, Py_ssize_t sb,
                       floating beta, floating *c, Py_ssize_t ldc) noexcept nogil:
    if floating is float:
        return cnn_sgemm_nt_batch(m, n, k, batch, a, lda, sa, b, ldb, sb, beta, c, ldc)
    else:
        return cnn_dgemm_nt_batch(m, n, k, batch, a, lda, sa, b, ldb, sb, beta, c, ldc)


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


def gemm_batch_into(const floating[:, ::1] a, const floating[:, :, :] b, floating[:, :, :] c,
                    bint trans_a, double alpha, double beta):
    """c[s] = alpha * op(a) @ b[s] + beta * c[s] for every s, by gemm.h's cnn_?gemm_batch (the 1x1
    convolution's product): a (M, K), or (K, M) with trans_a; b (batch, K, W); c (batch, M, W); views whose
    first two axes may be strided (b's and c's samples and rows with gaps between them); for the tests."""
    cdef Py_ssize_t size = sizeof(floating), batch = b.shape[0], w = b.shape[2]
    cdef Py_ssize_t m = a.shape[1] if trans_a else a.shape[0], k = a.shape[0] if trans_a else a.shape[1]
    cdef int err
    if b.shape[1] != k or c.shape[0] != batch or c.shape[1] != m or c.shape[2] != w:
        raise ValueError(f"gemm_batch_into: shapes {a.shape}, {b.shape}, {c.shape} do not match")
    if (w > 1 and (b.strides[2] != size or c.strides[2] != size)) or b.strides[0] % size or b.strides[1] % size \
            or c.strides[0] % size or c.strides[1] % size:
        raise ValueError("gemm_batch_into: b and c need contiguous rows and whole-element strides")
    if batch == 0 or m == 0 or w == 0:
        return
    with nogil:
        err = gemm_batch(trans_a, m, w, k, batch, <floating>alpha, &a[0, 0] if k > 0 else NULL, a.shape[1],
                         &b[0, 0, 0] if k > 0 else NULL, b.strides[1] // size, b.strides[0] // size,
                         <floating>beta, &c[0, 0, 0], c.strides[1] // size, c.strides[0] // size)
    if err != 0:
        raise MemoryError("gemm_batch_into: could not allocate the packing buffers")


def gemm_nt_batch_into(const floating[:, :, :] a, const floating[:, :, :] b, floating[:, ::1] c, double beta):
    """c = beta * c + sum_s a[s] @ b[s].T by gemm.h's cnn_?gemm_nt_batch (the 1x1 convolution's weight
    gradient): a (batch, M, K), b (batch, N, K), c (M, N); a's and b's first two axes may be strided, their
    last is contiguous; for the tests."""
    cdef Py_ssize_t size = sizeof(floating), batch = a.shape[0], m = a.shape[1], k = a.shape[2], n = b.shape[1]
    cdef int err
    if b.shape[0] != batch or b.shape[2] != k or c.shape[0] != m or c.shape[1] != n:
        raise ValueError(f"gemm_nt_batch_into: shapes {a.shape}, {b.shape}, {c.shape} do not match")
    if (k > 1 and (a.strides[2] != size or b.strides[2] != size)) or a.strides[0] % size or a.strides[1] % size \
            or b.strides[0] % size or b.strides[1] % size:
        raise ValueError("gemm_nt_batch_into: a and b need contiguous rows and whole-element strides")
    if m == 0 or n == 0:
        return
    with nogil:
        err = gemm_nt_batch(m, n, k, batch, &a[0, 0, 0] if batch and k else NULL, a.strides[1] // size,
                            a.strides[0] // size, &b[0, 0, 0] if batch and k else NULL, b.strides[1] // size,
                            b.strides[0] // size, <floating>beta, &c[0, 0], n)
    if err != 0:
        raise MemoryError("gemm_nt_batch_into: could not allocate the packing buffers")


_ndarray = np.ndarray
_empty = np.empty
_dtypes = {4: np.dtype(np.float32), 8: np.dtype(np.float64)}


def gemm_fast(a, b, c, alpha, beta, bint trans_a, bint trans_b):
    """gemm.py's gemm for the usual arguments, checked here in C through the buffer protocol (a fraction of
    a microsecond, where the Python checks and the fused memoryviews of gemm_into cost ~3 us: as much as a
    64 x 64 product's arithmetic takes on one core). a, b: 2-D float32/float64 ndarrays of one dtype with
    whole-element strides; alpha, beta: Python floats; c: None or a C-contiguous writable ndarray of
    the product's shape and dtype not overlapping a or b. Anything else returns NotImplemented, and gemm.py's
    checks take over (they raise the library's errors or copy odd strides)."""
    cdef Py_buffer va, vb, vc
    cdef Py_ssize_t m, n, k, kb, rsa, csa, rsb, csb, size
    cdef int kind, err = 0
    cdef double al, be
    cdef bint have_c = c is not None
    cdef const char *pa
    cdef const char *pb
    if type(a) is not _ndarray or type(b) is not _ndarray or (have_c and type(c) is not _ndarray):
        return NotImplemented
    if type(alpha) is not float or type(beta) is not float:
        return NotImplemented
    al, be = alpha, beta
    PyObject_GetBuffer(a, &va, PyBUF_STRIDES | PyBUF_FORMAT)
    try:
        PyObject_GetBuffer(b, &vb, PyBUF_STRIDES | PyBUF_FORMAT)
        try:
            kind = float_kind(&va)
            if va.ndim != 2 or vb.ndim != 2 or kind == 0 or float_kind(&vb) != kind:
                return NotImplemented
            size = kind
            if (va.strides[0] % size or va.strides[1] % size or vb.strides[0] % size or vb.strides[1] % size):
                return NotImplemented
            if trans_a:
                m, k, rsa, csa = va.shape[1], va.shape[0], va.strides[1] // size, va.strides[0] // size
            else:
                m, k, rsa, csa = va.shape[0], va.shape[1], va.strides[0] // size, va.strides[1] // size
            if trans_b:
                kb, n, rsb, csb = vb.shape[1], vb.shape[0], vb.strides[1] // size, vb.strides[0] // size
            else:
                kb, n, rsb, csb = vb.shape[0], vb.shape[1], vb.strides[0] // size, vb.strides[1] // size
            if kb != k:
                return NotImplemented
            if not have_c:
                c, be = _empty((m, n), _dtypes[kind]), 0.0
            PyObject_GetBuffer(c, &vc, PyBUF_STRIDES | PyBUF_FORMAT)
            try:
                if (vc.ndim != 2 or vc.shape[0] != m or vc.shape[1] != n or float_kind(&vc) != kind
                        or vc.readonly or (n > 1 and vc.strides[1] != size) or (m > 1 and vc.strides[0] != n * size)):
                    return NotImplemented   # the Python checks name what is wrong with c
                if m == 0 or n == 0:
                    return c
                pa, pb = <const char *>va.buf, <const char *>vb.buf
                if k > 0 and have_c and (
                        _overlap(pa, m, k, rsa * size, csa * size, <const char *>vc.buf, m * n * size) or
                        _overlap(pb, k, n, rsb * size, csb * size, <const char *>vc.buf, m * n * size)):
                    return NotImplemented
                with nogil:
                    if kind == 4:
                        err = cnn_sgemm_strided(m, n, k, <float>al, <const float *>pa, rsa, csa,
                                                <const float *>pb, rsb, csb, <float>be, <float *>vc.buf, n)
                    else:
                        err = cnn_dgemm_strided(m, n, k, al, <const double *>pa, rsa, csa, <const double *>pb,
                                                rsb, csb, be, <double *>vc.buf, n)
            finally:
                PyBuffer_Release(&vc)
        finally:
            PyBuffer_Release(&vb)
    finally:
        PyBuffer_Release(&va)
    if err != 0:
        raise MemoryError("gemm: could not allocate the packing buffers")
    return c


def set_unpacked(mode: int) -> None:
    """Packing policy (for tests and benchmarks): -1 by problem shape (default), 0 always pack,
    1 skip packing wherever the level's unpacked kernel applies. Not safe while another thread is in gemm."""
    cnn_gemm_set_unpacked(mode)


def set_partition(mode: int) -> None:
    """The parallel packed driver (for tests and benchmarks): -1 by problem size (default), 0 always the
    team sharing packed panels, 1 always one static panel of C per thread. Not safe while another thread
    is in gemm."""
    cnn_gemm_set_partition(mode)


def backoff_left() -> int:
    """The small products still to run on one thread because a team's threads all started on one CPU
    (src_c/gemm.c, "teams that share one core"); for the tests."""
    return cnn_gemm_backoff_left()


def reset_backoff() -> None:
    """End the one-thread back-off now (tests)."""
    cnn_gemm_reset_backoff()


def blocking(dtype) -> dict:
    """The packed GEMM's blocking at the SIMD level in use for `dtype` (float32 or float64): the micro-tile
    mr x nr and the cache blocks mc, kc, nc (src_c/gemm.c's table, nc as capped at depth kc by half of one
    core's L2), l2, the L2 size the cap used in bytes (0: unknown, no cap), and the unpacked path's limits:
    sup_kmax, sup_ratio (one thread) and sup_ratio_team. For tests and benchmarks."""
    cdef Py_ssize_t out[9]
    cnn_gemm_blocking(1 if dtype == np.float64 else 0, out)
    return dict(mr=out[0], nr=out[1], mc=out[2], kc=out[3], nc=out[4], l2=out[5], sup_kmax=out[6],
                sup_ratio=out[7], sup_ratio_team=out[8])


def fma_probe(kind: int, iters: int) -> float:
    """Seconds for src_c/gemm_peak.c's probe `kind` (0: one dependent FMA chain, 1: AVX2 and 2: AVX-512
    FMA throughput) over `iters` steps, or -1 where the CPU lacks it. For benchmarks/bench_gemm.py."""
    cdef int c_kind = kind
    cdef long c_iters = iters
    cdef double t
    with nogil:
        t = cnn_fma_probe(c_kind, c_iters)
    return t
