"""Plain-loop references for the general convolution of Conv2d (dilation, groups, 'same' / 'valid' and
asymmetric padding), forward and backward, written straight from the definitions.

    z[n, f, oh, ow] = bias[f] + sum_{c in group(f), i, j} w[f, c - c0(f), i, j] * x[n, c, oh*SH - PT + i*DH,
                                                                                   ow*SW - PL + j*DW]
with x read as 0 outside the image; group(f) = channels g*C/G .. (g+1)*C/G - 1 for g = f // (F/G), c0 its
first. The backward loops visit the same (output, tap, pixel) triples and accumulate the chain rule:
dx[pixel] += w * delta[output], dw[tap] += x[pixel] * delta[output], db[f] += delta[output]. Slow on purpose
(no reshapes, no stride tricks); keep shapes small.
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
    """Every ((n, f, oh, ow), (f, ci, i, j), (n, c, h, w)) whose pixel lies inside the image, and the output
    shape: the sum defining the convolution, term by term."""
    n_, c_, h_, w_ = x_shape
    f_, cg, kh, kw = w_shape
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    pt, pb, pl, pr = paddings(padding, (kh, kw), (dh, dw))
    oh_ = (h_ + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow_ = (w_ + pl + pr - dw * (kw - 1) - 1) // sw + 1
    fg = f_ // groups
    terms = []
    for n in range(n_):
        for f in range(f_):
            c0 = (f // fg) * cg
            for oh in range(oh_):
                for ow in range(ow_):
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                h, w = oh * sh - pt + i * dh, ow * sw - pl + j * dw
                                if 0 <= h < h_ and 0 <= w < w_:
                                    terms.append(((n, f, oh, ow), (f, ci, i, j), (n, c0 + ci, h, w)))
    return terms, (n_, f_, oh_, ow_)


def conv2d_general_ref(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    terms, out_shape = _triples(x.shape, weight.shape, stride, padding, dilation, groups)
    z = np.zeros(out_shape, dtype=np.float64)
    for out, tap, pixel in terms:
        z[out] += float(weight[tap]) * float(x[pixel])
    if bias is not None:
        z += np.asarray(bias, dtype=np.float64)[None, :, None, None]
    return z


def conv2d_general_backward_ref(x, weight, delta, stride=1, padding=0, dilation=1, groups=1):
    """(dx, dw, db) of L = <conv2d(x, weight, bias), delta>."""
    terms, out_shape = _triples(x.shape, weight.shape, stride, padding, dilation, groups)
    assert delta.shape == out_shape
    dx = np.zeros(x.shape, dtype=np.float64)
    dw = np.zeros(weight.shape, dtype=np.float64)
    for out, tap, pixel in terms:
        dx[pixel] += float(weight[tap]) * float(delta[out])
        dw[tap] += float(x[pixel]) * float(delta[out])
    return dx, dw, np.asarray(delta, dtype=np.float64).sum(axis=(0, 2, 3))


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
