"""2-D max and average pooling, forward and backward (NCHW).

The public functions here pool without padding in floor mode: output size per axis is (H - KH)//SH + 1,
trailing rows/columns that do not fill a window are dropped, as in PyTorch's default. The layers
(cnn_core.nn.MaxPool2d, AvgPool2d, AdaptiveAvgPool2d) add padding, dilation, ceil mode and adaptive windows
through the private entry points at the end (pool_output_size gives PyTorch's output-size formula). stride defaults to kernel_size; overlapping windows (stride < kernel) are allowed
and accumulate in the backward pass.

NaN: a window holding a NaN yields NaN (as in torch), and argmax points to the first NaN in row-major
window order (torch points to the last one; the pooled value is the same).

Average pooling scales window sums by 1/(KH*KW) (a multiply, within an ulp of dividing; exact for
power-of-two windows such as 2x2).
"""
from __future__ import annotations

from typing import Union

import numpy as np

from cnn_core._validation import (as_float_array, as_index_array, as_pair, as_shape, check_nbytes,
                                        check_nonempty, conv_output_size)
from cnn_core.kernels import _pooling

Pair = Union[int, tuple[int, int]]  # not `int | tuple`: evaluated at import, which needs Python >= 3.10


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

def _max_pool2d(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], out_hw: tuple[int, int],
                out: np.ndarray | None = None, argmax: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """max_pool2d_forward without argument checks; `out` and `argmax`, when given, are filled (C-contiguous,
    of the output's shape; x's dtype and int64)."""
    if out is None:
        out = np.empty((*x.shape[:2], *out_hw), dtype=x.dtype)
        argmax = np.empty(out.shape, dtype=np.int64)
    _pooling.max_pool2d_forward(x, out, argmax, *k, *s)
    return out, argmax


def _max_pool2d_backward(dout: np.ndarray, argmax: np.ndarray, x_shape: tuple[int, int, int, int],
                         empty_windows: bool = False, dx: np.ndarray | None = None) -> np.ndarray:
    """max_pool2d_backward without argument checks; an argmax outside its plane is still refused (the
    compiled loop reports it). empty_windows: an argmax of -1 (a window of padding only, from
    _max_pool2d_padded) routes nothing. dx, when given, is overwritten (C-contiguous, x_shape, dout's
    dtype)."""
    if dx is None:
        dx = np.empty(x_shape, dtype=dout.dtype)
    if _pooling.max_pool2d_backward(dout, argmax, dx, empty_windows):
        h, w = x_shape[2:]
        raise ValueError(f"argmax: expected flat indices in 0..{h * w - 1} (H*W - 1 for x_shape {x_shape}), "
                         f"got values in {argmax.min()}..{argmax.max()}")
    return dx


def _avg_pool2d(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], out_hw: tuple[int, int],
                out: np.ndarray | None = None) -> np.ndarray:
    """avg_pool2d_forward without argument checks; out, when given, is overwritten (C-contiguous, the output's
    shape, x's dtype)."""
    if out is None:
        out = np.empty((*x.shape[:2], *out_hw), dtype=x.dtype)
    _pooling.avg_pool2d_forward(x, out, *k, *s)
    return out


def _avg_pool2d_backward(dout: np.ndarray, x_shape: tuple[int, int, int, int], k: tuple[int, int],
                         s: tuple[int, int], dx: np.ndarray | None = None) -> np.ndarray:
    """avg_pool2d_backward without argument checks; dx, when given, is overwritten (C-contiguous, x_shape,
    dout's dtype)."""
    if dx is None:
        dx = np.empty(x_shape, dtype=dout.dtype)
    _pooling.avg_pool2d_backward(dout, dx, *k, *s)
    return dx


# ---- padding, dilation, ceil mode, adaptive windows (the layers' entry points) ---------------------------

def pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool, what: str) -> int:
    """PyTorch's pooling output length: ``floor_or_ceil((size + 2p - d*(k-1) - 1) / s) + 1``, where in
    ceil mode a last window that would start in the right padding (``(out-1)*s >= size + p``) is dropped.
    Raises ValueError when no window fits."""
    span = d * (k - 1) + 1
    num = size + 2 * p - span
    if num < 0:
        raise ValueError(f"kernel_size: the {what} window ({k} taps, dilation {d}: {span} wide) is larger than "
                         f"the padded input {size} + 2*{p} = {size + 2 * p}")
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _fits(size: int, k: int, s: int, p: int, d: int, out: int) -> bool:
    """True when every window lies inside the input: the fast loops need no border tests."""
    return p == 0 and d == 1 and (out - 1) * s + k <= size


def _max_pool2d_padded(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int],
                       d: tuple[int, int], out_hw: tuple[int, int], out: np.ndarray | None = None,
                       argmax: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling with padding (never a candidate) and dilation, without argument checks; windows that lie
    inside the input take the fast loops of _max_pool2d. A window of padding only (possible with dilation)
    gives -inf and argmax -1, as PyTorch's -inf. `out`, `argmax`: as _max_pool2d's."""
    h, w = x.shape[2:]
    if _fits(h, k[0], s[0], p[0], d[0], out_hw[0]) and _fits(w, k[1], s[1], p[1], d[1], out_hw[1]):
        return _max_pool2d(x, k, s, out_hw, out, argmax)
    if out is None:
        out = np.empty((*x.shape[:2], *out_hw), dtype=x.dtype)
        argmax = np.empty(out.shape, dtype=np.int64)
    _pooling.max_pool2d_forward_general(x, out, argmax, *k, *s, *p, *d)
    return out, argmax


def _avg_windows(size: int, k: int, s: int, p: int, out: int, count_include_pad: bool):
    """(start, end, divisor factor) of each output's window along one axis, clipped to 0..size, as PyTorch:
    the divisor counts padding (up to size + p, never the ceil-mode overhang) when count_include_pad."""
    start = np.arange(out, dtype=np.intp) * s - p
    end = np.minimum(start + k, size + p)
    n = end - start
    start, end = np.maximum(start, 0), np.minimum(end, size)
    return start, end, (n if count_include_pad else end - start)


def _adaptive_windows(size: int, out: int):
    """Adaptive pooling's windows along one axis: [floor(i*size/out), ceil((i+1)*size/out)), as PyTorch."""
    i = np.arange(out, dtype=np.intp)
    start = i * size // out
    end = ((i + 1) * size + out - 1) // out
    return start, end, end - start


def _avg_pool2d_windows(x: np.ndarray, rows, cols, out: np.ndarray | None = None) -> np.ndarray:
    """Window means of x over per-row and per-column windows (_avg_windows, _adaptive_windows); out as in
    _avg_pool2d."""
    if out is None:
        out = np.empty((*x.shape[:2], len(rows[0]), len(cols[0])), dtype=x.dtype)
    _pooling.avg_pool2d_forward_windows(x, out, *rows, *cols)
    return out


def _avg_pool2d_windows_backward(dout: np.ndarray, x_shape: tuple[int, int, int, int], rows, cols,
                                 dx: np.ndarray | None = None) -> np.ndarray:
    """Transpose of _avg_pool2d_windows; dx as in _avg_pool2d_backward."""
    if dx is None:
        dx = np.empty(x_shape, dtype=dout.dtype)
    _pooling.avg_pool2d_backward_windows(dout, dx, *rows, *cols)
    return dx
