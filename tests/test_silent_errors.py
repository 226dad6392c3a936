"""Issue 8, class 6 (silent wrong answers) and the optimizer part of class 4: each case used to return a wrong
result without a word; now it returns the right one or raises a clear error naming the argument.

Covered here: clip_grad_norm overflow, LinearSVM out-of-range C / huge features / overflowing solver,
predict/evaluate from several threads, layers caching their input for backward, and
Optimizer/LRScheduler.load_state_dict validation. (IDX labels and CLI predict scaling are tested elsewhere.)
"""
import math
import sys
import threading

import numpy as np
import pytest

from cnn_core import nn
from cnn_core.callbacks import Callback
from cnn_core.models import LinearSVM
from cnn_core.optim import SGD, Adam, Optimizer, StepLR, clip_grad_norm
from cnn_core.training import evaluate, fit, predict


class P:
    """Stand-in for nn.Parameter (the optimizers only need .data and .grad)."""

    def __init__(self, data):
        self.data = np.array(data)
        self.grad = np.zeros_like(self.data)


def grads_with(values, dtype):
    p = P(np.zeros(len(values), dtype=dtype))
    p.grad[...] = values
    return p


def norm64(params):
    """Reference global norm in float64 with numpy's own scaling-free path on float64 copies (exact enough
    for the magnitudes used with it: squares of up to 1e40 and down to 1e-60 are fine in float64)."""
    return math.sqrt(sum(float(np.sum(p.grad.astype(np.float64) ** 2)) for p in params))


# ---- clip_grad_norm ----------------------------------------------------------------------------------------

def test_clip_float32_gradients_of_1e20_give_the_true_norm_and_are_clipped():
    rng = np.random.default_rng(0)
    params = [grads_with(rng.standard_normal(n) * 1e20, np.float32) for n in (1000, 37, 5)]
    before = [p.grad.astype(np.float64) for p in params]
    want = norm64(params)
    total = clip_grad_norm(params, 1.0)
    assert math.isfinite(total)
    assert total == pytest.approx(want, rel=1e-6)
    assert norm64(params) == pytest.approx(1.0, rel=1e-5)
    for p, b in zip(params, before):  # same direction: every element scaled by one factor
        np.testing.assert_allclose(p.grad, b * (1.0 / want), rtol=1e-5)


def test_clip_float32_tiny_gradients_norm_does_not_underflow_to_zero():
    params = [grads_with([1e-30, -2e-30, 0.0, 2e-30], np.float32), grads_with([3e-25], np.float32)]
    before = [p.grad.copy() for p in params]
    assert clip_grad_norm(params, 1.0) == pytest.approx(norm64(params), rel=1e-6)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.grad, b)  # below max_norm: untouched


def test_clip_float64_norm_beyond_float_range_still_clips():
    a = grads_with(np.full(1000, 1e307), np.float64)
    b = grads_with(np.full(10, -1e307), np.float64)
    total = clip_grad_norm([a, b], 2.0)
    assert total == math.inf  # the true norm, 3.2e308, is not a float64
    g = np.concatenate([a.grad, b.grad])
    assert np.isfinite(g).all()
    assert np.linalg.norm(g) == pytest.approx(2.0, rel=1e-12)
    np.testing.assert_allclose(a.grad, 2.0 / math.sqrt(1010), rtol=1e-12)
    np.testing.assert_allclose(b.grad, -2.0 / math.sqrt(1010), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_ordinary_gradients_match_the_float64_formula(dtype):
    rng = np.random.default_rng(1)
    params = [grads_with(rng.standard_normal(n) * 3, dtype) for n in (50, 7)]
    before = [p.grad.astype(np.float64) for p in params]
    want = norm64(params)
    assert clip_grad_norm(params, 0.5) == pytest.approx(want, rel=1e-6)
    for p, b in zip(params, before):
        np.testing.assert_allclose(p.grad, b * 0.5 / (want + 1e-6), rtol=1e-6)


@pytest.mark.parametrize("values, want", [
    ([np.nan, 1.0], "nan"), ([np.inf, 1.0], "inf"), ([-np.inf, 1.0], "inf"), ([np.inf, np.nan], "nan"),
])
def test_clip_nonfinite_gradients_return_the_nonfinite_norm_untouched(values, want):
    params = [grads_with([5.0, 5.0], np.float64), grads_with(values, np.float32)]
    before = [p.grad.copy() for p in params]
    total = clip_grad_norm(params, 1.0)
    assert math.isnan(total) if want == "nan" else total == math.inf
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.grad, b)
    with pytest.raises(ValueError, match="params.*non-finite|params.*cannot be clipped"):
        clip_grad_norm(params, 1.0, error_if_nonfinite=True)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.grad, b)


