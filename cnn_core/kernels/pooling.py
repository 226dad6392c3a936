"""2-D max and average pooling, forward and backward (NCHW, no padding, floor mode).

Output size per axis is (H - KH)//SH + 1: trailing rows/columns that do not fill a window are dropped,
as in PyTorch's default. stride defaults to kernel_size; overlapping windows (stride < kernel) are allowed
and accumulate in the backward pass.

NaN: a window holding a NaN yields NaN (as in torch), and argmax points to the first NaN in row-major
window order (torch points to the last one; the pooled value is the same).

Average pooling scales window sums by 1/(KH*KW) (a multiply, within an ulp of dividing; exact for
power-of-two windows such as 2x2).
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import (as_float_array, as_index_array, as_pair, as_shape, check_nbytes,
                                        check_nonempty, conv_output_size)
from cnn_core.kernels import _pooling

Pair = int | tuple[int, int]


def _geometry(h: int, w: int, kernel_size: Pair, stride: Pair | None):
    kh, kw = as_pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else as_pair(stride, "stride")
    oh = conv_output_size(h, kh, sh, 0, "height")
    ow = conv_output_size(w, kw, sw, 0, "width")
    return kh, kw, sh, sw, oh, ow


def max_pool2d_forward(x: np.ndarray, kernel_size: Pair, stride: Pair | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling of x (N, C, H, W) -> (out, argmax), both (N, C, OH, OW).

    argmax (int64) holds the flat index h*W + w of each winner inside its (n, c) plane (torch's
    return_indices convention); ties go to the first maximum in row-major window order.
    """
    x = as_float_array(x, "x", ndim=4)
    check_nonempty(x, "x")
    n, c, h, w = x.shape
    kh, kw, sh, sw, oh, ow = _geometry(h, w, kernel_size, stride)
    return _max_pool2d(x, (kh, kw), (sh, sw), (oh, ow))


def max_pool2d_backward(dout: np.ndarray, argmax: np.ndarray, x_shape: tuple[int, int, int, int]
                        ) -> np.ndarray:
    """Route dout (N, C, OH, OW) to the argmax positions of a zero dx of shape x_shape (N, C, H, W).

    Several windows sharing a winner (overlapping pooling) add up. argmax must lie in 0..H*W-1.
    """
    dout = as_float_array(dout, "dout", ndim=4)
    check_nonempty(dout, "dout")
    argmax = as_index_array(argmax, "argmax", ndim=4)
    n, c, h, w = as_shape(x_shape, "x_shape", 4)
    if argmax.shape != dout.shape:
        raise ValueError(f"argmax: expected dout's shape {dout.shape}, got {argmax.shape}")
    if dout.shape[:2] != (n, c) or dout.shape[2] > h or dout.shape[3] > w:
        raise ValueError(f"x_shape: expected (N, C) = {dout.shape[:2]} and H >= {dout.shape[2]}, "
                         f"W >= {dout.shape[3]} to match dout {dout.shape}, got {(n, c, h, w)}")
    check_nbytes((n, c, h, w), dout.dtype, "x_shape")
    return _max_pool2d_backward(dout, argmax, (n, c, h, w))


def avg_pool2d_forward(x: np.ndarray, kernel_size: Pair, stride: Pair | None = None) -> np.ndarray:
    """Average pooling of x (N, C, H, W) -> out (N, C, OH, OW), each the mean of its KH x KW window."""
    x = as_float_array(x, "x", ndim=4)
    check_nonempty(x, "x")
    n, c, h, w = x.shape
    kh, kw, sh, sw, oh, ow = _geometry(h, w, kernel_size, stride)
    return _avg_pool2d(x, (kh, kw), (sh, sw), (oh, ow))


def avg_pool2d_backward(dout: np.ndarray, x_shape: tuple[int, int, int, int], kernel_size: Pair,
                        stride: Pair | None = None) -> np.ndarray:
    """Spread dout (N, C, OH, OW) evenly over each window into dx of shape x_shape (N, C, H, W)."""
    dout = as_float_array(dout, "dout", ndim=4)
    n, c, h, w = as_shape(x_shape, "x_shape", 4)
    kh, kw, sh, sw, oh, ow = _geometry(h, w, kernel_size, stride)
    if dout.shape != (n, c, oh, ow):
        raise ValueError(f"dout: expected shape {(n, c, oh, ow)} for x_shape {(n, c, h, w)}, kernel_size "
                         f"{(kh, kw)}, stride {(sh, sw)}; got {dout.shape}")
    check_nbytes((n, c, h, w), dout.dtype, "x_shape")
    return _avg_pool2d_backward(dout, (n, c, h, w), (kh, kw), (sh, sw))


# The unchecked entry points for layers that have validated the geometry and arrays at their own boundary
# (C-contiguous arrays, pairs of ints, (OH, OW) from conv_output_size).

def _max_pool2d(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], out_hw: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """max_pool2d_forward without argument checks."""
    out = np.empty((*x.shape[:2], *out_hw), dtype=x.dtype)
    argmax = np.empty(out.shape, dtype=np.int64)
    _pooling.max_pool2d_forward(x, out, argmax, *k, *s)
    return out, argmax


def _max_pool2d_backward(dout: np.ndarray, argmax: np.ndarray, x_shape: tuple[int, int, int, int]) -> np.ndarray:
    """max_pool2d_backward without argument checks; an argmax outside its plane is still refused (the
    compiled loop reports it)."""
    dx = np.empty(x_shape, dtype=dout.dtype)
    if _pooling.max_pool2d_backward(dout, argmax, dx):
        h, w = x_shape[2:]
        raise ValueError(f"argmax: expected flat indices in 0..{h * w - 1} (H*W - 1 for x_shape {x_shape}), "
                         f"got values in {argmax.min()}..{argmax.max()}")
    return dx


def _avg_pool2d(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """avg_pool2d_forward without argument checks."""
    out = np.empty((*x.shape[:2], *out_hw), dtype=x.dtype)
    _pooling.avg_pool2d_forward(x, out, *k, *s)
    return out


def _avg_pool2d_backward(dout: np.ndarray, x_shape: tuple[int, int, int, int], k: tuple[int, int],
                         s: tuple[int, int]) -> np.ndarray:
    """avg_pool2d_backward without argument checks."""
    dx = np.empty(x_shape, dtype=dout.dtype)
    _pooling.avg_pool2d_backward(dout, dx, *k, *s)
    return dx
