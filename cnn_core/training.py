"""The training loop: fit, evaluate and predict for any cnn_core.nn module, loss and optimizer.

fit runs mini-batch training (one permutation of the samples per epoch), records a History, reports to
callbacks, stops with NonFiniteLossError on a NaN/inf loss, activation or gradient before that batch's
update, and on Ctrl-C returns with the weights of the last finished epoch.
"""
from __future__ import annotations

import copy
import math
import threading
import time
from collections import namedtuple
from typing import Any, Sequence

import numpy as np

from cnn_core._finite import all_finite as _grads_finite
from cnn_core._validation import (NonFiniteError, all_finite as _all_finite_array, check_bool, check_int, check_real,
                                  not_an_array)
from cnn_core.callbacks import CSVLogger, Callback, History, ModelCheckpoint, ProgressBar
from cnn_core.data import DataLoader, NonFiniteRowError, _apply
from cnn_core.kernels.augment import _count_argmax_hits
from cnn_core.nn.loss import _ClassLoss
from cnn_core.nn.module import (batch_feed, fed_by_a_layer, grads_to_scan, handouts_kept, restore_modes,
                                 save_modes, takes_integer_input)
from cnn_core.plan import _predict_plan

# In a distributed fit, the callbacks that print or write files run on rank 0 only (see fit).
_MAIN_RANK_ONLY = (ProgressBar, ModelCheckpoint, CSVLogger)

EvalResult = namedtuple("EvalResult", ["loss", "accuracy"])
EvalResult.__doc__ = """evaluate's result: mean loss and accuracy (None when the targets give no accuracy).
Unpacks as a tuple: `loss, acc = evaluate(...)`."""


class NonFiniteLossError(FloatingPointError):
    """Training diverged: the loss, the forward pass or the gradients became NaN or infinite.

    Raised before the optimizer step of the failing batch, so the model keeps the weights that batch was
    computed with. `epoch` and `batch` are 0-based indices; the message counts from 1, as a progress display does.
    """

    def __init__(self, what: str, epoch: int, epochs: int, batch: int, batches: int) -> None:
        super().__init__(
            f"{what} at epoch {epoch + 1}/{epochs}, batch {batch + 1}/{batches}; training stopped and the model "
            f"keeps the weights from before this batch (try a smaller lr or clip_grad_norm)")
        self.epoch, self.batch = epoch, batch


# ---- argument checks -------------------------------------------------------------------------------------

def _check_model(model) -> None:
    for attr in ("forward", "backward", "train", "eval", "zero_grad", "state_dict", "load_state_dict"):
        if not callable(getattr(model, attr, None)):
            raise TypeError(f"model: expected a cnn_core.nn.Module (missing {attr}()), got {type(model).__name__}")


def _as_inputs(X, name: str, model, scan: bool = True) -> np.ndarray:
    """X as a float array of the model's dtype, samples first, screened for NaN/inf unless not `scan`.

    Float inputs of another precision are cast to the model's dtype (one copy, for convenience); integer,
    bool and non-numeric inputs are rejected, since e.g. uint8 pixels usually still need scaling.
    """
    if not isinstance(X, np.ndarray):
        raise not_an_array(X, name)
    if X.dtype.kind != "f" and not (X.dtype.kind in "iu" and takes_integer_input(model)):  # Embedding first
        raise TypeError(f"{name}: expected a floating-point array, got dtype {X.dtype} "
                        f"(convert explicitly, e.g. X.astype(np.float32) / 255)")
    if X.ndim < 2:
        raise ValueError(f"{name}: expected an array with samples along the first axis and at least 2-D, "
                         f"got shape {X.shape}")
    if len(X) == 0:
        raise ValueError(f"{name}: expected at least one sample, got shape {X.shape}")
    dtype = getattr(model, "dtype", None)
    if dtype is not None and X.dtype != dtype and X.dtype.kind == "f":
        X = X.astype(dtype)
    if scan and not _all_finite_array(X):  # one compiled pass, no temporary
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    return X


def _dtype(model, X: np.ndarray) -> np.dtype:
    """The float dtype of targets: the model's (X may hold integer indices), else X's."""
    dtype = getattr(model, "dtype", None)
    return X.dtype if dtype is None else dtype


