"""Cost functions C(pred, target) with PyTorch's names and mean reduction.

``loss = crit(pred, target)`` returns a Python float and remembers what it needs; ``crit.backward()`` returns
dC/dpred (for the output layer this is the deck's grad_a C, which BP1 multiplies by sigma'(z^L)).
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import check_finite, check_float_dtype, not_an_array
from cnn_core.nn.functional import _shifted_exp


def _check_pred(pred, cls: str, ndim: int | None = None) -> np.ndarray:
    if not isinstance(pred, np.ndarray):
        raise not_an_array(pred, f"{cls}: pred")
    check_float_dtype(pred.dtype, f"{cls}: pred")
    if ndim is not None and pred.ndim != ndim:
        raise ValueError(f"{cls}: pred: expected a {ndim}-D array (batch, classes), got shape {pred.shape}")
    if pred.ndim == 0 or pred.shape[0] == 0:
        raise ValueError(f"{cls}: pred: expected a non-empty batch, got shape {pred.shape}")
    check_finite(pred, f"{cls}: pred")
    return pred


def _check_labels(target, n: int, n_classes: int, cls: str) -> np.ndarray:
    if target.shape != (n,):
        raise ValueError(f"{cls}: target: expected integer labels of shape {(n,)}, got shape {target.shape}")
    if n and (target.min() < 0 or target.max() >= n_classes):
        raise ValueError(f"{cls}: target: expected labels in [0, {n_classes}), "
                         f"got values in [{target.min()}, {target.max()}]")
    return target.astype(np.intp, copy=False)


def _check_real_target(target, pred: np.ndarray, cls: str) -> np.ndarray:
    if target.dtype != pred.dtype:
        raise TypeError(f"{cls}: target: expected dtype {pred.dtype} (the dtype of pred), got {target.dtype}")
    if target.shape != pred.shape:
        raise ValueError(f"{cls}: target: expected shape {pred.shape} (the shape of pred), got {target.shape}")
    check_finite(target, f"{cls}: target")
    return target


class _Loss:
    def __init__(self):
        self._grad = None

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        return self.forward(pred, target)

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        """dC/dpred for the last call (same shape and dtype as pred; a fresh array per call of the loss)."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward: called before the loss was computed")
        return self._grad

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _as_target(target, cls: str) -> np.ndarray:
    if not isinstance(target, np.ndarray):
        raise TypeError(f"{cls}: target: expected a numpy.ndarray, got {type(target).__name__}")
    return target


class CrossEntropyLoss(_Loss):
    """C = -1/n sum_i log softmax(z_i)[y_i] on logits z (n, classes) and integer labels y (n,).

    log softmax uses the stable log-sum-exp (shift by the row max, as nn.functional.log_softmax does);
    dC/dz = (softmax(z) - onehot(y)) / n.

    Shape:
        - pred: ``(n, classes)`` logits, float32 or float64
        - target: ``(n,)`` integer labels in ``[0, classes)``
        - Output: a Python float; ``backward()`` gives dC/dpred ``(n, classes)``

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> crit = nn.CrossEntropyLoss()
        >>> round(crit(np.zeros((2, 4), np.float32), np.array([0, 3])), 4)     # log 4
        1.3863
        >>> crit.backward()
        array([[-0.375,  0.125,  0.125,  0.125],
               [ 0.125,  0.125,  0.125, -0.375]], dtype=float32)
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        z = _check_pred(pred, "CrossEntropyLoss", 2)
        target = _as_target(target, "CrossEntropyLoss")
        if not np.issubdtype(target.dtype, np.integer):
            raise TypeError(f"CrossEntropyLoss: target: expected integer class labels, got dtype {target.dtype}")
        n, k = z.shape
        y = _check_labels(target, n, k, "CrossEntropyLoss")
        shifted, e, sum_e = _shifted_exp(z, 1)  # the pieces of log_softmax(z) and softmax(z), computed once
        rows = np.arange(n)
        loss = float(np.mean(np.log(sum_e[:, 0]) - shifted[rows, y]))
        grad = e / sum_e
        grad[rows, y] -= 1
        grad /= n
        self._grad = grad
        return loss


class MSELoss(_Loss):
    """C = mean over all elements of (a - y)^2; dC/da = 2 (a - y) / numel.

    Shape:
        - pred: ``(*)``, float32 or float64
        - target: ``(*)``, pred's shape and dtype
        - Output: a Python float; ``backward()`` gives dC/dpred, pred's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> crit = nn.MSELoss()
        >>> crit(np.array([1.0, 2.0]), np.array([1.0, 4.0]))
        2.0
        >>> crit.backward()
        array([ 0., -2.])
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        a = _check_pred(pred, "MSELoss")
        y = _check_real_target(_as_target(target, "MSELoss"), a, "MSELoss")
        diff = a - y
        self._grad = diff * (2.0 / diff.size)
        return float(np.mean(diff * diff))


