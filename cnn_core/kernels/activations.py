"""Activation kernels: forward sigma(z) and the backward piece dy * sigma'(z), computed from a = sigma(z).

Every function takes an array of any shape (0-d included) in float32 or float64 and returns an array of the
same shape and dtype. When `out` is given it must be a C-contiguous, writable array of that shape and dtype;
it is filled and returned, and it may be the input itself (in place).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from cnn_core.kernels import _activations
from cnn_core.kernels._validate import as_float_array

__all__ = ["sigmoid", "tanh", "relu", "elu",
           "sigmoid_backward", "tanh_backward", "relu_backward", "elu_backward"]


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha: expected a real number, got {type(alpha).__name__}")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha: expected a finite number > 0, got {alpha!r}")
    return float(alpha)


def _check_out(out, shape: tuple, dtype: np.dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out: expected dtype {dtype} (the input's), got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out: expected shape {shape} (the input's), got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError("out: expected a C-contiguous array, got a non-contiguous view")
    if not out.flags.writeable:
        raise ValueError("out: expected a writable array, got a read-only one")
    return out


def _forward(name: str, z, out, alpha: float = 1.0) -> np.ndarray:
    zc = as_float_array(z, "z")
    out = _check_out(out, z.shape, zc.dtype)
    if out.size:
        _activations.forward(_activations.OPS[name], zc.reshape(-1), out.reshape(-1), alpha)
    return out


def _backward(name: str, dy, a, out, alpha: float = 1.0) -> np.ndarray:
    dyc = as_float_array(dy, "dy")
    ac = as_float_array(a, "a", dtype=dyc.dtype)
    if a.shape != dy.shape:
        raise ValueError(f"a: expected shape {dy.shape} (dy's), got {a.shape}")
    out = _check_out(out, dy.shape, dyc.dtype)
    if out.size:
        _activations.backward(_activations.OPS[name], dyc.reshape(-1), ac.reshape(-1), out.reshape(-1), alpha)
    return out


def sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a = 1 / (1 + exp(-z)), stable for any |z| (exp only of non-positive arguments, no overflow)."""
    return _forward("sigmoid", z, out)


def tanh(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a = tanh(z)."""
    return _forward("tanh", z, out)


def relu(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a = max(z, 0); NaN propagates."""
    return _forward("relu", z, out)


def elu(z: np.ndarray, alpha: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """a = z for z > 0, alpha * (exp(z) - 1) otherwise (alpha > 0)."""
    return _forward("elu", z, out, _check_alpha(alpha))


def sigmoid_backward(dy: np.ndarray, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """dz = dy * a * (1 - a), with a = sigmoid(z)."""
    return _backward("sigmoid", dy, a, out)


def tanh_backward(dy: np.ndarray, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """dz = dy * (1 - a**2), with a = tanh(z)."""
    return _backward("tanh", dy, a, out)


def relu_backward(dy: np.ndarray, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """dz = dy * [a > 0], with a = relu(z)."""
    return _backward("relu", dy, a, out)


def elu_backward(dy: np.ndarray, a: np.ndarray, alpha: float = 1.0,
                 out: np.ndarray | None = None) -> np.ndarray:
    """dz = dy for a > 0, dy * (a + alpha) otherwise, with a = elu(z, alpha)."""
    return _backward("elu", dy, a, out, _check_alpha(alpha))
