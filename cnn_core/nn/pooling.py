"""Max, average and adaptive average pooling. Backward is the deck's upsample: the error of each pooled unit
goes back to the winner of its window (max, via the argmax mask) or is spread evenly over the window
(average).

Parameter-free, so each layer pools whichever float dtype it is given (float32 or float64, as PyTorch's
do); the ``dtype`` argument is kept for configs written before that and means nothing else.
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import as_pair, check_nonempty
from cnn_core.kernels.pooling import (_adaptive_windows, _avg_pool2d, _avg_pool2d_backward, _avg_pool2d_windows,
                                      _avg_pool2d_windows_backward, _avg_windows, _fits, _max_pool2d_backward,
                                      _max_pool2d_padded, pool_output_size)
from cnn_core.nn.module import Module, no_parameters, register_module


def _check_bool(v, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {v!r}")
    return bool(v)


class _Pool2d(Module):
    parameter_shapes = classmethod(no_parameters)

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode, dtype):
        super().__init__(dtype)
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride")
        self.padding = as_pair(padding, "padding", minimum=0)
        self.dilation = as_pair(dilation, "dilation")
        self.ceil_mode = _check_bool(ceil_mode, "ceil_mode")
        # PyTorch's rule: padding at most half the (dilated) window, so every window holds an input element
        for k, d, p in zip(self.kernel_size, self.dilation, self.padding):
            if p > (d * (k - 1) + 1) // 2:
                raise ValueError(f"padding: expected at most half the window ({self._span_name()} "
                                 f"{d * (k - 1) + 1} // 2), got {padding!r}")
        self._cache = None

    def _span_name(self) -> str:
        return "kernel_size" if self.dilation == (1, 1) else "dilation * (kernel_size - 1) + 1"

    def _check_x(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """x validated and C-contiguous, with the output's (H_out, W_out)."""
        self._check_input(x, "x", 4, "(N, C, H, W)", any_float=True)
        check_nonempty(x, f"{type(self).__name__}: x")
        return np.ascontiguousarray(x), self._out_hw(x.shape, f"{type(self).__name__}: x")

    def _out_hw(self, x_shape, what: str = "x") -> tuple[int, int]:
        try:
            return tuple(pool_output_size(x_shape[2 + a], self.kernel_size[a], self.stride[a], self.padding[a],
                                          self.dilation[a], self.ceil_mode, ("height", "width")[a])
                         for a in (0, 1))
        except ValueError as e:
            raise ValueError(f"{what}: {e} (shape {tuple(x_shape)})") from None

    def _clear_cache(self) -> None:
        self._cache = None

    def get_config(self) -> dict:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding),
                "ceil_mode": self.ceil_mode, **super().get_config()}


