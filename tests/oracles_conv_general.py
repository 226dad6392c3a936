"""Plain-loop references for the general convolution of Conv2d (dilation, groups, 'same' / 'valid' and
asymmetric padding), forward and backward, written straight from the definitions.

    z[n, f, oh, ow] = bias[f] + sum_{c in group(f), i, j} w[f, c - c0(f), i, j] * x[n, c, oh*SH - PT + i*DH,
                                                                                   ow*SW - PL + j*DW]
with x read as 0 outside the image; group(f) = channels g*C/G .. (g+1)*C/G - 1 for g = f // (F/G), c0 its
first. The backward loops visit the same (output, tap, pixel) triples and accumulate the chain rule:
dx[pixel] += w * delta[output], dw[tap] += x[pixel] * delta[output], db[f] += delta[output]. No reshapes, no
stride tricks: the terms are listed as index arrays and summed in their loop order; keep shapes small.
"""
import numpy as np


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def paddings(padding, kernel_size, dilation):
    """(top, bottom, left, right) zeros: an int or pair pads both sides; 'valid' none; 'same' d*(k-1) per axis,
    half before (rounded down), the rest after (PyTorch's rule)."""
    (kh, kw), (dh, dw) = pair(kernel_size), pair(dilation)
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    ph, pw = pair(padding)
    return ph, ph, pw, pw


def _triples(x_shape, w_shape, stride, padding, dilation, groups):
    """Every ((n, f, oh, ow), (f, ci, i, j), (n, c, h, w)) whose pixel lies inside the image, as three tuples
    of index arrays (one entry per term, in the order of the loops n, f, oh, ow, ci, i, j), and the output
    shape: the sum defining the convolution, term by term."""
    n_, c_, h_, w_ = x_shape
    f_, cg, kh, kw = w_shape
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    pt, pb, pl, pr = paddings(padding, (kh, kw), (dh, dw))
    oh_ = (h_ + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow_ = (w_ + pl + pr - dw * (kw - 1) - 1) // sw + 1
    fg = f_ // groups
    n, f, oh, ow, ci, i, j = np.meshgrid(*(np.arange(k) for k in (n_, f_, oh_, ow_, cg, kh, kw)), indexing="ij")
    h, w = oh * sh - pt + i * dh, ow * sw - pl + j * dw
    inside = (0 <= h) & (h < h_) & (0 <= w) & (w < w_)     # a boolean mask keeps the loops' (C) order
    c = (f // fg) * cg + ci
    out, tap, pixel = ((a[inside] for a in group) for group in ((n, f, oh, ow), (f, ci, i, j), (n, c, h, w)))
    return (tuple(out), tuple(tap), tuple(pixel)), (n_, f_, oh_, ow_)


# np.add.at adds term by term in the order of its indices (unbuffered), so each sum below is accumulated in
# the loops' order, exactly as `for term: z[out] += w[tap] * x[pixel]` would.
def conv2d_general_ref(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    (out, tap, pixel), out_shape = _triples(x.shape, weight.shape, stride, padding, dilation, groups)
    z = np.zeros(out_shape, dtype=np.float64)
    w64, x64 = np.asarray(weight, np.float64), np.asarray(x, np.float64)
    np.add.at(z, out, w64[tap] * x64[pixel])
    if bias is not None:
        z += np.asarray(bias, dtype=np.float64)[None, :, None, None]
    return z


def conv2d_general_backward_ref(x, weight, delta, stride=1, padding=0, dilation=1, groups=1):
    """(dx, dw, db) of L = <conv2d(x, weight, bias), delta>."""
    (out, tap, pixel), out_shape = _triples(x.shape, weight.shape, stride, padding, dilation, groups)
    assert delta.shape == out_shape
    w64, x64, d64 = (np.asarray(a, np.float64) for a in (weight, x, delta))
    dx = np.zeros(x.shape, dtype=np.float64)
    dw = np.zeros(weight.shape, dtype=np.float64)
    np.add.at(dx, pixel, w64[tap] * d64[out])
    np.add.at(dw, tap, x64[pixel] * d64[out])
    return dx, dw, d64.sum(axis=(0, 2, 3))


def im2col_dilated_ref(x, kernel_size, stride=1, padding=0, dilation=1):
    """cols[n, c*KH*KW + i*KW + j, oh*OW + ow] = x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW] (0 outside)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pair(kernel_size), pair(stride), pair(padding), pair(dilation)
    n_, c_, h_, w_ = x.shape
    oh_ = (h_ + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow_ = (w_ + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((n_, c_ * kh * kw, oh_ * ow_), dtype=x.dtype)
    for n in range(n_):
        for c in range(c_):
            for i in range(kh):
                for j in range(kw):
                    for oh in range(oh_):
                        for ow in range(ow_):
                            h, w = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                            if 0 <= h < h_ and 0 <= w < w_:
                                cols[n, c * kh * kw + i * kw + j, oh * ow_ + ow] = x[n, c, h, w]
    return cols
