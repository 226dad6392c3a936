"""Max and average pooling. Backward is the deck's upsample: the error of each pooled unit goes back to the
winner of its window (max, via the argmax mask) or is spread evenly over the window (average)."""
from __future__ import annotations

import numpy as np

from cnn_core._validation import as_pair, check_nonempty
from cnn_core.kernels.pooling import _avg_pool2d, _avg_pool2d_backward, _max_pool2d, _max_pool2d_backward
from cnn_core.nn.module import Module, no_parameters, register_module


class _Pool2d(Module):
    parameter_shapes = classmethod(no_parameters)

    def __init__(self, kernel_size, stride=None, dtype=None):
        super().__init__(dtype)
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride")
        self._cache = None

    def _check_x(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, "x", 4, "(N, C, H, W)")
        check_nonempty(x, f"{type(self).__name__}: x")
        kh, kw = self.kernel_size
        if x.shape[2] < kh or x.shape[3] < kw:
            raise ValueError(f"{type(self).__name__}: x: the {kh}x{kw} window does not fit the "
                             f"{x.shape[2]}x{x.shape[3]} input (shape {x.shape})")
        return np.ascontiguousarray(x)

    def _out_shape(self, x_shape) -> tuple[int, int, int, int]:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        return (x_shape[0], x_shape[1], (x_shape[2] - kh) // sh + 1, (x_shape[3] - kw) // sw + 1)

    def _clear_cache(self) -> None:
        self._cache = None

    def get_config(self) -> dict:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride), **super().get_config()}


@register_module
class MaxPool2d(_Pool2d):
    """Max pooling: each output is the maximum of its ``kernel_size`` window, per channel.

    ``a[n, c, u, v] = max_{i < KH, j < KW} x[n, c, u * SH + i, v * SW + j]``; a NaN in a window is its
    maximum. Backward routes each delta to the window's winner (the first one on ties).

    Output size, per spatial axis (no padding, no dilation, floor mode)::

        H_out = floor((H - kernel_size[0]) / stride[0]) + 1
        W_out = floor((W - kernel_size[1]) / stride[1]) + 1

    Args:
        kernel_size: KH x KW, an int (square) or a pair of ints.
        stride: step of the window, an int or a pair (default: kernel_size, non-overlapping windows).
        dtype: float32 (default) or float64, the accepted input.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C, H_out, W_out)``

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
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_x(x)
        a, argmax = _max_pool2d(x, self.kernel_size, self.stride, self._out_shape(x.shape)[2:])
        self._cache = (x.shape, argmax) if self.training else None
        return a

    def backward(self, delta: np.ndarray) -> np.ndarray:
        x_shape, argmax = self._need_cache(self._cache)
        self._check_grad(delta, "delta", argmax.shape)
        # upsample: delta goes to the position that won the max, zeros elsewhere.
        return _max_pool2d_backward(np.ascontiguousarray(delta), argmax, x_shape)


@register_module
class AvgPool2d(_Pool2d):
    """Average pooling: each output is the mean of its ``kernel_size`` window, per channel.

    ``a[n, c, u, v] = 1/(KH*KW) sum_{i < KH, j < KW} x[n, c, u * SH + i, v * SW + j]``. Backward spreads each
    delta evenly, ``delta / (KH*KW)``, over its window.

    Output size, per spatial axis (no padding, no dilation, floor mode)::

        H_out = floor((H - kernel_size[0]) / stride[0]) + 1
        W_out = floor((W - kernel_size[1]) / stride[1]) + 1

    Args:
        kernel_size: KH x KW, an int (square) or a pair of ints.
        stride: step of the window, an int or a pair (default: kernel_size, non-overlapping windows).
        dtype: float32 (default) or float64, the accepted input.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, C, H_out, W_out)``

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
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_x(x)
        self._cache = x.shape if self.training else None
        return _avg_pool2d(x, self.kernel_size, self.stride, self._out_shape(x.shape)[2:])

    def backward(self, delta: np.ndarray) -> np.ndarray:
        x_shape = self._need_cache(self._cache)
        self._check_grad(delta, "delta", self._out_shape(x_shape))
        # upsample: each delta is spread as delta / (KH*KW) over its window.
        return _avg_pool2d_backward(np.ascontiguousarray(delta), x_shape, self.kernel_size, self.stride)
