"""im2col / col2im loops in the layout of torch.nn.functional.unfold / fold.

One (n, c) input plane maps to KH*KW consecutive rows of cols, so planes are independent and the
outer loop runs in parallel over N*C. Padding is handled by computing, once per kernel offset, the
range of output positions whose input lies inside the image: the inner loops never branch per element.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from cnn_core._config cimport team_size
from cnn_core.kernels._rows cimport copy_row, zero_row


cdef extern from "thresholds.h" nogil:
    Py_ssize_t CNN_IM2COL_MIN_PER_THREAD


cdef inline int _team(Py_ssize_t planes, Py_ssize_t elements) noexcept nogil:
    """Threads for `planes` planes whose column blocks hold `elements` in all: one per
    CNN_IM2COL_MIN_PER_THREAD elements (src_c/thresholds.h), at most one per plane."""
    cdef Py_ssize_t work = elements // CNN_IM2COL_MIN_PER_THREAD
    return team_size(work if work < planes else planes)


cdef inline void _valid_range(Py_ssize_t size, Py_ssize_t out_size, Py_ssize_t k, Py_ssize_t s,
                              Py_ssize_t p, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Set [lo, hi) to the outputs o with 0 <= o*s - p + k < size (clamped to [0, out_size])."""
    cdef Py_ssize_t first = p - k            # smallest o*s allowed
    cdef Py_ssize_t last = size - 1 + p - k  # largest o*s allowed
    cdef Py_ssize_t a = 0, b = 0
    if first > 0:
        a = (first + s - 1) // s
    if last >= 0:
        b = last // s + 1
    if b > out_size:
        b = out_size
    if a > b:
        a = b
    lo[0] = a
    hi[0] = b


cdef void _im2col_plane(const floating* x, floating* cols, Py_ssize_t H, Py_ssize_t W,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                        Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """x: one (H, W) plane; cols: its KH*KW rows of length OH*OW."""
    cdef Py_ssize_t i, j, oh, t, oh_lo, oh_hi, ow_lo, ow_hi, n_valid, step = SH * W
    cdef floating* row
    cdef floating* dst
    cdef const floating* src
    for i in range(KH):
        _valid_range(H, OH, i, SH, PH, &oh_lo, &oh_hi)
        for j in range(KW):
            _valid_range(W, OW, j, SW, PW, &ow_lo, &ow_hi)
            n_valid = ow_hi - ow_lo
            row = cols + (i * KW + j) * OH * OW
            zero_row(row, oh_lo * OW)
            zero_row(row + oh_hi * OW, (OH - oh_hi) * OW)
            if n_valid <= 0:
                zero_row(row + oh_lo * OW, (oh_hi - oh_lo) * OW)
                continue
            dst = row + oh_lo * OW
            src = x + (oh_lo * SH - PH + i) * W + (ow_lo * SW - PW + j)
            if n_valid < OW:  # some columns fall in the padding
                for oh in range(oh_lo, oh_hi):
                    zero_row(dst, ow_lo)
                    zero_row(dst + ow_hi, OW - ow_hi)
                    dst += OW
            dst = row + oh_lo * OW + ow_lo
            if SW == 1:
                for oh in range(oh_lo, oh_hi):
                    copy_row(dst, src, n_valid)
                    dst += OW
                    src += step
            else:
                for oh in range(oh_lo, oh_hi):
                    for t in range(n_valid):
                        dst[t] = src[t * SW]
                    dst += OW
                    src += step


cdef void _col2im_plane(const floating* cols, floating* x, Py_ssize_t H, Py_ssize_t W,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                        Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """Adjoint of _im2col_plane: zero the plane, then add every in-image column entry back."""
    cdef Py_ssize_t i, j, oh, t, oh_lo, oh_hi, ow_lo, ow_hi, n_valid
    cdef Py_ssize_t L = OH * OW
    cdef const floating* row
    cdef const floating* src
    cdef floating* dst
    memset(x, 0, H * W * sizeof(floating))
    for i in range(KH):
        _valid_range(H, OH, i, SH, PH, &oh_lo, &oh_hi)
        for j in range(KW):
            _valid_range(W, OW, j, SW, PW, &ow_lo, &ow_hi)
            n_valid = ow_hi - ow_lo
            if n_valid <= 0:
                continue
            row = cols + (i * KW + j) * L
            for oh in range(oh_lo, oh_hi):
                src = row + oh * OW + ow_lo
                dst = x + (oh * SH - PH + i) * W + (ow_lo * SW - PW + j)
                if SW == 1:
                    for t in range(n_valid):
                        dst[t] += src[t]
                else:
                    for t in range(n_valid):
                        dst[t * SW] += src[t]


def im2col(const floating[:, :, :, ::1] x, floating[:, :, ::1] cols,
           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW):
    """Fill cols (N, C*KH*KW, OH*OW) from x (N, C, H, W); shapes are checked by the caller."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = (H + 2 * PH - KH) // SH + 1, OW = (W + 2 * PW - KW) // SW + 1
    cdef Py_ssize_t p, plane_in = H * W, plane_out = KH * KW * OH * OW
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* cp = &cols[0, 0, 0]
    with nogil:
        for p in prange(N * C, schedule="static", num_threads=_team(N * C, N * C * plane_out)):
            _im2col_plane(xp + p * plane_in, cp + p * plane_out, H, W, KH, KW, SH, SW, PH, PW, OH, OW)


def col2im(const floating[:, :, ::1] cols, floating[:, :, :, ::1] x,
           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW):
    """Overwrite x (N, C, H, W) with the adjoint of im2col applied to cols (N, C*KH*KW, OH*OW)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = (H + 2 * PH - KH) // SH + 1, OW = (W + 2 * PW - KW) // SW + 1
    cdef Py_ssize_t p, plane_in = H * W, plane_out = KH * KW * OH * OW
    cdef const floating* cp = &cols[0, 0, 0]
    cdef floating* xp = &x[0, 0, 0, 0]
    with nogil:
        for p in prange(N * C, schedule="static", num_threads=_team(N * C, N * C * plane_out)):
            _col2im_plane(cp + p * plane_out, xp + p * plane_in, H, W, KH, KW, SH, SW, PH, PW, OH, OW)