@register_module
class MaxPool2d(_Pool2d):
    """Max pooling: each output is the maximum of its ``kernel_size`` window, per channel.

    ``a[n, c, u, v] = max_{i < KH, j < KW} x[n, c, u*SH - PH + i*DH, v*SW - PW + j*DW]`` over the taps
    inside the input (padding is never the maximum, as PyTorch's implicit -inf padding); a NaN in a window
    is its maximum. Backward routes each delta to the window's winner (the first one on ties).

    Output size, per spatial axis (PyTorch's formula)::

        H_out = floor((H + 2*padding[0] - dilation[0]*(kernel_size[0] - 1) - 1) / stride[0]) + 1
        W_out = floor((W + 2*padding[1] - dilation[1]*(kernel_size[1] - 1) - 1) / stride[1]) + 1

    with ceil for floor in ceil_mode, where a last window that would start in the right padding is dropped.

    Args:
        kernel_size: KH x KW, an int (square) or a pair of ints.
        stride: step of the window, an int or a pair (default: kernel_size, non-overlapping windows).
        padding: implicit padding on both sides, at most half the dilated window (default 0).
        dilation: spacing of the window's taps (default 1).
        return_indices: only False (the layer keeps the indices for backward; cnn_core.kernels'
            max_pool2d_forward returns them); here for PyTorch's positional order.
        ceil_mode: round the output size up, so windows may overhang the bottom/right edge (default False).
        dtype: kept for old configs; any float input is pooled in its own dtype.

    Shape:
        - Input: ``(N, C, H, W)``, float32 or float64
        - Output: ``(N, C, H_out, W_out)``, the input's dtype

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
        >>> pool = nn.MaxPool2d(2)
        >>> pool(x)
        array([[[[ 5.,  7.],
                 [13., 15.]]]], dtype=float32)
        >>> pool.backward(np.ones((1, 1, 2, 2), np.float32))[0, 0]    # the deck's upsample
        array([[0., 0., 0., 0.],
               [0., 1., 0., 1.],
               [0., 0., 0., 0.],
               [0., 1., 0., 1.]], dtype=float32)
        >>> nn.MaxPool2d(3, stride=2)(np.zeros((8, 6, 28, 28), np.float32)).shape   # floor(25 / 2) + 1
        (8, 6, 13, 13)
        >>> nn.MaxPool2d(3, 2, 1, ceil_mode=True)(np.zeros((1, 1, 8, 8))).shape     # float64 too
        (1, 1, 5, 5)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False,
                 dtype=None):
        if _check_bool(return_indices, "return_indices"):
            raise ValueError("return_indices: expected False (a layer in a network returns one array; "
                             "cnn_core.kernels.max_pool2d_forward returns the indices)")
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x, out_hw = self._check_x(x)
        shape = (*x.shape[:2], *out_hw)
        a, argmax = _max_pool2d_padded(x, self.kernel_size, self.stride, self.padding, self.dilation, out_hw,
                                       self._handout("a", shape, x.dtype), self._handout("argmax", shape, np.int64))
        self._cache = (x.shape, x.dtype, argmax) if self.training else None
        return a

    def backward(self, delta: np.ndarray) -> np.ndarray:
        x_shape, dtype, argmax = self._need_cache(self._cache)
        self._check_grad(delta, "delta", argmax.shape, dtype)
        # upsample: delta goes to the position that won the max, zeros elsewhere.
        return _max_pool2d_backward(np.ascontiguousarray(delta), argmax, x_shape, empty_windows=True,
                                    dx=self._handout("dx", x_shape, dtype))

    def get_config(self) -> dict:
        return {**super().get_config(), "dilation": list(self.dilation)}
@register_module
class AvgPool2d(_Pool2d):
    """Average pooling: each output is the mean of its ``kernel_size`` window, per channel.

    ``a[n, c, u, v] = 1/D sum_{i < KH, j < KW} x[n, c, u*SH - PH + i, v*SW - PW + j]`` over the taps inside
    the input (padding adds zeros). The divisor D is KH*KW for a window inside the input; at the border it is
    the window's size clipped to the padded input when count_include_pad (PyTorch's default), else the number
    of input taps. Backward spreads each delta evenly, ``delta / D``, over its window.

    Output size, per spatial axis (PyTorch's formula)::

        H_out = floor((H + 2*padding[0] - kernel_size[0]) / stride[0]) + 1
        W_out = floor((W + 2*padding[1] - kernel_size[1]) / stride[1]) + 1

    with ceil for floor in ceil_mode, where a last window that would start in the right padding is dropped.

    Args:
        kernel_size: KH x KW, an int (square) or a pair of ints.
        stride: step of the window, an int or a pair (default: kernel_size, non-overlapping windows).
        padding: implicit zero padding on both sides, at most half the window (default 0).
        ceil_mode: round the output size up, so windows may overhang the bottom/right edge (default False).
        count_include_pad: count the padding in the divisor (default True).
        dtype: kept for old configs; any float input is pooled in its own dtype.

    Shape:
        - Input: ``(N, C, H, W)``, float32 or float64
        - Output: ``(N, C, H_out, W_out)``, the input's dtype

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
        >>> pool = nn.AvgPool2d(2)
        >>> pool(x)
        array([[[[ 2.5,  4.5],
                 [10.5, 12.5]]]], dtype=float32)
        >>> pool.backward(np.ones((1, 1, 2, 2), np.float32))[0, 0, :2, :2]
        array([[0.25, 0.25],
               [0.25, 0.25]], dtype=float32)
        >>> nn.AvgPool2d(2, 2, 1, count_include_pad=False)(np.ones((1, 1, 2, 2)))[0, 0]   # no pad in the mean
        array([[1., 1.],
               [1., 1.]])
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, dtype=None):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode, dtype)
        self.count_include_pad = _check_bool(count_include_pad, "count_include_pad")

    def _windows(self, x_shape, out_hw):
        """None when every window lies inside the input (the fast loops), else the per-axis windows."""
        h, w = x_shape[2:]
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if _fits(h, kh, sh, ph, 1, out_hw[0]) and _fits(w, kw, sw, pw, 1, out_hw[1]):
            return None
        return (_avg_windows(h, kh, sh, ph, out_hw[0], self.count_include_pad),
                _avg_windows(w, kw, sw, pw, out_hw[1], self.count_include_pad))

    def forward(self, x: np.ndarray) -> np.ndarray:
        x, out_hw = self._check_x(x)
        windows = self._windows(x.shape, out_hw)
        self._cache = (x.shape, x.dtype, out_hw, windows) if self.training else None
        a = self._handout("a", (*x.shape[:2], *out_hw), x.dtype)
        if windows is None:
            return _avg_pool2d(x, self.kernel_size, self.stride, out_hw, a)
        return _avg_pool2d_windows(x, *windows, a)

    def backward(self, delta: np.ndarray) -> np.ndarray:
        x_shape, dtype, out_hw, windows = self._need_cache(self._cache)
        self._check_grad(delta, "delta", (*x_shape[:2], *out_hw), dtype)
        delta = np.ascontiguousarray(delta)
        # upsample: each delta is spread as delta / D over its window.
        dx = self._handout("dx", x_shape, dtype)
        if windows is None:
            return _avg_pool2d_backward(delta, x_shape, self.kernel_size, self.stride, dx)
        return _avg_pool2d_windows_backward(delta, x_shape, *windows, dx)

    def get_config(self) -> dict:
        return {**super().get_config(), "count_include_pad": self.count_include_pad}


