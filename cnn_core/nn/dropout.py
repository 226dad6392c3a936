"""Dropout layers (inverted dropout): in training each element (Dropout) or each whole channel (Dropout2d) is
zeroed with probability p and the survivors are scaled by 1/(1-p), so that the expected output equals the
input and eval mode is the identity. Masks come from the library's generator (``cnn_core.manual_seed``)
unless the layer is given its own ``rng``.
"""
from __future__ import annotations

import numpy as np

from cnn_core._random import get_rng
from cnn_core._validation import as_real, check_bool, check_seed
from cnn_core.nn.module import Module, no_parameters, register_module


class _Dropout(Module):
    parameter_shapes = classmethod(no_parameters)
    _min_ndim = 0

    def __init__(self, p: float = 0.5, inplace: bool = False, dtype=None, rng=None):
        super().__init__(dtype)
        self.inplace = check_bool(inplace, "inplace")
        p = as_real(p, "p")
        if not 0.0 <= p < 1.0:  # NaN fails too
            raise ValueError(f"p: expected a dropout probability in [0, 1), got {p}")
        self.p = p
        self._rng = check_seed(rng, "rng")
        self._mask = None

    def _mask_shape(self, x: np.ndarray) -> tuple[int, ...]:
        return x.shape

    def _draw_mask(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The scaled keep-mask: 1/(1-p) where an element is kept (probability 1 - p), 0 where dropped."""
        rng = get_rng(self._rng)
        if isinstance(self._rng, int):  # a seed: one generator for the layer's life, not one per call
            rng = self._rng = np.random.default_rng(self._rng)
        keep = rng.random(shape, dtype=np.float64 if dtype == np.float64 else np.float32) >= self.p
        return keep.astype(dtype) * dtype.type(1.0 / (1.0 - self.p))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, "x", None, "", any_float=True)
        if x.ndim < self._min_ndim:
            raise ValueError(f"{type(self).__name__}: x: expected an (N, C, H, W) array, got shape {x.shape}")
        if not self.training or self.p == 0.0:
            self._mask = (None, x.shape, x.dtype) if self.training else None
            return x
        mask = self._draw_mask(self._mask_shape(x), x.dtype)
        self._mask = (mask, x.shape, x.dtype)
        if self.inplace:
            x *= mask
            return x
        return x * mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        mask, shape, dtype = self._need_cache(self._mask)
        self._check_grad(dy, "dy", shape, dtype)
        return dy if mask is None else dy * mask

    def _clear_cache(self) -> None:
        self._mask = None

    def get_config(self) -> dict:
        return {"p": self.p, "inplace": self.inplace, **super().get_config()}


@register_module
class Dropout(_Dropout):
    """Inverted dropout, elementwise: in training ``y = x * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` per
    element; backward multiplies by the same mask. In eval mode the identity.

    Args:
        p: probability of zeroing an element, in [0, 1) (default 0.5).
        inplace: write the result into the input array (default False).
        dtype: float32 (default) or float64 (either input dtype is taken).
        rng: seed or ``numpy.random.Generator`` for the masks (default: the library's global generator, see
            ``cnn_core.manual_seed``).

    Shape:
        - Input: ``(*)``, any shape
        - Output: ``(*)``, the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> drop = nn.Dropout(0.5, rng=0)
        >>> y = drop(np.ones((2, 4), np.float32))
        >>> set(y.ravel().tolist()) <= {0.0, 2.0}           # dropped, or kept and scaled by 1/(1-p)
        True
        >>> bool((drop.eval()(np.ones(3, np.float32)) == 1).all())
        True
    """


@register_module
class Dropout2d(_Dropout):
    """Channel dropout: in training each channel (n, c) of an (N, C, H, W) input is zeroed as a whole with
    probability p, the others scaled by 1/(1 - p) (adjacent pixels are correlated, so element dropout would
    hardly regularize a conv layer). In eval mode the identity.

    Args:
        p: probability of zeroing a channel, in [0, 1) (default 0.5).
        inplace: write the result into the input array (default False).
        dtype: float32 (default) or float64 (either input dtype is taken).
        rng: seed or ``numpy.random.Generator`` for the masks (default: the library's global generator).

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> y = nn.Dropout2d(0.5, rng=0)(np.ones((4, 8, 3, 3), np.float32))
        >>> bool(all(len(set(y[n, c].ravel().tolist())) == 1 for n in range(4) for c in range(8)))
        True
    """

    _min_ndim = 4

    def _mask_shape(self, x: np.ndarray) -> tuple[int, ...]:
        return x.shape[:2] + (1,) * (x.ndim - 2)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if isinstance(x, np.ndarray) and x.ndim != 4:
            raise ValueError(f"Dropout2d: x: expected an (N, C, H, W) array, got shape {x.shape}")
        return super().forward(x)
