"""BatchNorm1d/2d and the compiled batch-norm kernels: against the NumPy oracle (forward, the chain-rule
backward), finite differences in float64 in train and eval mode, running statistics as PyTorch keeps them,
and argument errors. Optional comparison with torch."""
import numpy as np
import pytest
from oracles_layers import batch_norm_backward, batch_norm_eval, batch_norm_train

import cnn_core
from cnn_core import nn
from cnn_core.gradcheck import gradcheck
from cnn_core.kernels.norm import batch_norm_backward as kernel_backward
from cnn_core.kernels.norm import batch_norm_forward as kernel_forward

TOL = {np.float32: 2e-5, np.float64: 1e-12}
SHAPES = [(5, 3), (4, 6, 7), (3, 4, 5, 6), (1, 2, 3, 3), (7, 1, 1, 1), (2, 33, 2, 2)]


def rand(shape, seed=0, loc=0.0, scale=1.0):
    return np.random.default_rng(seed).normal(loc, scale, shape)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_kernel_forward_and_backward_match_the_oracle(shape, dtype, threads, num_threads):
    num_threads(threads)
    c = shape[1]
    x = rand(shape, 1, loc=3.0, scale=2.0).astype(dtype)
    gamma, beta = rand(c, 2).astype(dtype), rand(c, 3).astype(dtype)
    dy = rand(shape, 4).astype(dtype)
    y, mean, var, invstd = kernel_forward(x, gamma, beta, 1e-5)
    y_ref, mean_ref, var_ref = batch_norm_train(x, gamma, beta, 1e-5)
    tol = TOL[dtype]
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(mean, mean_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(var, var_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(var_ref + 1e-5), rtol=tol)
    dx, dgamma, dbeta = kernel_backward(x, dy, mean, invstd, gamma)
    dx_ref, dgamma_ref, dbeta_ref = batch_norm_backward(x, dy, gamma, 1e-5)
    scale = np.abs(dx_ref).max() + 1
    np.testing.assert_allclose(dx, dx_ref, rtol=tol * 10, atol=tol * 10 * scale)
    np.testing.assert_allclose(dgamma, dgamma_ref, rtol=tol * 10, atol=tol * 10 * np.sqrt(x.size))
    np.testing.assert_allclose(dbeta, dbeta_ref, rtol=tol * 10, atol=tol * 10 * np.sqrt(x.size))


def test_kernel_eval_mode_matches_the_oracle_and_finite_differences():
    x, dy = rand((4, 3, 5), 1), rand((4, 3, 5), 2)
    rm, rv = rand(3, 3), np.abs(rand(3, 4)) + 0.5
    gamma, beta = rand(3, 5), rand(3, 6)
    y, invstd = kernel_forward(x, gamma, beta, 1e-5, rm, rv)
    np.testing.assert_allclose(y, batch_norm_eval(x, rm, rv, gamma, beta, 1e-5), rtol=1e-12, atol=1e-12)

    class EvalBN:
        """The eval-mode normalization as a function of x (running statistics constant), for gradcheck."""

        def __call__(self, x):
            self.x = x
            return float(np.vdot(kernel_forward(x, gamma, beta, 1e-5, rm, rv)[0], dy))

        def backward(self):
            return kernel_backward(self.x, dy, rm, invstd, gamma, batch_stats=False)[0]

    assert gradcheck(EvalBN(), (x,))


@pytest.mark.parametrize("cls,shape", [(nn.BatchNorm1d, (6, 4)), (nn.BatchNorm1d, (3, 4, 5)),
                                       (nn.BatchNorm2d, (3, 4, 3, 2))])
@pytest.mark.parametrize("affine", [True, False])
def test_train_mode_backward_passes_finite_differences(cls, shape, affine):
    bn = cls(shape[1], affine=affine, dtype=np.float64)
    if affine:
        bn.weight.data[:] = rand(shape[1], 7) + 1
        bn.bias.data[:] = rand(shape[1], 8)
    assert gradcheck(bn, (rand(shape, 9, loc=1.0, scale=3.0),))


def test_running_statistics_follow_pytorchs_update():
    bn = nn.BatchNorm2d(3, momentum=0.2, dtype=np.float64)
    rm, rv = np.zeros(3), np.ones(3)
    for step in range(3):
        x = rand((4, 3, 2, 5), step, loc=step, scale=step + 1)
        bn(x)
        v = np.moveaxis(x, 1, 0).reshape(3, -1)
        rm = 0.8 * rm + 0.2 * v.mean(axis=1)
        rv = 0.8 * rv + 0.2 * v.var(axis=1, ddof=1)  # unbiased for the running variance
    np.testing.assert_allclose(bn.running_mean, rm, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, rv, rtol=1e-12)
    assert bn.num_batches_tracked == 3 and bn.num_batches_tracked.dtype == np.int64
    bn.eval()
    x = rand((2, 3, 2, 2), 9)
    np.testing.assert_allclose(bn(x), batch_norm_eval(x, rm, rv, np.ones(3), np.zeros(3), 1e-5), rtol=1e-12)


def test_momentum_none_is_the_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None, dtype=np.float64)
    xs = [rand((5, 2), s, loc=s) for s in range(4)]
    for x in xs:
        bn(x)
    np.testing.assert_allclose(bn.running_mean, np.mean([x.mean(axis=0) for x in xs], axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, np.mean([x.var(axis=0, ddof=1) for x in xs], axis=0), rtol=1e-12)


def test_without_running_stats_eval_uses_the_batch_and_there_are_no_buffers():
    bn = nn.BatchNorm1d(3, track_running_stats=False, dtype=np.float64).eval()
    x = rand((6, 3), 1, loc=4.0)
    np.testing.assert_allclose(bn(x), batch_norm_train(x, np.ones(3), np.zeros(3), 1e-5)[0], rtol=1e-12)
    assert bn.running_mean is None and sorted(bn.state_dict()) == ["bias", "weight"]


def test_buffers_are_state_not_parameters():
    bn = nn.BatchNorm2d(4)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    bn.to(np.float64)
    assert bn.running_mean.dtype == bn.running_var.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64


def test_eval_mode_keeps_no_cache_and_input_grad_false_skips_dx():
    bn = nn.BatchNorm1d(2, dtype=np.float64)
    bn.eval()(rand((4, 2)))
    with pytest.raises(RuntimeError, match="eval mode"):
        bn.backward(rand((4, 2)))
    bn.train()
    bn.input_grad = False
    bn(rand((4, 2)))
    assert bn.backward(rand((4, 2), 1)) is None and np.abs(bn.weight.grad).sum() > 0


@pytest.mark.parametrize("make,x,match", [
    (lambda: nn.BatchNorm2d(3), np.ones((2, 4, 3, 3), np.float32), "num_features"),
    (lambda: nn.BatchNorm1d(3), np.ones((2, 4), np.float32), "num_features"),
    (lambda: nn.BatchNorm2d(3), np.ones((2, 3, 3), np.float32), "4-D"),
    (lambda: nn.BatchNorm1d(3), np.ones((1, 3), np.float32), "more than 1 value per channel"),
])
def test_bad_inputs_raise_value_error(make, x, match):
    with pytest.raises(ValueError, match=match):
        make()(x)


@pytest.mark.parametrize("kwargs,name", [({"num_features": 0}, "num_features"), ({"eps": 0.0}, "eps"),
                                          ({"momentum": 1.5}, "momentum"), ({"momentum": -0.1}, "momentum")])
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    args = {"num_features": 3, **kwargs}
    with pytest.raises(ValueError, match=name):
        nn.BatchNorm1d(**args)


def test_a_model_with_batchnorm_saves_and_loads_its_buffers(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 3, 3, rng=0), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(12, 2, rng=1))
    for s in range(3):
        model(rand((4, 1, 4, 4), s, loc=2.0).astype(np.float32))
    cnn_core.save(model, tmp_path / "bn.npz")
    back = cnn_core.load(tmp_path / "bn.npz")
    for (k, v), (k2, v2) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and v.dtype == v2.dtype and v.tobytes() == v2.tobytes()
    x = rand((2, 1, 4, 4), 7).astype(np.float32)
    assert np.array_equal(model.eval()(x), back.eval()(x))