def _as_targets(y, name: str, n: int, dtype) -> np.ndarray:
    """y as int64 labels (any integer dtype) or a float array cast to `dtype`, with n rows."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(y).__name__}")
    if y.ndim == 0 or len(y) != n:
        raise ValueError(f"{name}: expected {n} targets (one per sample of X), got shape {y.shape}")
    if y.dtype.kind in "iu":
        if y.ndim != 1:
            raise ValueError(f"{name}: integer labels must be 1-D, got shape {y.shape}")
        return y.astype(np.int64, copy=False)
    if y.dtype.kind != "f":
        raise TypeError(f"{name}: expected integer labels or a float array, got dtype {y.dtype}")
    if not _all_finite_array(y):
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    return y.astype(dtype, copy=False) if dtype is not None else y


def _forward(model, x) -> np.ndarray:
    out = model(x)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"model: forward must return one ndarray for fit/evaluate/predict, "
                        f"got {type(out).__name__}")
    return out


def _output_shape(model, X: np.ndarray) -> tuple[int, ...]:
    """Per-sample output shape, from a forward pass on one sample in eval mode (no caches, no side effects)."""
    with _eval_mode(model):
        return _forward(model, X[:1]).shape[1:]


def _accuracy_labels(y: np.ndarray, out_shape: tuple[int, ...],
                     name: str) -> tuple[str | None, np.ndarray | None]:
    """How to score accuracy for targets `y`, and the class of each sample to compare predictions against.

    Integer labels: argmax of the output over its C classes (labels out of range raise ValueError).
    Float targets: argmax when every row is one-hot; output > 0.5 for a single output with 0/1 targets;
    otherwise no accuracy.
    """
    single = out_shape in ((), (1,))
    if y.dtype == np.int64:
        if len(out_shape) != 1:
            raise ValueError(f"{name}: integer labels need a model output of shape (N, C), "
                             f"got per-sample output shape {out_shape}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= out_shape[0]:
            raise ValueError(f"{name}: labels must be in [0, {out_shape[0]}) for a model with output width "
                             f"{out_shape[0]}, got values in [{lo}, {hi}]")
        return "argmax", y
    if y.shape[1:] != out_shape:
        raise ValueError(f"{name}: float targets must match the model's per-sample output shape {out_shape}, "
                         f"got per-sample shape {y.shape[1:]}")
    if single:
        if np.isin(y, (0, 1)).all():
            return "binary", y.reshape(len(y)).astype(np.int64)
        return None, None
    if y.ndim == 2 and (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
        return "argmax", y.argmax(axis=1)
    return None, None


def _shape_targets(y: np.ndarray, out_shape: tuple[int, ...], dtype, name: str) -> np.ndarray:
    """Targets in the form the losses want for a single-output model (N, 1): 0/1 integer labels and float
    targets of shape (N,) become float (N, 1) arrays of the model's dtype (binary classification with BCELoss)."""
    if out_shape != (1,):
        return y
    if y.dtype == np.int64:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"{name}: labels for a single-output model must be 0 or 1, "
                             f"got values in [{lo}, {hi}]")
        return y.astype(dtype).reshape(len(y), 1)
    return y.reshape(len(y), 1) if y.ndim == 1 else y


def _n_correct(kind: str | None, out: np.ndarray, labels: np.ndarray | None) -> int:
    """How many of out's rows are right: argmax == label, or (binary) out > 0.5 == label."""
    if kind == "argmax":
        hits = _count_argmax_hits(out, labels)  # -1: not a C-contiguous float matrix with int64 labels
        return hits if hits >= 0 else int(np.count_nonzero(out.argmax(axis=1) == labels))
    if kind == "binary":
        return int(np.count_nonzero((out.reshape(len(out)) > 0.5) == labels))
    return 0


def _batch_hits(kind: str, loss, out: np.ndarray, targets: np.ndarray, labels: np.ndarray | None) -> int:
    """_n_correct of a training batch just passed through `loss`: where the targets are the labels (labels
    None) and the loss counted the argmax hits on its way (_Loss._argmax_hits, CrossEntropyLoss's compiled
    pass), its count, without reading out again (an MLP 784-100-10 step: ~2 us less of fit's own work)."""
    if labels is None:
        hits = getattr(loss, "_argmax_hits", None) if kind == "argmax" else None
        if hits is not None:
            return hits
        labels = targets
    return _n_correct(kind, out, labels)


# ---- modes ---------------------------------------------------------------------------------------------
# A model's mode is shared state, so the calls that switch it coordinate through one lock: predict/evaluate
# calls on one model count themselves in, the first saves every module's mode (nn.module.save_modes) and
# switches to eval, the last restores what was saved; their forward passes run outside the lock (in eval
# mode a layer keeps no per-call state). fit owns the model while it trains: other threads'
# predict/evaluate calls are refused. One caller alone uses nn.module.temporary_mode instead.

_modes_lock = threading.Lock()
_eval_users: dict[int, list] = {}   # id(model) -> [calls inside, saved modes]
_fit_threads: dict[int, int] = {}   # id(model) -> ident of the thread fitting it


