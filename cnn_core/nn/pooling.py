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
    """a_{u,v} = max of its kernel_size window (stride defaults to kernel_size, no padding, floor mode)."""

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
    """a_{u,v} = mean of its kernel_size window (stride defaults to kernel_size, no padding, floor mode)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_x(x)
        self._cache = x.shape if self.training else None
        return _avg_pool2d(x, self.kernel_size, self.stride, self._out_shape(x.shape)[2:])

    def backward(self, delta: np.ndarray) -> np.ndarray:
        x_shape = self._need_cache(self._cache)
        self._check_grad(delta, "delta", self._out_shape(x_shape))
        # upsample: each delta is spread as delta / (KH*KW) over its window.
        return _avg_pool2d_backward(np.ascontiguousarray(delta), x_shape, self.kernel_size, self.stride)
