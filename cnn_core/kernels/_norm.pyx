"""Batch-normalization loops on (N, C, L) arrays, parallel over the C channels.

Every statistic of batch norm is per channel, so each thread owns whole channels: it reads the channel's
N*L values (L contiguous values in each of N rows of stride C*L), accumulates in double, and writes the
channel's outputs; no two threads touch one output. Callers pass C-contiguous arrays of one float dtype whose
shapes they have checked (kernels/norm.py).

With M = N*L values per channel, mean mu, biased variance var and invstd = 1/sqrt(var + eps),
xhat = (x - mu) * invstd, and y = gamma * xhat + beta, the closed-form backward is

    dbeta  = sum dy                     dgamma = sum dy * xhat
    dx     = gamma * invstd * (dy - dbeta / M - xhat * dgamma / M)     (batch statistics)
    dx     = gamma * invstd * dy                                        (running statistics: mu, var constants)

The sums take one pass over (x, dy); dx a second, recomputing xhat from x instead of storing it.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

from cnn_core._config cimport team_size


cdef double _channel_mean(const floating* x, Py_ssize_t N, Py_ssize_t C, Py_ssize_t L,
                          Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t n, l
    cdef const floating* row
    cdef double s = 0.0
    for n in range(N):
        row = x + (n * C + c) * L
        for l in range(L):
            s = s + row[l]
    return s / (N * L)


cdef double _channel_var(const floating* x, Py_ssize_t N, Py_ssize_t C, Py_ssize_t L, Py_ssize_t c,
                         double m) noexcept nogil:
    """Biased variance of channel c about its mean m: a second, shifted pass (sum x^2 - M m^2 would cancel)."""
    cdef Py_ssize_t n, l
    cdef const floating* row
    cdef double d, q = 0.0
    for n in range(N):
        row = x + (n * C + c) * L
        for l in range(L):
            d = row[l] - m
            q = q + d * d
    return q / (N * L)


def forward_train(const floating[:, :, ::1] x, const floating[::1] gamma, const floating[::1] beta,
                  floating[:, :, ::1] y, floating[::1] mean, floating[::1] var, floating[::1] invstd, double eps):
    """Normalize x with its own per-channel statistics: y = gamma * (x - mean) * invstd + beta; writes
    the channel means, biased variances and invstd = 1/sqrt(var + eps) (all (C,)). N*L >= 1."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], c, n, l
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* yp = &y[0, 0, 0]
    cdef const floating* xr
    cdef floating* yr
    cdef double m, v, s, scale, shift
    with nogil:
        for c in prange(C, schedule="static", num_threads=team_size(C)):
            # m and v are assigned in the loop body, so each thread has its own (prange makes them private)
            m = _channel_mean(xp, N, C, L, c)
            v = _channel_var(xp, N, C, L, c, m)
            s = 1.0 / sqrt(v + eps)
            mean[c] = <floating>m
            var[c] = <floating>v
            invstd[c] = <floating>s
            scale = gamma[c] * s
            shift = beta[c] - m * scale
            for n in range(N):
                xr = xp + (n * C + c) * L
                yr = yp + (n * C + c) * L
                for l in range(L):
                    yr[l] = <floating>(xr[l] * scale + shift)


def affine(const floating[:, :, ::1] x, const floating[::1] scale, const floating[::1] shift,
           floating[:, :, ::1] y):
    """y = x * scale[c] + shift[c] per channel (eval mode: the running statistics folded into the affine)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], c, n, l
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* yp = &y[0, 0, 0]
    cdef const floating* xr
    cdef floating* yr
    cdef floating a, b
    with nogil:
        for c in prange(C, schedule="static", num_threads=team_size(C)):
            a = scale[c]
            b = shift[c]
            for n in range(N):
                xr = xp + (n * C + c) * L
                yr = yp + (n * C + c) * L
                for l in range(L):
                    yr[l] = xr[l] * a + b


def backward(const floating[:, :, ::1] x, const floating[:, :, ::1] dy, const floating[::1] mean,
             const floating[::1] invstd, const floating[::1] gamma, floating[:, :, ::1] dx,
             floating[::1] dgamma, floating[::1] dbeta, bint batch_stats, bint need_dx):
    """The closed-form gradient (module docstring): writes dgamma = sum dy*xhat and dbeta = sum dy (C,)
    and, when need_dx, dx (N, C, L). mean and invstd are the statistics forward normalized with: the
    batch's (batch_stats) or the running ones."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], c, n, l, o
    cdef const floating* xp = &x[0, 0, 0]
    cdef const floating* gp = &dy[0, 0, 0]
    cdef floating* dp = &dx[0, 0, 0] if need_dx else NULL
    cdef double mu, s, sdy, sdyx, k, a, b, xh
    cdef double inv_m = 1.0 / (N * L)
    with nogil:
        for c in prange(C, schedule="static", num_threads=team_size(C)):
            mu = mean[c]
            s = invstd[c]
            sdy = 0.0
            sdyx = 0.0
            for n in range(N):
                o = (n * C + c) * L
                for l in range(L):
                    sdy = sdy + gp[o + l]
                    sdyx = sdyx + gp[o + l] * (xp[o + l] - mu)
            sdyx = sdyx * s
            dbeta[c] = <floating>sdy
            dgamma[c] = <floating>sdyx
            if need_dx:
                k = gamma[c] * s
                if batch_stats:
                    # dx = k * (dy - sdy/M - xhat * sdyx/M), xhat = (x - mu) * s
                    a = sdy * inv_m
                    b = sdyx * inv_m * s
                    for n in range(N):
                        o = (n * C + c) * L
                        for l in range(L):
                            xh = xp[o + l] - mu
                            dp[o + l] = <floating>(k * (gp[o + l] - a - xh * b))
                else:
                    for n in range(N):
                        o = (n * C + c) * L
                        for l in range(L):
                            dp[o + l] = <floating>(k * gp[o + l])