def test_clip_error_if_nonfinite_must_be_a_bool():
    with pytest.raises(TypeError, match="error_if_nonfinite"):
        clip_grad_norm([grads_with([1.0], np.float64)], 1.0, error_if_nonfinite="yes")


def test_clip_error_if_nonfinite_allows_finite_gradients():
    p = grads_with([3.0, 4.0], np.float64)
    assert clip_grad_norm([p], 1.0, error_if_nonfinite=True) == pytest.approx(5.0)
    assert np.linalg.norm(p.grad) == pytest.approx(1.0, rel=1e-6)


# ---- LinearSVM -----------------------------------------------------------------------------------------

def svm_data(n=40, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)


@pytest.mark.parametrize("C", [1e-310, 5e-324, 1e-101, 1e101, 1e300, 0.0, -1.0, math.nan, math.inf])
def test_svm_C_outside_the_solver_range_is_refused(C):
    X, y = svm_data()
    with pytest.raises(ValueError, match=r"^C: "):
        LinearSVM(C=C).fit(X, y)


@pytest.mark.parametrize("C", [1e-100, 1e-30, 1.0, 1e30, 1e100])
def test_svm_C_range_edges_give_finite_coefficients(C):
    X, y = svm_data()
    m = LinearSVM(C=C, random_state=0).fit(X, y)
    assert np.isfinite(m.coef_).all() and np.isfinite(m.intercept_).all()
    assert np.isfinite(m.loss_curve_).all()


@pytest.mark.parametrize("scale", [1e154, 1e200, 1e307])
def test_svm_features_whose_squares_overflow_are_refused(scale):
    X, y = svm_data()
    with pytest.raises(ValueError, match=r"^X: .*squared norm.*rescale"):
        LinearSVM(random_state=0).fit(X * scale, y)


def test_svm_large_but_representable_features_still_fit():
    X, y = svm_data()
    m = LinearSVM(random_state=0).fit(X * 1e150, y)
    assert np.isfinite(m.coef_).all() and np.isfinite(m.intercept_).all()
    assert m.score(X * 1e150, y) == LinearSVM(random_state=0).fit(X, y).score(X, y) == 1.0


def test_svm_solver_overflow_raises_instead_of_returning_nan():
    X, y = svm_data()
    with pytest.raises(ValueError, match=r"overflowed.*lr"):
        LinearSVM(lr=1e300, random_state=0, solver="sgd").fit(X * 1e100, y)


@pytest.mark.parametrize("C, lr, scale", [(1e100, 1e300, 1.0), (1e-100, 1e300, 1e150), (1e100, 1.0, 1e150),
                                          (1.0, 1e200, 1e100), (1e100, 1e100, 1e100)])
def test_svm_fit_returns_finite_coefficients_or_raises(C, lr, scale):
    X, y = svm_data(n=30, d=4, seed=3)
    try:
        m = LinearSVM(C=C, lr=lr, max_epochs=20, random_state=0).fit(X * scale, y)
    except ValueError as e:
        assert any(k in str(e) for k in ("lr", "C", "X"))
    else:
        assert np.isfinite(m.coef_).all() and np.isfinite(m.intercept_).all()
        assert np.isfinite(m.loss_curve_).all()


# ---- predict / evaluate from several threads ---------------------------------------------------------------

def small_net(seed=1):
    return nn.Sequential(nn.Linear(8, 16, rng=seed), nn.ReLU(), nn.Linear(16, 3, rng=seed + 1))


@pytest.fixture
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to interleave the mode changes
    yield
    sys.setswitchinterval(old)


