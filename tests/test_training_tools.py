"""Training tools: stop_training, on_train_end on every exit path, EarlyStopping, ModelCheckpoint, CSVLogger,
verbose, LRSchedulerStep intervals, validation_split, fit from a DataLoader, and checkpoints that resume a run
bit for bit."""
import csv
import zipfile

import numpy as np
import pytest

import cnn_core
from cnn_core.callbacks import (Callback, CSVLogger, EarlyStopping, LRSchedulerStep, ModelCheckpoint,
                                ProgressBar)
from cnn_core.data import DataLoader, RandomHorizontalFlip, RandomShift
from cnn_core.nn import CrossEntropyLoss, Flatten, Linear, MSELoss, Sequential
from cnn_core.optim import SGD, Adam, AdamW, OneCycleLR, ReduceLROnPlateau, StepLR
from cnn_core.training import NonFiniteLossError, fit
from toy_data import blobs, mlp, states_equal


class Weights(Callback):
    """The model's weights and logs at the end of every epoch, and the hooks seen."""

    def __init__(self):
        self.states, self.logs, self.calls = [], [], []

    def on_epoch_end(self, epoch, logs):
        self.states.append(self.model.state_dict())
        self.logs.append(dict(logs))

    def on_train_end(self, history):
        self.calls.append("train_end")


class Steps(Callback):
    """The batches that finished training (on_batch_end), in order."""

    def __init__(self):
        self.batches = []

    def on_batch_end(self, batch, logs):
        self.batches.append(batch)


def test_callbacks_get_the_model_and_can_stop_training():
    class StopAt(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 1:
                self.model.stop_training = True

    X, y = blobs()
    model = mlp()
    w = Weights()
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=10, batch_size=16,
               callbacks=[StopAt(), w], seed=0)
    assert w.model is model
    assert hist.epoch == 2 and len(w.states) == 2 and w.calls == ["train_end"]
    assert states_equal(model.state_dict(), w.states[-1])  # ends after the epoch that asked


def test_on_train_end_runs_when_the_run_diverges():
    X, y = blobs(40)
    model = mlp()
    w = Weights()
    with pytest.raises(NonFiniteLossError), np.errstate(over="ignore", invalid="ignore"):
        fit(model, MSELoss(), SGD(model.parameters(), lr=10.0), X, np.eye(2, dtype=np.float32)[y] * 10, epochs=50,
            batch_size=8, callbacks=[w], seed=0)
    assert w.calls == ["train_end"]


def _flipped_validation():
    """Validation labels opposite to the training ones: val_loss rises while training proceeds."""
    X, y = blobs(80)
    return X, y, (X[:40], 1 - y[:40])


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_patience_and_restore_best_weights(restore):
    X, y, val = _flipped_validation()
    model = mlp()
    w = Weights()
    es = EarlyStopping("val_loss", patience=2, restore_best_weights=restore)
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.2), X, y, epochs=20, batch_size=8,
               validation_data=val, callbacks=[w, es], seed=0)
    best = int(np.argmin(hist.val_loss))
    assert es.best_epoch == best and es.best == min(hist.val_loss)
    # stops once `patience` epochs in a row failed to beat the best
    assert hist.epoch == best + 3 and es.stopped_epoch == best + 2
    want = w.states[best] if restore else w.states[-1]
    assert states_equal(model.state_dict(), want)


def test_early_stopping_min_delta_and_max_mode():
    es = EarlyStopping("val_acc", min_delta=0.05, patience=1)
    assert es.mode == "max"

    class M:
        stop_training = False
    es.set_model(M())
    es.on_train_begin({"val_samples": 1})
    for epoch, acc in enumerate([0.5, 0.54, 0.549]):
        es.on_epoch_end(epoch, {"val_acc": acc})
        if epoch == 0:
            assert es.best == 0.5
    assert es.best == 0.5 and es.model.stop_training is True  # 0.54, 0.549: not above 0.5 + 0.05


