"""Classification metrics with scikit-learn's names, argument order and semantics.

Labels may be integers, bools, floats (finite) or strings, as long as y_true and y_pred (and labels) hold
the same kind: numbers with numbers, strings with strings.
"""
from __future__ import annotations

import math

import numpy as np

from cnn_core._validation import all_finite, check_choice, check_int, is_sparse, not_an_array

__all__ = ["accuracy_score", "confusion_matrix", "precision_recall_f1", "classification_report"]

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
    if a.dtype.kind == "f" and not all_finite(a):
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


def _label_set(y_true, y_pred, labels):
    """(sorted-or-given labels, true positives, predicted counts, true counts) per label, like scikit-learn's
    multilabel confusion matrix: a sample counts for every listed label it is predicted as / truly is."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    if y_true.shape[0] == 0:
        raise ValueError("y_true: expected at least one label, got an empty array")
    if labels is None:
        labels = np.unique(np.concatenate([y_true, y_pred]))
    else:
        labels = _as_labels(labels, "labels")
        if labels.shape[0] == 0:
            raise ValueError("labels: expected at least one label, got an empty array")
        _same_kind(labels, y_true, "labels", "y_true")
        if np.unique(labels).shape[0] != labels.shape[0]:
            raise ValueError("labels: expected distinct labels")
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    back = order  # sorted position -> the caller's position
    n = labels.shape[0]
    t, t_known = _positions(sorted_labels, y_true)
    p, p_known = _positions(sorted_labels, y_pred)
    true_sum = np.bincount(back[t[t_known]], minlength=n)
    pred_sum = np.bincount(back[p[p_known]], minlength=n)
    hit = t_known & p_known & (y_true == y_pred)
    tp = np.bincount(back[t[hit]], minlength=n)
    return labels, tp, pred_sum, true_sum


def _ratio(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    out = np.full(num.shape, zero_division, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _check_zero_division(zero_division) -> float:
    if isinstance(zero_division, bool) or not isinstance(zero_division, (int, float)) or not (
            zero_division in (0, 1) or math.isnan(zero_division)):
        raise ValueError(f"zero_division: expected 0.0, 1.0 or nan, got {zero_division!r}")
    return float(zero_division)


def precision_recall_f1(y_true, y_pred, labels=None, average: str | None = None, pos_label=1,
                        zero_division: float = 0.0):
    """Precision, recall, F1 and support per class or averaged (scikit-learn's precision_recall_fscore_support
    with beta=1). Returns (precision, recall, f1, support).

    For class c: precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN), support =
    number of true samples of c; a ratio whose denominator is 0 is `zero_division` (0.0, 1.0 or nan).
    labels: the classes and their order (default: the sorted union of y_true and y_pred).
    average: None (arrays, one entry per label), 'micro' (from the summed TP, FP, FN; equals accuracy when
    every label is included), 'macro' (unweighted mean over labels), 'weighted' (mean weighted by support),
    'binary' (the pos_label class alone; the data may hold at most two labels). Averages return floats and
    support None, as scikit-learn does.

    >>> p, r, f, s = precision_recall_f1([0, 1, 2, 2, 2], [0, 0, 2, 2, 1])
    >>> p.round(2).tolist(), r.round(2).tolist(), f.round(2).tolist(), s.tolist()
    ([0.5, 0.0, 1.0], [1.0, 0.0, 0.67], [0.67, 0.0, 0.8], [1, 1, 3])
    """
    average = check_choice(average, "average", (None, "micro", "macro", "weighted", "binary"))
    zero_division = _check_zero_division(zero_division)
    if average == "binary":
        present = np.unique(np.concatenate([_as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")]))
        if present.shape[0] > 2:
            raise ValueError(f"average: 'binary' needs at most two labels, got {present.shape[0]}; "
                             "choose 'micro', 'macro' or 'weighted'")
        labels = [pos_label]
    labels, tp, pred_sum, true_sum = _label_set(y_true, y_pred, labels)
    if average == "micro":
        tp, pred_sum, true_sum = tp.sum(keepdims=True), pred_sum.sum(keepdims=True), true_sum.sum(keepdims=True)
    precision = _ratio(tp, pred_sum, zero_division)
    recall = _ratio(tp, true_sum, zero_division)
    f1 = _ratio(2 * tp, pred_sum + true_sum, zero_division)
    if average is None:
        return precision, recall, f1, true_sum.astype(np.int64)
    if average == "weighted":
        total = true_sum.sum()
        if total == 0:
            return zero_division, zero_division, zero_division, None
        w = true_sum / total
        return float(precision @ w), float(recall @ w), float(f1 @ w), None
    return float(precision.mean()), float(recall.mean()), float(f1.mean()), None


def classification_report(y_true, y_pred, labels=None, target_names=None, digits: int = 2,
                          output_dict: bool = False, zero_division: float = 0.0):
    """scikit-learn's classification_report: precision, recall, F1 and support per class, then accuracy (or
    the micro average when some labels are left out), the macro and the support-weighted averages; as text
    (`digits` decimals) or, with output_dict, as {name: {"precision", "recall", "f1-score", "support"}, ...,
    "accuracy": float}.

    >>> print(classification_report([0, 1, 2, 2, 2], [0, 0, 2, 2, 1], target_names=["class 0", "class 1", "class 2"]))
                  precision    recall  f1-score   support
    <BLANKLINE>
         class 0       0.50      1.00      0.67         1
         class 1       0.00      0.00      0.00         1
         class 2       1.00      0.67      0.80         3
    <BLANKLINE>
        accuracy                           0.60         5
       macro avg       0.50      0.56      0.49         5
    weighted avg       0.70      0.60      0.61         5
    <BLANKLINE>
    """
    digits = check_int(digits, "digits", 0)
    if not isinstance(output_dict, bool):
        raise TypeError(f"output_dict: expected a bool, got {type(output_dict).__name__}")
    given = labels is not None
    labels, tp, pred_sum, true_sum = _label_set(y_true, y_pred, labels)
    zero_division = _check_zero_division(zero_division)
    if target_names is None:
        names = [str(v) for v in labels.tolist()]
    else:
        names = [str(v) for v in target_names]
        if len(names) != labels.shape[0]:
            raise ValueError(f"target_names: expected {labels.shape[0]} names (one per label), got {len(names)}")
    p, r, f, s = precision_recall_f1(y_true, y_pred, labels=labels, zero_division=zero_division)
    yt, yp = _check_pair(y_true, y_pred)
    micro_is_accuracy = not given or set(labels.tolist()) >= set(np.concatenate([yt, yp]).tolist())
    rows = {name: {"precision": float(a), "recall": float(b), "f1-score": float(c), "support": int(d)}
            for name, a, b, c, d in zip(names, p, r, f, s)}
    averages = {}
    total = int(s.sum())
    for avg in ("micro", "macro", "weighted"):
        a, b, c, _ = precision_recall_f1(y_true, y_pred, labels=labels, average=avg, zero_division=zero_division)
        averages[avg] = {"precision": a, "recall": b, "f1-score": c, "support": total}
    if output_dict:
        out = dict(rows)
        if micro_is_accuracy:
            out["accuracy"] = averages["micro"]["precision"]
        else:
            out["micro avg"] = averages["micro"]
        out["macro avg"] = averages["macro"]
        out["weighted avg"] = averages["weighted"]
        return out
    width = max(max(len(n) for n in names), len("weighted avg"), digits)
    headers = ["precision", "recall", "f1-score", "support"]
    report = ("{:>{width}s} " + " {:>9}" * 4).format("", *headers, width=width) + "\n\n"
    row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    for name, v in rows.items():
        report += row_fmt.format(name, v["precision"], v["recall"], v["f1-score"], v["support"], width=width,
                                 digits=digits)
    report += "\n"
    for avg, heading in (("micro", "micro avg"), ("macro", "macro avg"), ("weighted", "weighted avg")):
        v = averages[avg]
        if avg == "micro" and micro_is_accuracy:
            report += ("{:>{width}s} " + " {:>9}" * 2 + " {:>9.{digits}f} {:>9}\n").format(
                "accuracy", "", "", v["f1-score"], total, width=width, digits=digits)
        else:
            report += row_fmt.format(heading, v["precision"], v["recall"], v["f1-score"], total, width=width,
                                     digits=digits)
    return report
