"""The linear SVM's dual solvers, compiled: coordinate descent with a proximal bias, and SMO."""
from __future__ import annotations

import numpy as np

from cnn_core._validation import as_float_array, check_finite, check_int, check_real
from cnn_core.kernels import _svm
from cnn_core.kernels.perceptron import _check_labels

__all__ = ["svm_dual_cd", "svm_smo"]


def _check_vector(a, name: str, n: int, dtype=np.float64) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {a.shape}")
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{name}: expected a C-contiguous writable array (it is updated in place)")
    check_finite(a, name)
    return a


def _check_alpha(alpha: np.ndarray, n: int, C: float) -> np.ndarray:
    alpha = _check_vector(alpha, "alpha", n)
    if alpha.size and (alpha.min() < 0.0 or alpha.max() > C):
        raise ValueError(f"alpha: expected values in [0, C] = [0, {C}], got {alpha.min()}..{alpha.max()}")
    return alpha


def svm_dual_cd(X: np.ndarray, y: np.ndarray, alpha: np.ndarray, w: np.ndarray, bias: np.ndarray, C: float,
                rho: float, eps: float = 0.1, max_epochs: int = 1, seed: int = 1) -> tuple[int, bool]:
    """Coordinate descent epochs on the dual of J(w, b) + (b - c)^2 / (2 rho); returns (epochs, converged).

    J(w, b) = 1/2 ||w||^2 + C sum_i max(0, 1 - y_i (w.x_i + b)); that problem's dual in alpha (0 <= alpha_i
    <= C) has gradient G_i = y_i (w.x_i + b) - 1 with w = sum_i alpha_i y_i x_i and b = c + rho s,
    s = sum_i y_i alpha_i, and diagonal ||x_i||^2 + rho. Each epoch visits the points in a random order
    (xorshift64* from `seed`) with LIBLINEAR's shrinking, steps alpha_i <- clip(alpha_i - G_i / Q_ii, 0, C)
    (w and s follow), then moves the center c to b (c <- c + rho s). Stops after max_epochs, or when the
    projected gradients of every point span at most eps (converged). X (n, d) float32/float64, y (n,)
    labels -1/+1, alpha (n,) float64, w (d,) of X's dtype (w = sum alpha_i y_i x_i on entry), bias (2,)
    float64 = [c, s], all updated in place.
    """
    X = as_float_array(X, "X", ndim=2)
    n, d = X.shape
    y8 = _check_labels(y, n)
    C = check_real(C, "C", 0.0, low_open=True)
    alpha = _check_alpha(alpha, n, C)
    w = _check_vector(w, "w", d, X.dtype)
    bias = _check_vector(bias, "bias", 2)
    rho = check_real(rho, "rho", 0.0, low_open=True)
    eps = check_real(eps, "eps", 0.0)
    max_epochs = check_int(max_epochs, "max_epochs", 0)
    seed = check_int(seed, "seed", 1, 2**63 - 1)
    check_finite(X, "X")
    qd = np.einsum("ij,ij->i", X, X, dtype=np.float64) + rho
    index = np.arange(n, dtype=np.int32)
    if n == 0:
        return 0, True
    return _svm.dcd(X, y8, qd, alpha, w, bias, index, C, rho, eps, max_epochs, seed)


def svm_smo(K: np.ndarray, y: np.ndarray, alpha: np.ndarray, G: np.ndarray, C: float, eps: float = 1e-3,
            max_steps: int = 10**7) -> tuple[int, bool]:
    """SMO pair steps (LIBSVM's working-set selection and shrinking) on the dual of J; returns (steps, converged).

    min_alpha 1/2 sum_ij alpha_i alpha_j y_i y_j K_ij - sum_i alpha_i, 0 <= alpha_i <= C, sum_i y_i alpha_i = 0.
    K (n, n) float32/float64 symmetric (X X^T), y (n,) labels -1/+1, alpha (n,) float64 feasible, G (n,)
    float64 = y * (K @ (alpha * y)) - 1, both updated in place. Stops when the maximal violation
    max_{I_up} -y_i G_i - min_{I_low} -y_j G_j is below eps (converged), or after max_steps steps.
    """
    K = as_float_array(K, "K", ndim=2)
    n = K.shape[0]
    if K.shape != (n, n):
        raise ValueError(f"K: expected a square matrix, got shape {K.shape}")
    y8 = _check_labels(y, n)
    C = check_real(C, "C", 0.0, low_open=True)
    alpha = _check_alpha(alpha, n, C)
    G = _check_vector(G, "G", n)
    eps = check_real(eps, "eps", 0.0, low_open=True)
    max_steps = check_int(max_steps, "max_steps", 0)
    check_finite(K, "K")
    if abs(float(alpha @ y8)) > 1e-9 * max(1.0, float(alpha.sum())):
        raise ValueError(f"alpha: expected sum_i y_i alpha_i = 0 (a feasible point), got {float(alpha @ y8):.3g}")
    return _svm.smo(K, np.ascontiguousarray(np.diagonal(K), dtype=np.float64), y8, alpha, G, C, eps, max_steps)
