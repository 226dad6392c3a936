"""Plain NumPy references for the activation kernels and a Python loop for the perceptron epoch.

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


def perceptron_epoch_ref(X, y, w, b, eta=1.0, order=None):
    """The deck's sequential algorithm as a Python loop; returns (w_new, b_new, n_updates), w untouched.

    Arithmetic follows the kernel's documented precision so the two can be compared exactly: w, b and the
    step eta*y live in X's dtype, and the dot product is a float64 sum in the kernel's fixed order (a
    float32 product is exact in float64, so only the summation order matters): eight partial sums, lane k
    taking j = k mod 8 over the first d - d % 8 features, combined pairwise, then the tail left to right.
    """
    dt = X.dtype.type
    w = w.copy()
    b = dt(b)
    eta = dt(eta)
    n_updates = 0
    for i in (range(X.shape[0]) if order is None else order):
        s = _dot8(w, X[i])
        if y[i] * (s + float(b)) <= 0:
            step = dt(eta * dt(y[i]))
            w += step * X[i]
            b = dt(b + step)
            n_updates += 1
    return w, float(b), n_updates


def _dot8(w, x):
    d = len(x)
    m = d - d % 8
    lanes = [0.0] * 8
    for j in range(m):
        lanes[j % 8] += float(w[j]) * float(x[j])
    s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    for j in range(m, d):
        s += float(w[j]) * float(x[j])
    return s
