"""Activation layers a = sigma(z). Backward is the deck's  delta = dC/da (.) sigma'(z), with sigma'(z)
computed from the cached output a (sigmoid: a(1-a), tanh: 1-a^2, relu: [a>0], elu: 1 or a+alpha) or, where
the output does not determine it, from the cached input (LeakyReLU, GELU, SiLU). Softmax and LogSoftmax act
along a dimension; Identity passes its input through.

Having no parameters, these layers take either float dtype, whatever their ``dtype`` (as PyTorch's do): the
output and the delta have the input's dtype.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from cnn_core._validation import check_bool, check_choice, check_real
from cnn_core.kernels import _special
from cnn_core.kernels.activations import _sigma, _sigma_backward
from cnn_core.nn.functional import _shifted_exp
from cnn_core.nn.module import Module, is_kept, no_parameters, register_module


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
        self._check_input(z, "z", None, "", any_float=True)
        a = _sigma(self._op, np.ascontiguousarray(z), self._handout("a", z.shape, z.dtype), alpha=self._alpha)
        self._a = a if self.training else None
        return a

    def backward(self, dy: np.ndarray) -> np.ndarray:
        a = self._need_cache(self._a)
        self._check_grad(dy, "dy", a.shape, a.dtype)
        return _sigma_backward(self._op, np.ascontiguousarray(dy), a, self._handout("dx", a.shape, a.dtype),
                               alpha=self._alpha)

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

    def _keep_output(self, a: np.ndarray) -> None:
        """Hold a = max(z, 0), computed by the layer before this one (nn.Sequential's fusion), as forward
        would."""
        self._a = a if self.training else None


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


class _Elementwise(Module):
    """An activation whose backward needs its input z (cached in train mode): subclasses give ``_f(z)`` and
    ``_df(z)``, sigma and sigma', on a C-contiguous float array."""

    parameter_shapes = classmethod(no_parameters)

    def __init__(self, dtype=None):
        super().__init__(dtype)
        self._z = None

    def forward(self, z: np.ndarray) -> np.ndarray:
        self._check_input(z, "z", None, "", any_float=True)
        zc = np.ascontiguousarray(z)
        # backward reads z as it is now: a private copy unless it is one already, or is_kept (see BatchNorm)
        self._z = (zc.copy() if np.may_share_memory(zc, z) and not is_kept(z) else zc) if self.training else None
        return self._f(zc)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        z = self._need_cache(self._z)
        self._check_grad(dy, "dy", z.shape, z.dtype)
        return dy * self._df(z)

    def _clear_cache(self) -> None:
        self._z = None

    def _f(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _df(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@register_module
class LeakyReLU(Module):
    """Leaky ReLU, elementwise: ``a = z`` for z > 0, ``negative_slope * z`` otherwise; backward multiplies by
    1 or ``negative_slope`` (kept as the mask z > 0, so that ``inplace`` needs no copy of z).

    Args:
        negative_slope: the slope for z <= 0 (default 0.01), any finite number.
        inplace: write the result into the input array (default False).
        dtype: float32 (default) or float64 (either input dtype is taken).

    Shape:
        - Input: ``(*)``, any shape
        - Output: ``(*)``, the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> act = nn.LeakyReLU(0.1)
        >>> act(np.array([-2.0, 3.0]))
        array([-0.2,  3. ])
        >>> act.backward(np.ones(2))
        array([0.1, 1. ])
    """

    parameter_shapes = classmethod(no_parameters)

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False, dtype=None):
        super().__init__(dtype)
        self.negative_slope = check_real(negative_slope, "negative_slope")
        self.inplace = check_bool(inplace, "inplace")
        self._positive = None

    def forward(self, z: np.ndarray) -> np.ndarray:
        self._check_input(z, "z", None, "", any_float=True)
        positive = z > 0
        self._positive = (positive, z.dtype) if self.training else None
        slope = z.dtype.type(self.negative_slope)
        if self.inplace:
            np.multiply(z, slope, out=z, where=~positive)
            return z
        return np.where(positive, z, z * slope)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        positive, dtype = self._need_cache(self._positive)
        self._check_grad(dy, "dy", positive.shape, dtype)
        return np.where(positive, dy, dy * dy.dtype.type(self.negative_slope))

    def _clear_cache(self) -> None:
        self._positive = None

    def get_config(self) -> dict:
        return {"negative_slope": self.negative_slope, "inplace": self.inplace, **super().get_config()}


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _erf(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    if x.size:
        _special.erf(x.reshape(-1), out.reshape(-1))
    return out


@register_module
class GELU(_Elementwise):
    """Gaussian error linear unit, elementwise: ``a = z Phi(z)``, Phi the standard normal CDF
    ``(1 + erf(z / sqrt 2)) / 2``; backward multiplies by ``Phi(z) + z phi(z)``, phi the normal density.
    ``approximate='tanh'``: ``a = z (1 + tanh(u)) / 2`` with ``u = sqrt(2/pi) (z + 0.044715 z^3)``, whose
    derivative is ``(1 + t) / 2 + z (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 z^2) / 2``, t = tanh(u).

    Args:
        approximate: ``'none'`` (default, the exact erf form) or ``'tanh'``.
        dtype: float32 (default) or float64 (either input dtype is taken).

    Shape:
        - Input: ``(*)``, any shape
        - Output: ``(*)``, the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> nn.GELU()(np.array([-1.0, 0.0, 1.0])).round(4)
        array([-0.1587,  0.    ,  0.8413])
    """

    def __init__(self, approximate: str = "none", dtype=None):
        super().__init__(dtype)
        self.approximate = check_choice(approximate, "approximate", ("none", "tanh"))

    def _tanh_u(self, z):
        return np.tanh(z.dtype.type(_SQRT_2_OVER_PI) * (z + z.dtype.type(0.044715) * z * z * z))

    def _f(self, z):
        if self.approximate == "tanh":
            return z.dtype.type(0.5) * z * (1 + self._tanh_u(z))
        return z.dtype.type(0.5) * z * (1 + _erf(z * z.dtype.type(1 / math.sqrt(2.0))))

    def _df(self, z):
        half = z.dtype.type(0.5)
        if self.approximate == "tanh":
            t = self._tanh_u(z)
            du = z.dtype.type(_SQRT_2_OVER_PI) * (1 + z.dtype.type(3 * 0.044715) * z * z)
            return half * (1 + t) + half * z * (1 - t * t) * du
        cdf = half * (1 + _erf(z * z.dtype.type(1 / math.sqrt(2.0))))
        pdf = np.exp(-half * z * z) * z.dtype.type(1 / math.sqrt(2 * math.pi))
        return cdf + z * pdf

    def get_config(self) -> dict:
        return {"approximate": self.approximate, **super().get_config()}


@register_module
class SiLU(_Elementwise):
    """Sigmoid linear unit (swish), elementwise: ``a = z sigmoid(z)``; backward multiplies by
    ``s (1 + z (1 - s))``, s = sigmoid(z) (computed by the stable compiled sigmoid).

    Args:
        dtype: float32 (default) or float64 (either input dtype is taken).

    Shape:
        - Input: ``(*)``, any shape
        - Output: ``(*)``, the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> nn.SiLU()(np.array([0.0, 1.0])).round(4)
        array([0.    , 0.7311])
    """

    def _f(self, z):
        return z * _sigma("sigmoid", z)

    def _df(self, z):
        s = _sigma("sigmoid", z)
        return s * (1 + z * (1 - s))


@register_module
class Identity(Module):
    """Passes its input through unchanged (forward and backward): a placeholder, e.g. a Residual's explicit
    shortcut or a removed layer. Any array is accepted, integer ones included.

    Args:
        dtype: float32 (default) or float64, nominal (the input passes through whatever its dtype).

    Shape:
        - Input: ``(*)``
        - Output: ``(*)``, the input itself

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> nn.Identity()(np.arange(3))
        array([0, 1, 2])
    """

    parameter_shapes = classmethod(no_parameters)

    def __init__(self, dtype=None):
        super().__init__(dtype)
        self._shape = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"Identity: x: expected a numpy.ndarray, got {type(x).__name__}")
        self._shape = (x.shape, x.dtype) if self.training else None
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        shape, dtype = self._need_cache(self._shape)
        self._check_grad(dy, "dy", shape, dy.dtype if dtype.kind != "f" else dtype)
        return dy

    def _clear_cache(self) -> None:
        self._shape = None


def _softmax_dim(dim, ndim: int, cls: str) -> int:
    """`dim` normalized for an input of `ndim` dimensions; None picks PyTorch's legacy implicit choice
    (0 for 0-, 1- and 3-D inputs, else 1)."""
    if dim is None:
        return 0 if ndim in (0, 1, 3) else 1
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{cls}: dim: expected an int in [{-ndim}, {ndim}) for an input of {ndim} dimensions, "
                         f"got {dim}")
    return dim % max(ndim, 1)


class _SoftmaxBase(Module):
    """Softmax and LogSoftmax along `dim`: forward keeps its output (train mode), from which backward works."""

    parameter_shapes = classmethod(no_parameters)

    def __init__(self, dim: int | None = None, dtype=None):
        super().__init__(dtype)
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, numbers.Integral)):
            raise TypeError(f"dim: expected an int or None, got {dim!r} ({type(dim).__name__})")
        self.dim = None if dim is None else int(dim)
        self._cache = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, "x", None, "", any_float=True)
        if x.ndim == 0:
            raise ValueError(f"{type(self).__name__}: x: expected an array of at least 1 dimension, got a 0-d one")
        d = _softmax_dim(self.dim, x.ndim, type(self).__name__)
        if x.shape[d] == 0:
            raise ValueError(f"{type(self).__name__}: x: expected at least one element along dim {d}, "
                             f"got shape {x.shape}")
        a = self._f(x, d)
        self._cache = (a, d) if self.training else None
        return a

    def backward(self, dy: np.ndarray) -> np.ndarray:
        a, d = self._need_cache(self._cache)
        self._check_grad(dy, "dy", a.shape, a.dtype)
        return self._df(a, dy, d)

    def _clear_cache(self) -> None:
        self._cache = None

    def get_config(self) -> dict:
        return {"dim": self.dim, **super().get_config()}


