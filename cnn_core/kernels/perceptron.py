"""The perceptron's learning passes, compiled: the sequential algorithms cannot be vectorized by NumPy."""
from __future__ import annotations

import numpy as np

from cnn_core._validation import (as_float_array, as_index_array, check_choice, check_finite, check_output,
                                  check_real)
from cnn_core.kernels import _perceptron

__all__ = ["perceptron_epoch", "perceptron_ovr_epoch", "perceptron_greedy_epoch", "new_pocket"]

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
    _check_weights(w, "w", (d,), X.dtype)
    b = check_real(b, "b")
    eta = check_real(eta, "eta", 0.0, low_open=True)
    check_finite(X, "X")
    if order is None:
        return _perceptron.epoch(X, y, w, b, eta, _NO_ORDER, False)
    order = as_index_array(order, "order", ndim=1)
    if order.size and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"order: expected indices in 0..{n - 1}, got values in "
                         f"{order.min()}..{order.max()}")
    return _perceptron.epoch(X, y, w, b, eta, order, True)


def _check_weights(a, name: str, shape: tuple, dtype) -> np.ndarray:
    # weights updated in place: the caller's buffer, so it must be one the kernel can write as it is
    check_output(a, name, shape, dtype, "X's", optional=False)
    check_finite(a, name)
    return a


def _check_order(order, n: int):
    if order is None:
        return _NO_ORDER, False
    order = as_index_array(order, "order", ndim=1)
    if order.size and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"order: expected indices in 0..{n - 1}, got values in {order.min()}..{order.max()}")
    return order, True


def new_pocket(n_problems: int, n_features: int, n_samples: int, dtype=np.float64) -> tuple:
    """The pocket state perceptron_ovr_epoch keeps for Gallant's ratchet: (weights (k, d), biases (k,),
    state (k, 5) int64 = run, pocket's run, pocket's errors, errors counted, current weights in the pocket),
    for weights w = 0, b = 0 (every point an error)."""
    state = np.zeros((n_problems, 5), dtype=np.int64)
    state[:, 2] = n_samples
    return np.zeros((n_problems, n_features), dtype=dtype), np.zeros(n_problems, dtype=dtype), state


def perceptron_ovr_epoch(X: np.ndarray, T: np.ndarray, W: np.ndarray, B: np.ndarray, eta: float = 1.0,
                         order: np.ndarray | None = None, active: np.ndarray | None = None,
                         pocket: tuple | None = None, X32: np.ndarray | None = None) -> np.ndarray:
    """One primal pass of k binary problems in lockstep; returns the updates made per problem (k,) int64.

    For i in `order` (default 0..n-1), for each active problem c: if T[i, c] (W[c].x_i + B[c]) <= 0 then
    W[c] += eta T[i, c] x_i and B[c] += eta T[i, c]. X (n, d) float32/float64, T (n, k) labels -1/+1,
    W (k, d) and B (k,) of X's dtype, updated in place; active (k,) bool/uint8 (default all), cleared in
    place when a pocket reaches 0 errors. pocket: new_pocket(k, d, n, X.dtype) (updated in place) runs
    Gallant's pocket with ratchet: after each correctly classified point the run of the current weights
    grows; when it beats the pocket's run the current weights' training errors are counted (once per
    weights), and they go in the pocket if fewer than the pocket's. X32: X as float32, equal to X element by
    element (X = X32.astype(X.dtype)); the pocket's error counts then read it (half the bytes of a float64
    X), with the same result.
    """
    X = as_float_array(X, "X", ndim=2)
    n, d = X.shape
    if not isinstance(T, np.ndarray) or T.ndim != 2 or T.shape[0] != n:
        raise ValueError(f"T: expected an array of shape ({n}, k), got "
                         f"{getattr(T, 'shape', type(T).__name__)}")
    k = T.shape[1]
    T8 = np.ascontiguousarray(np.stack([_check_labels(T[:, c], n) for c in range(k)], axis=1)) if k else \
        np.zeros((n, 0), dtype=np.int8)
    W = _check_weights(W, "W", (k, d), X.dtype)
    B = _check_weights(B, "B", (k,), X.dtype)
    eta = check_real(eta, "eta", 0.0, low_open=True)
    check_finite(X, "X")
    order, use_order = _check_order(order, n)
    if active is None:
        active = np.ones(k, dtype=np.uint8)
    elif not isinstance(active, np.ndarray) or active.shape != (k,) or active.dtype not in (np.bool_, np.uint8):
        raise ValueError(f"active: expected a bool or uint8 array of shape ({k},)")
    act = active.view(np.uint8) if active.flags.c_contiguous and active.flags.writeable else active.astype(np.uint8)
    updates = np.zeros(k, dtype=np.int64)
    if pocket is None:
        PW, PB, state = new_pocket(k, d, n, X.dtype)
    else:
        PW, PB, state = pocket
        _check_weights(PW, "pocket weights", (k, d), X.dtype)
        _check_weights(PB, "pocket biases", (k,), X.dtype)
        if not isinstance(state, np.ndarray) or state.dtype != np.int64 or state.shape != (k, 5):
            raise ValueError(f"pocket state: expected an int64 array of shape ({k}, 5) (see new_pocket)")
    if X32 is not None:
        if not isinstance(X32, np.ndarray):
            raise TypeError(f"X32: expected a numpy.ndarray or None, got {type(X32).__name__}")
        if X32.dtype != np.float32 or X32.shape != X.shape or not X32.flags.c_contiguous:
            raise ValueError(f"X32: expected a C-contiguous float32 array of shape {X.shape}, got "
                             f"{X32.dtype} {X32.shape}")
        if not np.array_equal(X32, X):
            raise ValueError("X32: expected X's values exactly (X32.astype(X.dtype) == X), got other values")
    _perceptron.ovr_epoch(X, T8, W, B, eta, order, use_order, act, updates, pocket is not None, PW, PB, state,
                          X32)
    if act is not active:
        active[...] = act
    return updates


def perceptron_greedy_epoch(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, eta: float = 1.0,
                            order: np.ndarray | None = None, loss: str = "geometric") -> tuple[float, int]:
    """One pass of the greedy rule; returns (b_new, candidates kept) and updates `w` in place.

    For i in `order` (default 0..n-1) with y[i] (w.x_i + b) <= 0, the candidate w + eta y_i x_i,
    b + eta y_i is kept when it lowers the loss, L(w, b) = -sum_{m_j < 0} m_j over the margins
    m_j = y_j (w.x_j + b) ('functional') or L / ||w|| ('geometric': the misclassified points' distances to
    the hyperplane; infinite at w = 0 unless L = 0), or at equal loss lowers the number of points with
    m_j <= 0, or is the first step from w = 0, b = 0. Margins are kept in float64, updated per kept
    candidate through x_j.x_i + 1.
    """
    X = as_float_array(X, "X", ndim=2)
    n, d = X.shape
    y8 = _check_labels(y, n)
    w = _check_weights(w, "w", (d,), X.dtype)
    b = check_real(b, "b")
    eta = check_real(eta, "eta", 0.0, low_open=True)
    geometric = check_choice(loss, "loss", ("geometric", "functional")) == "geometric"
    check_finite(X, "X")
    order, use_order = _check_order(order, n)
    m = y8 * (X.astype(np.float64) @ w.astype(np.float64) + b)
    gram = np.zeros((0, 0))
    col = np.empty(n)
    return _perceptron.greedy_epoch(X, y8, w, b, eta, order, use_order, gram, False, m, col, geometric)