@register_module
class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size, whatever the input's: global average pooling with
    ``output_size=1``.

    Output row u averages input rows ``floor(u*H/H_out) .. ceil((u+1)*H/H_out) - 1`` (columns likewise), as
    PyTorch; the windows tile the input exactly when H_out divides H. Backward spreads each delta evenly
    over its window.

    Args:
        output_size: H_out x W_out, an int (square) or a pair; None in the pair keeps that input size.
        dtype: kept for symmetry with the other layers; any float input is pooled in its own dtype.

    Shape:
        - Input: ``(N, C, H, W)``, float32 or float64
        - Output: ``(N, C, H_out, W_out)``, the input's dtype

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> gap = nn.AdaptiveAvgPool2d(1)
        >>> gap(np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2))[:, :, 0, 0]
        array([[1.5, 5.5]], dtype=float32)
        >>> nn.AdaptiveAvgPool2d((2, None))(np.zeros((1, 3, 5, 7))).shape
        (1, 3, 2, 7)
    """

    parameter_shapes = classmethod(no_parameters)

    def __init__(self, output_size, dtype=None):
        super().__init__(dtype)
        if isinstance(output_size, (tuple, list)) and len(output_size) == 2 and None in output_size:
            self.output_size = tuple(None if v is None else as_pair(v, "output_size")[0] for v in output_size)
        else:
            self.output_size = as_pair(output_size, "output_size")
        self._cache = None

    def _out_hw(self, x_shape) -> tuple[int, int]:
        return tuple(x_shape[2 + a] if self.output_size[a] is None else self.output_size[a] for a in (0, 1))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, "x", 4, "(N, C, H, W)", any_float=True)
        check_nonempty(x, "AdaptiveAvgPool2d: x")
        x = np.ascontiguousarray(x)
        oh, ow = self._out_hw(x.shape)
        windows = (_adaptive_windows(x.shape[2], oh), _adaptive_windows(x.shape[3], ow))
        self._cache = (x.shape, x.dtype, windows) if self.training else None
        return _avg_pool2d_windows(x, *windows, self._handout("a", (*x.shape[:2], oh, ow), x.dtype))

    def backward(self, delta: np.ndarray) -> np.ndarray:
        x_shape, dtype, windows = self._need_cache(self._cache)
        self._check_grad(delta, "delta", (*x_shape[:2], *self._out_hw(x_shape)), dtype)
        return _avg_pool2d_windows_backward(np.ascontiguousarray(delta), x_shape, *windows,
                                            self._handout("dx", x_shape, dtype))

    def _clear_cache(self) -> None:
        self._cache = None

    def get_config(self) -> dict:
        return {"output_size": list(self.output_size), **super().get_config()}