@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (8, 5)), ("BatchNorm1d", (4, 5, 6)), ("BatchNorm2d", (4, 5, 3, 3))])
def test_matches_torch(cls, shape):
    torch = pytest.importorskip("torch")
    ours = getattr(nn, cls)(shape[1], momentum=0.3, dtype=np.float64)
    ours.weight.data[:] = rand(shape[1], 1)
    ours.bias.data[:] = rand(shape[1], 2)
    theirs = getattr(torch.nn, cls)(shape[1], momentum=0.3, dtype=torch.float64)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    for step in range(2):
        x = rand(shape, 10 + step, loc=1.0, scale=2.0)
        xt = torch.tensor(x, requires_grad=True)
        y, yt = ours(x), theirs(xt)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        dy = rand(shape, 20 + step)
        ours.zero_grad()
        theirs.zero_grad()
        dx = ours.backward(dy)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), rtol=1e-12)
    ours.eval()
    theirs.eval()
    x = rand(shape, 30)
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12, atol=1e-12)


def test_threads_give_bitwise_the_serial_result(num_threads):
    """Each channel is one thread's whole task, so the team size cannot change a bit; repeated to catch a
    race on per-channel temporaries (an earlier version shared them between threads)."""
    x = rand((8, 64, 5, 5), 1, loc=2.0).astype(np.float32)
    dy = rand(x.shape, 2).astype(np.float32)
    gamma, beta = rand(64, 3).astype(np.float32), rand(64, 4).astype(np.float32)
    num_threads(1)
    y1, m1, v1, s1 = kernel_forward(x, gamma, beta)
    g1 = kernel_backward(x, dy, m1, s1, gamma)
    num_threads(2)
    for _ in range(20):
        y2, m2, v2, s2 = kernel_forward(x, gamma, beta)
        g2 = kernel_backward(x, dy, m2, s2, gamma)
        assert y1.tobytes() == y2.tobytes() and m1.tobytes() == m2.tobytes() and v1.tobytes() == v2.tobytes()
        assert all(a.tobytes() == b.tobytes() for a, b in zip(g1, g2))


@pytest.mark.parametrize("edit,match", [
    (lambda a: a.update({"buffer.1.running_var": np.array([1.0, np.nan, 1.0], np.float32)}), "NaN"),
    (lambda a: a.pop("buffer.1.running_mean"), "missing"),
    (lambda a: a.update({"buffer.1.num_batches_tracked": np.array(2.5)}), "integer values"),
    (lambda a: a.update({"buffer.1.running_mean": np.zeros(4, np.float32)}), "shape"),
])
def test_a_file_with_bad_buffers_is_refused(tmp_path, edit, match):
    model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.BatchNorm1d(3))
    cnn_core.save(model, tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz") as f:
        arrays = {k: f[k] for k in f.files}
    edit(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        cnn_core.load(tmp_path / "bad.npz")