def test_model_checkpoint_saves_best_atomically(tmp_path):
    X, y, val = _flipped_validation()
    model = mlp()
    w = Weights()
    path = tmp_path / "best.npz"
    ck = ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.2), X, y, epochs=6, batch_size=8,
               validation_data=val, callbacks=[w, ck], seed=0)
    best = int(np.argmin(hist.val_loss))
    assert states_equal(cnn_core.load(path).state_dict(), w.states[best])
    every = ModelCheckpoint(str(tmp_path / "e{epoch:02d}-{train_loss:.3f}.npz"))
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.2), X, y, epochs=2, batch_size=8,
        validation_data=val, callbacks=[every], seed=0)
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("e"))
    assert [n[:4] for n in names] == ["e01-", "e02-"] and not any(n.endswith(".tmp") for n in names)


def test_csv_logger_writes_history(tmp_path):
    X, y = blobs(40)
    model = mlp()
    path = tmp_path / "log.csv"
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=3, batch_size=8,
               callbacks=[CSVLogger(path)], seed=0)
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(CSVLogger.COLUMNS)
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    assert [float(r[1]) for r in rows[1:]] == hist.train_loss  # repr round-trips exactly
    assert all(r[3] == "" for r in rows[1:])  # no validation: empty cells
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=1, batch_size=8,
        callbacks=[CSVLogger(path, append=True)], seed=0)
    with open(path) as f:
        rows = list(csv.reader(f))
    assert len(rows) == 5 and rows[0][0] == "epoch" and rows[4][0] == "0"


def test_verbose_adds_a_progress_bar(capsys):
    X, y = blobs(40)
    model = mlp()
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=2, batch_size=8, seed=0)
    assert capsys.readouterr().err == ""  # quiet by default
    fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=2, batch_size=8, seed=0, verbose=2)
    err = capsys.readouterr().err
    assert err.count("epoch ") == 2 and "loss" in err


def test_lr_scheduler_step_per_batch_and_on_a_metric():
    X, y = blobs(40)
    model = mlp()
    opt = AdamW(model.parameters())
    sched = OneCycleLR(opt, max_lr=0.05, epochs=3, steps_per_epoch=5)
    seen = []

    class LR(Callback):
        def on_batch_end(self, batch, logs):
            seen.append(opt.lr)
    fit(model, CrossEntropyLoss(), opt, X, y, epochs=3, batch_size=8, seed=0,
        callbacks=[LR(), LRSchedulerStep(sched, interval="batch")])
    assert sched.last_epoch == 15 and len(seen) == 15  # the lr of steps 0..14, as each batch used it
    assert seen[0] == pytest.approx(0.05 / 25) and seen[-1] == pytest.approx(0.05 / 25 / 1e4)
    assert max(seen) == pytest.approx(0.05, rel=0.01)
    opt = SGD(model.parameters(), lr=0.1)
    plateau = ReduceLROnPlateau(opt, patience=0, factor=0.5)
    X2, y2, val = _flipped_validation()
    fit(model, CrossEntropyLoss(), opt, X2, y2, epochs=4, batch_size=8, validation_data=val, seed=0,
        callbacks=[LRSchedulerStep(plateau, monitor="val_loss")])
    assert plateau.last_epoch == 4 and opt.lr < 0.1


def test_validation_split_holds_out_the_last_fraction():
    X, y = blobs(50)
    m1, m2 = mlp(), mlp()
    h1 = fit(m1, CrossEntropyLoss(), SGD(m1.parameters(), lr=0.1), X, y, epochs=2, batch_size=8, seed=3,
             validation_split=0.2)
    h2 = fit(m2, CrossEntropyLoss(), SGD(m2.parameters(), lr=0.1), X[:40], y[:40], epochs=2, batch_size=8, seed=3,
             validation_data=(X[40:], y[40:]))
    assert h1.val_loss == h2.val_loss and h1.train_loss == h2.train_loss
    assert states_equal(m1.state_dict(), m2.state_dict())


