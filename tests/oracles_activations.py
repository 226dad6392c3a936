"""Plain NumPy references for the activation functions and their derivatives, straight from the formulas.

The activation references work in float64 whatever the input dtype, straight from the formulas, so a
float32 kernel is compared against the exact-as-possible value of its own (float32) input.
"""
import numpy as np


def sigmoid_ref(z):
    # The naive formula: exp(-z) overflows to inf for z << 0, and 1 / (1 + inf) = 0 is the right limit.
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def tanh_ref(z):
    return np.tanh(np.asarray(z, dtype=np.float64))


def relu_ref(z):
    return np.maximum(np.asarray(z, dtype=np.float64), 0.0)


def elu_ref(z, alpha=1.0):
    # alpha * (exp(z) - 1), evaluated with expm1: exp(z) - 1 loses all relative accuracy as z -> 0-.
    z = np.asarray(z, dtype=np.float64)
    return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0)))


def sigmoid_backward_ref(dy, a):
    dy, a = np.asarray(dy, np.float64), np.asarray(a, np.float64)
    return dy * a * (1.0 - a)


def tanh_backward_ref(dy, a):
    dy, a = np.asarray(dy, np.float64), np.asarray(a, np.float64)
    return dy * (1.0 - a ** 2)


def relu_backward_ref(dy, a):
    dy, a = np.asarray(dy, np.float64), np.asarray(a, np.float64)
    return dy * (a > 0)


def elu_backward_ref(dy, a, alpha=1.0):
    dy, a = np.asarray(dy, np.float64), np.asarray(a, np.float64)
    return np.where(a > 0, dy, dy * (a + alpha))


_FORWARD = {"sigmoid": sigmoid_ref, "tanh": tanh_ref, "relu": relu_ref}


def activation_ref(z, activation, alpha=1.0):
    """The activation named `activation` (None: the identity) applied to z, in float64."""
    if activation is None:
        return np.array(z, dtype=np.float64)
    if activation == "elu":
        return elu_ref(z, alpha)
    if activation not in _FORWARD:
        raise ValueError(f"activation: expected one of None, 'elu', {sorted(_FORWARD)}, got {activation!r}")
    return _FORWARD[activation](z)
