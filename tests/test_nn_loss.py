"""Losses: values against NumPy formulas, gradients against finite differences."""
import numpy as np
import pytest

import cnn_core
from cnn_core import nn

RNG = np.random.default_rng(0)


def probs(*shape):
    return RNG.uniform(0.05, 0.95, shape)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_cross_entropy_value(dtype, tol):
    z = RNG.standard_normal((6, 4)).astype(dtype)
    y = np.array([0, 3, 1, 1, 2, 0])
    zz = z.astype(np.float64)
    p = np.exp(zz) / np.exp(zz).sum(axis=1, keepdims=True)
    ref = -np.mean(np.log(p[np.arange(6), y]))
    assert nn.CrossEntropyLoss()(z, y) == pytest.approx(ref, rel=tol)


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [0.0, 800.0, 0.0]], dtype=np.float32)
    crit = nn.CrossEntropyLoss()
    loss = crit(z, np.array([0, 0]))
    assert np.isfinite(loss) and loss == pytest.approx(800.0 / 2)
    g = crit.backward()
    assert np.isfinite(g).all() and g.dtype == np.float32


def test_cross_entropy_gradient():
    assert cnn_core.gradcheck(nn.CrossEntropyLoss(), (RNG.standard_normal((5, 4)), np.array([0, 3, 2, 1, 3])))


def test_mse_value_and_gradient():
    a, y = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
    assert nn.MSELoss()(a, y) == pytest.approx(np.mean((a - y) ** 2), rel=1e-12)
    assert cnn_core.gradcheck(nn.MSELoss(), (a, y))


def test_bce_value_and_gradient():
    a, y = probs(5, 2), RNG.uniform(0, 1, (5, 2))
    ref = -np.mean(y * np.log(a) + (1 - y) * np.log(1 - a))
    assert nn.BCELoss()(a, y) == pytest.approx(ref, rel=1e-12)
    assert cnn_core.gradcheck(nn.BCELoss(), (a, y))


def test_bce_clamps_logs_like_pytorch():
    crit = nn.BCELoss()
    loss = crit(np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    assert loss == pytest.approx(50.0)  # (100 + 0) / 2
    assert np.isfinite(crit.backward()).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quadratic_value_matches_deck_formula(dtype):
    a, y = probs(6, 3).astype(dtype), RNG.uniform(0, 1, (6, 3)).astype(dtype)
    ref = np.sum(np.linalg.norm(y.astype(np.float64) - a, axis=1) ** 2) / (2 * 6)
    assert nn.QuadraticLoss()(a, y) == pytest.approx(ref, rel=1e-6)


def test_quadratic_labels_equal_one_hot():
    a, labels = probs(5, 4), np.array([3, 0, 1, 1, 2])
    crit = nn.QuadraticLoss()
    v_labels, g_labels = crit(a, labels), crit.backward()
    v_onehot, g_onehot = crit(a, np.eye(4)[labels]), crit.backward()
    assert v_labels == pytest.approx(v_onehot, rel=1e-15)
    np.testing.assert_allclose(g_labels, g_onehot, rtol=1e-15)


@pytest.mark.parametrize("labels", [True, False])
def test_quadratic_gradient(labels):
    a = probs(5, 3)
    y = np.array([0, 2, 1, 1, 0]) if labels else RNG.uniform(0, 1, (5, 3))
    assert cnn_core.gradcheck(nn.QuadraticLoss(), (a, y))


@pytest.mark.parametrize("crit", [nn.CrossEntropyLoss(), nn.MSELoss(), nn.BCELoss(), nn.QuadraticLoss()])
def test_loss_returns_python_float_and_grad_of_pred_dtype(crit):
    a = probs(3, 2).astype(np.float32)
    y = np.array([0, 1, 1]) if isinstance(crit, nn.CrossEntropyLoss) else probs(3, 2).astype(np.float32)
    assert type(crit(a, y)) is float
    g = crit.backward()
    assert g.shape == a.shape and g.dtype == np.float32


@pytest.mark.parametrize("crit", [nn.CrossEntropyLoss(), nn.MSELoss(), nn.BCELoss(), nn.QuadraticLoss()])
def test_loss_backward_before_forward(crit):
    with pytest.raises(RuntimeError, match="before"):
        crit.backward()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("n,k", [(1, 1), (7, 3), (64, 10), (5, 257)])
def test_cross_entropy_compiled_path_matches_numpy_formulation(dtype, reduction, n, k):
    # int64 labels take the compiled pass (kernels/_loss.pyx), int32 ones the NumPy formulation: same
    # losses and gradients to a few ulps (exp/log of libm vs NumPy's), with ignored rows, large logits
    # (the shift by the row max keeps them finite) and one class.
    from cnn_core import nn

    rng = np.random.default_rng(n * k)
    z = (rng.standard_normal((n, k)) * 30).astype(dtype)
    y = rng.integers(0, k, n)
    if n > 2:
        y[1] = -100
    out = {}
    for labels in (y.astype(np.int64), y.astype(np.int32)):
        crit = nn.CrossEntropyLoss(reduction=reduction)
        value = crit(z, labels)
        out[labels.dtype] = (np.asarray(value), crit.backward())
    (v64, g64), (v32, g32) = out[np.dtype(np.int64)], out[np.dtype(np.int32)]
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(v64, v32, rtol=tol, atol=tol)
    np.testing.assert_allclose(g64, g32, rtol=tol, atol=tol)
    assert g64.dtype == dtype and g64.shape == (n, k)
    if n > 2:
        assert not g64[1].any()


def test_cross_entropy_compiled_path_reports_bad_input_as_before():
    from cnn_core import nn
    from cnn_core._validation import NonFiniteError

    z = np.zeros((4, 3), np.float32)
    z[2, 1] = np.nan
    with pytest.raises(NonFiniteError, match="CrossEntropyLoss: pred: expected finite values"):
        nn.CrossEntropyLoss()(z, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"expected labels in \[0, 3\)"):
        nn.CrossEntropyLoss()(np.zeros((4, 3), np.float32), np.array([0, 1, 3, 0], np.int64))
    crit = nn.CrossEntropyLoss()
    assert np.isnan(crit(np.zeros((2, 3)), np.array([-100, -100], np.int64)))   # all ignored: 0/0