def test_fit_from_a_loader_equals_fit_from_arrays():
    X, y = blobs(50)
    m1, m2 = mlp(), mlp()
    h1 = fit(m1, CrossEntropyLoss(), Adam(m1.parameters(), lr=0.01), X, y, epochs=3, batch_size=8, seed=4)
    h2 = fit(m2, CrossEntropyLoss(), Adam(m2.parameters(), lr=0.01),
             DataLoader(X, y, batch_size=8, shuffle=True, seed=4), epochs=3)
    assert h1.train_loss == h2.train_loss
    assert states_equal(m1.state_dict(), m2.state_dict())


def test_fit_with_augmentation_learns_and_validates_on_plain_images():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    X = rng.normal(scale=0.1, size=(60, 1, 4, 4)).astype(np.float32)
    X[y == 1, :, 1:3, :] += 1.0  # a horizontal bar: flips and 1-pixel shifts keep the class
    model = Sequential(Flatten(), Linear(16, 2, rng=rng))
    loader = DataLoader(X, y, batch_size=10, shuffle=True,
                        transform=cnn_core.data.Compose([RandomHorizontalFlip(), RandomShift((0, 1))]), seed=1)
    hist = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.5), loader, epochs=8,
               validation_data=(X, y))
    assert hist.val_acc[-1] > 0.9


# ---- resuming ----------------------------------------------------------------------------------------------

def _run(tmp_path, seed, split_at=None, loader=False):
    """Train 5 epochs with Adam + StepLR (+ a shuffle drawn from the global generator when seed is None);
    with split_at, stop there, checkpoint, rebuild everything and resume."""
    cnn_core.manual_seed(123)
    X, y = blobs(60)
    Xi = np.repeat(X[:, None, None, :], 2, axis=2)  # (N, 1, 2, 2) images for the augmented variant
    make_model = (lambda: Sequential(Flatten(), Linear(4, 2, rng=np.random.default_rng(0)))) if loader else mlp

    def build():
        model = make_model()
        opt = Adam(model.parameters(), lr=0.05)
        sched = StepLR(opt, step_size=2, gamma=0.5)
        return model, opt, sched

    def data_kw():
        if loader:
            return {"X": DataLoader(Xi, y, batch_size=7, shuffle=True, transform=RandomShift(1), seed=seed)}
        return {"X": X, "y": y, "batch_size": 7, "seed": seed}

    model, opt, sched = build()
    stop = 5 if split_at is None else split_at
    fit(model, CrossEntropyLoss(), opt, epochs=stop, callbacks=[LRSchedulerStep(sched)], **data_kw())
    if split_at is None:
        return model.state_dict()
    path = tmp_path / "run.ckpt"
    cnn_core.save_checkpoint(path, model, opt, sched, epoch=split_at)
    cnn_core.manual_seed(999)  # whatever happens in between, the checkpoint restores the generator
    np.random.default_rng(0)
    model, opt, sched = build()
    epoch = cnn_core.load_checkpoint(path, model, opt, sched)
    assert epoch == split_at
    fit(model, CrossEntropyLoss(), opt, epochs=5, initial_epoch=epoch, callbacks=[LRSchedulerStep(sched)],
        **data_kw())
    return model.state_dict()


@pytest.mark.parametrize("seed", [None, 8])
@pytest.mark.parametrize("loader", [False, True])
def test_resumed_run_equals_uninterrupted_bitwise(tmp_path, seed, loader):
    whole = _run(tmp_path, seed, loader=loader)
    for split_at in (1, 3):
        assert states_equal(_run(tmp_path, seed, split_at, loader), whole)


