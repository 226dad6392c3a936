"""Batch normalization, forward and backward, over the channel axis of ``(N, C, *)`` arrays.

Statistics are per channel over the batch and every trailing position (N * L values, ``L = prod(*)``):
``mean``, the biased variance ``var`` (what the normalization uses, as PyTorch) and ``invstd = 1/sqrt(var +
eps)``. The compiled loops (_norm.pyx) accumulate in double and run one thread per channel.

The public functions check their arguments; the ``_``-prefixed ones are for layers that already have.
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import as_float_array, check_real
from cnn_core.kernels import _norm

__all__ = ["batch_norm_forward", "batch_norm_backward"]


def _ncl(a: np.ndarray) -> np.ndarray:
    """(N, C, *) as a C-contiguous (N, C, L) view or copy."""
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def _bn_train(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, y: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(y, mean, var, invstd) with batch statistics; x (N, C, *) with N*L >= 1, gamma/beta (C,) of x's dtype;
    y, when given, is overwritten (C-contiguous, x's shape and dtype)."""
    c = x.shape[1]
    if y is None:
        y = np.empty(x.shape, x.dtype)
    mean, var, invstd = (np.empty(c, x.dtype) for _ in range(3))
    if c:
        _norm.forward_train(_ncl(x), gamma, beta, y.reshape(x.shape[0], c, -1), mean, var, invstd, eps)
    return y, mean, var, invstd


def _bn_eval(x: np.ndarray, mean: np.ndarray, var: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
             eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(y, invstd) normalizing with the given (running) statistics: one affine per channel."""
    invstd = (1.0 / np.sqrt(var.astype(np.float64) + eps)).astype(x.dtype)
    scale = (gamma * invstd).astype(x.dtype)
    shift = (beta - mean * scale).astype(x.dtype)
    y = np.empty(x.shape, x.dtype)
    if x.size:
        _norm.affine(_ncl(x), scale, shift, y.reshape(x.shape[0], x.shape[1], -1))
    return y, invstd


def _bn_backward(x: np.ndarray, dy: np.ndarray, mean: np.ndarray, invstd: np.ndarray, gamma: np.ndarray,
                 batch_stats: bool, need_dx: bool = True, dx: np.ndarray | None = None
                 ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(dx or None, dgamma, dbeta) for x and dy (N, C, *) of one dtype; see _norm.backward. dx, when given (and
    need_dx), is overwritten (C-contiguous, x's shape and dtype)."""
    n, c = x.shape[:2]
    dgamma, dbeta = np.zeros(c, x.dtype), np.zeros(c, x.dtype)
    if not need_dx:
        dx = None
    elif dx is None:
        dx = np.empty(x.shape, x.dtype)
    if x.size:
        _norm.backward(_ncl(x), _ncl(dy), mean, invstd, gamma,
                       dx.reshape(n, c, -1) if need_dx else np.empty((1, 1, 1), x.dtype),
                       dgamma, dbeta, batch_stats, need_dx)
    return dx, dgamma, dbeta


def _check_channel_vector(v, name: str, c: int, dtype) -> np.ndarray:
    v = as_float_array(v, name, ndim=1, dtype=dtype)
    if v.shape != (c,):
        raise ValueError(f"{name}: expected shape ({c},) (one value per channel of x), got {v.shape}")
    return v


def _check_x(x, name: str) -> np.ndarray:
    x = as_float_array(x, name)
    if x.ndim < 2:
        raise ValueError(f"{name}: expected an (N, C, *) array, got shape {x.shape}")
    return x


def batch_norm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5,
                       mean: np.ndarray | None = None, var: np.ndarray | None = None):
    """Normalize x ``(N, C, *)`` per channel and apply ``gamma * xhat + beta``.

    Without `mean`/`var`: the batch's own statistics; returns (y, mean, var, invstd), var biased. With them
    (running statistics, eval mode): returns (y, invstd). gamma, beta, mean, var are (C,) of x's dtype.
    """
    x = _check_x(x, "x")
    c = x.shape[1]
    gamma = _check_channel_vector(gamma, "gamma", c, x.dtype)
    beta = _check_channel_vector(beta, "beta", c, x.dtype)
    eps = check_real(eps, "eps", 0.0, low_open=True)
    if (mean is None) != (var is None):
        raise ValueError("mean, var: expected both (running statistics) or neither (batch statistics)")
    if mean is None:
        if x.size == 0:
            raise ValueError(f"x: expected at least one value per channel, got shape {x.shape}")
        return _bn_train(x, gamma, beta, eps)
    mean = _check_channel_vector(mean, "mean", c, x.dtype)
    var = _check_channel_vector(var, "var", c, x.dtype)
    if (var < 0).any():
        raise ValueError("var: expected non-negative variances")
    return _bn_eval(x, mean, var, gamma, beta, eps)


def batch_norm_backward(x: np.ndarray, dy: np.ndarray, mean: np.ndarray, invstd: np.ndarray,
                        gamma: np.ndarray, batch_stats: bool = True):
    """(dx, dgamma, dbeta) of batch norm at x ``(N, C, *)`` for the upstream dy (x's shape), given the statistics
    the forward normalized with (mean, invstd (C,)): batch statistics (their dependence on x included) or,
    with ``batch_stats=False``, constant running statistics."""
    x = _check_x(x, "x")
    dy = as_float_array(dy, "dy", dtype=x.dtype)
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected x's shape {x.shape}, got {dy.shape}")
    c = x.shape[1]
    mean = _check_channel_vector(mean, "mean", c, x.dtype)
    invstd = _check_channel_vector(invstd, "invstd", c, x.dtype)
    gamma = _check_channel_vector(gamma, "gamma", c, x.dtype)
    return _bn_backward(x, dy, mean, invstd, gamma, bool(batch_stats))
