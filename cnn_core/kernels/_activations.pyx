# distutils: sources = src_c/activations.c
"""Elementwise activations and their backward pieces on flat contiguous buffers (C kernels in src_c/).

The Python wrappers in activations.py validate and flatten; these entry points take 1-D C-contiguous
buffers of one dtype. An output may be the very same buffer as an input (in place); an input that
overlaps the output in any other way is copied first, since a shifted overlap would read written data.
"""
from cython cimport floating
from cython.parallel cimport prange

from cnn_core._config cimport team_size


cdef extern from "activations.h" nogil:
    ctypedef enum cnn_act_t:
        CNN_SIGMOID, CNN_TANH, CNN_RELU, CNN_ELU
    int cnn_act_avx2_available()
    int cnn_act_get_avx2()
    void cnn_act_set_avx2(int on)
    void cnn_act_forward_f32(cnn_act_t op, const float *z, float *a, Py_ssize_t n, float alpha)
    void cnn_act_forward_f64(cnn_act_t op, const double *z, double *a, Py_ssize_t n, double alpha)
    void cnn_act_backward_f32(cnn_act_t op, const float *dy, const float *a, float *out, Py_ssize_t n,
                              float alpha)
    void cnn_act_backward_f64(cnn_act_t op, const double *dy, const double *a, double *out, Py_ssize_t n,
                              double alpha)

# Threads only pay off for large arrays: the vectorized loops run at ~1 ns per element or less, while
# waking the OpenMP team costs microseconds (far more on a loaded machine), so an MLP batch stays serial.
cdef Py_ssize_t CHUNK = 32768
cdef Py_ssize_t MIN_PARALLEL = 1 << 20

cnn_act_get_avx2()  # decide the SIMD path once, at import, before any thread can race on it

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


def simd_paths() -> list:
    """SIMD code paths this CPU can run: 'baseline' always, 'avx2' with AVX2 and FMA."""
    return ["baseline", "avx2"] if cnn_act_avx2_available() else ["baseline"]


def get_simd() -> str:
    return "avx2" if cnn_act_get_avx2() else "baseline"


def set_simd(str path) -> None:
    """Force a SIMD path (tests compare both); 'avx2' requires simd_paths() to list it."""
    if path not in simd_paths():
        raise ValueError(f"path: expected one of {simd_paths()}, got {path!r}")
    cnn_act_set_avx2(path == "avx2")
