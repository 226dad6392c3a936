"""fit / evaluate / predict: learning, reproducibility, figures, callbacks, divergence, Ctrl-C, bad input."""
import numpy as np
import pytest

from cnn_core.callbacks import Callback, History
from cnn_core import nn
from cnn_core.nn import (BCELoss, CrossEntropyLoss, Linear, Module, MSELoss, QuadraticLoss, Sequential,
                         Sigmoid)
from cnn_core.optim import SGD, Adam
from cnn_core.training import EvalResult, NonFiniteLossError, evaluate, fit, predict
from toy_data import blobs, mlp, states_equal


class Recorder(Callback):
    """Records every hook call and what it was given."""

    def __init__(self, model=None):
        self.calls, self.batch_logs, self.epoch_logs, self.model = [], [], [], model
        self.after_step, self.at_epoch_end, self.modes = [], [], []

    def on_train_begin(self, info):
        self.calls.append("train_begin")
        self.info = info

    def on_epoch_begin(self, epoch, info):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs):
        self.calls.append(("batch_end", logs["epoch"], batch))
        self.batch_logs.append(dict(logs))
        if self.model is not None:
            self.after_step.append(self.model.state_dict())
            self.modes.append(self.model.training)

    def on_epoch_end(self, epoch, logs):
        self.calls.append(("epoch_end", epoch))
        self.epoch_logs.append(dict(logs))
        if self.model is not None:
            self.at_epoch_end.append(self.model.state_dict())

    def on_train_end(self, history):
        self.calls.append("train_end")
        self.history = history


# ---- learning and reproducibility ---------------------------------------------------------------------

def test_fit_lowers_the_loss_and_learns():
    X, y = blobs()
    model = mlp()
    before = evaluate(model, CrossEntropyLoss(), X, y)
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1, momentum=0.9), X, y,
               epochs=8, batch_size=16, seed=0)
    after = evaluate(model, CrossEntropyLoss(), X, y)
    assert hist.epoch == 8 and not hist.interrupted
    assert hist.train_loss[-1] < 0.5 * hist.train_loss[0]
    assert after.loss < 0.5 * before.loss
    assert after.accuracy >= 0.95


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_is_bit_reproducible_with_a_seed(dtype):
    X, y = blobs(dtype=dtype)
    runs = []
    for _ in range(2):
        model = mlp(dtype)
        hist = fit(model, CrossEntropyLoss(), Adam(model.parameters(), lr=0.01), X, y, epochs=3, batch_size=10,
                   validation_data=(X[:30], y[:30]), seed=7)
        runs.append((model.state_dict(), hist))
    assert states_equal(runs[0][0], runs[1][0])
    for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert getattr(runs[0][1], k) == getattr(runs[1][1], k)
    model = mlp(dtype)
    fit(model, CrossEntropyLoss(), Adam(model.parameters(), lr=0.01), X, y, epochs=3, batch_size=10, seed=8)
    assert not states_equal(runs[0][0], model.state_dict())  # the seed does drive the shuffle


class SeenRows(Module):
    """A Linear that records, in train mode, which rows (X[:, 0] holds the row number) each batch held."""

    def __init__(self):
        super().__init__()
        self.lin = Linear(1, 2, rng=np.random.default_rng(0))
        self.seen = []

    def forward(self, x):
        if self.training:
            self.seen.append(x[:, 0].astype(int).tolist())
        return self.lin(x)

    def backward(self, dy):
        return self.lin.backward(dy)


@pytest.mark.parametrize("shuffle", [True, False])
def test_one_permutation_per_epoch(shuffle):
    n, bs, epochs = 23, 5, 3
    X = np.arange(n, dtype=np.float32).reshape(n, 1)
    model = SeenRows()
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.0), X, np.zeros(n, dtype=int), epochs, bs,
        shuffle=shuffle, seed=3)
    assert [len(b) for b in model.seen] == [5, 5, 5, 5, 3] * epochs
    orders = [sum(model.seen[e * 5:(e + 1) * 5], []) for e in range(epochs)]
    for epoch, order in enumerate(orders):
        assert sorted(order) == list(range(n))  # every sample exactly once: no sampling with replacement
        # epoch e's order comes from default_rng([seed, e]) alone, so a resumed run can replay any epoch
        want = np.random.default_rng([3, epoch]).permutation(n).tolist() if shuffle else list(range(n))
        assert order == want