class _eval_mode:
    """Context manager: the model in eval mode; enterable from several threads at once (see above)."""

    def __init__(self, model) -> None:
        self.model = model

    def __enter__(self):
        key = id(self.model)
        with _modes_lock:
            fitter = _fit_threads.get(key)
            if fitter is not None and fitter != threading.get_ident():
                raise RuntimeError("model: fit is training this model in another thread; predicting with it now "
                                   "would switch it to eval mode under fit (use fit's validation_data or a callback)")
            users = _eval_users.get(key)
            if users is None:
                saved = save_modes(self.model)
                # a model already in eval mode throughout (the usual case when serving) needs no switch
                # and nothing restored: the per-call cost of predict on one sample stays small
                if not any(training for _, training in saved):
                    saved = None
                else:
                    with handouts_kept():   # training resumes after this (fit's probe and validation)
                        self.model.eval()
                _eval_users[key] = [1, saved]
            else:
                users[0] += 1

    def __exit__(self, *exc) -> None:
        key = id(self.model)
        with _modes_lock:
            users = _eval_users[key]
            users[0] -= 1
            if users[0] == 0:
                del _eval_users[key]
                if users[1] is not None:
                    restore_modes(users[1])


class _train_mode:
    """Context manager for fit: the model in train mode with `input_grad` off (fit never reads d loss / d X,
    so the first layer need not compute it); every module's mode and input_grad are restored on exit."""

    def __init__(self, model) -> None:
        self.model = model

    def __enter__(self):
        key = id(self.model)
        with _modes_lock:
            if key in _fit_threads or key in _eval_users:
                raise RuntimeError("model: another thread is already fitting or predicting with this model; "
                                   "fit needs it to itself")
            self.saved = save_modes(self.model)
            self.input_grad = getattr(self.model, "input_grad", None)
            self.model.train()
            if self.input_grad is not None:
                self.model.input_grad = False
            _fit_threads[key] = threading.get_ident()

    def __exit__(self, *exc) -> None:
        restore_modes(self.saved)
        if self.input_grad is not None:
            self.model.input_grad = self.input_grad
        with _modes_lock:
            del _fit_threads[id(self.model)]


# ---- public API ------------------------------------------------------------------------------------------

