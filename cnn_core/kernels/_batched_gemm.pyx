"""Batched GEMM: the per-sample products of a convolution layer in one call, the batch loop in nogil code.

Calls the blocked C GEMM of _gemm (serial inside the prange: it never nests a team) once per sample, so the
batch costs no Python round trips and the samples run in parallel.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdlib cimport calloc, free

from cnn_core._config cimport team_size
from cnn_core.kernels._gemm cimport gemm, gemm_nt_acc


cdef inline int _gemm_acc(bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *a,
                          Py_ssize_t lda, const floating *b, Py_ssize_t ldb, floating *c,
                          Py_ssize_t ldc) noexcept nogil:
    """c += op(a) @ op(b); the NT case (a weight gradient, K contiguous in both) skips packing."""
    if not ta and tb:
        return gemm_nt_acc(m, n, k, a, lda, b, ldb, c, ldc)
    return gemm(ta, tb, m, n, k, <floating>1, a, lda, b, ldb, <floating>1, c, ldc)


def gemm_batched(const floating[:, :, ::1] a, const floating[:, :, ::1] b, floating[:, :, ::1] c,
                 bint trans_a, bint trans_b, double alpha, double beta):
    """c[i] = alpha * op(a[i]) @ op(b[i]) + beta * c[i] for every i; a or b may have batch size 1 (shared).

    a (Ba, rows, cols), b (Bb, rows, cols), c (B, M, N), Ba and Bb in {1, B}; shapes checked by the caller.
    The team is the process-wide thread count, capped by the batch.
    """
    cdef Py_ssize_t batch = c.shape[0], m = c.shape[1], n = c.shape[2]
    cdef Py_ssize_t k = a.shape[1] if trans_a else a.shape[2]
    cdef Py_ssize_t lda = a.shape[2], ldb = b.shape[2]
    cdef Py_ssize_t sa = 0 if a.shape[0] == 1 else a.shape[1] * a.shape[2]
    cdef Py_ssize_t sb = 0 if b.shape[0] == 1 else b.shape[1] * b.shape[2]
    cdef Py_ssize_t i
    cdef int err = 0
    cdef int nt = team_size(batch)
    if batch == 0 or m == 0 or n == 0:
        return
    for i in prange(batch, nogil=True, num_threads=nt, schedule="static"):
        err |= gemm(trans_a, trans_b, m, n, k, <floating>alpha, &a[0, 0, 0] + i * sa, lda,
                     &b[0, 0, 0] + i * sb, ldb, <floating>beta, &c[i, 0, 0], n)
    if err:
        raise MemoryError("gemm_batched: could not allocate the packing buffers")


def gemm_batched_sum(const floating[:, :, ::1] a, const floating[:, :, ::1] b, floating[:, ::1] c,
                     bint trans_a, bint trans_b, double alpha, double beta):
    """c = alpha * sum_i op(a[i]) @ op(b[i]) + beta * c (a weight gradient summed over the batch).

    Each thread sums its samples into a private buffer (no races); the buffers are added into c at the end.
    """
    cdef Py_ssize_t batch = a.shape[0], m = c.shape[0], n = c.shape[1]
    cdef Py_ssize_t k = a.shape[1] if trans_a else a.shape[2]
    cdef Py_ssize_t lda = a.shape[2], ldb = b.shape[2]
    cdef Py_ssize_t sa = a.shape[1] * a.shape[2], sb = b.shape[1] * b.shape[2]
    cdef Py_ssize_t i, j, t, mn = m * n
    cdef int nt = team_size(batch)
    cdef int err = 0
    cdef floating *buf
    cdef floating *cc = &c[0, 0]
    if m == 0 or n == 0:
        return
    buf = <floating *>calloc(nt * mn, sizeof(floating))
    if buf == NULL:
        raise MemoryError("gemm_batched_sum: could not allocate the per-thread sums")
    try:
        with nogil:
            for i in prange(batch, num_threads=nt, schedule="static"):
                err |= _gemm_acc(trans_a, trans_b, m, n, k, &a[0, 0, 0] + i * sa, lda,
                                 &b[0, 0, 0] + i * sb, ldb, buf + threadid() * mn, n)
            for j in range(mn):
                cc[j] = <floating>beta * cc[j] if beta != 0 else 0
                for t in range(nt):
                    cc[j] += <floating>alpha * buf[t * mn + j]
    finally:
        free(buf)
    if err:
        raise MemoryError("gemm_batched_sum: could not allocate the packing buffers")
