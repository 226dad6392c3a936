"""im2col / col2im loops, and the layout moves around the one-GEMM convolution of cnn_core.nn.Conv2d.

Two column layouts, the same loops:
- per sample, torch.nn.functional.unfold's: cols[n, c*KH*KW + i*KW + j, oh*OW + ow] (the deck's reference
  path, the public im2col / col2im);
- batch in the columns: cols[c*KH*KW + i*KW + j, n*OH*OW + oh*OW + ow], so that the whole batch is one GEMM
  (weight (F, C*KH*KW) @ cols (C*KH*KW, N*OH*OW)) whose N dimension is large even for 7x7 images.
One (n, c) input plane maps to KH*KW rows of cols (of length OH*OW, at row stride `ld`), so planes are
independent and the outer loop runs in parallel over N*C. Padding is handled by computing, once per kernel
offset, the range of output positions whose input lies inside the image: the inner loops never branch per
element. Dilation DH, DW spaces the kernel taps: tap (i, j) reads x[oh*SH - PH + i*DH, ow*SW - PW + j*DW].
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from cnn_core._config cimport team_size
from cnn_core.kernels._rows cimport copy_row, zero_row


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


cdef void _im2col_plane(const floating* x, floating* cols, Py_ssize_t ld, Py_ssize_t H, Py_ssize_t W,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                        Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t DH, Py_ssize_t DW,
                        Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """x: one (H, W) plane; cols: its KH*KW rows of length OH*OW, `ld` elements apart."""
    cdef Py_ssize_t i, j, oh, t, oh_lo, oh_hi, ow_lo, ow_hi, n_valid, step = SH * W
    cdef floating* row
    cdef floating* dst
    cdef const floating* src
    for i in range(KH):
        _valid_range(H, OH, i * DH, SH, PH, &oh_lo, &oh_hi)
        for j in range(KW):
            _valid_range(W, OW, j * DW, SW, PW, &ow_lo, &ow_hi)
            n_valid = ow_hi - ow_lo
            row = cols + (i * KW + j) * ld
            zero_row(row, oh_lo * OW)
            zero_row(row + oh_hi * OW, (OH - oh_hi) * OW)
            if n_valid <= 0:
                zero_row(row + oh_lo * OW, (oh_hi - oh_lo) * OW)
                continue
            dst = row + oh_lo * OW
            src = x + (oh_lo * SH - PH + i * DH) * W + (ow_lo * SW - PW + j * DW)
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


cdef void _col2im_plane(const floating* cols, floating* x, Py_ssize_t ld, Py_ssize_t H, Py_ssize_t W,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                        Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t DH, Py_ssize_t DW,
                        Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """Adjoint of _im2col_plane: zero the plane, then add every in-image column entry back."""
    cdef Py_ssize_t i, j, oh, t, oh_lo, oh_hi, ow_lo, ow_hi, n_valid
    cdef const floating* row
    cdef const floating* src
    cdef floating* dst
    memset(x, 0, H * W * sizeof(floating))
    for i in range(KH):
        _valid_range(H, OH, i * DH, SH, PH, &oh_lo, &oh_hi)
        for j in range(KW):
            _valid_range(W, OW, j * DW, SW, PW, &ow_lo, &ow_hi)
            n_valid = ow_hi - ow_lo
            if n_valid <= 0:
                continue
            row = cols + (i * KW + j) * ld
            for oh in range(oh_lo, oh_hi):
                src = row + oh * OW + ow_lo
                dst = x + (oh * SH - PH + i * DH) * W + (ow_lo * SW - PW + j * DW)
                if SW == 1:
                    for t in range(n_valid):
                        dst[t] += src[t]
                else:
                    for t in range(n_valid):
                        dst[t * SW] += src[t]


def im2col(const floating[:, :, :, ::1] x, floating[:, ::1] cols, bint batch_in_cols,
           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW,
           Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t OH, Py_ssize_t OW):
    """Fill cols from x (N, C, H, W); shapes are checked by the caller.

    cols is (N*C*KH*KW, OH*OW) (per-sample layout, a reshaped (N, C*KH*KW, OH*OW)) or, with batch_in_cols,
    (C*KH*KW, N*OH*OW).
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t p, L = OH * OW, KK = KH * KW
    cdef Py_ssize_t ld = N * L if batch_in_cols else L
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* cp = &cols[0, 0]
    with nogil:
        for p in prange(N * C, schedule="static", num_threads=team_size(N * C)):
            _im2col_plane(xp + p * H * W, cp + _plane_offset(p, N, C, L, KK, batch_in_cols), ld,
                          H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)