class BCELoss(_Loss):
    """C = -mean[y ln a + (1-y) ln(1-a)] over all elements, for probabilities a in [0, 1].

    Like PyTorch the logs are clamped at -100 (so a = 0 or 1 gives a finite loss) and the gradient
    (a - y) / (a (1-a)) has its denominator clamped at 1e-12.

    Shape:
        - pred: ``(*)`` probabilities in [0, 1], float32 or float64
        - target: ``(*)`` values in [0, 1], pred's shape and dtype
        - Output: a Python float; ``backward()`` gives dC/dpred, pred's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> crit = nn.BCELoss()
        >>> round(crit(np.array([0.5, 0.5]), np.array([1.0, 0.0])), 4)       # log 2
        0.6931
        >>> crit.backward()
        array([-1.,  1.])
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        a = _check_pred(pred, "BCELoss")
        y = _check_real_target(_as_target(target, "BCELoss"), a, "BCELoss")
        if a.min() < 0 or a.max() > 1:
            raise ValueError(f"BCELoss: pred: expected probabilities in [0, 1], got values in [{a.min()}, {a.max()}]")
        if y.min() < 0 or y.max() > 1:
            raise ValueError(f"BCELoss: target: expected values in [0, 1], got values in [{y.min()}, {y.max()}]")
        with np.errstate(divide="ignore"):
            log_a = np.maximum(np.log(a), -100)
            log_1ma = np.maximum(np.log1p(-a), -100)
        loss = float(-np.mean(y * log_a + (1 - y) * log_1ma))
        self._grad = (a - y) / np.maximum(a * (1 - a), 1e-12) / a.size
        return loss


class QuadraticLoss(_Loss):
    """The deck's C = 1/(2n) sum_x ||y(x) - a||^2, n the batch size; dC/da = (a - y) / n.

    target: a real array of pred's shape (e.g. one-hot), or integer labels (n,) which are one-hot encoded.

    Shape:
        - pred: ``(n, *)``, float32 or float64; ``(n, classes)`` with integer labels
        - target: pred's shape and dtype, or ``(n,)`` integer labels
        - Output: a Python float; ``backward()`` gives dC/dpred, pred's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> crit = nn.QuadraticLoss()
        >>> crit(np.array([[0.5, 0.5]]), np.array([0]))     # (0.5^2 + 0.5^2) / 2
        0.25
        >>> crit.backward()
        array([[-0.5,  0.5]])
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        a = _check_pred(pred, "QuadraticLoss")
        target = _as_target(target, "QuadraticLoss")
        n = a.shape[0]
        if np.issubdtype(target.dtype, np.integer):
            if a.ndim != 2:
                raise ValueError(f"QuadraticLoss: pred: integer labels need a 2-D pred (batch, classes), "
                                 f"got shape {a.shape}")
            labels = _check_labels(target, n, a.shape[1], "QuadraticLoss")
            diff = a.copy()
            diff[np.arange(n), labels] -= 1
        else:
            diff = a - _check_real_target(target, a, "QuadraticLoss")
        self._grad = diff / n
        return float(np.vdot(diff, diff) / (2 * n))
