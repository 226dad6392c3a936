# Lets other Cython kernels call the C GEMM from nogil code (e.g. per-sample GEMMs inside a prange)
# without compiling src_c/gemm.c again: `from cnn_core.kernels._gemm cimport sgemm, dgemm`.
# Row-major, BLAS argument order; see src_c/gemm.h. Returns 0, or -1 if packing buffers cannot be allocated.

cdef int sgemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
               float alpha, const float *a, Py_ssize_t lda, const float *b, Py_ssize_t ldb,
               float beta, float *c, Py_ssize_t ldc) noexcept nogil
cdef int dgemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
               double alpha, const double *a, Py_ssize_t lda, const double *b, Py_ssize_t ldb,
               double beta, double *c, Py_ssize_t ldc) noexcept nogil
# c += a @ b.T with a (m, k) and b (n, k) rows contiguous (a weight gradient's NT product); see gemm.h.
cdef int sgemm_nt_acc(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *a, Py_ssize_t lda,
                      const float *b, Py_ssize_t ldb, float *c, Py_ssize_t ldc) noexcept nogil
cdef int dgemm_nt_acc(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *a, Py_ssize_t lda,
                      const double *b, Py_ssize_t ldb, double *c, Py_ssize_t ldc) noexcept nogil