def hammer(n_threads, work):
    errors = []

    def run():
        try:
            work()
        except BaseException as e:  # reported in the main thread
            errors.append(e)
    threads = [threading.Thread(target=run) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_concurrent_predict_keeps_training_mode_and_results(fast_switching):
    model = small_net()
    X = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    want = predict(model, X, batch_size=8)
    model.train()
    outs = []

    def work():
        for _ in range(150):
            outs.append(predict(model, X, batch_size=8))
    hammer(8, work)
    assert [m.training for m in model.modules()] == [True] * 4
    assert len(outs) == 8 * 150
    for out in outs:
        np.testing.assert_array_equal(out, want)


def test_concurrent_predict_and_evaluate_restore_a_mixed_mode_exactly(fast_switching):
    model = small_net()
    X = np.random.default_rng(2).standard_normal((40, 8)).astype(np.float32)
    y = np.arange(40) % 3
    want_out = predict(model, X, batch_size=16)
    want_eval = evaluate(model, nn.CrossEntropyLoss(), X, y, batch_size=16)
    model.train()
    model[1].eval()  # a mix: the container and the Linear layers train, the ReLU is in eval mode
    modes = [m.training for m in model.modules()]
    assert modes == [True, True, False, True]

    def work():
        for i in range(60):
            if i % 2:
                np.testing.assert_array_equal(predict(model, X, batch_size=16), want_out)
            else:
                assert evaluate(model, nn.CrossEntropyLoss(), X, y, batch_size=16) == want_eval
    hammer(6, work)
    assert [m.training for m in model.modules()] == modes


class Gate(Callback):
    """Holds fit at its first batch until released, so another thread can act while fit owns the model."""

    def __init__(self):
        self.inside, self.release = threading.Event(), threading.Event()

    def on_batch_end(self, batch, logs):
        self.inside.set()
        assert self.release.wait(30)


def test_predict_from_another_thread_while_fit_trains_is_refused():
    model = small_net()
    X = np.random.default_rng(3).standard_normal((32, 8)).astype(np.float32)
    y = np.arange(32) % 3
    gate = Gate()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault(
        "h", fit(model, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=1, batch_size=8,
                 callbacks=[gate], validation_data=(X, y))))
    t.start()
    try:
        assert gate.inside.wait(30)
        with pytest.raises(RuntimeError, match="fit is training this model"):
            predict(model, X)
        assert model.training  # fit's train mode left alone
    finally:
        gate.release.set()
        t.join()
    h = result["h"]  # fit finished normally, its own validation pass included
    assert h.epoch == 1 and not h.interrupted and h.val_loss[0] is not None
    assert predict(model, X).shape == (32, 3)


class BlockingLinear(nn.Linear):
    """A Linear whose eval-mode forward waits until released, to hold a predict call inside the model."""

    def __init__(self):
        super().__init__(8, 3, rng=0)
        self.inside, self.release = threading.Event(), threading.Event()

    def forward(self, x):
        if not self.training and len(x) == 5:  # fit's own one-sample shape probe is not held
            self.inside.set()
            assert self.release.wait(30)
        return super().forward(x)


def test_fit_while_another_thread_predicts_is_refused():
    model = BlockingLinear().train()
    X = np.random.default_rng(4).standard_normal((5, 8)).astype(np.float32)
    t = threading.Thread(target=predict, args=(model, X))
    t.start()
    try:
        assert model.inside.wait(30)
        with pytest.raises(RuntimeError, match="fit needs it to itself"):
            fit(model, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X[:4], np.arange(4) % 3,
                epochs=1, batch_size=2)
        assert not model.training  # predict's eval mode left alone while it runs
    finally:
        model.release.set()
        t.join()
    assert model.training  # and the original mode back once it is done


# ---- layers must not see the caller changing their input before backward ------------------------------

def run_layer(make, x, dy_seed=0, mutate=False, backward_args=()):
    """forward, optionally change x in place, backward; returns (dx, parameter grads)."""
    layer = make()
    out = layer(x)
    main = out[0] if isinstance(out, tuple) else out
    dy = np.random.default_rng(dy_seed).standard_normal(main.shape).astype(x.dtype)
    if mutate:
        x *= -3.0
        x += 1.0
    dx = layer.backward(dy, *backward_args)
    return dx, [p.grad.copy() for p in layer.parameters()]