# ---- figures ---------------------------------------------------------------------------------------------

def test_history_figures_and_validation():
    X, y = blobs(100)
    Xv, yv = blobs(40, seed=1)
    model = mlp()
    rec = Recorder()
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=2, batch_size=32,
               validation_data=(Xv, yv), seed=0, callbacks=[rec])
    assert isinstance(hist, History) and hist.epoch == 2
    assert set(hist.history) == {"train_loss", "train_acc", "val_loss", "val_acc", "seconds", "samples_per_sec"}
    assert all(len(v) == 2 for v in hist.history.values())
    # Validation after the last epoch is exactly evaluate() on the final weights.
    assert tuple(evaluate(model, CrossEntropyLoss(), Xv, yv)) == (hist.val_loss[-1], hist.val_acc[-1])
    # train_loss is the size-weighted mean of the epoch's batch losses; train_acc in [0, 1].
    for e in range(2):
        logs = [l for l in rec.batch_logs if l["epoch"] == e]
        assert [l["size"] for l in logs] == [32, 32, 32, 4]
        assert hist.train_loss[e] == pytest.approx(sum(l["loss"] * l["size"] for l in logs) / 100, rel=1e-12)
        assert logs[-1]["running_loss"] == pytest.approx(hist.train_loss[e], rel=1e-12)
        assert logs[-1]["running_acc"] == hist.train_acc[e]
        assert 0.0 <= hist.train_acc[e] <= 1.0
    assert all(s > 0 for s in hist.seconds) and all(r > 0 for r in hist.samples_per_sec)
    assert rec.epoch_logs[-1]["val_loss"] == hist.val_loss[-1]


def test_no_validation_gives_none():
    X, y = blobs(20)
    model = mlp()
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=2, batch_size=8, seed=0)
    assert hist.val_loss == [None, None] and hist.val_acc == [None, None]


def test_epochs_zero_changes_nothing():
    X, y = blobs(20)
    model = mlp()
    before = model.state_dict()
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=0, batch_size=8)
    assert hist.epoch == 0 and hist.train_loss == []
    assert states_equal(before, model.state_dict())


def test_callbacks_called_the_right_number_of_times():
    X, y = blobs(50)
    model = mlp()
    rec = Recorder()
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=3, batch_size=16,
               validation_data=(X, y), callbacks=[rec, Callback()], seed=0)
    expected = ["train_begin"]
    for e in range(3):
        expected += [("epoch_begin", e)] + [("batch_end", e, b) for b in range(4)] + [("epoch_end", e)]
    assert rec.calls == expected + ["train_end"]
    assert rec.info == {"epochs": 3, "batches": 4, "samples": 50, "batch_size": 16, "val_samples": 50,
                        "initial_epoch": 0}
    assert [l["samples"] for l in rec.batch_logs[:4]] == [16, 32, 48, 50]
    assert all(l["batches"] == 4 and l["samples_per_sec"] >= 0 for l in rec.batch_logs)
    assert rec.history is hist


# ---- accuracy for each kind of target --------------------------------------------------------------------

def test_one_hot_targets_score_like_labels():
    X, y = blobs(60)
    onehot = np.eye(2, dtype=np.float32)[y]
    model = mlp()
    fit(model, QuadraticLoss(), SGD(model.parameters(), lr=0.5), X, onehot, epochs=3, batch_size=10, seed=0)
    acc = float(np.mean(predict(model, X).argmax(axis=1) == y))
    assert evaluate(model, QuadraticLoss(), X, onehot).accuracy == acc
    assert evaluate(model, QuadraticLoss(), X, y).accuracy == acc


def test_real_targets_have_no_accuracy():
    X, _ = blobs(30)
    target = np.stack([X.sum(axis=1), X[:, 0] - X[:, 1]], axis=1).astype(np.float32)
    model = mlp()
    hist = fit(model, MSELoss(), SGD(model.parameters(), lr=0.05), X, target, epochs=2, batch_size=8, seed=0)
    assert hist.train_acc == [None, None]
    res = evaluate(model, MSELoss(), X, target)
    assert res.accuracy is None
    assert res.loss == pytest.approx(float(np.mean((predict(model, X) - target) ** 2)), rel=1e-5)


