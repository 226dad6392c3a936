"""Flatten: (N, C, H, W) -> (N, C*H*W), the bridge from the convolutional part to the fully connected one."""
from __future__ import annotations

import numpy as np

from cnn_core.nn.module import Module, no_parameters, register_module


@register_module
class Flatten(Module):
    """Keeps the batch axis and flattens the rest (torch.nn.Flatten with start_dim=1); backward reshapes
    the delta back to the input's shape. Parameter-free, so it takes whichever float dtype it is given
    (float32 or float64), as PyTorch's does.

    Args:
        dtype: kept for old configs; any float input passes in its own dtype.

    Shape:
        - Input: ``(N, *)``, at least 2-D, float32 or float64
        - Output: ``(N, prod(*))``, the input's dtype

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> flat = nn.Flatten()
        >>> flat(np.zeros((8, 16, 5, 5), np.float32)).shape      # LeNet-5: conv features into Linear(400, 120)
        (8, 400)
        >>> flat.backward(np.zeros((8, 400), np.float32)).shape
        (8, 16, 5, 5)
    """

    parameter_shapes = classmethod(no_parameters)

    def __init__(self, dtype=None):
        super().__init__(dtype)
        self._x_shape = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, "x", None, "", any_float=True)
        if x.ndim < 2:
            raise ValueError(f"Flatten: x: expected at least 2 dimensions (batch, ...), got shape {x.shape}")
        self._x_shape = (x.shape, x.dtype) if self.training else None
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, dtype = self._need_cache(self._x_shape)
        self._check_grad(dy, "dy", (x_shape[0], int(np.prod(x_shape[1:]))), dtype)
        return dy.reshape(x_shape)

    def _clear_cache(self) -> None:
        self._x_shape = None
