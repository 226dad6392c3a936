"""Elementwise special functions NumPy lacks, from the C library (erf for GELU), on flat buffers."""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport erf as c_erf

from cnn_core._config cimport team_size

# Below this many elements one thread does it all; threads take blocks of CHUNK elements.
cdef Py_ssize_t CHUNK = 1 << 14


def erf(const floating[::1] x, floating[::1] out):
    """out = erf(x) elementwise (libm's, correctly rounded to within an ulp in double); x, out (n,) of one dtype."""
    cdef Py_ssize_t n = x.shape[0], c, i, nchunks = (n + CHUNK - 1) // CHUNK
    with nogil:
        for c in prange(nchunks, schedule="static", num_threads=team_size(nchunks)):
            for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
                out[i] = <floating>c_erf(x[i])
