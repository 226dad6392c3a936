"""Plain-loop references for max and average pooling, written straight from the definitions.

Slow on purpose, like the convolution oracles: one window at a time, no reshapes or stride tricks.
"""
import numpy as np
from oracles_conv import pair, out_size


def max_pool2d_ref(x, kernel_size, stride=None):
    """(out, argmax): the window maximum scanning rows then columns, keeping the first on ties; a NaN is
    the maximum of its window (the first NaN, if there are several), as in np.max."""
    kh, kw = pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else pair(stride)
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
                            v = x[n, c, h, w]
                            if best is None or (not np.isnan(best) and (np.isnan(v) or v > best)):
                                best, best_idx = v, h * w_ + w
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
    kh, kw = pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else pair(stride)
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
    kh, kw = pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else pair(stride)
    dx = np.zeros(x_shape, dtype=np.float64)
    for n, c, oh, ow in np.ndindex(*dout.shape):
        g = float(dout[n, c, oh, ow]) / (kh * kw)
        for i in range(kh):
            for j in range(kw):
                dx[n, c, oh * sh + i, ow * sw + j] += g
    return dx.astype(dout.dtype)
