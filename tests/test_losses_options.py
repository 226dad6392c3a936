"""Issue 11's losses and loss options: NLLLoss, BCEWithLogitsLoss, CrossEntropyLoss's weight / ignore_index /
label_smoothing, and reduction='mean'|'sum'|'none' with backward(grad) on every loss, against NumPy oracles
written from PyTorch's formulas, finite differences in float64, and (when installed) torch itself."""
import numpy as np
import pytest
from oracles_layers import bce_with_logits, cross_entropy, nll

from cnn_core import nn
from cnn_core.gradcheck import gradcheck

RNG = np.random.default_rng(0)
Z = RNG.standard_normal((7, 4)) * 3
Y = np.array([0, 3, 1, 1, -100, 2, 3])
W = np.array([0.5, 2.0, 1.0, 3.0])
CE_CASES = [dict(), dict(weight=W), dict(ignore_index=-100), dict(label_smoothing=0.2),
            dict(weight=W, label_smoothing=0.3), dict(weight=W, ignore_index=1, label_smoothing=0.1)]


def _labels(kw):
    y = Y.copy()
    if kw.get("ignore_index", -100) != -100:
        y[4] = 0  # only the chosen ignore_index (1) is ignored: rows 2 and 3
    return y


class _Scalar:
    """A 'none'-reduction loss as a scalar function sum(loss * g), whose gradient is backward(g)."""

    def __init__(self, crit, target, g):
        self.crit, self.target, self.g = crit, target, g

    def __call__(self, pred):
        return float(np.vdot(self.crit(pred, self.target), self.g))

    def backward(self):
        return self.crit.backward(self.g)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kw", CE_CASES, ids=lambda kw: ",".join(kw) or "plain")
