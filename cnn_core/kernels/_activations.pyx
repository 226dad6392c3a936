"""Elementwise activations and their backward pieces on flat contiguous buffers.

The Python wrappers in activations.py validate, flatten and resolve aliasing; these loops only see
1-D C-contiguous buffers of one dtype. `a` may be the very same buffer as `z` (in place): each element is
read before it is written, and no other element is touched.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, expf, expm1, expm1f, tanh, tanhf

# Work is split into chunks of CHUNK elements for OpenMP. Below the thresholds a loop stays serial:
# starting the thread team (a few microseconds) costs more than it saves. A libm call costs ~5-20 ns per
# element, plain arithmetic well under 1 ns, hence two thresholds (measured, see benchmarks/).
cdef Py_ssize_t CHUNK = 4096
cdef Py_ssize_t MIN_PARALLEL_LIBM = 16384
cdef Py_ssize_t MIN_PARALLEL_ARITH = 1 << 18

cdef enum Op:
    SIGMOID
    TANH
    RELU
    ELU


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _sigmoid(floating z) noexcept nogil:
    # exp only ever sees a non-positive argument, so it cannot overflow; for z << 0 it underflows to 0.
    cdef floating e
    if z >= 0:
        return 1 / (1 + _exp(-z))
    e = _exp(z)
    return e / (1 + e)


cdef void _forward_range(Op op, const floating* z, floating* a, Py_ssize_t lo, Py_ssize_t hi,
                         floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    if op == SIGMOID:
        for i in range(lo, hi):
            a[i] = _sigmoid(z[i])
    elif op == TANH:
        for i in range(lo, hi):
            if floating is float:
                a[i] = tanhf(z[i])
            else:
                a[i] = tanh(z[i])
    elif op == RELU:
        # `<= 0` rather than `> 0` so that NaN propagates, as in torch.relu.
        for i in range(lo, hi):
            a[i] = 0 if z[i] <= 0 else z[i]
    else:
        for i in range(lo, hi):
            if z[i] > 0:
                a[i] = z[i]
            elif floating is float:
                a[i] = alpha * expm1f(z[i])
            else:
                a[i] = alpha * expm1(z[i])


cdef void _backward_range(Op op, const floating* dy, const floating* a, floating* out, Py_ssize_t lo,
                          Py_ssize_t hi, floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    if op == SIGMOID:
        for i in range(lo, hi):
            out[i] = dy[i] * a[i] * (1 - a[i])
    elif op == TANH:
        for i in range(lo, hi):
            out[i] = dy[i] * (1 - a[i] * a[i])
    elif op == RELU:
        for i in range(lo, hi):
            out[i] = dy[i] if a[i] > 0 else 0
    else:
        # ELU: for z <= 0, d/dz alpha*(e^z - 1) = alpha*e^z = a + alpha.
        for i in range(lo, hi):
            out[i] = dy[i] if a[i] > 0 else dy[i] * (a[i] + alpha)


cdef void _forward(Op op, const floating* z, floating* a, Py_ssize_t n, floating alpha) noexcept nogil:
    cdef Py_ssize_t c, nchunks = (n + CHUNK - 1) // CHUNK
    cdef Py_ssize_t min_parallel = MIN_PARALLEL_ARITH if op == RELU else MIN_PARALLEL_LIBM
    if n < min_parallel:
        _forward_range(op, z, a, 0, n, alpha)
        return
    for c in prange(nchunks, schedule="static"):
        _forward_range(op, z, a, c * CHUNK, min(n, (c + 1) * CHUNK), alpha)


cdef void _backward(Op op, const floating* dy, const floating* a, floating* out, Py_ssize_t n,
                    floating alpha) noexcept nogil:
    cdef Py_ssize_t c, nchunks = (n + CHUNK - 1) // CHUNK
    if n < MIN_PARALLEL_ARITH:
        _backward_range(op, dy, a, out, 0, n, alpha)
        return
    for c in prange(nchunks, schedule="static"):
        _backward_range(op, dy, a, out, c * CHUNK, min(n, (c + 1) * CHUNK), alpha)


cdef Op _op(str name) except *:
    if name == "sigmoid":
        return SIGMOID
    if name == "tanh":
        return TANH
    if name == "relu":
        return RELU
    if name == "elu":
        return ELU
    raise ValueError(f"activation: expected one of 'sigmoid', 'tanh', 'relu', 'elu', got {name!r}")


def forward(str name, const floating[::1] z, floating[::1] a, double alpha=1.0):
    """a = sigma(z) elementwise; z, a (n,) of one dtype, n >= 1; a may be the buffer of z."""
    cdef Op op = _op(name)
    with nogil:
        _forward(op, &z[0], &a[0], z.shape[0], <floating>alpha)


def backward(str name, const floating[::1] dy, const floating[::1] a, floating[::1] out, double alpha=1.0):
    """out = dy * sigma'(z), from the forward output a = sigma(z); dy, a, out (n,) of one dtype, n >= 1.

    out may be the buffer of dy or of a.
    """
    cdef Op op = _op(name)
    with nogil:
        _backward(op, &dy[0], &a[0], &out[0], dy.shape[0], <floating>alpha)