def test_checkpoint_round_trips_every_state(tmp_path):
    model = mlp()
    opt = AdamW([{"params": model.parameters()[:2], "lr": 0.01}, {"params": model.parameters()[2:]}], amsgrad=True)
    sched = OneCycleLR(opt, max_lr=[0.1, 0.2], total_steps=10)
    X, y = blobs(20)
    fit(model, CrossEntropyLoss(), opt, X, y, epochs=1, batch_size=5, seed=0,
        callbacks=[LRSchedulerStep(sched, interval="batch")])
    cnn_core.save_checkpoint(tmp_path / "c", model, opt, sched, epoch=1)
    model2 = mlp(seed=5)
    opt2 = AdamW([{"params": model2.parameters()[:2]}, {"params": model2.parameters()[2:]}])
    sched2 = OneCycleLR(opt2, max_lr=[0.3, 0.3], total_steps=10)
    cnn_core.load_checkpoint(tmp_path / "c", model2, opt2, sched2)
    assert states_equal(model.state_dict(), model2.state_dict())
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for k, v in a["state"][i].items():
            np.testing.assert_array_equal(v, b["state"][i][k])
    assert sched.state_dict() == sched2.state_dict()


def test_hostile_or_mismatched_checkpoints_change_nothing(tmp_path):
    model = mlp()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    X, y = blobs(20)
    fit(model, CrossEntropyLoss(), opt, X, y, epochs=1, batch_size=5, seed=0)
    path = tmp_path / "c.npz"
    cnn_core.save_checkpoint(path, model, opt, epoch=1)
    other = mlp(seed=3)
    before = other.state_dict()
    with pytest.raises(ValueError, match="does not fit"):  # another optimizer class's state
        cnn_core.load_checkpoint(path, other, Adam(other.parameters()))
    assert states_equal(other.state_dict(), before)
    with pytest.raises(ValueError, match="scheduler"):
        cnn_core.load_checkpoint(path, other, SGD(other.parameters(), momentum=0.9), StepLR(opt, 1))
    data = path.read_bytes()
    (tmp_path / "cut").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="checkpoint"):
        cnn_core.load_checkpoint(tmp_path / "cut", other)
    cnn_core.save(model, tmp_path / "model.npz")
    with pytest.raises(ValueError, match="cnn_core.load"):
        cnn_core.load_checkpoint(tmp_path / "model.npz", other)
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__format__.npy", data[:0] + b"\0" * 100_000)
    with pytest.raises(ValueError, match="checkpoint"):
        cnn_core.load_checkpoint(tmp_path / "bomb.npz", other)
    assert states_equal(other.state_dict(), before)


# ---- bad arguments -----------------------------------------------------------------------------------------

def _fit(**kw):
    X, y = blobs(20)
    model = mlp()
    args = dict(model=model, loss=CrossEntropyLoss(), optimizer=SGD(model.parameters(), lr=0.1), X=X, y=y,
                epochs=1, batch_size=4)
    args.update(kw)
    return fit(**args)


@pytest.mark.parametrize("kw, exc, match", [
    ({"validation_split": 1.0}, ValueError, "validation_split"),
    ({"validation_split": 0.01}, ValueError, "validation_split"),
    ({"validation_split": "0.2"}, TypeError, "validation_split"),
    ({"validation_split": 0.2, "validation_data": (np.zeros((2, 2), np.float32), np.zeros(2, int))}, ValueError,
     "validation_split"),
    ({"initial_epoch": 2}, ValueError, "initial_epoch"),
    ({"verbose": 3}, ValueError, "verbose"),
    ({"y": None}, TypeError, "y"),
    ({"X": DataLoader(np.zeros((4, 2), np.float32), np.zeros(4, int)), "y": np.zeros(4, int)}, ValueError, "y"),
    ({"X": DataLoader(np.zeros((4, 2), np.float32), np.zeros(4, int)), "y": None}, ValueError, "batch_size"),
    ({"X": DataLoader(np.zeros((4, 2), np.float32)), "y": None, "batch_size": None}, ValueError, "targets"),
    ({"callbacks": [EarlyStopping("val_loss")]}, ValueError, "monitor"),
    ({"shuffle": "yes"}, TypeError, "shuffle"),
])
def test_fit_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        _fit(**kw)


