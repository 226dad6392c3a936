"""im2col / col2im: unfold sliding windows into columns so that a convolution becomes one matmul.

Layout follows torch.nn.functional.unfold: cols[n, c*KH*KW + i*KW + j, oh*OW + ow] =
x_padded[n, c, oh*SH + i*DH, ow*SW + j*DW], so conv2d(x, weight) is weight.reshape(F, -1) @ cols[n].
(Conv2d runs the same loops on chunks of samples inside its compiled forward and backward, _conv.conv_forward
and conv_backward.)
"""
from __future__ import annotations

from typing import Union

import numpy as np

from cnn_core._validation import (as_float_array, as_pair, as_shape, check_nbytes, check_nonempty,
                                  conv_output_size)
from cnn_core.kernels import _conv

Pair = Union[int, tuple[int, int]]  # not `int | tuple`: evaluated at import, which needs Python >= 3.10


def _geometry(h: int, w: int, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair = 1):
    kh, kw = as_pair(kernel_size, "kernel_size")
    sh, sw = as_pair(stride, "stride")
    ph, pw = as_pair(padding, "padding", minimum=0)
    dh, dw = as_pair(dilation, "dilation")
    oh = conv_output_size(h, dh * (kh - 1) + 1, sh, ph, "height")
    ow = conv_output_size(w, dw * (kw - 1) + 1, sw, pw, "width")
    return kh, kw, sh, sw, ph, pw, dh, dw, oh, ow


def im2col(x: np.ndarray, kernel_size: Pair, stride: Pair = 1, padding: Pair = 0, dilation: Pair = 1) -> np.ndarray:
    """Unfold x (N, C, H, W) into cols (N, C*KH*KW, OH*OW).

    OH = (H + 2*PH - DH*(KH - 1) - 1)//SH + 1 (same for OW): zero padding of PH rows / PW columns on each
    side, stride >= 1, padding >= 0, dilation >= 1 (the spacing of the kernel taps).
    """
    x = as_float_array(x, "x", ndim=4)
    check_nonempty(x, "x")
    n, c, h, w = x.shape
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = _geometry(h, w, kernel_size, stride, padding, dilation)
    shape = (n, c * kh * kw, oh * ow)
    check_nbytes(shape, x.dtype, f"im2col: kernel_size {(kh, kw)}, stride {(sh, sw)}, padding {(ph, pw)}, "
                 f"dilation {(dh, dw)}")
    return _im2col(x, (kh, kw), (sh, sw), (ph, pw), (oh, ow), (dh, dw))


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kernel_size: Pair, stride: Pair = 1,
           padding: Pair = 0, dilation: Pair = 1) -> np.ndarray:
    """Fold cols (N, C*KH*KW, OH*OW) back into x (N, C, H, W) = x_shape, summing overlapping windows.

    The exact adjoint of im2col with the same geometry: <im2col(x), cols> == <x, col2im(cols)>.
    """
    cols = as_float_array(cols, "cols", ndim=3)
    n, c, h, w = as_shape(x_shape, "x_shape", 4)
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = _geometry(h, w, kernel_size, stride, padding, dilation)
    expected = (n, c * kh * kw, oh * ow)
    if cols.shape != expected:
        raise ValueError(f"cols: expected shape {expected} for x_shape {(n, c, h, w)}, kernel_size {(kh, kw)}, "
                         f"stride {(sh, sw)}, padding {(ph, pw)}, dilation {(dh, dw)}; got {cols.shape}")
    check_nbytes((n, c, h, w), cols.dtype, "x_shape")
    return _col2im(np.ascontiguousarray(cols), (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))


# The unchecked entry points for layers that have validated the geometry and arrays at their own boundary
# (C-contiguous float arrays, pairs of ints, (OH, OW) from conv_output_size, sizes checked by check_nbytes).

def _im2col(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int],
            out_hw: tuple[int, int], d: tuple[int, int] = (1, 1)) -> np.ndarray:
    """im2col without argument checks: (N, C*KH*KW, OH*OW)."""
    n, c = x.shape[:2]
    cols = np.empty((n, c * k[0] * k[1], out_hw[0] * out_hw[1]), dtype=x.dtype)
    _conv.im2col(x, cols, *k, *s, *p, *d, *out_hw)
    return cols


def _col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], k: tuple[int, int], s: tuple[int, int],
            p: tuple[int, int], d: tuple[int, int] = (1, 1)) -> np.ndarray:
    """col2im without argument checks, from (N, C*KH*KW, OH*OW)."""
    x = np.empty(x_shape, dtype=cols.dtype)
    oh_ow = _out_hw(x_shape, k, s, p, d)
    _conv.col2im(cols, x, *k, *s, *p, *d, *oh_ow)
    return x


def _out_hw(x_shape, k, s, p, d) -> tuple[int, int]:
    return ((x_shape[2] + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1,
            (x_shape[3] + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1)