def predict(model, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for X, computed in eval mode in batches and stacked along the first axis.

    X is cast to the model's dtype when it is another float dtype. The model's mode is restored afterwards.
    A model made of the layers ``cnn_core.compile`` supports runs as a compiled plan (kept for the next call
    while the model has the same layers and unchanged parameters and buffers); ``batch_size`` then only
    matters to other models. Several threads may predict (and evaluate) with one model at once: the mode
    switch is shared, and the model gets back its mode when the last of them finishes. Not while another
    thread fits it (RuntimeError).
    """
    _check_model(model)
    batch_size = check_int(batch_size, "batch_size", 1)
    X = _as_inputs(X, "X", model)
    _refuse_while_fitting(model)
    # A model built from the layers cnn_core.compile supports runs as a compiled plan (the same values, one
    # C call over the whole of X, in chunks of its own, from copies of the weights: no mode switch needed);
    # others run layer by layer below.
    plan = _predict_plan(model, X.shape[1:], X.dtype if X.dtype.kind == "f" else _dtype(model, X))
    if plan is not None:
        return plan(X)
    out = None
    # X was screened for NaN/inf above, once: the first layer need not screen each batch again
    with _eval_mode(model), fed_by_a_layer():
        for start in range(0, len(X), batch_size):
            a = _forward(model, X[start:start + batch_size])
            if out is None:
                out = np.empty((len(X),) + a.shape[1:], dtype=a.dtype)
            out[start:start + len(a)] = a
    return out


def _refuse_while_fitting(model) -> None:
    """predict's check that no other thread is fitting the model (its plan path needs no eval mode)."""
    with _modes_lock:
        fitter = _fit_threads.get(id(model))
    if fitter is not None and fitter != threading.get_ident():
        raise RuntimeError("model: fit is training this model in another thread; predicting with it now "
                           "would switch it to eval mode under fit (use fit's validation_data or a callback)")


def _evaluate(model, loss, X, y, batch_size, kind, labels) -> EvalResult:
    total, correct = _eval_sums(model, loss, X, y, batch_size, kind, labels)
    return EvalResult(total / len(X), correct / len(X) if kind else None)


def _eval_sums(model, loss, X, y, batch_size, kind, labels) -> tuple[float, int]:
    """(sum over batches of the batch loss times its size, number of correct predictions) on (X, y)."""
    total, correct = 0.0, 0
    with _eval_mode(model), fed_by_a_layer():   # X was screened for NaN/inf by its caller (_as_inputs)
        for start in range(0, len(X), batch_size):
            stop = min(start + batch_size, len(X))
            a = _forward(model, X[start:stop])
            total += loss(a, y[start:stop]) * (stop - start)
            correct += _n_correct(kind, a, None if labels is None else labels[start:stop])
    return total, correct


def evaluate(model, loss, X: np.ndarray, y: np.ndarray, batch_size: int = 256) -> EvalResult:
    """Mean loss and accuracy of the model on (X, y), in eval mode; returns EvalResult(loss, accuracy).

    The loss is averaged over samples (batch means weighted by batch size). accuracy is None when the
    targets are neither labels, one-hot rows nor 0/1 targets of a single-output model. Thread-safe like predict.
    """
    _check_model(model)
    _check_loss(loss)
    batch_size = check_int(batch_size, "batch_size", 1)
    X = _as_inputs(X, "X", model)
    out_shape = _output_shape(model, X)
    y = _shape_targets(_as_targets(y, "y", len(X), _dtype(model, X)), out_shape, _dtype(model, X), "y")
    kind, labels = _accuracy_labels(y, out_shape, "y")
    return _evaluate(model, loss, X, y, batch_size, kind, labels)


def _check_loss(loss) -> None:
    if not callable(loss) or not callable(getattr(loss, "backward", None)):
        raise TypeError(f"loss: expected a cnn_core.nn loss (callable with backward()), got {type(loss).__name__}")


def fit(model, loss, optimizer, X, y: np.ndarray | None = None, epochs: int = 1, batch_size: int | None = None,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None, shuffle: bool | None = None,
        seed: int | None = None, callbacks: Sequence[Callback] | None = None, *, validation_split: float = 0.0,
        initial_epoch: int = 0, verbose: int = 0, distributed: Any = False) -> History:
    """Train `model` with mini-batches and return the History of the epochs run.

    Each step: zero the model's grads, forward, loss, check the loss is finite, backward, check the gradients
    are finite, optimizer.step().
    Data: arrays X, y with batch_size (default 32), or a cnn_core.data.DataLoader in place of X (y,
    batch_size, shuffle and seed then belong to the loader and must not be given).
    X: float array, samples first, cast to the model's dtype if it is another float dtype. y: integer class
    labels (N,) or a float target array (one-hot or real) whose per-sample shape matches the model output
    (a single-output model (N, 1) also takes 0/1 integer labels or float targets of shape (N,), turned into
    float (N, 1) targets for BCELoss/MSELoss). Everything is checked once, before the first batch, except X's
    values when the batches are shuffled: each batch is then screened for NaN/inf as it is gathered (a pass
    over rows already in cache, on the thread that gathers the next batch), and a NaN or infinity in X
    raises ValueError naming the sample ("X: expected finite values, got NaN or infinity in sample i")
    before any batch holding it trains, with the model and optimizer restored to the end of the last
    finished epoch (to their state before fit when it is the first; with drop_last a sample left out of
    the first epochs can be met later). Unshuffled batches and distributed fits scan X once up front.
    shuffle (arrays; default True): one permutation per epoch, drawn from np.random.default_rng([seed, epoch])
    with a seed, else from cnn_core's global generator (cnn_core.data explains the draws). The last batch of
    an epoch may be smaller.
    validation_data: (X_val, y_val), evaluated after every epoch; or validation_split in (0, 1): the last
    fraction of X, y (taken before shuffling, as Keras does) is held out for validation instead.
    initial_epoch: the epoch to start at (0-based), to continue a run restored with load_checkpoint: epochs
    initial_epoch .. epochs - 1 run, with the same batches and draws as in the uninterrupted run.
    verbose: 0 quiet, 1 a ProgressBar (live on a terminal), 2 one line per epoch.
    callbacks: cnn_core.callbacks.Callback objects; each gets the model (set_model) first. A callback setting
    `model.stop_training = True` ends the run after the current epoch; on_train_end runs on every exit path.
    The model runs in train mode during fit (eval mode for validation); its previous mode is restored.
    Layers keep the batch and the arrays other layers hand them for backward without copying them (unless a
    layer has inplace=True): a custom module's forward must not write into an array after passing it to a
    layer, as PyTorch's autograd refuses such writes.
    Raises NonFiniteLossError (a FloatingPointError) when the loss, an activation or a gradient is NaN/inf,
    before that batch's update.
    Ctrl-C (KeyboardInterrupt) ends training: the model and optimizer are restored to the end of the last
    finished epoch and the History is returned with interrupted=True (no exception).
    distributed: True (or a cnn_core.distributed.Options) for synchronous data-parallel training on MPI, every
    rank of `mpiexec -n P` making this same call (needs the [mpi] extra). batch_size stays the global batch:
    every rank draws the same shuffled order (one seed, rank 0's), computes its shard of each global batch
    (cnn_core.distributed.shard) and the gradients are all-reduced, weighted by each shard's share, so every
    rank takes the update one process would take on the whole batch. Rank 0's weights, buffers and optimizer
    state are broadcast first; logs and validation metrics are global (reduced over ranks) and identical
    everywhere. Only rank 0 runs the callbacks that print or write files (ProgressBar, ModelCheckpoint,
    CSVLogger); the others run on every rank, and a stop asked by any rank (model.stop_training, Ctrl-C, a
    diverging loss on any rank) is taken by all ranks together. Any other exception on one rank aborts the
    whole job (MPI Abort) after printing its traceback, instead of leaving the other ranks waiting.
    """
    if distributed is False:
        return _fit(model, loss, optimizer, X, y, epochs, batch_size, validation_data, shuffle, seed, callbacks,
                    validation_split, initial_epoch, verbose, None)
    from cnn_core import distributed as dist_module

    dist = dist_module.Trainer(dist_module.options(distributed))
    try:
        return _fit(model, loss, optimizer, X, y, epochs, batch_size, validation_data, shuffle, seed, callbacks,
                    validation_split, initial_epoch, verbose, dist)
    except BaseException as e:
        dist.guard(e)
        raise
    finally:
        dist.finish()


def _fit(model, loss, optimizer, X, y, epochs, batch_size, validation_data, shuffle, seed, callbacks,
         validation_split, initial_epoch, verbose, dist) -> History:
    try:
        loader, X, y, kind, labels, val, callbacks, epochs, initial_epoch, check_rows = _fit_arguments(
            model, loss, optimizer, X, y, epochs, batch_size, validation_data, shuffle, seed, callbacks,
            validation_split, initial_epoch, verbose, dist is not None)
    except Exception as e:
        if dist is not None:  # every rank learns that some rank failed, and no rank waits in a collective
            dist.agree(failed=True)
            dist.together(e)
        raise
    if dist is not None:
        dist.agree(failed=False)
        shared = dist.seed(loader.seed)  # one shuffling order (and augmentation draws) on every rank
        if loader.seed != shared:
            loader = copy.copy(loader)
            loader.seed = shared
        if not dist.is_main:
            callbacks = [cb for cb in callbacks if not isinstance(cb, _MAIN_RANK_ONLY)]
    return _train(model, loss, optimizer, loader, X, y, kind, labels, val, callbacks, epochs, initial_epoch, dist,
                  check_rows)


def _fit_arguments(model, loss, optimizer, X, y, epochs, batch_size, validation_data, shuffle, seed, callbacks,
                   validation_split, initial_epoch, verbose, distributed=False):
    """fit's checks: (loader, X, y, kind, labels, val, callbacks, epochs, initial_epoch, check_rows), all
    validated but, when check_rows, X's values (then screened as its batches are gathered)."""
    _check_model(model)
    _check_loss(loss)
    if not callable(getattr(optimizer, "step", None)):
        raise TypeError(f"optimizer: expected a cnn_core.optim optimizer, got {type(optimizer).__name__}")
    epochs = check_int(epochs, "epochs", 0)
    initial_epoch = check_int(initial_epoch, "initial_epoch", 0, epochs)
    verbose = check_int(verbose, "verbose", 0, 2)
    callbacks = list(callbacks or [])
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}]: expected a cnn_core.callbacks.Callback, got {type(cb).__name__}")
    if verbose:
        callbacks.append(ProgressBar(live=None if verbose == 1 else False))
    validation_split = check_real(validation_split, "validation_split", 0.0, 1.0, high_open=True)
    if isinstance(X, DataLoader):
        for name, value in (("y", y), ("batch_size", batch_size), ("shuffle", shuffle), ("seed", seed)):
            if value is not None:
                raise ValueError(f"{name}: the DataLoader given as X sets its own {name}; pass None")
        if validation_split:
            raise ValueError("validation_split: not available with a DataLoader (pass validation_data)")
        loader = X
        X, y = loader.X, loader.y
        if y is None:
            raise ValueError("X: the DataLoader has no targets y to train on")
    else:
        batch_size = 32 if batch_size is None else check_int(batch_size, "batch_size", 1)
        shuffle = True if shuffle is None else check_bool(shuffle, "shuffle")
        if seed is not None:
            seed = check_int(seed, "seed", 0)
        if y is None:
            raise TypeError("y: expected the targets (a numpy.ndarray), got None")
        if validation_split:
            if validation_data is not None:
                raise ValueError("validation_split: give validation_data or validation_split, not both")
            X, y, validation_data = _split(X, y, validation_split)
        loader = DataLoader(X, y, batch_size, shuffle, seed=seed)
    X = _as_inputs(X, "X", model, scan=False)
    if not _all_finite_array(X[:1]):  # the sample that finds the output shape below
        raise NonFiniteRowError("X", 0)
    sample = X[:1] if loader.transform is None else _apply(loader.transform, X[:1], np.random.default_rng(0))
    out_shape = _output_shape(model, sample)
    y = _shape_targets(_as_targets(y, "y", len(X), _dtype(model, X)), out_shape, _dtype(model, X), "y")
    kind, labels = _accuracy_labels(y, out_shape, "y")
    # X's values: screened batch by batch as the prefetch thread gathers them (a pass over rows already in
    # cache, off the training thread) when fit's batches take that path, else by one scan of X here. A
    # distributed fit scans here too, so that every rank refuses X before any collective starts.
    check_rows = not distributed and loader._prefetches((X, y, labels if labels is not y else None))
    if not check_rows and not _all_finite_array(X):
        raise ValueError("X: expected finite values, got NaN or infinity")
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data: expected a pair (X_val, y_val)")
        X_val = _as_inputs(validation_data[0], "validation_data[0]", model)
        if X_val.shape[1:] != sample.shape[1:]:
            raise ValueError(f"validation_data[0]: expected per-sample shape {sample.shape[1:]} like "
                             f"{'the transformed X' if loader.transform is not None else 'X'}, got {X_val.shape[1:]}")
        y_val = _shape_targets(_as_targets(validation_data[1], "validation_data[1]", len(X_val), _dtype(model, X)),
                               out_shape, _dtype(model, X), "validation_data[1]")
        val = (X_val, y_val) + _accuracy_labels(y_val, out_shape, "validation_data[1]")
    return loader, X, y, kind, labels, val, callbacks, epochs, initial_epoch, check_rows