@register_module
class Softmax(_SoftmaxBase):
    """Softmax along `dim`: ``s_i = e^(x_i - m) / sum_j e^(x_j - m)``, m the maximum (stable, see
    ``nn.functional.softmax``); backward: ``dx = s (.) (dy - sum_j dy_j s_j)``.

    Args:
        dim: the dimension the slices that sum to 1 run along (negative counts from the end); None picks
            PyTorch's legacy default (0 for 0-, 1- and 3-D inputs, else 1).
        dtype: float32 (default) or float64 (either input dtype is taken).

    Shape:
        - Input: ``(*)``
        - Output: ``(*)``, the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> nn.Softmax(dim=1)(np.array([[0.0, np.log(3.0)]]))
        array([[0.25, 0.75]])
    """

    def _f(self, x, d):
        _, e, total = _shifted_exp(x, d)
        return e / total

    def _df(self, s, dy, d):
        return s * (dy - (dy * s).sum(axis=d, keepdims=True))


@register_module
class LogSoftmax(_SoftmaxBase):
    """Log-softmax along `dim`: ``(x_i - m) - log sum_j e^(x_j - m)`` (finite where softmax underflows);
    backward: ``dx = dy - softmax(x) sum_j dy_j``.

    Args:
        dim: as Softmax's.
        dtype: float32 (default) or float64 (either input dtype is taken).

    Shape:
        - Input: ``(*)``
        - Output: ``(*)``, the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> nn.LogSoftmax(dim=1)(np.array([[0.0, -800.0]]))
        array([[   0., -800.]])
    """

    def _f(self, x, d):
        shifted, _, total = _shifted_exp(x, d)
        return shifted - np.log(total)

    def _df(self, a, dy, d):
        return dy - np.exp(a) * dy.sum(axis=d, keepdims=True)
