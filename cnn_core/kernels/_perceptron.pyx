"""One epoch of the primal perceptron (Rosenblatt's sequential learning rule)."""
from cython cimport floating

cdef enum:
    LANES = 8   # partial sums in _dot


cdef inline double _dot(const floating* w, const floating* x, Py_ssize_t d) noexcept nogil:
    # Eight interleaved float64 partial sums (lane k takes j = k mod 8), combined pairwise, then the tail
    # left to right. Independent sums let the compiler use SIMD without reassociating anything itself, and
    # the fixed order keeps the pass reproducible bit for bit (tests/oracles_activations.py sums the same
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


cdef Py_ssize_t _epoch(const floating[:, ::1] X, const signed char[::1] y, floating[::1] w, double* b,
                       floating eta, const long long[::1] order, bint use_order) noexcept nogil:
    cdef Py_ssize_t n_steps = order.shape[0] if use_order else X.shape[0]
    cdef Py_ssize_t d = X.shape[1], t, i, j, n_updates = 0
    cdef floating step, bias = <floating>b[0]
    cdef const floating* x
    for t in range(n_steps):
        i = order[t] if use_order else t
        x = &X[i, 0]
        if y[i] * (_dot(&w[0], x, d) + bias) <= 0:
            step = eta * y[i]
            for j in range(d):
                w[j] += step * x[j]
            bias += step
            n_updates += 1
    b[0] = bias
    return n_updates


def epoch(const floating[:, ::1] X, const signed char[::1] y, floating[::1] w, double b, double eta,
          const long long[::1] order, bint use_order):
    """X (n, d) with n, d >= 1, y (n,) in {-1, +1}, w (d,) updated in place, order (m,) indices into
    0..n-1 (used when use_order). Returns (b_new, n_updates)."""
    cdef Py_ssize_t n_updates
    with nogil:
        n_updates = _epoch(X, y, w, &b, <floating>eta, order, use_order)
    return b, n_updates