def test_single_sigmoid_output_thresholds_at_half():
    X, y = blobs(60)
    rng = np.random.default_rng(0)
    model = Sequential(Linear(2, 1, rng=rng), Sigmoid())
    t = y.astype(np.float32)[:, None]
    fit(model, BCELoss(), SGD(model.parameters(), lr=0.5), X, t, epochs=2, batch_size=10, seed=0)
    res = evaluate(model, BCELoss(), X, t)
    assert isinstance(res, EvalResult)
    assert res.accuracy == float(np.mean((predict(model, X)[:, 0] > 0.5) == y))
    assert evaluate(model, BCELoss(), X, t[:, 0]) == res  # (N,) targets for a single output
    assert evaluate(model, BCELoss(), X, y) == res  # integer 0/1 labels for a single output


# ---- modes, predict, dtypes ------------------------------------------------------------------------------

def test_modes_during_and_after():
    X, y = blobs(20)
    model = mlp()
    model.eval()
    rec = Recorder(model)
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=1, batch_size=8,
        callbacks=[rec], validation_data=(X, y))
    assert rec.modes == [True, True, True]  # trained in train mode
    assert model.training is False  # previous mode restored
    model.train()
    predict(model, X)
    evaluate(model, CrossEntropyLoss(), X, y)
    assert model.training is True


def test_predict_stacks_batches():
    X, _ = blobs(37, dtype=np.float64)
    model = mlp(np.float64)
    whole = model.eval()(X)
    model.train()
    out = predict(model, X, batch_size=5)
    assert out.shape == (37, 2) and out.dtype == np.float64
    # Row results do not depend on the batch a row was in, up to the GEMM's summation order.
    np.testing.assert_allclose(out, whole, rtol=1e-12, atol=1e-12)


def test_float_inputs_are_cast_to_the_model_dtype():
    X, y = blobs(30, dtype=np.float64)
    model = mlp(np.float32)
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=1, batch_size=8)
    assert hist.epoch == 1
    assert predict(model, X).dtype == np.float32


# ---- divergence ------------------------------------------------------------------------------------------

class NaNOnCall(CrossEntropyLoss):
    """CrossEntropyLoss that reports NaN on its k-th call."""

    def __init__(self, k):
        super().__init__()
        self.k, self.calls = k, 0

    def forward(self, pred, target):
        self.calls += 1
        value = super().forward(pred, target)
        return float("nan") if self.calls == self.k else value


def test_non_finite_loss_names_epoch_and_batch_and_keeps_last_good_weights():
    X, y = blobs(40)
    model = mlp()
    rec = Recorder(model)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 2/3, batch 2/4") as info:
        fit(model, NaNOnCall(6), SGD(model.parameters(), lr=0.1, momentum=0.9), X, y, epochs=3, batch_size=10,
            seed=0, callbacks=[rec])
    assert isinstance(info.value, FloatingPointError)
    assert (info.value.epoch, info.value.batch) == (1, 1)
    assert len(rec.after_step) == 5
    assert states_equal(model.state_dict(), rec.after_step[-1])  # the weights of the 5th (last good) step


class InfGradOnCall(CrossEntropyLoss):
    """CrossEntropyLoss whose k-th backward hands back an infinite gradient (finite loss)."""

    def __init__(self, k):
        super().__init__()
        self.k, self.calls = k, 0

    def backward(self):
        self.calls += 1
        g = super().backward()
        if self.calls == self.k:
            g[0, 0] = np.inf
        return g


def test_non_finite_gradient_stops_before_the_update():
    X, y = blobs(40)
    model = mlp()
    rec = Recorder(model)
    with pytest.raises(NonFiniteLossError, match=r"gradients became NaN or infinity at epoch 1/2, batch 3/4"):
        fit(model, InfGradOnCall(3), Adam(model.parameters()), X, y, epochs=2, batch_size=10, callbacks=[rec])
    assert len(rec.after_step) == 2
    assert states_equal(model.state_dict(), rec.after_step[-1])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_real_divergence_is_caught_before_the_bad_update():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2)).astype(np.float32) * 10
    target = (X @ np.array([[3.0], [-2.0]], dtype=np.float32)) ** 2
    model = Sequential(Linear(2, 1, rng=rng))
    rec = Recorder(model)
    with pytest.raises(NonFiniteLossError, match=r"epoch \d+/50, batch \d+/8"):
        fit(model, MSELoss(), SGD(model.parameters(), lr=10.0), X, target, epochs=50, batch_size=8, seed=0,
            callbacks=[rec])
    assert rec.after_step, "diverged before any step; the test needs a slower blow-up"
    assert states_equal(model.state_dict(), rec.after_step[-1])
    assert all(np.isfinite(v).all() for v in model.state_dict().values())


