"""The perceptron's learning pass, compiled: the sequential algorithm cannot be vectorized by NumPy."""
from __future__ import annotations

import numpy as np

from cnn_core._validation import as_float_array, as_index_array, check_finite, check_real
from cnn_core.kernels import _perceptron

__all__ = ["perceptron_epoch"]

_NO_ORDER = np.zeros(0, dtype=np.int64)


def _check_labels(y, n: int) -> np.ndarray:
    if not isinstance(y, np.ndarray):
        raise TypeError(f"y: expected a numpy.ndarray, got {type(y).__name__}")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise TypeError(f"y: expected an integer or float dtype, got {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"y: expected shape ({n},) (one label per row of X), got {y.shape}")
    bad = (y != 1) & (y != -1)
    if bad.any():
        raise ValueError(f"y: expected labels -1 or +1 only, got {np.unique(y[bad])[:5].tolist()}")
    return np.where(y > 0, 1, -1).astype(np.int8)


def perceptron_epoch(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, eta: float = 1.0,
                     order: np.ndarray | None = None) -> tuple[float, int]:
    """One epoch of the primal perceptron; returns (b_new, n_updates) and updates `w` in place.

    For i in `order` (default 0..n-1): if y[i] * (w . X[i] + b) <= 0 then w += eta*y[i]*X[i] and
    b += eta*y[i], each check using w and b as updated so far. X (n, d) float32/float64 without NaN,
    y (n,) labels -1/+1 of any numeric dtype, w (d,) of X's dtype, C-contiguous and writable,
    order (m,) integer indices in 0..n-1 (repeats allowed). w and b are kept in X's precision; the
    dot product is accumulated in float64.
    """
    X = as_float_array(X, "X", ndim=2)
    n, d = X.shape
    if d == 0:
        raise ValueError(f"X: expected at least one feature column, got shape {X.shape}")
    y = _check_labels(y, n)
    if not isinstance(w, np.ndarray):
        raise TypeError(f"w: expected a numpy.ndarray, got {type(w).__name__}")
    if w.dtype != X.dtype:
        raise TypeError(f"w: expected dtype {X.dtype} (X's), got {w.dtype}")
    if w.shape != (d,):
        raise ValueError(f"w: expected shape ({d},) (X has {d} features), got {w.shape}")
    if not w.flags.c_contiguous or not w.flags.writeable:
        raise ValueError("w: expected a C-contiguous writable array (it is updated in place), "
                         "got a non-contiguous or read-only one")
    b = check_real(b, "b")
    eta = check_real(eta, "eta", 0.0, low_open=True)
    check_finite(X, "X")
    check_finite(w, "w")
    if order is None:
        return _perceptron.epoch(X, y, w, b, eta, _NO_ORDER, False)
    order = as_index_array(order, "order", ndim=1)
    if order.size and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"order: expected indices in 0..{n - 1}, got values in "
                         f"{order.min()}..{order.max()}")
    return _perceptron.epoch(X, y, w, b, eta, order, True)