def _train(model, loss, optimizer, loader, X, y, kind, labels, val, callbacks, epochs, initial_epoch,
           dist, check_rows=False) -> History:
    batches = len(loader)
    info = {"epochs": epochs, "batches": batches, "samples": batches * loader.batch_size if loader.drop_last
            else len(X), "batch_size": loader.batch_size, "val_samples": 0 if val is None else len(val[0]),
            "initial_epoch": initial_epoch}
    history = History()
    model.stop_training = False
    for cb in callbacks:
        cb.set_model(model)
    arrays = (X, y, labels if labels is not y else None)
    # The batch stays unchanged from a step's forward to its backward, so layers may keep it without a copy,
    # unless a layer of the model writes into its input (inplace=True).
    modules = getattr(model, "modules", None)
    kept = callable(modules) and not any(getattr(m, "inplace", False) for m in modules())
    with _train_mode(model):
        if dist is not None:
            dist.start(model, optimizer)  # rank 0's weights, buffers and optimizer state everywhere
        snapshot = _snapshot(model, optimizer)
        try:
            for cb in callbacks:
                cb.on_train_begin(info)
            for epoch in range(initial_epoch, epochs):
                for cb in callbacks:
                    cb.on_epoch_begin(epoch, info)
                batch_iter = loader._batches(arrays, epoch, reuse=True, check_rows=check_rows)
                # X was screened for NaN/inf (up front, or batch by batch as gathered: check_rows): the first
                # layer need not screen each batch again, unless a transform made it (a NaN from a user's
                # transform is still caught there, as the forward pass's NonFiniteError)
                with batch_feed(kept, screened=loader.transform is None) as feed:
                    if dist is None:
                        logs = _train_epoch(model, loss, optimizer, batch_iter, kind, epoch, epochs, batches,
                                            callbacks, feed)
                    else:
                        logs = _train_epoch_distributed(model, loss, optimizer, batch_iter, kind, epoch, epochs,
                                                        batches, callbacks, dist, feed)
                        dist.sync_buffers()  # every rank validates and keeps rank 0's running statistics
                if val is None:
                    logs["val_loss"] = logs["val_acc"] = None
                elif dist is None:
                    logs["val_loss"], logs["val_acc"] = _evaluate(model, loss, val[0], val[1], 256, val[2], val[3])
                else:
                    logs["val_loss"], logs["val_acc"] = _evaluate_distributed(model, loss, val, dist)
                if dist is not None and dist.reduce([dist.stop_requested])[0]:
                    raise dist.together(KeyboardInterrupt())  # Ctrl-C during validation: this epoch is lost
                logs["seconds"] = time.perf_counter() - logs.pop("start")
                history.append(logs)
                snapshot = _snapshot(model, optimizer)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
                if dist is not None:  # a callback on any rank may ask: all ranks stop after the same epoch
                    model.stop_training = bool(dist.reduce([bool(model.stop_training)])[0])
                if model.stop_training:
                    break
        except KeyboardInterrupt as e:
            if dist is not None and not dist.was_together(e):
                raise  # this rank alone: the others may wait in a collective, so fit's guard aborts the job
            _restore(model, optimizer, snapshot)
            history.interrupted = True
        except NonFiniteRowError:  # a NaN/inf sample of X, found as its batch was gathered (check_rows)
            _restore(model, optimizer, snapshot)
            raise
        finally:  # on every exit path: a finished run, an interrupt, a diverging run, a callback's exception
            for cb in callbacks:
                cb.on_train_end(history)
    return history