# ---- Ctrl-C ----------------------------------------------------------------------------------------------

class InterruptAt(Recorder):
    def __init__(self, model, optimizer, epoch, batch):
        super().__init__(model)
        self.optimizer, self.at, self.opt_at_epoch_end = optimizer, (epoch, batch), []

    def on_epoch_end(self, epoch, logs):
        super().on_epoch_end(epoch, logs)
        self.opt_at_epoch_end.append(self.optimizer.state_dict())

    def on_batch_end(self, batch, logs):
        super().on_batch_end(batch, logs)
        if (logs["epoch"], batch) == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("epoch", [0, 2])
def test_keyboard_interrupt_keeps_the_last_finished_epoch(epoch):
    X, y = blobs(40)
    model = mlp()
    initial = model.state_dict()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    cb = InterruptAt(model, opt, epoch, 2)
    hist = fit(model, CrossEntropyLoss(), opt, X, y, epochs=4, batch_size=10, seed=0, callbacks=[cb])
    assert hist.interrupted and hist.epoch == epoch
    assert cb.calls[-1] == "train_end" and cb.history is hist
    want = cb.at_epoch_end[-1] if epoch else initial
    assert states_equal(model.state_dict(), want)
    assert not states_equal(model.state_dict(), cb.after_step[-1])  # the interrupted epoch's steps undone
    # The optimizer is rolled back too (momentum buffers as at the end of the last finished epoch).
    if epoch:
        want_buf = cb.opt_at_epoch_end[-1]["state"][0]["momentum_buffer"]
        np.testing.assert_array_equal(opt.state[opt.params[0]]["momentum_buffer"], want_buf)
    else:
        assert opt.state_dict()["state"] == {}
    assert model.training is True


# ---- bad input -------------------------------------------------------------------------------------------

def _fit(**kw):
    X, y = blobs(20)
    model = kw.pop("model", None) or mlp()
    args = dict(model=model, loss=CrossEntropyLoss(), optimizer=SGD(model.parameters(), lr=0.1), X=X, y=y,
                epochs=1, batch_size=4)
    args.update(kw)
    return fit(**args)


X20, Y20 = blobs(20)
X_NAN = X20.copy()
X_NAN[3, 1] = np.nan


@pytest.mark.parametrize("kw, match", [
    ({"X": X20[:19]}, "y: expected 19 targets"),
    ({"X": X20[:, 0]}, "X: expected an array with samples along the first axis"),
    ({"X": X20[:0], "y": Y20[:0]}, "X: expected at least one sample"),
    ({"X": X_NAN}, "X: expected finite values"),
    ({"y": Y20.reshape(10, 2)}, "y: expected 20 targets"),
    ({"y": np.stack([Y20, Y20], axis=1)}, "y: integer labels must be 1-D"),
    ({"y": np.where(Y20 == 1, 2, 0)}, r"y: labels must be in \[0, 2\).*got values in \[0, 2\]"),
    ({"y": Y20 - 1}, r"y: labels must be in \[0, 2\)"),
    ({"y": np.full((20, 3), 0.5, dtype=np.float32)}, r"y: float targets must match .* \(2,\)"),
    ({"y": np.full((20, 2), np.nan, dtype=np.float32)}, "y: expected finite values"),
    ({"batch_size": 0}, "batch_size: expected an int >= 1"),
    ({"epochs": -1}, "epochs: expected an int >= 0"),
    ({"seed": -5}, "seed"),
    ({"validation_data": (X20[:, :1], Y20)}, r"validation_data\[0\]: expected per-sample shape \(2,\)"),
    ({"validation_data": (X20, Y20 + 1)}, r"validation_data\[1\]: labels must be in \[0, 2\)"),
    ({"validation_data": (X20, Y20[:5])}, r"validation_data\[1\]: expected 20 targets"),
])
def test_fit_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        _fit(**kw)