LAYERS = [
    ("linear", lambda: nn.Linear(5, 4, rng=0), (6, 5)),
    ("conv2d", lambda: nn.Conv2d(2, 3, 3, padding=1, rng=0), (2, 2, 5, 5)),
    ("conv2d 1x1", lambda: nn.Conv2d(2, 3, 1, rng=0), (2, 2, 4, 4)),
    ("maxpool", lambda: nn.MaxPool2d(2), (2, 3, 4, 4)),
    ("avgpool", lambda: nn.AvgPool2d(2), (2, 3, 4, 4)),
    ("relu", lambda: nn.ReLU(), (3, 7)),
    ("sigmoid", lambda: nn.Sigmoid(), (3, 7)),
    ("tanh", lambda: nn.Tanh(), (3, 7)),
    ("elu", lambda: nn.ELU(), (3, 7)),
    ("flatten", lambda: nn.Flatten(), (2, 3, 2, 2)),
    ("rnn", lambda: nn.RNN(4, 5, rng=0), (3, 6, 4)),
    ("rnn N=1", lambda: nn.RNN(4, 5, rng=0), (3, 1, 4)),       # time-major (T, N, D)
    ("rnn T=1", lambda: nn.RNN(4, 5, rng=0), (1, 6, 4)),
    ("rnn batch_first", lambda: nn.RNN(4, 5, batch_first=True, rng=0), (3, 6, 4)),
    ("lstm", lambda: nn.LSTM(4, 5, num_layers=2, rng=0), (3, 6, 4)),
    ("lstm T=1", lambda: nn.LSTM(4, 5, rng=0), (1, 6, 4)),
    ("gru", lambda: nn.GRU(4, 5, num_layers=2, rng=0), (3, 6, 4)),
    ("gru N=1 batch_first", lambda: nn.GRU(4, 5, batch_first=True, rng=0), (1, 6, 4)),
    ("flatten+linear", lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 4, rng=0)), (2, 3, 2, 2)),
    ("mlp", lambda: nn.Sequential(nn.Linear(5, 6, rng=0), nn.Tanh(), nn.Linear(6, 2, rng=1)), (4, 5)),
]