def col2im(const floating[:, ::1] cols, floating[:, :, :, ::1] x, bint batch_in_cols,
           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW,
           Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t OH, Py_ssize_t OW):
    """Overwrite x (N, C, H, W) with the adjoint of im2col applied to cols (either layout of im2col)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t p, L = OH * OW, KK = KH * KW
    cdef Py_ssize_t ld = N * L if batch_in_cols else L
    cdef const floating* cp = &cols[0, 0]
    cdef floating* xp = &x[0, 0, 0, 0]
    with nogil:
        for p in prange(N * C, schedule="static", num_threads=team_size(N * C)):
            _col2im_plane(cp + _plane_offset(p, N, C, L, KK, batch_in_cols), xp + p * H * W, ld,
                          H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)


cdef inline Py_ssize_t _plane_offset(Py_ssize_t p, Py_ssize_t N, Py_ssize_t C, Py_ssize_t L, Py_ssize_t KK,
                                     bint batch_in_cols) noexcept nogil:
    """Where plane p = n*C + c's first column row starts."""
    if batch_in_cols:
        return (p % C) * KK * N * L + (p // C) * L
    return p * KK * L


def batch_from_rows(const floating[:, ::1] zt, floating[:, :, ::1] out, const floating[::1] bias):
    """out[n, f, :] = zt[f, n*L:(n+1)*L] (+ bias[f] when bias is not None): the one GEMM's (F, N*L) result
    back to (N, F, L)."""
    cdef Py_ssize_t N = out.shape[0], F = out.shape[1], L = out.shape[2], p, n, f, t
    cdef bint has_bias = bias is not None
    cdef floating b
    cdef floating* dst
    cdef const floating* src
    with nogil:
        for p in prange(N * F, schedule="static", num_threads=team_size(N * F)):
            n = p // F
            f = p % F
            dst = &out[n, f, 0]
            src = &zt[f, n * L]
            if has_bias:
                b = bias[f]
                for t in range(L):
                    dst[t] = src[t] + b
            else:
                copy_row(dst, src, L)


def rows_from_batch(const floating[:, :, ::1] delta, floating[:, ::1] dt):
    """dt[f, n*L:(n+1)*L] = delta[n, f, :]: (N, F, L) to the one GEMM's (F, N*L) layout."""
    cdef Py_ssize_t N = delta.shape[0], F = delta.shape[1], L = delta.shape[2], p, n, f
    with nogil:
        for p in prange(N * F, schedule="static", num_threads=team_size(N * F)):
            n = p // F
            f = p % F
            copy_row(&dt[f, n * L], &delta[n, f, 0], L)


def add_row_sums(const floating[:, ::1] a, floating[::1] out):
    """out[i] += sum_j a[i, j], each row summed in one fixed order (no dependence on the thread count)."""
    cdef Py_ssize_t m = a.shape[0], n = a.shape[1], i, j
    cdef floating s0, s1, s2, s3
    cdef const floating* r
    with nogil:
        for i in prange(m, schedule="static", num_threads=team_size(m)):
            r = &a[i, 0]
            s0 = s1 = s2 = s3 = 0
            j = 0
            while j + 4 <= n:
                s0 = s0 + r[j]
                s1 = s1 + r[j + 1]
                s2 = s2 + r[j + 2]
                s3 = s3 + r[j + 3]
                j = j + 4
            while j < n:
                s0 = s0 + r[j]
                j = j + 1
            out[i] += (s0 + s1) + (s2 + s3)