@pytest.mark.parametrize("kw, match", [
    ({"X": X20.tolist()}, "X: expected a numpy.ndarray, got list"),
    ({"X": X20.astype(np.int32)}, "X: expected a floating-point array, got dtype int32"),
    ({"X": X20.astype(complex)}, "X: expected a floating-point array, got dtype complex128"),
    ({"y": Y20.astype(str)}, "y: expected integer labels or a float array"),
    ({"y": Y20.astype(bool)}, "y: expected integer labels or a float array, got dtype bool"),
    ({"batch_size": 2.5}, "batch_size: expected an int"),
    ({"epochs": "3"}, "epochs: expected an int"),
    ({"validation_data": X20}, "validation_data: expected a pair"),
    ({"callbacks": [print]}, r"callbacks\[0\]"),
    ({"model": None, "loss": print}, "loss"),
    ({"optimizer": object()}, "optimizer"),
])
def test_fit_bad_types(kw, match):
    with pytest.raises(TypeError, match=match):
        _fit(**kw)


def test_fit_rejects_a_non_module():
    with pytest.raises(TypeError, match="model: expected a cnn_core.nn.Module"):
        fit(object(), CrossEntropyLoss(), SGD(mlp().parameters(), lr=0.1), X20, Y20, 1, 4)


@pytest.mark.parametrize("call, exc, match", [
    (lambda m: evaluate(m, CrossEntropyLoss(), X20, Y20, batch_size=0), ValueError, "batch_size"),
    (lambda m: evaluate(m, CrossEntropyLoss(), X20, Y20 + 5), ValueError, "labels must be in"),
    (lambda m: evaluate(m, CrossEntropyLoss(), X20.astype(np.uint8), Y20), TypeError, "X: expected a floating"),
    (lambda m: predict(m, X20, batch_size=-1), ValueError, "batch_size"),
    (lambda m: predict(m, X_NAN), ValueError, "X: expected finite"),
    (lambda m: predict(m, X20.astype(np.int64)), TypeError, "X: expected a floating"),
])
def test_evaluate_predict_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call(mlp())


def test_single_output_rejects_labels_other_than_0_1():
    model = Sequential(Linear(2, 1, rng=np.random.default_rng(0)), Sigmoid())
    with pytest.raises(ValueError, match=r"y: labels for a single-output model must be 0 or 1, got values in \[0, 2\]"):
        fit(model, BCELoss(), SGD(model.parameters(), lr=0.1), X20, Y20 * 2, 1, 4)


def test_lr_scheduler_step_steps_once_per_epoch():
    from cnn_core.callbacks import LRSchedulerStep
    from cnn_core.optim import StepLR
    model = Sequential(Linear(3, 2))
    opt = SGD(model.parameters(), lr=1.0)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    X = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    fit(model, CrossEntropyLoss(), opt, X, np.arange(6) % 2, epochs=3, batch_size=2, seed=0,
        callbacks=[LRSchedulerStep(sched)])
    assert opt.lr == 0.125


def test_fit_screens_X_once_not_per_batch(monkeypatch):
    # fit checks X for NaN/inf once, up front; the first layer must not screen every batch again (an
    # isfinite pass and a temporary per step), but still does when a transform made the batch.
    import cnn_core.nn.module as module
    from cnn_core.data import DataLoader
    from cnn_core.nn import Flatten

    screens = []
    real = module.check_finite
    monkeypatch.setattr(module, "check_finite", lambda x, name: screens.append(x.shape) or real(x, name))
    X, y = blobs(64, seed=0)
    model = mlp()
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=2, batch_size=16, seed=0)
    assert screens == [(1, 2)]   # the output-shape probe on one sample, once per fit call
    screens.clear()
    X4 = X.reshape(64, 1, 2, 1)
    seq = Sequential(Flatten(), mlp())
    loader = DataLoader(X4, y, 16, shuffle=True, seed=0, transform=lambda b: b * 1.0)
    fit(seq, CrossEntropyLoss(), SGD(seq.parameters(), lr=0.1), loader, epochs=1)
    assert screens == [(1, 1, 2, 1)] + [(16, 1, 2, 1)] * 4
    bad = DataLoader(X4, y, 16, shuffle=True, seed=0, transform=lambda b: b * np.float32(np.nan) if len(b) > 1 else b)
    with pytest.raises(NonFiniteLossError, match="forward pass produced NaN"):
        fit(seq, CrossEntropyLoss(), SGD(seq.parameters(), lr=0.1), bad, epochs=1)


