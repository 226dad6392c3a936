"""Plain-loop references for im2col/col2im and pooling, written straight from the definitions.

Slow on purpose: every output element is computed by the formula it is defined by, with no reshapes or
stride tricks, so these share no code paths (or bugs) with the compiled kernels. Keep shapes small.
"""
import numpy as np


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def im2col_ref(x, kernel_size, stride=1, padding=0):
    """cols[n, c*KH*KW + i*KW + j, oh*OW + ow] = x[n, c, oh*SH - PH + i, ow*SW - PW + j] (0 outside)."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out_size(h_, kh, sh, ph), out_size(w_, kw, sw, pw)
    cols = np.zeros((n_, c_ * kh * kw, oh_ * ow_), dtype=x.dtype)
    for n in range(n_):
        for c in range(c_):
            for i in range(kh):
                for j in range(kw):
                    for oh in range(oh_):
                        for ow in range(ow_):
                            h, w = oh * sh - ph + i, ow * sw - pw + j
                            if 0 <= h < h_ and 0 <= w < w_:
                                cols[n, c * kh * kw + i * kw + j, oh * ow_ + ow] = x[n, c, h, w]
    return cols


def col2im_ref(cols, x_shape, kernel_size, stride=1, padding=0):
    """The loop adjoint of im2col_ref: every in-image column entry is added back to its pixel."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    n_, c_, h_, w_ = x_shape
    oh_, ow_ = out_size(h_, kh, sh, ph), out_size(w_, kw, sw, pw)
    x = np.zeros(x_shape, dtype=cols.dtype)
    for n in range(n_):
        for c in range(c_):
            for i in range(kh):
                for j in range(kw):
                    for oh in range(oh_):
                        for ow in range(ow_):
                            h, w = oh * sh - ph + i, ow * sw - pw + j
                            if 0 <= h < h_ and 0 <= w < w_:
                                x[n, c, h, w] += cols[n, c * kh * kw + i * kw + j, oh * ow_ + ow]
    return x


def conv2d_ref(x, weight, stride=1, padding=0):
    """Direct cross-correlation: z[n, f, oh, ow] = sum_{c,i,j} weight[f, c, i, j] * x_pad[n, c, oh*SH+i, ow*SW+j]."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
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
    return z


def max_pool2d_ref(x, kernel_size, stride=None):
    """(out, argmax): the window maximum scanning rows then columns, keeping the first on ties."""
    kh, kw = _pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else _pair(stride)
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out_size(h_, kh, sh, 0), out_size(w_, kw, sw, 0)
    out = np.zeros((n_, c_, oh_, ow_), dtype=x.dtype)
    argmax = np.zeros((n_, c_, oh_, ow_), dtype=np.int64)
    for n in range(n_):
        for c in range(c_):
            for oh in range(oh_):
                for ow in range(ow_):
                    best, best_idx = None, None
                    for i in range(kh):
                        for j in range(kw):
                            h, w = oh * sh + i, ow * sw + j
                            if best is None or x[n, c, h, w] > best:
                                best, best_idx = x[n, c, h, w], h * w_ + w
                    out[n, c, oh, ow], argmax[n, c, oh, ow] = best, best_idx
    return out, argmax


def max_pool2d_backward_ref(dout, argmax, x_shape):
    """dx[n, c, a // W, a % W] += dout[n, c, oh, ow] with a = argmax[n, c, oh, ow]."""
    w_ = x_shape[3]
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for n, c, oh, ow in np.ndindex(*dout.shape):
        a = argmax[n, c, oh, ow]
        dx[n, c, a // w_, a % w_] += dout[n, c, oh, ow]
    return dx


def avg_pool2d_ref(x, kernel_size, stride=None):
    """out[n, c, oh, ow] = (1 / (KH*KW)) * sum of the window, accumulated in float64."""
    kh, kw = _pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else _pair(stride)
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out_size(h_, kh, sh, 0), out_size(w_, kw, sw, 0)
    out = np.zeros((n_, c_, oh_, ow_), dtype=x.dtype)
    for n, c, oh, ow in np.ndindex(n_, c_, oh_, ow_):
        acc = 0.0
        for i in range(kh):
            for j in range(kw):
                acc += float(x[n, c, oh * sh + i, ow * sw + j])
        out[n, c, oh, ow] = acc / (kh * kw)
    return out


def avg_pool2d_backward_ref(dout, x_shape, kernel_size, stride=None):
    """dx[n, c, oh*SH + i, ow*SW + j] += dout[n, c, oh, ow] / (KH*KW) for every window element."""
    kh, kw = _pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else _pair(stride)
    dx = np.zeros(x_shape, dtype=np.float64)
    for n, c, oh, ow in np.ndindex(*dout.shape):
        g = float(dout[n, c, oh, ow]) / (kh * kw)
        for i in range(kh):
            for j in range(kw):
                dx[n, c, oh * sh + i, ow * sw + j] += g
    return dx.astype(dout.dtype)
