# distutils: depends = src_c/fast_math.h
"""Fused loops of the fully connected layer (validation lives in dense.py).

Forward: z = x @ w.T on the blocked C GEMM, then one pass over each row of z, still hot in cache, that
adds the bias and applies the activation in place. Backward: two GEMMs and a compiled column sum.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, expm1, expm1f, tanh

from cnn_core._config cimport team_size
from cnn_core.kernels._gemm cimport dgemm, sgemm


cdef extern from "fast_math.h" nogil:
    # float32 rows in SIMD (libm's expf/tanhf are scalar calls); float64 keeps libm below.
    void cnn_sigmoid_rowf(float *z, Py_ssize_t n)
    void cnn_tanh_rowf(float *z, Py_ssize_t n)

cdef enum:
    ACT_NONE = 0
    ACT_SIGMOID = 1
    ACT_TANH = 2
    ACT_RELU = 3
    ACT_ELU = 4

# activation name -> code understood by linear_forward_into
ACTIVATIONS = {None: ACT_NONE, "sigmoid": ACT_SIGMOID, "tanh": ACT_TANH, "relu": ACT_RELU, "elu": ACT_ELU}

# Elements of z below which the bias/activation pass stays on one thread: a transcendental costs ~10 ns,
# so below ~16k of them the pass is shorter than an OpenMP fork/join on a busy machine.
cdef Py_ssize_t PARALLEL_MIN_ELEMENTS = 1 << 14

cdef enum:
    # Columns summed per sweep in bias_grad: the double accumulators stay in L1 while rows stream past.
    COLSUM_BLOCK = 512


cdef inline double _sigmoid(double v) noexcept nogil:
    # exp of a non-positive argument only: no overflow for large |v|, and 1 - tiny never cancels.
    cdef double e
    if v >= 0:
        return 1 / (1 + exp(-v))
    e = exp(v)
    return e / (1 + e)


cdef inline floating _elu(floating v, floating alpha) noexcept nogil:
    # expm1 keeps full relative accuracy for small negative v, where exp(v) - 1 cancels.
    if v > 0:
        return v
    if floating is float:
        return alpha * expm1f(v)
    else:
        return alpha * expm1(v)


cdef void _bias_act_row(floating *z, const floating *b, Py_ssize_t n, int act, floating alpha) noexcept nogil:
    """z[j] = act(z[j] + b[j]) for one row (b may be NULL)."""
    cdef Py_ssize_t j
    if b != NULL:
        for j in range(n):
            z[j] += b[j]
    if act == ACT_SIGMOID:
        if floating is float:
            cnn_sigmoid_rowf(z, n)
        else:
            for j in range(n):
                z[j] = _sigmoid(z[j])
    elif act == ACT_TANH:
        if floating is float:
            cnn_tanh_rowf(z, n)
        else:
            for j in range(n):
                z[j] = tanh(z[j])
    elif act == ACT_RELU:
        for j in range(n):
            z[j] = 0 if z[j] < 0 else z[j]   # NaN passes through, as in torch.relu
    elif act == ACT_ELU:
        for j in range(n):
            z[j] = _elu(z[j], alpha)


cdef inline floating *_ptr(floating[:, ::1] a) noexcept nogil:
    """Address of a[0, 0], or NULL for an empty array (which the loops then never dereference)."""
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


cdef inline const floating *_cptr(const floating[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


cdef int _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
               const floating *a, Py_ssize_t lda, const floating *b, Py_ssize_t ldb,
               floating *c, Py_ssize_t ldc) noexcept nogil:
    """c = op(a) @ op(b) (alpha 1, beta 0: c is not read)."""
    if floating is float:
        return sgemm(trans_a, trans_b, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)
    else:
        return dgemm(trans_a, trans_b, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)


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
                        bint has_bias, floating[:, ::1] z, int act, double alpha):
    """z = act(x @ w.T + b): x (N, in), w (out, in), b (out,) read only if has_bias, z (N, out)."""
    cdef Py_ssize_t n = x.shape[0], n_in = x.shape[1], n_out = w.shape[0], i
    cdef const floating *pb = &b[0] if has_bias and n_out > 0 else NULL
    cdef int err = 0
    cdef bint parallel = (n * n_out >= PARALLEL_MIN_ELEMENTS
                          and act != ACT_NONE and act != ACT_RELU)  # the cheap passes are memory bound
    if n == 0 or n_out == 0:
        return
    with nogil:
        err = _gemm(False, True, n, n_out, n_in, _cptr(x), n_in, _cptr(w), n_in, &z[0, 0], n_out)
        if err == 0 and (has_bias or act != ACT_NONE):
            if parallel:
                for i in prange(n, schedule="static", num_threads=team_size(n)):
                    _bias_act_row(&z[i, 0], pb, n_out, act, <floating>alpha)
            else:
                for i in range(n):
                    _bias_act_row(&z[i, 0], pb, n_out, act, <floating>alpha)
    if err != 0:
        raise MemoryError("linear_forward: could not allocate the GEMM packing buffers")


def linear_backward_into(const floating[:, ::1] x, const floating[:, ::1] w, const floating[:, ::1] delta,
                         floating[:, ::1] dx, floating[:, ::1] dw, floating[::1] db):
    """dx = delta @ w (N, in), dw = delta.T @ x (out, in), db = delta summed over rows (out,)."""
    cdef Py_ssize_t n = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]
    cdef int err = 0
    with nogil:
        err = _gemm(False, False, n, n_in, n_out, _cptr(delta), n_out, _cptr(w), n_in, _ptr(dx), n_in)
        if err == 0:
            err = _gemm(True, False, n_out, n_in, n, _cptr(delta), n_out, _cptr(x), n_in, _ptr(dw), n_in)
        _column_sum(_cptr(delta), n, n_out, &db[0] if n_out > 0 else NULL)
    if err != 0:
        raise MemoryError("linear_backward: could not allocate the GEMM packing buffers")


def bias_grad_into(const floating[:, ::1] delta, floating[::1] db):
    """db = delta summed over rows: delta (N, out) -> db (out,)."""
    with nogil:
        _column_sum(_cptr(delta), delta.shape[0], delta.shape[1], &db[0] if db.shape[0] > 0 else NULL)
