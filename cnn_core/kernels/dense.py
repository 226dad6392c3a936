"""Fully connected layer kernels: the forward (GEMM + bias in one pass) and the backward pieces."""
from __future__ import annotations

import numpy as np

from cnn_core._validation import as_float_array
from cnn_core.kernels import _dense


def _check_weight(x: np.ndarray, w) -> np.ndarray:
    w = as_float_array(w, "w", ndim=2, dtype=x.dtype)
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w: expected shape (out_features, {x.shape[1]}) to match x's {x.shape[1]} "
                         f"input features, got {w.shape}")
    return w


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """z = x @ w.T + b, the bias added in one pass over z right after the GEMM.

    x (N, in), w (out, in), b (out,) or None -> z (N, out). The activation is a kernel of its own
    (kernels.sigmoid, ...).
    """
    x = as_float_array(x, "x", ndim=2)
    w = _check_weight(x, w)
    if b is not None:
        b = as_float_array(b, "b", ndim=1, dtype=x.dtype)
        if b.shape != (w.shape[0],):
            raise ValueError(f"b: expected shape ({w.shape[0]},) to match w's out_features, got {b.shape}")
    return _linear(x, w, b)


def _linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, row_shares: bool = False) -> np.ndarray:
    """linear_forward without argument checks, for layers that have checked x, w and b (C-contiguous, one
    float dtype, matching shapes) at their own boundary. row_shares: w is about to be updated (training):
    each thread reads the rows of w the optimizer's step gives it (same result)."""
    z = np.empty((x.shape[0], w.shape[0]), dtype=x.dtype)
    has_bias = b is not None
    _dense.linear_forward_into(x, w, b if has_bias else np.empty(0, x.dtype), has_bias, z, row_shares)
    return z


def _weight_grad(delta: np.ndarray, x: np.ndarray, dw: np.ndarray, accumulate: bool) -> None:
    """dw = delta.T @ x, or dw += delta.T @ x with `accumulate`, without argument checks: BP4's weight
    gradient of a layer that has checked delta (N, out), x (N, in) and dw (out, in), C-contiguous arrays of
    one float dtype; dw's rows split between the threads as the optimizer's step splits them."""
    _dense.linear_weight_grad_into(x, delta, dw, accumulate)


def linear_backward(x: np.ndarray, w: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of z = x @ w.T + b given delta = dLoss/dz.

    x (N, in), w (out, in), delta (N, out) -> dx = delta @ w (N, in), dw = delta.T @ x (out, in),
    db = delta summed over the batch (out,).
    """
    x = as_float_array(x, "x", ndim=2)
    w = _check_weight(x, w)
    delta = as_float_array(delta, "delta", ndim=2, dtype=x.dtype)
    if delta.shape != (x.shape[0], w.shape[0]):
        raise ValueError(f"delta: expected shape {(x.shape[0], w.shape[0])} (batch of x, out_features of w), "
                         f"got {delta.shape}")
    dx = np.empty_like(x)
    dw = np.empty_like(w)
    db = np.empty(w.shape[0], dtype=x.dtype)
    _dense.linear_backward_into(x, w, delta, dx, dw, db)
    return dx, dw, db


def bias_grad(delta: np.ndarray) -> np.ndarray:
    """Column sum of delta (N, out) -> (out,): the bias gradient, accumulated in double precision."""
    return _bias_grad(as_float_array(delta, "delta", ndim=2))


def _bias_grad(delta: np.ndarray) -> np.ndarray:
    """bias_grad without argument checks (delta a C-contiguous 2-D float array)."""
    db = np.empty(delta.shape[1], dtype=delta.dtype)
    _dense.bias_grad_into(delta, db)
    return db