@pytest.mark.parametrize("make, exc, match", [
    (lambda: EarlyStopping("loss"), ValueError, "monitor"),
    (lambda: EarlyStopping(patience=-1), ValueError, "patience"),
    (lambda: EarlyStopping(mode="up"), ValueError, "mode"),
    (lambda: EarlyStopping(restore_best_weights=1), TypeError, "restore_best_weights"),
    (lambda: ModelCheckpoint(3), TypeError, "filepath"),
    (lambda: CSVLogger("x.csv", separator=";;"), ValueError, "separator"),
    (lambda: LRSchedulerStep(StepLR(SGD(mlp().parameters()), 1), interval="step"), ValueError, "interval"),
    (lambda: LRSchedulerStep(ReduceLROnPlateau(SGD(mlp().parameters()))), ValueError, "monitor"),
    (lambda: LRSchedulerStep(StepLR(SGD(mlp().parameters()), 1), monitor="val_loss", interval="batch"),
     ValueError, "monitor"),
    (lambda: ProgressBar(live=1), TypeError, "live"),
    (lambda: cnn_core.save_checkpoint("x", mlp(), object()), TypeError, "optimizer"),
    (lambda: cnn_core.save_checkpoint("x", mlp(), SGD(mlp().parameters()), epoch=-1), ValueError, "epoch"),
])
def test_callback_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.fixture(params=[True, False], ids=["prefetch-thread", "gather-in-place"])
def prefetch_thread(request, monkeypatch):
    """Shuffled batches gathered on the prefetch thread, or on fit's own thread (as on a busy machine)."""
    import cnn_core.data
    monkeypatch.setattr(cnn_core.data, "PREFETCH_THREAD", request.param)
    return request.param


@pytest.mark.parametrize("at", [0, 23, 39])
def test_nan_in_training_data_is_refused_before_its_batch_trains(at, prefetch_thread):
    # Shuffled batches: X is screened batch by batch as the prefetch thread gathers it; sample 0 (the one fit
    # runs to find the output shape) before anything runs. Every batch holding a NaN is refused before it
    # trains, the error names the sample, and the model and optimizer are back at their state before fit.
    X, y = blobs(40)
    X[at, 1] = np.nan
    model = mlp()
    before = model.state_dict()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    w, steps = Weights(), Steps()
    with pytest.raises(ValueError, match=f"X: expected finite values, got NaN or infinity in sample {at}$"):
        fit(model, CrossEntropyLoss(), opt, X, y, epochs=2, batch_size=4, seed=0, callbacks=[w, steps])
    assert states_equal(model.state_dict(), before) and opt.state_dict()["state"] == {}
    assert w.states == [] and w.calls == ([] if at == 0 else ["train_end"])
    order = np.random.default_rng([0, 0]).permutation(40)
    assert steps.batches == ([] if at == 0 else list(range(int(np.flatnonzero(order == at)[0]) // 4)))


def test_nan_met_in_a_later_epoch_restores_the_last_finished_one(prefetch_thread):
    # drop_last leaves 2 of 10 samples out of each epoch: a NaN sample the first epoch skipped is met
    # later, and fit leaves the weights (and momentum) from the end of the last finished epoch.
    X, y = blobs(10)
    orders = [np.random.default_rng([3, e]).permutation(10) for e in range(4)]
    bad = int(orders[0][-1])                 # left out of epoch 0
    first = next(e for e in range(1, 4) if bad in orders[e][:8])
    X[bad, 0] = np.inf
    loader = DataLoader(X, y, batch_size=4, shuffle=True, drop_last=True, seed=3)
    model = mlp()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    w = Weights()
    with pytest.raises(ValueError, match=f"in sample {bad}$"):
        fit(model, CrossEntropyLoss(), opt, loader, epochs=4, callbacks=[w])
    assert len(w.states) == first and states_equal(model.state_dict(), w.states[-1])


def test_nan_in_unshuffled_data_is_refused_before_anything_runs():
    X, y = blobs(40)
    X[23, 1] = np.nan
    model = mlp()
    before = model.state_dict()
    w = Weights()
    with pytest.raises(ValueError, match="X: expected finite values, got NaN or infinity$"):
        fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), X, y, epochs=2, batch_size=4,
            shuffle=False, callbacks=[w])
    assert states_equal(model.state_dict(), before) and w.calls == []
