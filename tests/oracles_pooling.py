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


# ---- PyTorch's general pooling: padding, dilation, ceil mode, count_include_pad, adaptive windows -----------

def pool_out_size(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape, written out: with ceil, a window starting in the right padding is dropped."""
    num = size + 2 * p - d * (k - 1) - 1
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def max_pool2d_general_ref(x, kernel_size, stride, padding, dilation, ceil_mode):
    """(out, argmax) scanning each window's taps in row-major order over the taps inside the input (padding
    is -inf, never chosen); ties keep the first, the first NaN wins; a window of padding only gives -inf, -1."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (kernel_size, stride, padding, dilation))
    n_, c_, h_, w_ = x.shape
    oh_ = pool_out_size(h_, kh, sh, ph, dh, ceil_mode)
    ow_ = pool_out_size(w_, kw, sw, pw, dw, ceil_mode)
    out = np.zeros((n_, c_, oh_, ow_), dtype=x.dtype)
    argmax = np.zeros((n_, c_, oh_, ow_), dtype=np.int64)
    for n, c, oh, ow in np.ndindex(n_, c_, oh_, ow_):
        best, best_idx = -np.inf, -1
        for i in range(kh):
            for j in range(kw):
                h, w = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                if not (0 <= h < h_ and 0 <= w < w_):
                    continue
                v = x[n, c, h, w]
                if best_idx < 0 or (not np.isnan(best) and (np.isnan(v) or v > best)):
                    best, best_idx = v, h * w_ + w
        out[n, c, oh, ow], argmax[n, c, oh, ow] = best, best_idx
    return out, argmax


def avg_pool2d_general_ref(x, kernel_size, stride, padding, ceil_mode, count_include_pad):
    """Window sums over the taps inside the input (float64), divided as PyTorch does: the window clipped to
    the padded input (count_include_pad) or the number of input taps."""
    (kh, kw), (sh, sw), (ph, pw) = map(pair, (kernel_size, stride, padding))
    n_, c_, h_, w_ = x.shape
    oh_ = pool_out_size(h_, kh, sh, ph, 1, ceil_mode)
    ow_ = pool_out_size(w_, kw, sw, pw, 1, ceil_mode)
    out = np.zeros((n_, c_, oh_, ow_), dtype=x.dtype)
    for n, c, oh, ow in np.ndindex(n_, c_, oh_, ow_):
        acc, taps = 0.0, 0
        h0, w0 = oh * sh - ph, ow * sw - pw
        for i in range(kh):
            for j in range(kw):
                h, w = h0 + i, w0 + j
                if 0 <= h < h_ and 0 <= w < w_:
                    acc += float(x[n, c, h, w])
                    taps += 1
        padded = (min(h0 + kh, h_ + ph) - h0) * (min(w0 + kw, w_ + pw) - w0)
        out[n, c, oh, ow] = acc / (padded if count_include_pad else taps)
    return out


def adaptive_avg_pool2d_ref(x, out_hw):
    """Output (u, v) averages rows floor(u*H/OH) .. ceil((u+1)*H/OH)-1 and the same for columns."""
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out_hw
    out = np.zeros((n_, c_, oh_, ow_), dtype=x.dtype)
    for n, c, u, v in np.ndindex(n_, c_, oh_, ow_):
        h0, h1 = (u * h_) // oh_, -(-((u + 1) * h_) // oh_)
        w0, w1 = (v * w_) // ow_, -(-((v + 1) * w_) // ow_)
        out[n, c, u, v] = np.mean(x[n, c, h0:h1, w0:w1].astype(np.float64))
    return out
