# distutils: sources = src_c/finite.c
# distutils: depends = src_c/finite.h src_c/cpu.h src_c/threads.h src_c/thresholds.h
"""The one test for NaN and infinity: src_c/finite.c's scan, one loop per instruction-set level (the
process-wide one of cnn_core.set_simd). Everything that screens float arrays calls it: _validation's
all_finite and check_finite (every argument and layer input the library screens), fit's gradient scan
(all_finite here, every gradient in one call) and the batch gatherer's row screen (nonfinite, cimported by
kernels/_batches.pyx).

One read of the data and no temporary: np.isfinite(x).all() writes a boolean array as large as x and reads
it again (a batch of 64 x 128 x 7 x 7 float64, 2 threads, 2-vCPU Xeon with AVX-512: 118 us against 27 us
here).
"""
from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint32_t, uint64_t

from cnn_core._config cimport CNN_MAX_NUM_THREADS, cnn_array_share, run_team, simd_level, team_size
from cnn_core.kernels._buffer cimport float_kind, row_size


cdef extern from "thresholds.h" nogil:
    Py_ssize_t CNN_OPTIM_MIN_PER_THREAD
cdef extern from "finite.h" nogil:
    ctypedef int (*cnn_simd_level_fn)() noexcept nogil
    void cnn_finite_init(cnn_simd_level_fn simd_level)
    int cnn_nonfinite_f32(const uint32_t *b, Py_ssize_t n)
    int cnn_nonfinite_f64(const uint64_t *b, Py_ssize_t n)


cnn_finite_init(simd_level)


cdef int nonfinite(const void *buf, Py_ssize_t n, int itemsize) noexcept nogil:
    """1 when one of the n float32 (itemsize 4) or float64 (itemsize 8) values at buf is NaN or +-inf, else
    0; on the calling thread."""
    if itemsize == 4:
        return cnn_nonfinite_f32(<const uint32_t *>buf, n)
    return cnn_nonfinite_f64(<const uint64_t *>buf, n)


# One array of all_finite for its team: thread t scans its share and sets bad[t].
ctypedef struct _ScanCall:
    const char *buf
    Py_ssize_t n, row
    int nt, kind
    int bad[CNN_MAX_NUM_THREADS]


cdef void _scan_share(void *arg, int t) noexcept nogil:
    cdef _ScanCall *c = <_ScanCall *>arg
    cdef Py_ssize_t lo = cnn_array_share(c.n, c.row, c.nt, t), hi = cnn_array_share(c.n, c.row, c.nt, t + 1)
    c.bad[t] = nonfinite(c.buf + lo * c.kind, hi - lo, c.kind)


def all_finite(arrays) -> bool:
    """True when no element of any array in the sequence `arrays` (C-contiguous float32/float64 arrays in
    native byte order; None entries are skipped) is NaN or infinite. A non-contiguous array raises
    ValueError (the buffer request), another dtype TypeError. One pass over each array, split over a team
    from CNN_OPTIM_MIN_PER_THREAD elements a thread, in the shares of sgd_step's (threads.h's
    cnn_array_share): each thread reads the rows of a gradient it has just written."""
    cdef Py_buffer v
    cdef _ScanCall c
    cdef int t
    cdef bint bad
    for a in arrays:
        if a is None:
            continue
        PyObject_GetBuffer(a, &v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
        c.kind = float_kind(&v)
        if c.kind != 0:
            c.buf, c.n = <const char *>v.buf, v.len // c.kind
            c.row = row_size(&v, c.n)
            c.nt = team_size(c.n // CNN_OPTIM_MIN_PER_THREAD)
            with nogil:
                run_team(_scan_share, &c, c.nt)
        PyBuffer_Release(&v)
        if c.kind == 0:
            raise TypeError(f"arrays: expected float32/float64 arrays, got {getattr(a, 'dtype', type(a).__name__)}")
        bad = False
        for t in range(c.nt):
            bad = bad or c.bad[t]
        if bad:
            return False
    return True
