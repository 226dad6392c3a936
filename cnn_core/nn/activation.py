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
    """Logistic sigmoid, elementwise: ``a = 1 / (1 + e^-z)``; backward multiplies by ``sigma'(z) = a (1 - a)``.

    Args:
        dtype: float32 (default) or float64, the accepted input.

    Shape:
        - Input: ``(*)``, any shape
        - Output: ``(*)``, the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> act = nn.Sigmoid()
        >>> act(np.array([-100.0, 0.0, 100.0], np.float32))
        array([0. , 0.5, 1. ], dtype=float32)
        >>> act.backward(np.ones(3, np.float32))
        array([0.  , 0.25, 0.  ], dtype=float32)
    """

    _op = "sigmoid"


@register_module
class Tanh(_Activation):
    """Hyperbolic tangent, elementwise: ``a = tanh(z) = 2 sigmoid(2z) - 1``; backward multiplies by
    ``sigma'(z) = 1 - a^2``.

    Args:
        dtype: float32 (default) or float64, the accepted input.

    Shape:
        - Input: ``(*)``, any shape
        - Output: ``(*)``, the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> act = nn.Tanh()
        >>> act(np.array([-100.0, 100.0], np.float32))
        array([-1.,  1.], dtype=float32)
        >>> act.backward(np.ones(2, np.float32))
        array([0., 0.], dtype=float32)
    """

    _op = "tanh"


@register_module
class ReLU(_Activation):
    """Rectified linear unit, elementwise: ``a = max(z, 0)``; backward multiplies by ``sigma'(z) = [a > 0]``.

    Args:
        dtype: float32 (default) or float64, the accepted input.

    Shape:
        - Input: ``(*)``, any shape
        - Output: ``(*)``, the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> act = nn.ReLU()
        >>> act(np.array([[-1.0, 0.0, 2.0]], np.float32))
        array([[0., 0., 2.]], dtype=float32)
        >>> act.backward(np.array([[5.0, 5.0, 5.0]], np.float32))
        array([[0., 0., 5.]], dtype=float32)
    """

    _op = "relu"


@register_module
class ELU(_Activation):
    """Exponential linear unit, elementwise: ``a = z`` for z > 0, ``alpha (e^z - 1)`` otherwise; backward
    multiplies by ``sigma'(z)``, 1 for z > 0 and ``a + alpha`` otherwise.

    Args:
        alpha: scale of the negative part, a positive number (default 1.0); a -> -alpha as z -> -inf.
        dtype: float32 (default) or float64, the accepted input.

    Shape:
        - Input: ``(*)``, any shape
        - Output: ``(*)``, the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> act = nn.ELU(alpha=2.0, dtype=np.float64)
        >>> act(np.array([-np.log(2.0), 0.0, 3.0]))         # 2 (1/2 - 1) = -1
        array([-1.,  0.,  3.])
        >>> act.backward(np.ones(3))
        array([1., 2., 1.])
    """

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
