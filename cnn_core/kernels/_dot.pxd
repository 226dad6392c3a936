"""Dot product and axpy for the linear models' sample-at-a-time loops (inline, header only)."""
from cython cimport floating

cdef enum:
    LANES = 8   # partial sums in dot


cdef inline double dot(const floating* w, const floating* x, Py_ssize_t d) noexcept nogil:
    # Eight interleaved float64 partial sums (lane k takes j = k mod 8), combined pairwise, then the tail
    # left to right. Independent sums let the compiler use SIMD without reassociating anything itself, and
    # the fixed order keeps a pass reproducible bit for bit (tests/oracles_perceptron.py sums the same
    # way). float32 products are exact in float64.
    cdef double s[LANES]
    cdef double total
    cdef Py_ssize_t j, k, block, m = d - d % LANES
    for k in range(LANES):
        s[k] = 0.0
    for block in range(m // LANES):
        j = block * LANES
        for k in range(LANES):
            s[k] += <double>w[j + k] * <double>x[j + k]
    total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
    for j in range(m, d):
        total += <double>w[j] * <double>x[j]
    return total


cdef inline void axpy(floating a, const floating* x, floating* w, Py_ssize_t d) noexcept nogil:
    # w += a x in w's precision, element by element (no reassociation: each w[j] gets one rounding).
    cdef Py_ssize_t j
    for j in range(d):
        w[j] += a * x[j]