def test_linear_keeps_fit_batches_without_a_copy_but_copies_other_inputs():
    # fit promises its batch stays unchanged until backward (nn.module.batch_feed): the first Linear keeps a
    # reference to it; outside fit, or in a model with an in-place layer, Linear keeps a private copy, so
    # changing x in place after forward cannot change the gradients.
    from cnn_core.nn import LeakyReLU, ReLU
    seen = []

    def hook(module, args, out):
        if module.training:          # not fit's eval-mode probe of the output shape
            seen.append(module._a_prev is args[0])
    X, y = blobs(40)
    for model, kept in ((Sequential(Linear(2, 8, rng=0), ReLU(), Linear(8, 2, rng=1)), True),
                        (Sequential(Linear(2, 8, rng=0), LeakyReLU(inplace=True), Linear(8, 2, rng=1)), False)):
        seen.clear()
        model[0].register_forward_hook(hook)
        fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=2, batch_size=8, seed=0)
        assert seen == [kept] * 10
    model = Linear(2, 3, rng=0)
    x = X[:4].copy()
    model(x)
    x[:] = 1e3                       # the caller reuses its array before backward
    model.backward(np.ones((4, 3), np.float32))
    assert np.allclose(model.weight.grad, np.ones((3, 1)) * X[:4].sum(axis=0))


def test_conv_keeps_fit_batches_without_a_copy_but_copies_other_inputs():
    # As Linear: the first Conv2d of a model trained by fit keeps fit's batch itself for backward (Winograd,
    # im2col and the direct path alike); outside fit it keeps a private copy (Winograd: x's transformed tiles,
    # and x only for its shape), so changing x in place after forward cannot change the gradients.
    from cnn_core.nn import Conv2d, Flatten
    seen = []

    def hook(module, args, out):
        if module.training:
            seen.append(module._cache[0] is args[0])
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 24)
    # Winograd (24 -> 16 channels), im2col (stride 2, padded: columns larger than x, which backward rebuilds
    # them from; smaller ones are kept instead, test_conv's test_kept_columns_*), direct (few channels)
    for conv in (Conv2d(24, 16, 3, padding=1, rng=0), Conv2d(2, 3, 3, stride=2, padding=1, rng=0),
                 Conv2d(2, 3, 3, rng=0)):
        X = rng.standard_normal((24, conv.in_channels, 6, 6)).astype(np.float32)
        assert conv._winograd((1, 1)) == (conv.in_channels == 24)
        model = Sequential(conv, Flatten(), Linear(conv(X[:1]).size, 2, rng=1))
        seen.clear()
        conv.register_forward_hook(hook)
        fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=1, batch_size=8, seed=0)
        assert seen == [True] * 3
        x = X[:4].copy()
        conv.zero_grad()
        z = conv(x)
        x[:] = 1e3                   # the caller reuses its array before backward
        conv.backward(np.ones_like(z))
        expected = conv.weight.grad.copy()
        conv.zero_grad()
        conv(X[:4])
        conv.backward(np.ones_like(z))
        assert seen[3] is conv._winograd((1, 1)) and np.array_equal(conv.weight.grad, expected)



def _handing_on_model():
    """Layers that keep their input for backward, each fed by a layer whose output array is recycled
    (Module._handout): Conv2d -> BatchNorm2d (keeps z) -> ReLU -> Conv2d (direct path, keeps a) ->
    MaxPool2d -> Flatten -> Linear (keeps a view of the pooled output) -> GELU (keeps its input) -> Linear."""
    from cnn_core.nn import BatchNorm2d, Conv2d, Flatten, GELU, MaxPool2d, ReLU
    return Sequential(Conv2d(2, 4, 3, padding=1, rng=0), BatchNorm2d(4), ReLU(), Conv2d(4, 4, 3, rng=1),
                      MaxPool2d(2), Flatten(), Linear(16, 8, rng=2), GELU(), Linear(8, 2, rng=3))