@pytest.mark.parametrize("name, make, shape", LAYERS, ids=[c[0] for c in LAYERS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_changing_the_input_in_place_before_backward_changes_no_gradient(name, make, shape, dtype):
    x0 = np.random.default_rng(5).standard_normal(shape).astype(dtype)
    dx_ref, grads_ref = run_layer(lambda: make().to(dtype), x0.copy())
    x = x0.copy()
    dx, grads = run_layer(lambda: make().to(dtype), x, mutate=True)
    assert not np.array_equal(x, x0)  # the caller's array really changed
    np.testing.assert_array_equal(dx, dx_ref)
    assert len(grads) == len(grads_ref)
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_array_equal(g, g_ref)


def test_linear_strided_input_changed_in_place_changes_no_gradient():
    x0 = np.random.default_rng(6).standard_normal((5, 6)).astype(np.float32)
    dx_ref, g_ref = run_layer(lambda: nn.Linear(5, 3, rng=0), x0.T.copy())
    x = x0.copy()
    dx, g = run_layer(lambda: nn.Linear(5, 3, rng=0), x.T, mutate=True)  # a transposed view of x
    np.testing.assert_array_equal(dx, dx_ref)
    for a, b in zip(g, g_ref):
        np.testing.assert_array_equal(a, b)


def test_linear_keeps_no_copy_in_eval_mode():
    layer = nn.Linear(5, 3, rng=0).eval()
    layer(np.ones((2, 5), np.float32))
    assert layer._a_prev is None


@pytest.mark.parametrize("loss, pred, target", [
    (nn.CrossEntropyLoss, lambda r: r.standard_normal((4, 3)), lambda r: np.array([0, 2, 1, 2])),
    (nn.MSELoss, lambda r: r.standard_normal((4, 3)), lambda r: r.standard_normal((4, 3))),
    (nn.BCELoss, lambda r: r.uniform(0.1, 0.9, (4, 3)), lambda r: r.uniform(0, 1, (4, 3))),
    (nn.QuadraticLoss, lambda r: r.standard_normal((4, 3)), lambda r: np.array([0, 2, 1, 2])),
])
def test_losses_changing_pred_or_target_after_the_loss_changes_no_gradient(loss, pred, target):
    r = np.random.default_rng(7)
    p0, t0 = pred(r), target(r)
    crit = loss()
    crit(p0.copy(), t0.copy())
    want = crit.backward().copy()
    p, t = p0.copy(), t0.copy()
    crit = loss()
    crit(p, t)
    p *= 0.5
    t[...] = t[::-1].copy()
    np.testing.assert_array_equal(crit.backward(), want)


# ---- Optimizer.load_state_dict -----------------------------------------------------------------------------

def sgd():
    p = P(np.array([1.0, -2.0], dtype=np.float32))
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad[...] = [0.5, 0.25]
    opt.step()
    return opt


def adam():
    p = P(np.array([1.0, -2.0], dtype=np.float32))
    opt = Adam([p], lr=0.01)
    p.grad[...] = [0.5, 0.25]
    opt.step()
    return opt


def edit(sd, path, value):
    """state_dict with the entry at `path` (a tuple of keys) replaced, or deleted when value is DELETE."""
    target = sd
    for k in path[:-1]:
        target = target[k]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return sd


class _Delete:
    def __repr__(self):  # a stable test id
        return "DELETE"


DELETE = _Delete()

BAD_STATE = [
    # (optimizer, path, value, exception, the message must contain)
    (sgd, ("param_groups", 0, "lr"), math.nan, ValueError, "state_dict['param_groups'][0]['lr']"),
    (sgd, ("param_groups", 0, "lr"), "0.1", TypeError, "state_dict['param_groups'][0]['lr']"),
    (sgd, ("param_groups", 0, "lr"), -0.1, ValueError, "state_dict['param_groups'][0]['lr']"),
    (sgd, ("param_groups", 0, "lr"), math.inf, ValueError, "state_dict['param_groups'][0]['lr']"),
    (sgd, ("param_groups", 0, "lr"), None, TypeError, "state_dict['param_groups'][0]['lr']"),
    (sgd, ("param_groups", 0, "momentum"), -0.5, ValueError, "state_dict['param_groups'][0]['momentum']"),
    (sgd, ("param_groups", 0, "weight_decay"), math.nan, ValueError, "state_dict['param_groups'][0]['weight_decay']"),
    (sgd, ("param_groups", 0, "nesterov"), "yes", TypeError, "state_dict['param_groups'][0]['nesterov']"),
    (sgd, ("param_groups", 0, "momentum"), DELETE, ValueError, "state_dict['param_groups'][0]"),
    (sgd, ("param_groups", 0, "extra"), 1.0, ValueError, "state_dict['param_groups'][0]"),
    (sgd, ("param_groups", 0), [0.1], TypeError, "state_dict['param_groups'][0]"),
    (sgd, ("param_groups",), [], ValueError, "state_dict['param_groups']"),
    (sgd, ("param_groups", 0, "params"), [0, 1], ValueError, "state_dict['param_groups'][0]['params']"),
    (sgd, ("state",), [], TypeError, "state_dict['state']"),
    (sgd, ("state", 7), {}, ValueError, "state_dict['state']"),
    (sgd, ("state", 0), "buf", TypeError, "state_dict['state'][0]"),
    (sgd, ("state", 0, "momentum_buffer"), np.zeros(3, np.float32), ValueError, "'momentum_buffer'"),
    (sgd, ("state", 0, "momentum_buffer"), np.zeros(2, np.int64), TypeError, "'momentum_buffer'"),
    (sgd, ("state", 0, "momentum_buffer"), [0.0, 1.0], TypeError, "'momentum_buffer'"),
    (sgd, ("state", 0, "momentum_buffer"), np.array([np.nan, 0], np.float32), ValueError, "'momentum_buffer'"),
    (sgd, ("state", 0, "momentum_buffer"), np.array([1e300, 0]), ValueError, "after the cast"),
    (sgd, ("state", 0, "velocity"), np.zeros(2, np.float32), ValueError, "state_dict['state'][0]"),
    (adam, ("param_groups", 0, "betas"), (1.0, 0.999), ValueError, "state_dict['param_groups'][0]['betas'][0]"),
    (adam, ("param_groups", 0, "betas"), (0.9, math.nan), ValueError, "state_dict['param_groups'][0]['betas'][1]"),
    (adam, ("param_groups", 0, "betas"), 0.9, TypeError, "state_dict['param_groups'][0]['betas']"),
    (adam, ("param_groups", 0, "eps"), "1e-8", TypeError, "state_dict['param_groups'][0]['eps']"),
    (adam, ("param_groups", 0, "eps"), -1e-8, ValueError, "state_dict['param_groups'][0]['eps']"),
    (adam, ("state", 0, "step"), -1, ValueError, "'step'"),
    (adam, ("state", 0, "step"), 1.5, TypeError, "'step'"),
    (adam, ("state", 0, "step"), True, TypeError, "'step'"),
    (adam, ("state", 0, "exp_avg_sq"), np.array([-1.0, 0.0], np.float32), ValueError, "'exp_avg_sq'"),
    (adam, ("state", 0, "exp_avg"), np.array([np.inf, 0.0], np.float32), ValueError, "'exp_avg'"),
    (adam, ("state", 0, "exp_avg"), DELETE, ValueError, "state_dict['state'][0]"),
]


@pytest.mark.parametrize("make, path, value, exc, where", BAD_STATE,
                         ids=[f"{m.__name__}-{'.'.join(map(str, p))}-{v!r:.20}" for m, p, v, *_ in BAD_STATE])
def test_load_state_dict_refuses_bad_entries_and_changes_nothing(make, path, value, exc, where):
    opt = make()
    good = opt.state_dict()
    sd = edit(opt.state_dict(), path, value)
    with pytest.raises(exc) as info:
        opt.load_state_dict(sd)
    assert where in str(info.value)
    after = opt.state_dict()
    assert after["param_groups"] == good["param_groups"]
    assert after["state"].keys() == good["state"].keys()
    for i, s in after["state"].items():
        g = good["state"][i]
        assert s.keys() == g.keys()
        for k in s:
            np.testing.assert_array_equal(s[k], g[k])


@pytest.mark.parametrize("sd, exc", [(None, TypeError), ([], TypeError), ({"param_groups": []}, ValueError),
                                     ({"param_groups": [], "state": {}, "x": 1}, ValueError)])
def test_load_state_dict_refuses_a_malformed_container(sd, exc):
    with pytest.raises(exc, match="state_dict"):
        sgd().load_state_dict(sd)


def test_load_state_dict_nesterov_without_momentum_is_refused_as_in_the_constructor():
    opt = SGD([P(np.zeros(2))], lr=0.1, momentum=0.9, nesterov=True)
    sd = opt.state_dict()
    sd["param_groups"][0]["momentum"] = 0.0
    with pytest.raises(ValueError, match=r"state_dict\['param_groups'\]\[0\]\['nesterov'\].*momentum"):
        opt.load_state_dict(sd)


def test_load_state_dict_casts_state_to_the_parameter_dtype_and_continues_identically():
    a, b = adam(), adam()
    sd = a.state_dict()
    sd["state"][0] = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else np.int64(v))
                      for k, v in sd["state"][0].items()}
    b.load_state_dict(sd)
    state = b.state[b.params[0]]
    assert state["exp_avg"].dtype == np.float32 and type(state["step"]) is int
    for opt in (a, b):
        opt.params[0].grad[...] = [-0.5, 1.0]
        opt.step()
    np.testing.assert_array_equal(a.params[0].data, b.params[0].data)


