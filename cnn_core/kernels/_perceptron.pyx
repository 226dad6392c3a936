"""One epoch of the primal perceptron (Rosenblatt's sequential learning rule)."""
from cython cimport floating


cdef Py_ssize_t _epoch(const floating[:, ::1] X, const signed char[::1] y, floating[::1] w, double* b,
                       floating eta, const long long[::1] order, bint use_order) noexcept nogil:
    cdef Py_ssize_t n_steps = order.shape[0] if use_order else X.shape[0]
    cdef Py_ssize_t d = X.shape[1], t, i, j, n_updates = 0
    cdef floating step, bias = <floating>b[0]
    cdef double s
    for t in range(n_steps):
        i = order[t] if use_order else t
        # The dot product is accumulated sequentially in double: float32 products are exact there, and a
        # fixed summation order makes the pass reproducible bit for bit (see tests/oracles_activations.py).
        s = 0.0
        for j in range(d):
            s += <double>w[j] * <double>X[i, j]
        if y[i] * (s + bias) <= 0:
            step = eta * y[i]
            for j in range(d):
                w[j] += step * X[i, j]
            bias += step
            n_updates += 1
    b[0] = bias
    return n_updates


def epoch(const floating[:, ::1] X, const signed char[::1] y, floating[::1] w, double b, double eta,
          const long long[::1] order, bint use_order):
    """X (n, d), y (n,) in {-1, +1}, w (d,) updated in place, order (m,) indices into 0..n-1 (used when
    use_order). Returns (b_new, n_updates)."""
    cdef Py_ssize_t n_updates
    with nogil:
        n_updates = _epoch(X, y, w, &b, <floating>eta, order, use_order)
    return b, n_updates