def test_layers_keep_the_arrays_other_layers_hand_on_in_fit_without_a_copy():
    # fit promises that nothing but the model touches the arrays its layers hand on until the step's
    # backward (nn.module.batch_feed): a layer fed by another keeps the array itself. With an in-place layer
    # in the model, or outside fit, it keeps a private copy.
    from cnn_core.nn import LeakyReLU
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 2, 24)
    cached = {nn.BatchNorm2d: lambda m: m._cache[0], nn.Conv2d: lambda m: m._cache[0],
              Linear: lambda m: m._a_prev, nn.GELU: lambda m: m._z}
    for inplace in (False, True):
        model = _handing_on_model()
        if inplace:
            model = Sequential(*model, LeakyReLU(inplace=True))
        seen = []
        for i in (1, 3, 6, 7):
            def hook(module, args, out):
                if module.training:      # not fit's eval-mode probe of the output shape
                    seen.append(cached[type(module)](module) is args[0])
            model[i].register_forward_hook(hook)
        fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=1, batch_size=8, seed=0)
        assert seen == [not inplace] * 12
        seen.clear()
        model(X[:4])
        assert seen == [False] * 4


def test_fit_with_arrays_kept_uncopied_equals_a_plain_loop_bit_for_bit():
    # The arrays kept without a copy (and the recycled outputs they are) hold the values each backward
    # needs: fit's weights after two epochs are those of a loop of forward/backward/step calls, which makes
    # no promise (every layer keeps copies), on the same batches.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    fitted, looped = _handing_on_model(), _handing_on_model()
    loss = CrossEntropyLoss()
    fit(fitted, loss, SGD(fitted.parameters(), lr=0.1, momentum=0.9), X, y, epochs=2, batch_size=8,
        shuffle=False)
    opt = SGD(looped.parameters(), lr=0.1, momentum=0.9)
    looped.train()
    for _ in range(2):
        for lo in range(0, 32, 8):
            looped.zero_grad()
            loss(looped(X[lo:lo + 8]), y[lo:lo + 8])
            looped.backward(loss.backward())
            opt.step()
    assert states_equal(fitted.state_dict(), looped.state_dict())


def test_fit_keeps_the_recycled_arrays_through_its_eval_switches_and_eval_drops_them():
    # fit's output-shape probe and its validation switch the model to eval mode and back: the arrays the
    # layers recycle (Module._handout) and Conv2d's scratch stay for the next steps (nn.module.handouts_kept);
    # an eval() of the caller's drops them, and pickles never carry them.
    import pickle
    import weakref
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    model = _handing_on_model()
    conv, bn = model[0], model[1]
    opt = SGD(model.parameters(), lr=0.1)
    fit(model, CrossEntropyLoss(), opt, X, y, epochs=2, batch_size=8, validation_data=(X[:8], y[:8]))
    arrays = [a for m in (conv, bn) for kind in m._handouts.values() for a in kind]
    arrays += [getattr(conv, name) for name in conv._reused if getattr(conv, name) is not None]
    refs = [weakref.ref(a) for a in arrays]
    del arrays
    fit(model, CrossEntropyLoss(), opt, X, y, epochs=3, initial_epoch=2, batch_size=8,
        validation_data=(X[:8], y[:8]))
    assert len(refs) > 4 and all(r() is not None for r in refs)
    clone = pickle.loads(pickle.dumps(model))
    assert "_handouts" not in clone[0].__dict__ and all(getattr(clone[0], n) is None for n in conv._reused)
    np.testing.assert_array_equal(clone.eval()(X[:4]), model.eval()(X[:4]))
    assert "_handouts" not in conv.__dict__ and all(getattr(conv, n) is None for n in conv._reused)
    assert all(r() is None for r in refs)


def test_threads_evaluating_one_model_at_once_get_the_results_of_one_thread():
    # evaluate runs the layers in eval mode, where nothing a call writes may be shared between calls:
    # Conv2d's scratch (every path: direct, Winograd, the 1x1 GEMMs, im2col) was, and threads evaluating one
    # model at once read each other's half-written buffers.
    import threading
    from cnn_core.nn import BatchNorm2d, Conv2d, Flatten, MaxPool2d, ReLU
    model = Sequential(Conv2d(2, 24, 3, padding=1, rng=0), BatchNorm2d(24), ReLU(),
                       Conv2d(24, 24, 3, padding=1, rng=1), MaxPool2d(2), Conv2d(24, 16, 1, rng=2),
                       Conv2d(16, 8, 3, stride=2, padding=1, rng=3), Flatten(), Linear(32, 3, rng=4))
    assert model[0]._direct((1, 1)) and model[3]._winograd((1, 1)) and model[5]._pointwise((0, 0))
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((16, 2, 8, 8)).astype(np.float32), rng.integers(0, 3, 16)) for _ in range(4)]
    loss = CrossEntropyLoss()
    alone = [evaluate(model, loss, X, y) for X, y in data]
    wrong = []

    def run(k):
        for _ in range(15):
            if evaluate(model, loss, *data[k]) != alone[k]:
                wrong.append(k)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []

def test_gradient_scan_reads_written_gradients_and_skips_marked_ones():
    # fit's gradient check lists the gradients from the Parameters' slots (nn.module.grads_to_scan): one that
    # zero_grad marked and no backward wrote since reads as zeros, so stale values in its array are neither
    # flagged nor filled; once written (or read through .grad) it is scanned; duck-typed parameters are read
    # through .grad.
    from types import SimpleNamespace

    from cnn_core.nn.module import Parameter
    from cnn_core.training import _all_finite

    p, q = Parameter(np.zeros(5)), Parameter(np.zeros(70000, np.float32))
    p.grad[2] = np.nan
    assert not _all_finite([q, p])
    p._zero_grad()
    assert _all_finite([q, p]) and np.isnan(p._grad[2])   # marked: zeros, not filled by the check
    p.grad[3] = np.inf                                     # read through .grad: filled, then written
    assert not _all_finite([p, q])
    q._zero_grad()
    q.grad[-1] = np.nan                                    # the team-split array, written after the mark
    p.grad[3] = 0
    assert not _all_finite([p, q])
    duck = SimpleNamespace(data=np.zeros(2), grad=np.array([0.0, np.inf]))
    assert not _all_finite([p, duck]) and not _all_finite([duck])
    duck.grad[1] = 1.0
    q.grad[-1] = 0
    assert _all_finite([q, duck, p])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [None, np.nan, np.inf])
def test_gradient_scan_takes_non_contiguous_gradients(dtype, bad):
    # fit's gradient check (training._all_finite) hands every gradient to one compiled scan, which refuses a
    # non-contiguous array; such gradients take NumPy's test instead, with the same verdict as the
    # contiguous ones: finite passes, a NaN/inf anywhere fails, whichever array holds it.
    from cnn_core.nn.module import Parameter
    from cnn_core.training import _all_finite

    params = [Parameter(np.zeros((4, 6), dtype)), Parameter(np.zeros(3, dtype))]
    params[0].grad = np.zeros((6, 4), dtype).T          # Fortran order: not C-contiguous
    assert not params[0].grad.flags.c_contiguous
    params[1].grad = np.zeros(6, dtype)[::2]            # strided view
    assert _all_finite(params)
    if bad is not None:
        for p in params:
            p.grad[-1] = bad
            assert not _all_finite(params)
            p.grad[-1] = 0
    assert _all_finite(params)
    params[1].grad = np.zeros(3, dtype)                 # one contiguous, one not: still both scanned
    params[0].grad[1, 2] = np.inf
    assert not _all_finite(params)


@pytest.mark.parametrize("loss", [CrossEntropyLoss(), CrossEntropyLoss(label_smoothing=0.1)],
                         ids=["counted by the loss", "scored by fit"])
def test_train_acc_is_the_argmax_accuracy_of_the_batches_seen(loss):
    """fit's train_acc counts argmax(out) == label over the epoch's batches, whether the loss counted the
    hits in its own pass (CrossEntropyLoss's compiled case) or fit scored the output itself; a model ending
    in ReLU gives rows of tied zeros, whose argmax is the first column."""
    X, y = blobs(100)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3), nn.ReLU())
    model[2].bias.data[:] = -1.0   # outputs start at 0: whole rows tied
    seen = []

    class Recording(type(loss)):
        def forward(self, pred, target):
            seen.append((pred.copy(), target.copy()))
            return super().forward(pred, target)

    rec = Recording(label_smoothing=loss.label_smoothing)
    hist = fit(model, rec, SGD(model.parameters(), lr=0.5), X, y, epochs=2, batch_size=16, seed=0)
    for e in range(2):
        batches = seen[e * 7:(e + 1) * 7]
        assert sum(len(t) for _, t in batches) == 100
        hits = sum(int(np.count_nonzero(p.argmax(axis=1) == t)) for p, t in batches)
        assert hist.train_acc[e] == hits / 100
    assert sum(int(np.count_nonzero(p.max(axis=1) == 0)) for p, _ in seen) > 10   # tied rows were scored