def test_load_state_dict_empty_state_before_the_first_step_is_accepted():
    opt = Adam([P(np.zeros(2))], lr=0.1)
    fresh = Adam([P(np.zeros(2))], lr=0.5)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.lr == 0.1 and fresh.state == {}


@pytest.mark.parametrize("key, value, exc", [("base_lrs", [math.nan], ValueError), ("_last_lr", ["0.1"], TypeError),
                                             ("base_lrs", 0.1, ValueError), ("last_epoch", -1, ValueError),
                                             ("last_epoch", 2.0, TypeError)])
def test_scheduler_load_state_dict_validates_every_key(key, value, exc):
    sched = StepLR(SGD([P(np.zeros(2))], lr=0.1), step_size=2)
    sched.step()
    good = sched.state_dict()
    sd = dict(good, **{key: value})
    with pytest.raises(exc, match=rf"state_dict\['{key}'\]"):
        sched.load_state_dict(sd)
    assert sched.state_dict() == good


def test_load_state_dict_of_a_subclass_with_its_own_unchecked_hyperparameter_restores_it():
    class Scaled(SGD):
        def __init__(self, params, lr, scale=1.0):
            Optimizer.__init__(self, params, dict(lr=lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                                                  nesterov=False, scale=scale))
    a, b = Scaled([P(np.zeros(2))], lr=0.1, scale=3.0), Scaled([P(np.zeros(2))], lr=0.5)
    b.load_state_dict(a.state_dict())
    assert (b.lr, b.scale, b.param_groups[0]["scale"]) == (0.1, 3.0, 3.0)
    sd = a.state_dict()
    sd["param_groups"][0]["lr"] = math.nan  # the base class's keys are still checked
    with pytest.raises(ValueError, match=r"state_dict\['param_groups'\]\[0\]\['lr'\]"):
        b.load_state_dict(sd)
