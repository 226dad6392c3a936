"""metrics.precision_recall_f1 and classification_report against counts written out by hand (and scikit-learn
where installed), zero-division handling, label subsets, and bad arguments."""
import math

import numpy as np
import pytest

from cnn_core.metrics import classification_report, precision_recall_f1

try:
    import sklearn.metrics as skm
except ImportError:  # scikit-learn is optional: the comparisons are skipped without it
    skm = None


def by_hand(y_true, y_pred, labels, zero_division=0.0):
    """Per label from the definitions: TP, FP, FN counted one sample at a time."""
    out = []
    for c in labels:
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred))
        fp = sum(t != c and p == c for t, p in zip(y_true, y_pred))
        fn = sum(t == c and p != c for t, p in zip(y_true, y_pred))
        prec = tp / (tp + fp) if tp + fp else zero_division
        rec = tp / (tp + fn) if tp + fn else zero_division
        f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else zero_division
        out.append((prec, rec, f1, tp + fn))
    return [np.array(v) for v in zip(*out)]


CASES = [
    ([0, 1, 2, 2, 2], [0, 0, 2, 2, 1], None),
    ([3, 3, 1, 1, 1, 0, 2], [3, 1, 1, 0, 1, 0, 0], None),
    (["cat", "ant", "cat", "cat", "ant", "bird"], ["ant", "ant", "cat", "cat", "ant", "cat"], None),
    ([0, 1, 2, 2, 5], [0, 0, 2, 4, 1], [2, 0, 1]),  # a subset of labels, in the caller's order
]


@pytest.mark.parametrize("y_true, y_pred, labels", CASES)
def test_per_class_and_averages_by_hand(y_true, y_pred, labels):
    lab = labels if labels is not None else sorted(set(y_true) | set(y_pred))
    want = by_hand(y_true, y_pred, lab)
    got = precision_recall_f1(y_true, y_pred, labels=labels)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-15)
    assert got[3].dtype == np.int64
    p, r, f, s = want
    assert precision_recall_f1(y_true, y_pred, labels=labels, average="macro")[:3] == pytest.approx(
        (p.mean(), r.mean(), f.mean()), rel=1e-15)
    w = s / s.sum()
    got = precision_recall_f1(y_true, y_pred, labels=labels, average="weighted")
    assert got[:3] == pytest.approx(((p * w).sum(), (r * w).sum(), (f * w).sum()), rel=1e-15) and got[3] is None
    tp = sum(t == q and t in lab for t, q in zip(y_true, y_pred))
    n_pred = sum(q in lab for q in y_pred)
    n_true = sum(t in lab for t in y_true)
    assert precision_recall_f1(y_true, y_pred, labels=labels, average="micro")[:3] == pytest.approx(
        (tp / n_pred, tp / n_true, 2 * tp / (n_pred + n_true)), rel=1e-15)


@pytest.mark.skipif(skm is None, reason="scikit-learn is not installed")
@pytest.mark.parametrize("y_true, y_pred, labels", CASES)
@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_matches_scikit_learn(y_true, y_pred, labels, average):
    want = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0.0)
    got = precision_recall_f1(y_true, y_pred, labels=labels, average=average)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            np.testing.assert_allclose(g, w, rtol=1e-15)
    assert classification_report(y_true, y_pred, labels=labels, digits=3) == skm.classification_report(
        y_true, y_pred, labels=labels, digits=3, zero_division=0.0)


def test_zero_division_and_binary():
    # class 1 is never predicted (precision 0/0) and class 2 never occurs (recall 0/0)
    y_true, y_pred = [0, 1, 0], [0, 0, 2]
    p, r, f, s = precision_recall_f1(y_true, y_pred, zero_division=1.0)
    np.testing.assert_array_equal(p, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(r, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(s, [2, 1, 0])
    p, r, f, s = precision_recall_f1([0, 1, 1, 0], [1, 1, 0, 0], zero_division=float("nan"))
    assert not np.isnan(p).any()
    p, r, f, _ = precision_recall_f1([0, 1, 1, 1], [1, 1, 0, 1], average="binary")
    assert (p, r, f) == pytest.approx((2 / 3, 2 / 3, 2 / 3), rel=1e-15)
    p, r, f, _ = precision_recall_f1(["a", "b", "b"], ["b", "b", "a"], average="binary", pos_label="a")
    assert (p, r, f) == (0.0, 0.0, 0.0)
    assert math.isnan(precision_recall_f1([1], [1], labels=[0], average="weighted", zero_division=float("nan"))[0])


def test_report_sklearn_documented_example_and_dict():
    text = classification_report([0, 1, 2, 2, 2], [0, 0, 2, 2, 1], target_names=["class 0", "class 1", "class 2"])
    assert text.splitlines() == [
        "              precision    recall  f1-score   support", "",
        "     class 0       0.50      1.00      0.67         1",
        "     class 1       0.00      0.00      0.00         1",
        "     class 2       1.00      0.67      0.80         3", "",
        "    accuracy                           0.60         5",
        "   macro avg       0.50      0.56      0.49         5",
        "weighted avg       0.70      0.60      0.61         5"]
    d = classification_report([0, 1, 2, 2, 2], [0, 0, 2, 2, 1], output_dict=True)
    assert d["accuracy"] == 0.6 and d["2"]["support"] == 3 and d["2"]["recall"] == pytest.approx(2 / 3)
    partial = classification_report([0, 1, 2], [0, 2, 2], labels=[0, 1], output_dict=True)
    assert "accuracy" not in partial and "micro avg" in partial  # labels left out: micro is not accuracy


@pytest.mark.parametrize("call, exc, match", [
    (lambda: precision_recall_f1([0, 1], [0]), ValueError, "y_pred"),
    (lambda: precision_recall_f1([0, 1], [0, 1], average="mean"), ValueError, "average"),
    (lambda: precision_recall_f1([0, 1, 2], [0, 1, 2], average="binary"), ValueError, "average"),
    (lambda: precision_recall_f1([0, 1], [0, 1], zero_division=0.5), ValueError, "zero_division"),
    (lambda: precision_recall_f1([0, 1], [0, 1], labels=[0, 0]), ValueError, "labels"),
    (lambda: precision_recall_f1([], []), ValueError, "y_true"),
    (lambda: precision_recall_f1([0, 1], ["a", "b"]), TypeError, "y_pred"),
    (lambda: classification_report([0, 1], [0, 1], target_names=["a"]), ValueError, "target_names"),
    (lambda: classification_report([0, 1], [0, 1], digits=-1), ValueError, "digits"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
