"""Classification metrics with scikit-learn's names, argument order and semantics.

Labels may be integers, bools, floats (finite) or strings, as long as y_true and y_pred (and labels) hold
the same kind: numbers with numbers, strings with strings.
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import is_sparse, not_an_array

__all__ = ["accuracy_score", "confusion_matrix"]

_NUMBER_KINDS = "biuf"
_STRING_KINDS = "U"


def _as_labels(y, name: str) -> np.ndarray:
    """y as a 1-D array of labels of a supported kind (finite when float)."""
    if is_sparse(y):
        raise not_an_array(y, name)
    a = np.asarray(y)
    if a.dtype.kind not in _NUMBER_KINDS + _STRING_KINDS:
        raise TypeError(f"{name}: expected labels of integers, bools, floats or strings, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of labels, got shape {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name}: expected finite labels, got NaN or infinity")
    return a


def _same_kind(a: np.ndarray, b: np.ndarray, name: str, other: str) -> None:
    if (a.dtype.kind in _STRING_KINDS) != (b.dtype.kind in _STRING_KINDS):
        raise TypeError(f"{name}: expected labels of the same kind as {other} (numbers or strings), "
                        f"got dtype {a.dtype} and {b.dtype}")


def _check_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = _as_labels(y_true, "y_true")
    y_pred = _as_labels(y_pred, "y_pred")
    if y_pred.shape[0] != y_true.shape[0]:
        raise ValueError(f"y_pred: expected {y_true.shape[0]} labels (as many as y_true), got {y_pred.shape[0]}")
    _same_kind(y_pred, y_true, "y_pred", "y_true")
    return y_true, y_pred


def accuracy_score(y_true, y_pred) -> float:
    """Fraction of samples whose predicted label equals the true one: (1/n) sum_i [y_pred_i == y_true_i].

    y_true, y_pred: 1-D array-likes of n >= 1 labels. Returns a float in [0, 1].

    >>> from cnn_core.metrics import accuracy_score
    >>> accuracy_score([0, 1, 2, 2], [0, 2, 2, 2])
    0.75
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    if y_true.shape[0] == 0:
        raise ValueError("y_true: expected at least one label, got an empty array")
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, labels=None) -> np.ndarray:
    """C[i, j] = number of samples of true class labels[i] predicted as labels[j] (rows true, columns predicted).

    y_true, y_pred: 1-D array-likes of n labels. labels: the classes to count and their order, default the
    sorted union of the labels in y_true and y_pred; samples whose true or predicted label is not among them
    are not counted, and at least one of them must occur in y_true (as in scikit-learn).
    Returns an int64 array of shape (len(labels), len(labels)). Counted in one np.bincount over the n
    flattened cell indices i * L + j.

    >>> from cnn_core.metrics import confusion_matrix
    >>> confusion_matrix([2, 0, 2, 2, 0, 1], [0, 0, 2, 2, 0, 2])
    array([[2, 0, 0],
           [0, 0, 1],
           [1, 0, 2]])
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    if labels is None:
        labels = np.unique(np.concatenate([y_true, y_pred]))
        order = None  # already sorted: a label's row is its position
    else:
        labels = _as_labels(labels, "labels")
        if labels.shape[0] == 0:
            raise ValueError("labels: expected at least one label, got an empty array")
        _same_kind(labels, y_true, "labels", "y_true")
        order = np.argsort(labels, kind="stable")
        labels = labels[order]
        repeated = labels[1:][labels[1:] == labels[:-1]]
        if repeated.size:
            raise ValueError(f"labels: expected distinct labels, got {repeated[0].item()!r} more than once")
    n_labels = labels.shape[0]
    t, t_known = _positions(labels, y_true)
    p, p_known = _positions(labels, y_pred)
    if order is not None:
        if y_true.shape[0] and not t_known.any():
            raise ValueError("labels: expected at least one of the labels to occur in y_true, got none of them")
        t, p = order[t], order[p]  # sorted position -> the caller's row/column
    keep = t_known & p_known
    cells = t[keep] * n_labels + p[keep]
    return np.bincount(cells, minlength=n_labels * n_labels).astype(np.int64).reshape(n_labels, n_labels)


def _positions(sorted_labels: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of each y in sorted_labels, clipped into range; whether y is really there)."""
    pos = np.searchsorted(sorted_labels, y)
    pos = np.minimum(pos, sorted_labels.shape[0] - 1) if sorted_labels.shape[0] else pos
    known = sorted_labels[pos] == y if sorted_labels.shape[0] else np.zeros(y.shape, dtype=bool)
    return pos, known
