"""Plain-loop references for convolution (direct, and as im2col/col2im), written straight from the definitions.

Slow on purpose: every output element is computed by the formula it is defined by, with no reshapes or
stride tricks, so these share no code paths (or bugs) with the compiled kernels. Keep shapes small.
"""
import numpy as np


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def out_size(size, k, s, p):
    """floor((size + 2p - k) / s) + 1: the positions of a k-wide window with stride s over the padded input."""
    return (size + 2 * p - k) // s + 1


def _taps(x_shape, kernel_size, stride, padding):
    """Every (column entry, pixel) pair that im2col copies, straight from its definition: entry
    (n, c*KH*KW + i*KW + j, oh*OW + ow) of the columns holds pixel (n, c, oh*SH - PH + i, ow*SW - PW + j) when
    that pixel lies inside the image (the padding reads as 0 and has no pixel)."""
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel_size), pair(stride), pair(padding)
    n_, c_, h_, w_ = x_shape
    oh_, ow_ = out_size(h_, kh, sh, ph), out_size(w_, kw, sw, pw)
    for n in range(n_):
        for c in range(c_):
            for i in range(kh):
                for j in range(kw):
                    for oh in range(oh_):
                        for ow in range(ow_):
                            h, w = oh * sh - ph + i, ow * sw - pw + j
                            if 0 <= h < h_ and 0 <= w < w_:
                                yield (n, c * kh * kw + i * kw + j, oh * ow_ + ow), (n, c, h, w)


def _cols_shape(x_shape, kernel_size, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel_size), pair(stride), pair(padding)
    n_, c_, h_, w_ = x_shape
    return n_, c_ * kh * kw, out_size(h_, kh, sh, ph) * out_size(w_, kw, sw, pw)


def im2col_ref(x, kernel_size, stride=1, padding=0):
    """cols[n, c*KH*KW + i*KW + j, oh*OW + ow] = x[n, c, oh*SH - PH + i, ow*SW - PW + j] (0 outside)."""
    cols = np.zeros(_cols_shape(x.shape, kernel_size, stride, padding), dtype=x.dtype)
    for entry, pixel in _taps(x.shape, kernel_size, stride, padding):
        cols[entry] = x[pixel]
    return cols


def col2im_ref(cols, x_shape, kernel_size, stride=1, padding=0):
    """The loop adjoint of im2col_ref: every in-image column entry is added back to its pixel."""
    x = np.zeros(x_shape, dtype=cols.dtype)
    for entry, pixel in _taps(x_shape, kernel_size, stride, padding):
        x[pixel] += cols[entry]
    return x


def conv2d_ref(x, weight, stride=1, padding=0, bias=None):
    """Direct cross-correlation: z[n, f, oh, ow] = sum_{c,i,j} weight[f, c, i, j] * x_pad[n, c, oh*SH+i, ow*SW+j]
    (+ bias[f])."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    n_, c_, h_, w_ = x.shape
    f_, _, kh, kw = weight.shape
    xp = np.zeros((n_, c_, h_ + 2 * ph, w_ + 2 * pw), dtype=x.dtype)
    xp[:, :, ph:ph + h_, pw:pw + w_] = x
    oh_, ow_ = out_size(h_, kh, sh, ph), out_size(w_, kw, sw, pw)
    z = np.zeros((n_, f_, oh_, ow_), dtype=x.dtype)
    for n in range(n_):
        for f in range(f_):
            for oh in range(oh_):
                for ow in range(ow_):
                    z[n, f, oh, ow] = np.sum(weight[f] * xp[n, :, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw])
            if bias is not None:
                z[n, f] += bias[f]
    return z
