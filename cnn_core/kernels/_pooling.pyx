"""Max and average pooling loops (no padding, floor mode), parallel over the N*C planes.

Each (n, c) plane is pooled independently, so every thread owns whole planes of the output (forward)
or of dx (backward) and overlapping windows accumulate without races.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memset


cdef inline Py_ssize_t _window_argmax(const floating* x, Py_ssize_t W, Py_ssize_t start,
                                      Py_ssize_t KH, Py_ssize_t KW) noexcept nogil:
    """Flat index of the window's maximum: first one on ties, first NaN if any (NaN propagates)."""
    cdef Py_ssize_t i, j, r, best_idx = start
    cdef floating v, best = x[start]
    if best != best:
        return start
    for i in range(KH):
        r = start + i * W
        for j in range(KW):
            v = x[r + j]
            if v > best:
                best = v
                best_idx = r + j
            elif v != v:
                return r + j
    return best_idx


cdef void _max_plane(const floating* x, floating* out, int64_t* argmax, Py_ssize_t W,
                     Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                     Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    cdef Py_ssize_t oh, ow, k, idx
    for oh in range(OH):
        for ow in range(OW):
            idx = _window_argmax(x, W, oh * SH * W + ow * SW, KH, KW)
            k = oh * OW + ow
            out[k] = x[idx]
            argmax[k] = idx


cdef void _avg_plane(const floating* x, floating* out, Py_ssize_t W,
                     Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                     Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    cdef Py_ssize_t oh, ow, i, j, r
    cdef floating acc
    cdef floating count = KH * KW
    for oh in range(OH):
        for ow in range(OW):
            acc = 0
            for i in range(KH):
                r = (oh * SH + i) * W + ow * SW
                for j in range(KW):
                    acc += x[r + j]
            out[oh * OW + ow] = acc / count


cdef void _avg_backward_plane(const floating* dout, floating* dx, Py_ssize_t H, Py_ssize_t W,
                              Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                              Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    cdef Py_ssize_t oh, ow, i, j, r
    cdef floating g
    cdef floating count = KH * KW
    memset(dx, 0, H * W * sizeof(floating))
    for oh in range(OH):
        for ow in range(OW):
            g = dout[oh * OW + ow] / count
            for i in range(KH):
                r = (oh * SH + i) * W + ow * SW
                for j in range(KW):
                    dx[r + j] += g


def max_pool2d_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                       int64_t[:, :, :, ::1] argmax, Py_ssize_t KH, Py_ssize_t KW,
                       Py_ssize_t SH, Py_ssize_t SW):
    """Fill out and argmax (N, C, OH, OW) from x (N, C, H, W); shapes are checked by the caller."""
    cdef Py_ssize_t NC = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = out.shape[2], OW = out.shape[3], p
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* op = &out[0, 0, 0, 0]
    cdef int64_t* ap = &argmax[0, 0, 0, 0]
    with nogil:
        for p in prange(NC, schedule="static"):
            _max_plane(xp + p * H * W, op + p * OH * OW, ap + p * OH * OW, W, KH, KW, SH, SW, OH, OW)


def max_pool2d_backward(const floating[:, :, :, ::1] dout, const int64_t[:, :, :, ::1] argmax,
                        floating[:, :, :, ::1] dx):
    """Overwrite dx (N, C, H, W) with dout routed to argmax; returns how many indices were out of range.

    Out-of-range indices are skipped (never written), so a bad argmax cannot corrupt memory; the caller
    raises when the count is non-zero.
    """
    cdef Py_ssize_t NC = dx.shape[0] * dx.shape[1], HW = dx.shape[2] * dx.shape[3]
    cdef Py_ssize_t L = dout.shape[2] * dout.shape[3], p, k
    cdef int64_t idx
    cdef Py_ssize_t bad = 0
    cdef const floating* gp = &dout[0, 0, 0, 0]
    cdef const int64_t* ap = &argmax[0, 0, 0, 0]
    cdef floating* dp = &dx[0, 0, 0, 0]
    with nogil:
        for p in prange(NC, schedule="static"):
            memset(dp + p * HW, 0, HW * sizeof(floating))
            for k in range(p * L, (p + 1) * L):
                idx = ap[k]
                if idx < 0 or idx >= HW:
                    bad += 1
                else:
                    dp[p * HW + idx] += gp[k]
    return bad


def avg_pool2d_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                       Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW):
    """Fill out (N, C, OH, OW) with window means of x (N, C, H, W)."""
    cdef Py_ssize_t NC = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = out.shape[2], OW = out.shape[3], p
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* op = &out[0, 0, 0, 0]
    with nogil:
        for p in prange(NC, schedule="static"):
            _avg_plane(xp + p * H * W, op + p * OH * OW, W, KH, KW, SH, SW, OH, OW)


def avg_pool2d_backward(const floating[:, :, :, ::1] dout, floating[:, :, :, ::1] dx,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW):
    """Overwrite dx (N, C, H, W) with dout (N, C, OH, OW) spread evenly over each window."""
    cdef Py_ssize_t NC = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dout.shape[2], OW = dout.shape[3], p
    cdef const floating* gp = &dout[0, 0, 0, 0]
    cdef floating* dp = &dx[0, 0, 0, 0]
    with nogil:
        for p in prange(NC, schedule="static"):
            _avg_backward_plane(gp + p * OH * OW, dp + p * H * W, H, W, KH, KW, SH, SW, OH, OW)
