"""Activation kernels: forward sigma(z) and the backward piece dy * sigma'(z), computed from a = sigma(z).

Every function takes an array of any shape (0-d included) in float32 or float64 and returns an array of the
same shape and dtype. When `out` is given it must be a C-contiguous, writable array of that shape and dtype;
it is filled and returned, and it may be the input itself (in place).
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import as_float_array, check_output, check_real
from cnn_core.kernels import _activations

__all__ = ["sigmoid", "tanh", "relu", "elu",
           "sigmoid_backward", "tanh_backward", "relu_backward", "elu_backward"]


def _out(out, shape: tuple, dtype: np.dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    return check_output(out, "out", shape, dtype, "the input's")


def _forward(name: str, z, out, alpha: float = 1.0) -> np.ndarray:
    zc = as_float_array(z, "z")
    return _sigma(name, zc, _out(out, z.shape, zc.dtype), alpha)


def _backward(name: str, dy, a, out, alpha: float = 1.0) -> np.ndarray:
    dyc = as_float_array(dy, "dy")
    ac = as_float_array(a, "a", dtype=dyc.dtype)
    if a.shape != dy.shape:
        raise ValueError(f"a: expected shape {dy.shape} (dy's), got {a.shape}")
    return _sigma_backward(name, dyc, ac, _out(out, dy.shape, dyc.dtype), alpha)


# The unchecked entry points for layers that have validated their arguments at their own boundary: every
# array C-contiguous, one float dtype, one shape (out may alias the input); name a key of OPS, alpha > 0.

def _sigma(name: str, z: np.ndarray, out: np.ndarray | None = None, alpha: float = 1.0) -> np.ndarray:
    """out = sigma(z) for the activation `name`, without argument checks."""
    if out is None:
        out = np.empty_like(z)
    if out.size:
        _activations.forward(_activations.OPS[name], z.reshape(-1), out.reshape(-1), alpha)
    return out


def _sigma_backward(name: str, dy: np.ndarray, a: np.ndarray, out: np.ndarray | None = None,
                    alpha: float = 1.0) -> np.ndarray:
    """out = dy * sigma'(z) from a = sigma(z), without argument checks."""
    if out is None:
        out = np.empty_like(dy)
    if out.size:
        _activations.backward(_activations.OPS[name], dy.reshape(-1), a.reshape(-1), out.reshape(-1), alpha)
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
    return _forward("elu", z, out, check_real(alpha, "alpha", 0.0, low_open=True))


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
    return _backward("elu", dy, a, out, check_real(alpha, "alpha", 0.0, low_open=True))