def test_cross_entropy_matches_the_oracle_and_finite_differences(kw, reduction):
    y = _labels(kw)
    crit = nn.CrossEntropyLoss(reduction=reduction, **kw)
    out = crit(Z, y)
    ref = cross_entropy(Z, y, reduction=reduction, **kw)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-14)
    if reduction == "none":
        g = RNG.standard_normal(len(y))
        assert gradcheck(_Scalar(crit, y, g), (Z,))
        assert np.array_equal(crit.backward(), crit.backward(np.ones(len(y))))
    else:
        assert gradcheck(crit, (Z, y))
    ignored = y == kw.get("ignore_index", -100)
    assert not crit.backward()[ignored].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_losses_keep_their_dtype(dtype):
    crit = nn.CrossEntropyLoss(weight=W, label_smoothing=0.1, reduction="none")
    out = crit(Z.astype(dtype), _labels({}))
    assert out.dtype == dtype and crit.backward().dtype == dtype
    np.testing.assert_allclose(out, cross_entropy(Z, _labels({}), weight=W, label_smoothing=0.1, reduction="none"),
                               rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kw", [dict(), dict(weight=W), dict(weight=W, ignore_index=2)])
def test_nll_matches_the_oracle_and_finite_differences(kw, reduction):
    logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    y = np.where(Y == -100, 0, Y)
    crit = nn.NLLLoss(reduction=reduction, **kw)
    np.testing.assert_allclose(crit(logp, y), nll(logp, y, reduction=reduction, **kw), rtol=1e-12)
    if reduction == "none":
        assert gradcheck(_Scalar(crit, y, RNG.standard_normal(len(y))), (logp,))
    else:
        assert gradcheck(crit, (logp, y))


def test_cross_entropy_is_log_softmax_then_nll():
    y = np.where(Y == -100, 0, Y)
    ce = nn.CrossEntropyLoss(weight=W)(Z, y)
    nll_loss = nn.NLLLoss(weight=W)(nn.LogSoftmax(dim=1)(Z), y)
    assert ce == pytest.approx(nll_loss, rel=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kw", [dict(), dict(weight=np.array([1.0, 2.0, 0.5])), dict(pos_weight=np.array([3.0, 1.0, 0.2]))])
def test_bce_with_logits_matches_the_oracle_and_finite_differences(kw, reduction):
    x = RNG.standard_normal((5, 3)) * 4
    t = RNG.random((5, 3))
    crit = nn.BCEWithLogitsLoss(reduction=reduction, **kw)
    # the oracle's textbook log(1 - sigmoid(x)) loses about e^|x| ulps (|x| up to ~12 here: 1e-11 relative);
    # the stable form under test does not, so the tolerance is the oracle's error
    np.testing.assert_allclose(crit(x, t), bce_with_logits(x, t, reduction=reduction, **kw), rtol=1e-9)
    if reduction == "none":
        assert gradcheck(_Scalar(crit, t, RNG.standard_normal(x.shape)), (x,))
    else:
        assert gradcheck(crit, (x, t))


def test_bce_with_logits_is_stable_on_huge_logits():
    crit = nn.BCEWithLogitsLoss(reduction="none")
    out = crit(np.array([1000.0, -1000.0, 1000.0]), np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(out, [0.0, 0.0, 1000.0])
    np.testing.assert_allclose(crit.backward(), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("make,pred,target", [
    (nn.MSELoss, RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))),
    (nn.BCELoss, RNG.random((4, 3)) * 0.9 + 0.05, RNG.random((4, 3))),
    (nn.QuadraticLoss, RNG.standard_normal((4, 3)), np.array([0, 2, 1, 1])),
])
def test_old_losses_gain_reduction(make, pred, target):
    mean = make()(pred, target)
    none_crit = make(reduction="none")
    per = none_crit(pred, target)
    n = pred.size if make is not nn.QuadraticLoss else len(pred)
    assert per.shape == (pred.shape if make is not nn.QuadraticLoss else (4,))
    assert mean == pytest.approx(per.sum() / n, rel=1e-13)
    assert make(reduction="sum")(pred, target) == pytest.approx(per.sum(), rel=1e-13)
    assert gradcheck(_Scalar(none_crit, target, RNG.standard_normal(per.shape)), (pred,))
    sum_crit = make(reduction="sum")
    sum_crit(pred, target)
    none_crit(pred, target)  # gradcheck left it at a perturbed pred
    np.testing.assert_allclose(sum_crit.backward(2.0), 2 * none_crit.backward(), rtol=1e-14)


def test_backward_grad_is_checked():
    crit = nn.CrossEntropyLoss(reduction="none")
    crit(Z, np.zeros(7, int))
    with pytest.raises(ValueError, match=r"grad: expected the loss's shape \(7,\)"):
        crit.backward(np.ones(6))
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"weight: expected one weight per class, shape \(4,\)"):
        nn.CrossEntropyLoss(weight=np.ones(3))(Z, np.zeros(7, int))
    with pytest.raises(ValueError, match=r"labels in \[0, 4\) or ignore_index=-1"):
        nn.CrossEntropyLoss(ignore_index=-1)(Z, np.array([0, 1, 2, 3, -1, 4, 0]))


def test_every_target_ignored_gives_nan_as_pytorch():
    crit = nn.CrossEntropyLoss()
    assert np.isnan(crit(Z[:2], np.array([-100, -100])))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kw", CE_CASES, ids=lambda kw: ",".join(kw) or "plain")
def test_cross_entropy_matches_torch(kw, reduction):
    torch = pytest.importorskip("torch")
    y = _labels(kw)
    tkw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    zt = torch.tensor(Z, requires_grad=True)
    ref = torch.nn.CrossEntropyLoss(reduction=reduction, **tkw)(zt, torch.tensor(y))
    crit = nn.CrossEntropyLoss(reduction=reduction, **kw)
    np.testing.assert_allclose(crit(Z, y), ref.detach().numpy(), rtol=1e-12)
    g = RNG.standard_normal(len(y)) if reduction == "none" else None
    ref.backward(torch.tensor(g) if g is not None else None)
    np.testing.assert_allclose(crit.backward(g), zt.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_and_nll_match_torch(reduction):
    torch = pytest.importorskip("torch")
    x, t, pw = RNG.standard_normal((5, 3)) * 5, RNG.random((5, 3)), np.array([2.0, 0.5, 1.0])
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=torch.tensor(pw))(xt, torch.tensor(t))
    crit = nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=pw)
    np.testing.assert_allclose(crit(x, t), ref.detach().numpy(), rtol=1e-12)
    ref.sum().backward()
    np.testing.assert_allclose(crit.backward(np.ones_like(x) if reduction == "none" else None), xt.grad.numpy(),
                               rtol=1e-10, atol=1e-15)
    y = np.array([0, 2, 1, 1, 2])
    ref = torch.nn.NLLLoss(weight=torch.tensor(pw), reduction=reduction)(torch.tensor(x), torch.tensor(y))
    np.testing.assert_allclose(nn.NLLLoss(weight=pw, reduction=reduction)(x, y), ref.numpy(), rtol=1e-12)


