"""nn.functional.softmax / log_softmax: values against an exact reference, stability, and bad arguments; and
CrossEntropyLoss, which shares their shifted exponentials, bit for bit as it computed them before."""
import math

import numpy as np
import pytest

from cnn_core import nn
from cnn_core.nn.functional import log_softmax, softmax


def reference_log_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    """log softmax of every slice along dim in Python floats: the log-sum-exp with math.fsum (exactly rounded
    sum), from the float64 values of x."""
    moved = np.moveaxis(x.astype(np.float64), dim, -1)
    out = np.empty_like(moved)
    for idx in np.ndindex(moved.shape[:-1]):
        row = [float(v) for v in moved[idx]]
        m = max(row)
        lse = m + math.log(math.fsum(math.exp(v - m) for v in row))
        out[idx] = [v - lse for v in row]
    return np.moveaxis(out, -1, dim)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-14)])
@pytest.mark.parametrize("shape, dim", [((7,), -1), ((5, 10), 1), ((5, 10), 0), ((3, 4, 6), 1), ((3, 4, 6), -3)])
def test_softmax_matches_the_exact_reference(dtype, rtol, shape, dim):
    # rtol: a few ulps of the dtype (exp, one sum and one division or log, each correctly rounded or nearly)
    x = (np.random.default_rng(0).normal(size=shape) * 5).astype(dtype)
    ref = reference_log_softmax(x, dim)
    p, lp = softmax(x, dim=dim), log_softmax(x, dim=dim)
    assert p.dtype == dtype and lp.dtype == dtype and p.shape == x.shape and lp.shape == x.shape
    np.testing.assert_allclose(p, np.exp(ref), rtol=rtol * 4, atol=0)
    np.testing.assert_allclose(lp, ref, rtol=rtol * 4, atol=rtol)
    np.testing.assert_allclose(p.sum(axis=dim), 1.0, rtol=rtol * shape[dim])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_logits_do_not_overflow(dtype):
    x = np.array([[1000.0, 1000.0, 999.0], [-1000.0, 0.0, 1000.0]], dtype=dtype)
    p = softmax(x)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p[0], np.array([1, 1, np.exp(-1)]) / (2 + np.exp(-1)), rtol=1e-6)
    np.testing.assert_allclose(p[1], [0, 0, 1], atol=1e-30)


def test_log_softmax_stays_finite_where_softmax_underflows():
    x = np.array([0.0, -800.0])  # e^-800 underflows float64
    assert softmax(x)[1] == 0.0
    np.testing.assert_array_equal(log_softmax(x), [0.0, -800.0])


def test_inputs_are_not_modified_and_strided_input_works():
    x = np.random.default_rng(1).normal(size=(6, 8))
    before = x.copy()
    view = x[::2, 1::3]
    np.testing.assert_allclose(softmax(view, dim=0), softmax(np.ascontiguousarray(view), dim=0), rtol=0, atol=0)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("fn", [softmax, log_softmax])
@pytest.mark.parametrize("args, kwargs, exc, match", [
    (([1.0, 2.0],), {}, TypeError, "x: expected a numpy.ndarray, got list"),
    ((np.arange(3),), {}, TypeError, "x: expected dtype float32 or float64, got int64"),
    ((np.array(1.0),), {}, ValueError, "x: expected an array of at least 1 dimension"),
    ((np.ones((2, 3)),), {"dim": 1.0}, TypeError, "dim: expected an int, got 1.0"),
    ((np.ones((2, 3)),), {"dim": True}, TypeError, "dim: expected an int"),
    ((np.ones((2, 3)),), {"dim": 2}, ValueError, r"dim: expected an int in \[-2, 2\).*got 2"),
    ((np.ones((2, 3)),), {"dim": -3}, ValueError, "dim: expected an int in"),
    ((np.ones((2, 0)),), {}, ValueError, "x: expected at least one element along dim -1"),
    ((np.array([1.0, np.nan]),), {}, ValueError, "x: expected finite values"),
    ((np.array([np.inf, 0.0], dtype=np.float32),), {}, ValueError, "x: expected finite values"),
])
def test_bad_arguments(fn, args, kwargs, exc, match):
    with pytest.raises(exc, match=f"{fn.__name__}: {match}"):
        fn(*args, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("labels", [np.int32, np.int64])
def test_cross_entropy_loss_is_unchanged_bit_for_bit(dtype, labels):
    """CrossEntropyLoss now takes its shift and exponentials from nn.functional: the loss and gradient are
    those of the formula it computed inline before (copied here), to the last bit. That holds for its NumPy
    formulation (int32 labels take it); int64 labels take the compiled pass of kernels/_loss.pyx, whose
    libm exp/log and left-to-right row sum differ from NumPy's SIMD exp/log and pairwise sum by an ulp or two
    per operation: a few ulps on the loss and on each gradient entry (p / n, and p - 1 near 1)."""
    rng = np.random.default_rng(2)
    z = (rng.normal(size=(33, 10)) * 4).astype(dtype)
    y = rng.integers(0, 10, size=33).astype(labels)
    crit = nn.CrossEntropyLoss()
    loss = crit(z, y)
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    sum_e = e.sum(axis=1, keepdims=True)
    rows = np.arange(33)
    want = float(np.mean(np.log(sum_e[:, 0]) - shifted[rows, y]))
    grad = e / sum_e
    grad[rows, y] -= 1
    grad /= 33
    if labels == np.int32:
        assert loss == want
        assert crit.backward().tobytes() == grad.tobytes()
    else:
        eps = np.finfo(dtype).eps
        np.testing.assert_allclose(loss, want, rtol=8 * eps)
        np.testing.assert_allclose(crit.backward(), grad, rtol=8 * eps, atol=8 * eps / 33)
    # and the loss is the mean negative log_softmax of the true class, the gradient softmax - onehot over n
    np.testing.assert_allclose(loss, -log_softmax(z, dim=1)[rows, y].mean(), rtol=1e-6)
    np.testing.assert_allclose(crit.backward() * 33 + np.eye(10)[y], softmax(z, dim=1), rtol=1e-6, atol=1e-7)
