# distutils: sources = src_c/activations.c
# distutils: depends = src_c/activations.h src_c/cpu.h src_c/thresholds.h
"""Elementwise activations and their backward pieces on flat contiguous buffers (C kernels in src_c/).

The Python wrappers in activations.py validate and flatten; these entry points take 1-D C-contiguous
buffers of one dtype. An output may be the very same buffer as an input (in place); an input that
overlaps the output in any other way is copied first, since a shifted overlap would read written data.
"""
from cython cimport floating
from cython.parallel cimport prange

from cnn_core._config cimport simd_level, team_size


cdef extern from "thresholds.h":
    # Arrays below MIN_PARALLEL elements stay serial (src_c/thresholds.h says why); threads take CHUNKs.
    Py_ssize_t MIN_PARALLEL "CNN_ACT_MIN_PARALLEL"
    Py_ssize_t CHUNK "CNN_ACT_CHUNK"

cnn_act_init(simd_level)

OPS = {"sigmoid": CNN_SIGMOID, "tanh": CNN_TANH, "relu": CNN_RELU, "elu": CNN_ELU}


cdef inline void _fwd(cnn_act_t op, const floating* z, floating* a, Py_ssize_t n, double alpha) noexcept nogil:
    if floating is float:
        cnn_act_forward_f32(op, z, a, n, <float>alpha)
    else:
        cnn_act_forward_f64(op, z, a, n, alpha)


cdef inline void _bwd(cnn_act_t op, const floating* dy, const floating* a, floating* out, Py_ssize_t n,
                      double alpha) noexcept nogil:
    if floating is float:
        cnn_act_backward_f32(op, dy, a, out, n, <float>alpha)
    else:
        cnn_act_backward_f64(op, dy, a, out, n, alpha)


cdef inline bint _overlaps_shifted(const void* x, const void* out, Py_ssize_t nbytes) noexcept nogil:
    cdef const char* p = <const char*>x
    cdef const char* q = <const char*>out
    return p != q and p < q + nbytes and q < p + nbytes


def forward(int op, const floating[::1] z, floating[::1] a, double alpha=1.0):
    """a = sigma(z) elementwise; z, a (n,) of one dtype, n >= 1; `op` a value of OPS."""
    cdef Py_ssize_t n = z.shape[0], c, nchunks = (n + CHUNK - 1) // CHUNK
    if _overlaps_shifted(&z[0], &a[0], n * sizeof(floating)):
        z = z.copy()
    with nogil:
        if n < MIN_PARALLEL:
            _fwd(<cnn_act_t>op, &z[0], &a[0], n, alpha)
        else:
            for c in prange(nchunks, schedule="static", num_threads=team_size(nchunks)):
                _fwd(<cnn_act_t>op, &z[c * CHUNK], &a[c * CHUNK], min(CHUNK, n - c * CHUNK), alpha)


def backward(int op, const floating[::1] dy, const floating[::1] a, floating[::1] out, double alpha=1.0):
    """out = dy * sigma'(z), from the forward output a = sigma(z); dy, a, out (n,) of one dtype, n >= 1."""
    cdef Py_ssize_t n = dy.shape[0], c, nchunks = (n + CHUNK - 1) // CHUNK
    if _overlaps_shifted(&dy[0], &out[0], n * sizeof(floating)):
        dy = dy.copy()
    if _overlaps_shifted(&a[0], &out[0], n * sizeof(floating)):
        a = a.copy()
    with nogil:
        if n < MIN_PARALLEL:
            _bwd(<cnn_act_t>op, &dy[0], &a[0], &out[0], n, alpha)
        else:
            for c in prange(nchunks, schedule="static", num_threads=team_size(nchunks)):
                _bwd(<cnn_act_t>op, &dy[c * CHUNK], &a[c * CHUNK], &out[c * CHUNK],
                     min(CHUNK, n - c * CHUNK), alpha)