def test_loss_options_after_weight_are_keyword_only_as_pytorch_has_deprecated_slots_there():
    with pytest.raises(TypeError):
        nn.CrossEntropyLoss(None, 3)
    with pytest.raises(TypeError):
        nn.MSELoss("sum")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_cross_entropy_counts_argmax_hits_as_numpy(dtype):
    """kernels/_loss.pyx's pass also counts the rows whose first maximal logit is at the label (NumPy's
    argmax, ties included: rows of equal logits, a maximum repeated later in the row), ignored rows and
    labels alike; CrossEntropyLoss keeps the count as _argmax_hits, and every call not through that pass
    (class weights, label smoothing) leaves None, not the last compiled call's count."""
    from cnn_core.kernels._loss import cross_entropy as compiled

    rng = np.random.default_rng(5)
    z = rng.integers(-2, 3, size=(200, 6)).astype(dtype)   # small integers: many ties
    z[:20] = 1                                              # whole rows tied: argmax 0
    y = rng.integers(0, 6, 200)
    y[::7] = -100
    want = int(np.count_nonzero(z.argmax(axis=1) == y))
    losses, local = np.empty(200, dtype), np.empty_like(z)
    assert compiled(z, y, -100, losses, local) == (int(np.count_nonzero(y != -100)), want)
    y[3] = 6
    assert compiled(z, y, -100, losses, local) == (-2, 0)
    z[1, 2] = np.nan
    assert compiled(z, y, -100, losses, local) == (-1, 0)
    z[1, 2] = 0
    with pytest.raises(TypeError, match="int64"):
        compiled(z, y.astype(np.int32), -100, losses, local)
    with pytest.raises(TypeError, match="one float dtype"):
        compiled(z, y, -100, losses.astype(np.float16), local)
    with pytest.raises(ValueError, match=r"local \(n, C\)"):
        compiled(z, y, -100, losses, local[:, :5].copy())
    with pytest.raises(ValueError, match="contiguous"):
        compiled(z[:, ::2], y, -100, losses, local[:, ::2].copy())

    crit = nn.CrossEntropyLoss()
    crit(z, np.where(y == 6, 0, y))
    assert crit._argmax_hits == int(np.count_nonzero(z.argmax(axis=1) == np.where(y == 6, 0, y)))
    for other in (nn.CrossEntropyLoss(weight=np.ones(6)), nn.CrossEntropyLoss(label_smoothing=0.1)):
        other(z, np.where(y == 6, 0, y))
        assert other._argmax_hits is None
    crit(z[:, :1].copy(), np.zeros(200, np.int64))
    assert crit._argmax_hits == 200
    crit(np.asfortranarray(z), np.where(y == 6, 0, y))     # NumPy's formulation: no count
    assert crit._argmax_hits is None
