# The C GEMM for other Cython kernels' nogil code (e.g. per-sample GEMMs inside a prange), without compiling
# src_c/gemm.c again: `from cnn_core.kernels._gemm cimport gemm, gemm_nt_acc`. One fused-type entry point
# per operation, as scikit-learn's _cython_blas.pxd has: the dtype picks cnn_sgemm or cnn_dgemm.
# Row-major, BLAS argument order; see src_c/gemm.h. Returns 0, or -1 if packing buffers cannot be allocated.
from cython cimport floating

# c = alpha * op(a) @ op(b) + beta * c; with beta == 0, c is not read. row_shares: on a team, c's rows split
# between the threads as a parameter's rows are (threads.h's cnn_row_share), for products whose rows are a
# weight's rows, so each thread touches the rows the optimizer's step gives it (the same result).
cdef int gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
              floating alpha, const floating *a, Py_ssize_t lda, const floating *b, Py_ssize_t ldb,
              floating beta, floating *c, Py_ssize_t ldc, bint row_shares=*) noexcept nogil
# c += a @ b.T with a (m, k) and b (n, k) rows contiguous (a weight gradient's NT product); see gemm.h.
cdef int gemm_nt_acc(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *a, Py_ssize_t lda,
                     const floating *b, Py_ssize_t ldb, floating *c, Py_ssize_t ldc) noexcept nogil
# c + s*sc = alpha * op(a) @ (b + s*sb) + beta * (c + s*sc) for s < batch: a batch of (k, w) and (m, w)
# matrices sharing op(a), as one product over their columns side by side; on the calling thread (gemm.h).
cdef int gemm_batch(bint trans_a, Py_ssize_t m, Py_ssize_t w, Py_ssize_t k, Py_ssize_t batch, floating alpha,
                    const floating *a, Py_ssize_t lda, const floating *b, Py_ssize_t ldb, Py_ssize_t sb,
                    floating beta, floating *c, Py_ssize_t ldc, Py_ssize_t sc) noexcept nogil
# c = beta * c + sum over s < batch of (a + s*sa) @ (b + s*sb).T, each (m, k) and (n, k) with rows lda / ldb
# apart and k contiguous: one product of depth k * batch, on the calling thread (gemm.h).
cdef int gemm_nt_batch(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, Py_ssize_t batch, const floating *a,
                       Py_ssize_t lda, Py_ssize_t sa, const floating *b, Py_ssize_t ldb, Py_ssize_t sb,
                       floating beta, floating *c, Py_ssize_t ldc) noexcept nogil
