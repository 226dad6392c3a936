"""Stateless functions on arrays (PyTorch's ``torch.nn.functional`` names): softmax and log_softmax.

Both shift by the maximum along ``dim`` before exponentiating, so that no exponent is positive:

    softmax(x)_i     = e^(x_i - m) / sum_j e^(x_j - m)          m = max_j x_j
    log_softmax(x)_i = (x_i - m) - log sum_j e^(x_j - m)

which equals the textbook e^(x_i) / sum_j e^(x_j) in exact arithmetic but never overflows (the largest term is
e^0 = 1, so the sum lies in [1, n]) and keeps log_softmax finite where softmax underflows to 0.
The result has the dtype of x (float32 or float64) and its shape.
"""
from __future__ import annotations

import numbers

import numpy as np

from cnn_core._validation import as_float_array, check_finite

__all__ = ["softmax", "log_softmax"]


def _check(x, dim, fn: str) -> tuple[np.ndarray, int]:
    x = as_float_array(x, f"{fn}: x", contiguous=False)
    if x.ndim == 0:
        raise ValueError(f"{fn}: x: expected an array of at least 1 dimension, got a 0-d array")
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{fn}: dim: expected an int, got {dim!r} ({type(dim).__name__})")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"{fn}: dim: expected an int in [{-x.ndim}, {x.ndim}) for x of shape {x.shape}, got {dim}")
    if x.shape[dim] == 0:
        raise ValueError(f"{fn}: x: expected at least one element along dim {dim}, got shape {x.shape}")
    check_finite(x, f"{fn}: x")
    return x, int(dim)


def _shifted_exp(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x - m, e^(x - m), sum of e^(x - m)) along dim, the sum with dim kept; x already checked.

    The pieces both functions (and CrossEntropyLoss, which needs the loss and the softmax at once) are built
    from, so that the shift and the exponentials are computed once.
    """
    shifted = x - x.max(axis=dim, keepdims=True)
    e = np.exp(shifted)
    return shifted, e, e.sum(axis=dim, keepdims=True)


def softmax(x: np.ndarray, dim: int = -1) -> np.ndarray:
    """e^(x_i - m) / sum_j e^(x_j - m) along `dim` (each slice sums to 1).

    x: float32 or float64 array of any shape with at least one element along `dim`, finite values.
    Returns a new array of x's shape and dtype.

    >>> import numpy as np
    >>> from cnn_core.nn.functional import softmax
    >>> softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 1000.0]])).round(4)
    array([[0.09  , 0.2447, 0.6652],
           [0.3333, 0.3333, 0.3333]])
    """
    x, dim = _check(x, dim, "softmax")
    _, e, total = _shifted_exp(x, dim)
    return e / total


def log_softmax(x: np.ndarray, dim: int = -1) -> np.ndarray:
    """(x_i - m) - log sum_j e^(x_j - m) along `dim`: log of softmax, finite even where softmax underflows.

    x: float32 or float64 array of any shape with at least one element along `dim`, finite values.
    Returns a new array of x's shape and dtype.

    >>> import numpy as np
    >>> from cnn_core.nn.functional import log_softmax
    >>> log_softmax(np.array([0.0, -800.0]))
    array([   0., -800.])
    """
    x, dim = _check(x, dim, "log_softmax")
    shifted, _, total = _shifted_exp(x, dim)
    return shifted - np.log(total)
