"""Activation layers a = sigma(z). Backward is the deck's  delta = dC/da (.) sigma'(z), with sigma'(z)
computed from the cached output a (sigmoid: a(1-a), tanh: 1-a^2, relu: [a>0], elu: 1 or a+alpha)."""
from __future__ import annotations

import numpy as np

from cnn_core._validation import check_real
from cnn_core.kernels.activations import _sigma, _sigma_backward
from cnn_core.nn.module import Module, no_parameters, register_module


class _Activation(Module):
    """Elementwise sigma: any shape; caches its output a in train mode. Subclasses name their kernel in
    `_op` (a key of cnn_core.kernels._activations.OPS) and keep ELU's alpha in `_alpha`."""

    parameter_shapes = classmethod(no_parameters)
    _op = ""
    _alpha = 1.0

    def __init__(self, dtype=None):
        super().__init__(dtype)
        self._a = None

    def forward(self, z: np.ndarray) -> np.ndarray:
        self._check_input(z, "z", None, "")
        a = _sigma(self._op, np.ascontiguousarray(z), alpha=self._alpha)
        self._a = a if self.training else None
        return a

    def backward(self, dy: np.ndarray) -> np.ndarray:
        a = self._need_cache(self._a)
        self._check_grad(dy, "dy", a.shape)
        return _sigma_backward(self._op, np.ascontiguousarray(dy), a, alpha=self._alpha)

    def _clear_cache(self) -> None:
        self._a = None


@register_module
class Sigmoid(_Activation):
    """a = 1 / (1 + e^-z)."""

    _op = "sigmoid"


@register_module
class Tanh(_Activation):
    """a = tanh(z) = 2 sigmoid(2z) - 1."""

    _op = "tanh"


@register_module
class ReLU(_Activation):
    """a = max(z, 0)."""

    _op = "relu"


@register_module
class ELU(_Activation):
    """a = z for z > 0, alpha (e^z - 1) otherwise."""

    _op = "elu"

    def __init__(self, alpha: float = 1.0, dtype=None):
        super().__init__(dtype)
        # sigma'(z) is recovered from a, which needs sign(a) = sign(z): true only for alpha > 0.
        self._alpha = check_real(alpha, "alpha", 0.0, low_open=True)

    @property
    def alpha(self) -> float:
        return self._alpha

    def get_config(self) -> dict:
        return {"alpha": self.alpha, **super().get_config()}