def _split(X, y, fraction: float):
    """(X_train, y_train, (X_val, y_val)): the last `fraction` of the samples held out, as Keras splits."""
    if not isinstance(X, np.ndarray):
        raise not_an_array(X, "X")
    if not isinstance(y, np.ndarray) or y.ndim == 0 or len(y) != len(X):
        raise ValueError(f"y: expected {len(X)} targets (one per sample of X), got "
                         f"{getattr(y, 'shape', type(y).__name__)}")
    split_at = math.ceil(len(X) * (1.0 - fraction))
    if split_at < 1 or split_at >= len(X):
        raise ValueError(f"validation_split: {fraction} of {len(X)} samples leaves "
                         f"{'no training' if split_at < 1 else 'no validation'} sample")
    return X[:split_at], y[:split_at], (X[split_at:], y[split_at:])


def _train_epoch(model, loss, optimizer, batches_iter, kind, epoch, epochs, batches, callbacks,
                 feed: batch_feed) -> dict[str, Any]:
    params = model.parameters()
    start_time = time.perf_counter()
    total, correct, seen = 0.0, 0, 0
    for batch, (xb, yb, lb) in enumerate(batches_iter):
        model.zero_grad()
        feed(xb)
        try:
            a = _forward(model, xb)
            value = float(loss(a, yb))
        except NonFiniteError as e:
            # X and y were checked finite up front, so NaN/inf inside forward comes from the weights.
            raise NonFiniteLossError(f"the forward pass produced NaN or infinity ({e})",
                                     epoch, epochs, batch, batches) from e
        if not math.isfinite(value):
            raise NonFiniteLossError(f"loss became {value}", epoch, epochs, batch, batches)
        # Scored before backward: a layer may reuse its output buffer in the backward pass.
        size = len(xb)
        if kind:
            correct += _batch_hits(kind, loss, a, yb, lb)
        model.backward(loss.backward())
        if not _all_finite(params):
            raise NonFiniteLossError("gradients became NaN or infinity", epoch, epochs, batch, batches)
        optimizer.step()
        seen += size
        total += value * size
        if callbacks:
            _batch_end(callbacks, start_time, epoch, batch, batches, size, value, total, correct, seen, kind)
    return _epoch_logs(start_time, total, correct, seen, kind)


