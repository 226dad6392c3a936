# distutils: extra_compile_args = -ffp-contract=off
"""Compiled optimizer kernels for the training loop: the finiteness scan of every gradient in one call, and
SGD's update of one parameter in one pass (cnn_core.optim.SGD and cnn_core.training call them on arrays
they have checked).

Arrays are taken through the buffer protocol (any C-contiguous float32/float64 array, any number of
dimensions), which costs a fraction of a microsecond per array: a LeNet-5 step has ten parameters, and
NumPy's per-ufunc overhead (a microsecond or more per call, four to five calls per parameter) was most of
the optimizer's time at batch 64. Built with -ffp-contract=off: no multiply-add is fused, whatever
CFLAGS a build passes, so sgd_step rounds as NumPy's ufuncs do.
"""
from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cnn_core.kernels._buffer cimport float_kind
from cnn_core.kernels._finite cimport bad32, bad64
from libc.stdint cimport uint32_t, uint64_t


def all_finite(arrays) -> bool:
    """True when no element of any array in the sequence `arrays` (C-contiguous float32/float64 arrays) is
    NaN or infinite; None entries are skipped. One serial pass over each (a step's gradients are far too
    small to pay for waking threads)."""
    cdef Py_buffer v
    cdef bint bad
    cdef int kind
    for a in arrays:
        if a is None:
            continue
        PyObject_GetBuffer(a, &v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
        kind = float_kind(&v)
        with nogil:
            if kind == 4:
                bad = bad32(<const uint32_t *>v.buf, v.len // 4)
            elif kind == 8:
                bad = bad64(<const uint64_t *>v.buf, v.len // 8)
        PyBuffer_Release(&v)
        if kind == 0:
            raise TypeError(f"arrays: expected float32/float64 arrays, got {getattr(a, 'dtype', type(a).__name__)}")
        if bad:
            return False
    return True


ctypedef fused real:
    float
    double


cdef inline void _sgd_loop(real *p, const real *g, real *buf, Py_ssize_t n, real lr, real mu, real damp1,
                           real wd, const bint use_wd, const int mode, const bint nesterov) noexcept nogil:
    # Called with literal use_wd, mode and nesterov only (_sgd_mode, _sgd; all inline): each case becomes
    # its own branch-free loop that the compiler vectorizes (one shared loop with the tests inside ran
    # scalar, 2.5x slower than NumPy's four ufuncs on a 100 x 784 weight).
    cdef Py_ssize_t i
    cdef real gi
    for i in range(n):
        gi = g[i]
        if use_wd:
            gi = gi + p[i] * wd
        if mode == 1:                   # first momentum step: buf = g
            buf[i] = gi
        elif mode == 2:                 # buf = mu * buf + g
            buf[i] = buf[i] * mu + gi
        elif mode == 3:                 # buf = mu * buf + (1 - dampening) * g
            buf[i] = buf[i] * mu + gi * damp1
        if mode != 0:
            if nesterov:
                gi = gi + buf[i] * mu
            else:
                gi = buf[i]
        p[i] = p[i] - gi * lr


cdef inline void _sgd_mode(real *p, const real *g, real *buf, Py_ssize_t n, real lr, real mu, real damp1,
                           real wd, bint use_wd, const int mode, bint nesterov) noexcept nogil:
    if use_wd:
        if nesterov:
            _sgd_loop(p, g, buf, n, lr, mu, damp1, wd, True, mode, True)
        else:
            _sgd_loop(p, g, buf, n, lr, mu, damp1, wd, True, mode, False)
    elif nesterov:
        _sgd_loop(p, g, buf, n, lr, mu, damp1, wd, False, mode, True)
    else:
        _sgd_loop(p, g, buf, n, lr, mu, damp1, wd, False, mode, False)


cdef void _sgd(real *p, const real *g, real *buf, Py_ssize_t n, real lr, real mu, real damp1, real wd,
               bint use_wd, int mode, bint nesterov) noexcept nogil:
    if mode == 0:
        _sgd_mode(p, g, buf, n, lr, mu, damp1, wd, use_wd, 0, False)
    elif mode == 1:
        _sgd_mode(p, g, buf, n, lr, mu, damp1, wd, use_wd, 1, nesterov)
    elif mode == 2:
        _sgd_mode(p, g, buf, n, lr, mu, damp1, wd, use_wd, 2, nesterov)
    else:
        _sgd_mode(p, g, buf, n, lr, mu, damp1, wd, use_wd, 3, nesterov)


def sgd_step(p, g, buf, double lr, double momentum, double dampening, double weight_decay, bint nesterov,
             bint first) -> None:
    """One SGD update of the parameter array p (in place) from its gradient g, PyTorch's formulas:

        g' = g + weight_decay * p
        buf = g' (first step), else momentum * buf + (1 - dampening) * g'      (when momentum != 0)
        g' = g' + momentum * buf (nesterov), else buf                           (when momentum != 0)
        p = p - lr * g'

    p, g and buf (the momentum buffer, updated in place; None without momentum): C-contiguous arrays of one
    float dtype and size (unchecked beyond the buffer's kind). Each operation is rounded in the arrays' dtype
    in the order NumPy's ufuncs take (the scalars cast to that dtype first, no fused multiply-add), so the
    result equals the ufunc sequence of cnn_core.optim.SGD bit for bit."""
    cdef Py_buffer vp, vg, vb
    cdef bint has_buf = momentum != 0.0
    cdef int mode = 0 if not has_buf else (1 if first else (2 if dampening == 0.0 else 3))
    cdef int kind
    PyObject_GetBuffer(p, &vp, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE)
    try:
        PyObject_GetBuffer(g, &vg, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
        try:
            if has_buf:
                PyObject_GetBuffer(buf, &vb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE)
            else:
                vb.buf = NULL
            try:
                kind = float_kind(&vp)
                if kind == 0 or float_kind(&vg) != kind or vg.len != vp.len or (has_buf and (float_kind(&vb) != kind
                                                                                          or vb.len != vp.len)):
                    raise TypeError("sgd_step: expected p, g and buf of one float dtype and size")
                with nogil:
                    if kind == 4:
                        _sgd(<float *>vp.buf, <const float *>vg.buf, <float *>vb.buf, vp.len // 4, <float>lr,
                             <float>momentum, <float>(1.0 - dampening), <float>weight_decay,
                             weight_decay != 0.0, mode, nesterov)
                    else:
                        _sgd(<double *>vp.buf, <const double *>vg.buf, <double *>vb.buf, vp.len // 8, lr,
                             momentum, 1.0 - dampening, weight_decay, weight_decay != 0.0, mode, nesterov)
            finally:
                if has_buf:
                    PyBuffer_Release(&vb)
        finally:
            PyBuffer_Release(&vg)
    finally:
        PyBuffer_Release(&vp)
