"""im2col / col2im: unfold sliding windows into columns so that a convolution becomes one matmul.

Layout follows torch.nn.functional.unfold: cols[n, c*KH*KW + i*KW + j, oh*OW + ow] =
x_padded[n, c, oh*SH + i, ow*SW + j], so conv2d(x, weight) is weight.reshape(F, -1) @ cols[n].
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import (as_float_array, as_pair, as_shape, check_nbytes, check_nonempty,
                                        conv_output_size)
from cnn_core.kernels import _conv

Pair = int | tuple[int, int]


def _geometry(h: int, w: int, kernel_size: Pair, stride: Pair, padding: Pair):
    kh, kw = as_pair(kernel_size, "kernel_size")
    sh, sw = as_pair(stride, "stride")
    ph, pw = as_pair(padding, "padding", minimum=0)
    oh = conv_output_size(h, kh, sh, ph, "height")
    ow = conv_output_size(w, kw, sw, pw, "width")
    return kh, kw, sh, sw, ph, pw, oh, ow


def im2col(x: np.ndarray, kernel_size: Pair, stride: Pair = 1, padding: Pair = 0) -> np.ndarray:
    """Unfold x (N, C, H, W) into cols (N, C*KH*KW, OH*OW), OH = (H + 2*PH - KH)//SH + 1 (same for OW).

    Zero padding of PH rows / PW columns on each side; stride >= 1, padding >= 0.
    """
    x = as_float_array(x, "x", ndim=4)
    check_nonempty(x, "x")
    n, c, h, w = x.shape
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry(h, w, kernel_size, stride, padding)
    shape = (n, c * kh * kw, oh * ow)
    check_nbytes(shape, x.dtype, f"im2col: kernel_size {(kh, kw)}, stride {(sh, sw)}, padding {(ph, pw)}")
    return _im2col(x, (kh, kw), (sh, sw), (ph, pw), (oh, ow))


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kernel_size: Pair, stride: Pair = 1,
           padding: Pair = 0) -> np.ndarray:
    """Fold cols (N, C*KH*KW, OH*OW) back into x (N, C, H, W) = x_shape, summing overlapping windows.

    The exact adjoint of im2col with the same geometry: <im2col(x), cols> == <x, col2im(cols)>.
    """
    cols = as_float_array(cols, "cols", ndim=3)
    n, c, h, w = as_shape(x_shape, "x_shape", 4)
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry(h, w, kernel_size, stride, padding)
    expected = (n, c * kh * kw, oh * ow)
    if cols.shape != expected:
        raise ValueError(f"cols: expected shape {expected} for x_shape {(n, c, h, w)}, kernel_size {(kh, kw)}, "
                         f"stride {(sh, sw)}, padding {(ph, pw)}; got {cols.shape}")
    check_nbytes((n, c, h, w), cols.dtype, "x_shape")
    return _col2im(cols, (n, c, h, w), (kh, kw), (sh, sw), (ph, pw))


# The unchecked entry points for layers that have validated the geometry and arrays at their own boundary
# (C-contiguous float arrays, pairs of ints, (OH, OW) from conv_output_size, sizes checked by check_nbytes).

def _im2col(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int],
            out_hw: tuple[int, int]) -> np.ndarray:
    """im2col without argument checks."""
    cols = np.empty((x.shape[0], x.shape[1] * k[0] * k[1], out_hw[0] * out_hw[1]), dtype=x.dtype)
    _conv.im2col(x, cols, *k, *s, *p)
    return cols


def _col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], k: tuple[int, int], s: tuple[int, int],
            p: tuple[int, int]) -> np.ndarray:
    """col2im without argument checks."""
    x = np.empty(x_shape, dtype=cols.dtype)
    _conv.col2im(cols, x, *k, *s, *p)
    return x