def _batch_end(callbacks, start_time: float, epoch: int, batch: int, batches: int, size: int, value: float,
               total: float, correct: int, seen: int, kind) -> None:
    """Call every callback's on_batch_end with the running figures of the epoch so far."""
    seconds = time.perf_counter() - start_time
    logs = {"epoch": epoch, "batch": batch, "batches": batches, "size": size, "loss": value,
            "running_loss": total / seen, "running_acc": correct / seen if kind else None,
            "samples": seen, "seconds": seconds, "samples_per_sec": seen / seconds if seconds > 0 else 0.0}
    for cb in callbacks:
        cb.on_batch_end(batch, logs)


def _epoch_logs(start_time: float, total: float, correct: int, seen: int, kind) -> dict[str, Any]:
    """The epoch's training figures: mean loss, accuracy (None without one), samples per second."""
    seconds = time.perf_counter() - start_time
    return {"train_loss": total / seen, "train_acc": correct / seen if kind else None,
            "samples_per_sec": seen / seconds if seconds > 0 else math.inf, "start": start_time}


def _loss_divisor(loss, y: np.ndarray) -> float:
    """What the loss's reduction divides the sum of a batch's losses by, up to a factor common to every batch:
    the number of samples, or the summed class weights of the kept labels for a weighted (or ignore_index)
    NLLLoss/CrossEntropyLoss; 1 for reduction='sum' (then the ranks' gradients are simply summed)."""
    if getattr(loss, "reduction", "mean") == "sum":
        return 1.0 if len(y) else 0.0
    if isinstance(loss, _ClassLoss) and y.dtype.kind in "iu":
        keep = y != loss.ignore_index
        if loss.weight is None:
            return float(np.count_nonzero(keep))
        return float(np.asarray(loss.weight, np.float64)[y[keep]].sum())
    return float(len(y))


