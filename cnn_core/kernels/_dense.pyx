# distutils: depends = src_c/thresholds.h
"""Loops of the fully connected layer (validation lives in dense.py).

Forward: z = x @ w.T on the blocked C GEMM, then one pass over z, still hot in cache, that adds the bias.
Backward: two GEMMs and a compiled column sum. In training, the products that read or write w's rows (the
forward, computed as z.T = w @ x.T, and the weight gradient) split those rows between the threads as the
optimizer's step does (the GEMM's row shares), so no core writes a line of w the other has just read (~50 ns a line
on a 2-vCPU Xeon VM; MLP 784-100-10 epochs 10% shorter). The activation is a layer of its own (nn.Sigmoid, ...,
on the kernels of _activations.pyx): a fused bias+activation pass here measured slower than the two
separate passes, whose activation loops are AVX2.
"""
from cython cimport floating

from libc.stdlib cimport free, malloc

from cnn_core.kernels._gemm cimport gemm

cdef extern from "thresholds.h":
    Py_ssize_t CNN_DENSE_ROW_SHARES_MAX_OUTPUTS


cdef enum:
    # Columns summed per sweep in bias_grad: the double accumulators stay in L1 while rows stream past.
    COLSUM_BLOCK = 512
    # Rows of z written at a time by the row-shares forward's transposing pass.
    TRANSPOSE_ROWS = 16


cdef inline floating *_ptr(floating[:, ::1] a) noexcept nogil:
    """Address of a[0, 0], or NULL for an empty array (which the loops then never dereference)."""
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


cdef inline const floating *_cptr(const floating[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


cdef void _column_sum(const floating *d, Py_ssize_t rows, Py_ssize_t cols, floating *out) noexcept nogil:
    """out[j] = sum_i d[i, j], accumulated in double (rows stream through once per column block)."""
    cdef double acc[COLSUM_BLOCK]
    cdef Py_ssize_t i, j, j0 = 0, width
    while j0 < cols:
        width = min(<Py_ssize_t>COLSUM_BLOCK, cols - j0)
        for j in range(width):
            acc[j] = 0
        for i in range(rows):
            for j in range(width):
                acc[j] += d[i * cols + j0 + j]
        for j in range(width):
            out[j0 + j] = <floating>acc[j]
        j0 += width


def linear_forward_into(const floating[:, ::1] x, const floating[:, ::1] w, const floating[::1] b,
                        bint has_bias, floating[:, ::1] z, bint row_shares):
    """z = x @ w.T + b: x (N, in), w (out, in), b (out,) read only if has_bias, z (N, out).

    row_shares: for a weight about to be updated, compute z.T = w @ x.T with w's rows split between the
    threads as the optimizer's step splits them (the GEMM's row shares), then z = (z.T).T + b in one pass,
    when z has at most CNN_DENSE_ROW_SHARES_MAX_OUTPUTS elements (thresholds.h). The same products in the same
    order: the same bits as the plain z = x @ w.T."""
    cdef Py_ssize_t n = x.shape[0], n_in = x.shape[1], n_out = w.shape[0], i, j, i0, i1
    cdef const floating *pb = &b[0] if has_bias and n_out > 0 else NULL
    cdef floating *zi
    cdef floating *zt
    cdef const floating *ztj
    cdef floating bj
    cdef int err = 0
    if n == 0 or n_out == 0:
        return
    row_shares = row_shares and n * n_out <= CNN_DENSE_ROW_SHARES_MAX_OUTPUTS
    with nogil:
        if not row_shares:
            err = gemm(False, True, n, n_out, n_in, <floating>1, _cptr(x), n_in, _cptr(w), n_in, <floating>0,
                       &z[0, 0], n_out)
            if err == 0 and has_bias:
                for i in range(n):   # memory bound: one thread keeps up
                    zi = &z[i, 0]
                    for j in range(n_out):
                        zi[j] += pb[j]
        else:
            zt = <floating *>malloc(n * n_out * sizeof(floating))
            err = -1 if zt == NULL else gemm(False, True, n_out, n, n_in, <floating>1, _cptr(w), n_in, _cptr(x),
                                             n_in, <floating>0, zt, n, True)
            if err == 0:
                # z[i, j] = zt[j, i] + b[j], TRANSPOSE_ROWS rows of z at a time: their columns of zt are a
                # short contiguous run, and the rows of z being written stay in L1 across all j.
                i0 = 0
                while i0 < n:
                    i1 = min(i0 + <Py_ssize_t>TRANSPOSE_ROWS, n)
                    for j in range(n_out):
                        ztj = zt + j * n
                        bj = pb[j] if has_bias else 0
                        for i in range(i0, i1):
                            z[i, j] = ztj[i] + bj if has_bias else ztj[i]
                    i0 = i1
            free(zt)
    if err != 0:
        raise MemoryError("linear_forward: could not allocate the GEMM packing buffers")


def linear_weight_grad_into(const floating[:, ::1] x, const floating[:, ::1] delta, floating[:, ::1] dw,
                            bint accumulate):
    """dw = delta.T @ x (accumulate: dw += delta.T @ x): x (N, in), delta (N, out), dw (out, in); dw's rows
    split between the threads as the optimizer's step splits them (the GEMM's row shares)."""
    cdef Py_ssize_t n = x.shape[0], n_in = x.shape[1], n_out = delta.shape[1]
    cdef int err = 0
    with nogil:
        err = _weight_grad(_cptr(x), _cptr(delta), n, n_in, n_out, _ptr(dw), accumulate)
    if err != 0:
        raise MemoryError("linear_backward: could not allocate the GEMM packing buffers")


cdef inline int _weight_grad(const floating *x, const floating *delta, Py_ssize_t n, Py_ssize_t n_in,
                             Py_ssize_t n_out, floating *dw, bint accumulate) noexcept nogil:
    """BP4 over the batch: dw (+)= delta.T @ x."""
    return gemm(True, False, n_out, n_in, n, <floating>1, delta, n_out, x, n_in, <floating>(1 if accumulate else 0),
                dw, n_in, True)


def linear_backward_into(const floating[:, ::1] x, const floating[:, ::1] w, const floating[:, ::1] delta,
                         floating[:, ::1] dx, floating[:, ::1] dw, floating[::1] db):
    """dx = delta @ w (N, in), dw = delta.T @ x (out, in), db = delta summed over rows (out,)."""
    cdef Py_ssize_t n = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]
    cdef int err = 0
    with nogil:
        err = gemm(False, False, n, n_in, n_out, <floating>1, _cptr(delta), n_out, _cptr(w), n_in, <floating>0,
                   _ptr(dx), n_in)
        if err == 0:
            err = _weight_grad(_cptr(x), _cptr(delta), n, n_in, n_out, _ptr(dw), False)
        _column_sum(_cptr(delta), n, n_out, &db[0] if n_out > 0 else NULL)
    if err != 0:
        raise MemoryError("linear_backward: could not allocate the GEMM packing buffers")


def bias_grad_into(const floating[:, ::1] delta, floating[::1] db):
    """db = delta summed over rows: delta (N, out) -> db (out,)."""
    with nogil:
        _column_sum(_cptr(delta), delta.shape[0], delta.shape[1], &db[0] if db.shape[0] > 0 else NULL)