def _train_epoch_distributed(model, loss, optimizer, batches_iter, kind, epoch, epochs, batches, callbacks,
                             dist, feed: batch_feed) -> dict[str, Any]:
    """_train_epoch on this rank's shard of every global batch. One small all-reduce before backward agrees
    on the global loss, the accuracy count, the loss's divisor and any reason to stop (a non-finite loss on
    some rank, Ctrl-C on some rank); the gradients' all-reduce follows backward (dist.allreduce)."""
    from cnn_core.distributed import shard

    params = model.parameters()
    start_time = time.perf_counter()
    total, correct, seen = 0.0, 0, 0
    summed = getattr(loss, "reduction", "mean") == "sum"
    for batch, (xb, yb, lb) in enumerate(batches_iter):
        size = len(xb)
        mine = shard(size, dist.rank, dist.size)
        part = slice(mine.start, mine.stop)
        xs, ys, ls = xb[part], yb[part], None if lb is None else lb[part]
        model.zero_grad()
        dist.sync_buffers()
        value, hits, bad = 0.0, 0, None
        divisor = _loss_divisor(loss, ys) if len(xs) else 0.0
        if len(xs):
            feed(xs)
            try:
                a = _forward(model, xs)
                value = float(loss(a, ys))
            except NonFiniteError as e:
                bad = f"the forward pass produced NaN or infinity ({e})"
            if bad is None and not math.isfinite(value):
                bad = f"loss became {value}"
            if bad is None and kind:
                hits = _batch_hits(kind, loss, a, ys, ls)
        s = dist.reduce([0.0 if bad else value * divisor, divisor, hits, bad is not None, dist.stop_requested])
        if s[dist.BAD]:
            raise dist.together(NonFiniteLossError(bad or "the loss or the forward pass became NaN or infinity on "
                                                 "another rank", epoch, epochs, batch, batches))
        if s[dist.STOP]:
            raise dist.together(KeyboardInterrupt())
        d = s[dist.DIVISOR]
        dist.arm(1.0 if summed else (divisor / d if d > 0 else 0.0))
        if len(xs):
            model.backward(loss.backward())
        dist.allreduce()
        if not _all_finite(params):  # the reduced gradients are identical on every rank: so is this verdict
            raise dist.together(NonFiniteLossError("gradients became NaN or infinity", epoch, epochs, batch,
                                                 batches))
        optimizer.step()
        value = s[dist.LOSS] if summed else (s[dist.LOSS] / d if d > 0 else 0.0)
        seen += size
        total += value * size
        correct += int(round(s[dist.CORRECT]))
        if callbacks:
            _batch_end(callbacks, start_time, epoch, batch, batches, size, value, total, correct, seen, kind)
    return _epoch_logs(start_time, total, correct, seen, kind)


def _evaluate_distributed(model, loss, val, dist) -> tuple[float, float | None]:
    """_evaluate over the whole validation set, each rank evaluating its shard, the sums reduced."""
    from cnn_core.distributed import shard

    X_val, y_val, kind, labels = val
    mine = shard(len(X_val), dist.rank, dist.size)
    part = slice(mine.start, mine.stop)
    total, correct = _eval_sums(model, loss, X_val[part], y_val[part], 256, kind,
                                None if labels is None else labels[part]) if len(mine) else (0.0, 0)
    total, correct = dist.reduce([total, correct])
    return total / len(X_val), (round(correct) / len(X_val) if kind else None)


def _all_finite(params) -> bool:
    """True when every gradient is finite: one compiled call scans them all (cnn_core/_finite.pyx), without
    the per-array Python work that cost ~4 us per parameter. The compiled call refuses a non-contiguous
    gradient (ValueError from the buffer request): those take NumPy's test, array by array. Asking first
    whether every gradient is contiguous cost 0.8-0.9 us a step (MLP 784-100-10: 4.2-4.4 us against 3.4-3.5
    us for the whole check; the scan of its 79,510 float32 gradients is ~2.7 us of that, bound by the L2
    cache's bandwidth)."""
    grads = grads_to_scan(params)
    try:
        return _grads_finite(grads)
    except ValueError:
        return all(g is None or _all_finite_array(g) for g in grads)


def _snapshot(model, optimizer) -> tuple[dict, Any]:
    """Copies of the model's (and, when it has one, the optimizer's) state, to roll back to on Ctrl-C."""
    opt_state = optimizer.state_dict() if callable(getattr(optimizer, "state_dict", None)) else None
    return model.state_dict(), opt_state


def _restore(model, optimizer, snapshot) -> None:
    model.load_state_dict(snapshot[0])
    if snapshot[1] is not None:
        optimizer.load_state_dict(snapshot[1])
