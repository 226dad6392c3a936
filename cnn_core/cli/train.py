"""`cnn-core train MODEL`: networks through cnn_core.fit, the linear estimators through their own fit."""
from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

import cnn_core
from cnn_core import distributed, nn, optim
from cnn_core.callbacks import Callback, LRSchedulerStep, ProgressBar, format_duration
from cnn_core.cli.data import fit_model_input, load_split
from cnn_core.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from cnn_core.models import RNNClassifier, LinearSVM, Perceptron, lenet5, mlp
from cnn_core.models.rnn import CELLS as _CELL_CLASSES
from cnn_core.metrics import confusion_matrix
from cnn_core.plotting import plot_confusion_matrix, plot_filters, plot_history, require_matplotlib

NETWORKS = ("mlp", "lenet5", "rnn")
ESTIMATORS = ("perceptron", "svm")
MODELS = ("perceptron", "mlp", "lenet5", "rnn", "svm")
ALGORITHMS = {"perceptron": ("primal", "greedy", "pocket"),
              # LinearSVM's subgradient descent on mini-batches (sgd) or on the whole training set (gd)
              "svm": ("sgd", "gd")}
VALIDATION_FRACTION = 0.1  # networks hold out the end of the train split to report validation figures
MLP_HIDDEN = 100
RNN_HIDDEN = 128
CELLS = tuple(_CELL_CLASSES)  # the recurrent layers `train rnn --cell` builds RNNClassifier with

# Defaults per model, chosen so that a bare `cnn-core train MODEL` learns well on the embedded digits in
# about a minute or less on 2 cores (see the README's table for the figures they reach).
DEFAULTS: dict[str, dict[str, Any]] = {
    "lenet5": {"epochs": 8, "batch_size": 32, "lr": 1e-3, "optimizer": "adam"},
    "mlp": {"epochs": 10, "batch_size": 32, "lr": 1e-3, "optimizer": "adam"},
    "rnn": {"epochs": 12, "batch_size": 32, "lr": 1e-3, "optimizer": "adam"},
    "perceptron": {"epochs": 20, "lr": 1.0, "algorithm": "primal"},
    "svm": {"epochs": 20, "batch_size": 32, "lr": 0.1, "algorithm": "sgd"},
}
SGD_MOMENTUM = 0.9
# --plot DIR: the pictures written into DIR (filters only for networks with a convolution)
PLOT_FILES = {"curves": "curves.png", "confusion": "confusion.png", "filters": "filters.png"}


def _reject(args, model: str, names: tuple[str, ...], why: str) -> None:
    for name in names:
        if getattr(args, name) is not None:
            raise UsageError(f"--{name.replace('_', '-')} does not apply to {model}: {why}")


def _plot_into_directory(path: str) -> bool:
    """--plot DIR writes several pictures into DIR; a PATH ending in .png names one file, the curves alone."""
    return not path.lower().endswith(".png")


def _check_destinations(args) -> None:
    """Fail before training, not after, when --save or --plot cannot be written."""
    for option, path in (("--save", args.save), ("--plot", args.plot)):
        if path is None:
            continue
        if option == "--plot" and _plot_into_directory(path):
            if os.path.exists(path) and not os.path.isdir(path):
                raise UsageError(f"--plot: {path} exists and is not a directory (give a directory, or a .png "
                                 f"file name for the curves alone)")
            target = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(target):
                raise UsageError(f"--plot: directory {target} does not exist")
            if not os.access(target, os.W_OK):
                raise UsageError(f"--plot: directory {target} is not writable")
            continue
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise UsageError(f"{option}: directory {directory} does not exist")
        if os.path.isdir(path):
            raise UsageError(f"{option}: {path} is a directory; give a file name")
        if not os.access(directory, os.W_OK):
            raise UsageError(f"{option}: directory {directory} is not writable")
    if args.plot is not None:  # a missing extra is reported before any time is spent training
        try:
            require_matplotlib()
        except ImportError as e:
            raise UsageError(f"--plot: {e}") from None


def _settings(args) -> dict[str, Any]:
    """The run's hyperparameters: the model's defaults, overridden by the options given."""
    s = dict(DEFAULTS[args.model])
    for key in ("epochs", "batch_size", "lr", "optimizer", "algorithm"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if args.model in NETWORKS and s["optimizer"] == "sgd":
        s["momentum"] = SGD_MOMENTUM if args.momentum is None else args.momentum
    return s


def _limit(X: np.ndarray, y: np.ndarray, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    return (X, y) if n is None else (X[:n], y[:n])


class Reporter:
    """Where results go: stdout, or stderr when --json keeps stdout for the JSON object; nothing if --quiet
    (nor on the ranks other than 0 of a --distributed run)."""

    def __init__(self, args) -> None:
        self.quiet = args.quiet or not getattr(args, "main_rank", True)
        self.stream = sys.stderr if args.json else sys.stdout

    def __call__(self, text: str = "") -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)


def run_train(args) -> int:
    """Validate the options, load the data, train, report; returns the exit status."""
    if args.model != "rnn":
        _reject(args, args.model, ("cell",), "it is for rnn")
    if args.model in NETWORKS:
        _reject(args, args.model, ("classes", "algorithm"), "it is for perceptron and svm")
        if args.optimizer == "adam" or (args.optimizer is None and DEFAULTS[args.model]["optimizer"] == "adam"):
            _reject(args, args.model, ("momentum",), "it is for --optimizer sgd")
    else:
        _reject(args, args.model, ("optimizer", "momentum"), "it is trained by its own algorithm (see --algorithm)")
        if args.model == "perceptron":
            _reject(args, args.model, ("batch_size",), "the perceptron learns one sample at a time")
        if args.dtype == "float32":
            raise UsageError(f"--dtype float32 does not apply to {args.model}: it always computes in float64")
        if args.algorithm is not None and args.algorithm not in ALGORITHMS[args.model]:
            raise UsageError(f"--algorithm: {args.model} takes one of {', '.join(ALGORITHMS[args.model])}, "
                             f"got {args.algorithm!r}")
    _check_destinations(args)
    args.dtype = args.dtype or "float32"
    args.world_size, args.main_rank = 1, True
    if args.distributed:
        if args.model not in NETWORKS:
            raise UsageError(f"--distributed does not apply to {args.model}: it is for the networks "
                             f"({', '.join(NETWORKS)})")
        try:
            rank, args.world_size = distributed.init()
        except ImportError as e:
            raise UsageError(f"--distributed: {e}") from None
        args.main_rank = rank == 0
        if args.threads is None:  # the ranks on one node share its cores instead of oversubscribing them
            cnn_core.set_num_threads(distributed.local_threads())
    if args.threads is not None:
        try:
            cnn_core.set_num_threads(args.threads)
        except (ValueError, TypeError) as e:  # the library's bounds (a cap the runtime starts safely)
            raise UsageError(f"--threads: {e}") from None
    settings = _settings(args)
    X, y = _limit(*load_split(args.data, "train"), args.limit)
    X_test, y_test = _limit(*load_split(args.data, "test"), args.limit)
    if args.model in NETWORKS:
        return _train_network(args, settings, X, y, X_test, y_test)
    return _train_estimator(args, settings, X, y, X_test, y_test)


# ---- networks ---------------------------------------------------------------------------------------------

def build_network(name: str, image_shape: tuple[int, ...], num_classes: int, dtype: str, cell: str = "rnn"):
    """The CLI's version of each network, for images of shape (C, H, W); `cell` is rnn's recurrent layer."""
    c, h, w = image_shape
    if name == "mlp":
        model = mlp([c * h * w, MLP_HIDDEN, num_classes], activation="relu")
    elif name == "lenet5":
        if (c, h, w) != (1, 28, 28):
            raise UsageError(f"lenet5 is built for 1x28x28 images, the data has {c}x{h}x{w}")
        model = lenet5(activation="relu", pool="max", num_classes=num_classes)
    else:
        if c != 1:
            raise UsageError(f"rnn reads single-channel images row by row, the data has {c} channels")
        model = RNNClassifier(w, RNN_HIDDEN, num_classes, cell=cell)
    return model.to(dtype)


def _make_optimizer(model, s: dict[str, Any]):
    if s["optimizer"] == "adam":
        return optim.Adam(model.parameters(), lr=s["lr"])
    return optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"])


def _train_network(args, s, X, y, X_test, y_test) -> int:
    report = Reporter(args)
    n_val = max(1, int(round(len(X) * VALIDATION_FRACTION)))
    if len(X) - n_val < 1:
        raise UsageError(f"need at least 2 training samples (one held out for validation), got {len(X)}")
    num_classes = max(int(y.max()), int(y_test.max())) + 1
    cnn_core.manual_seed(args.seed)
    model = build_network(args.model, X.shape[1:], num_classes, args.dtype, args.cell or "rnn")
    Xm = fit_model_input(model, X, "--data")
    Xm_test = fit_model_input(model, X_test, "--data")
    X_train, y_train, X_val, y_val = Xm[:-n_val], y[:-n_val], Xm[-n_val:], y[-n_val:]
    report(cnn_core.summary(model, Xm.shape[1:], title=f"Model: {args.model}"))
    opt_text = s["optimizer"] + (f" (momentum {s['momentum']})" if s["optimizer"] == "sgd" else "")
    report(f"Training on {len(X_train):,} samples, validating on {len(X_val):,}, testing on {len(X_test):,}: "
           f"{s['epochs']} epochs, batch {s['batch_size']}, {opt_text}, lr {s['lr']} (cosine decay), {args.dtype}, "
           f"{cnn_core.get_num_threads()} thread(s), seed {args.seed}")
    if args.distributed:
        report(f"Distributed: world size {args.world_size} (MPI ranks), each computing its share of every global "
               f"batch of {s['batch_size']} with {cnn_core.get_num_threads()} thread(s)")
    optimizer = _make_optimizer(model, s)
    # Cosine decay of the lr to 0 over the run: the last epochs settle into a minimum instead of hopping
    # around it at the full lr (worth about half a point of test accuracy on the digits at no cost).
    callbacks: list[Callback] = [LRSchedulerStep(optim.CosineAnnealingLR(optimizer, T_max=s["epochs"]))]
    if not args.quiet:
        callbacks.append(ProgressBar())  # a live bar on a terminal, one line per epoch otherwise
    loss = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    try:
        history = cnn_core.fit(model, loss, optimizer, X_train, y_train, epochs=s["epochs"],
                               batch_size=s["batch_size"], validation_data=(X_val, y_val), seed=args.seed,
                               callbacks=callbacks, distributed=args.distributed)
    except FloatingPointError as e:  # NonFiniteLossError: the run diverged (on every rank at once)
        if args.main_rank:
            print(f"cnn-core: training diverged: {e}", file=sys.stderr)
        return EXIT_FAILED
    if not args.main_rank:  # rank 0 evaluates, reports and writes files; the others hold the same weights
        return EXIT_INTERRUPTED if history.interrupted else EXIT_OK
    seconds = time.perf_counter() - t0
    finished = history.epoch
    result: dict[str, Any] = {"model": args.model, "epochs": finished, "interrupted": history.interrupted,
                              "parameters": int(sum(p.data.size for p in model.parameters())),
                              "train_seconds": seconds, "test_loss": None, "test_accuracy": None,
                              "test_samples": len(X_test), "history": history.history,
                              "world_size": args.world_size,
                              "saved": None, "plot": None}
    if history.interrupted:
        print(f"cnn-core: interrupted; keeping the weights of the last finished epoch ({finished})",
              file=sys.stderr, flush=True)
    if finished:
        test = cnn_core.evaluate(model, loss, Xm_test, y_test)
        result["test_loss"], result["test_accuracy"] = test.loss, test.accuracy
        report(f"Test accuracy {100 * test.accuracy:.2f}% (loss {test.loss:.4f}) on {len(X_test):,} samples; "
               f"trained {finished} epoch(s) in {format_duration(seconds)}")
        if args.save:
            _save(model, args.save, result, report)
    elif args.save:
        print("cnn-core: no epoch finished, so nothing was saved", file=sys.stderr)
    if args.plot and finished:
        title = f"{args.model} on {'the embedded digits' if args.data is None else args.data}"
        if _plot_into_directory(args.plot):
            pred = cnn_core.predict(model, Xm_test).argmax(axis=1)
            cm = confusion_matrix(y_test, pred, labels=np.arange(num_classes))
            conv = model if any(isinstance(m, nn.Conv2d) for m in model.modules()) else None
            result["plot_files"] = _plot_directory(args.plot, history, "cross-entropy loss", title, cm, conv,
                                                   report)
        else:
            _plot(history, args.plot, title, "cross-entropy loss")
            report(f"Wrote the curves to {args.plot}")
        result["plot"] = args.plot
    _emit_json(args, result)
    return EXIT_INTERRUPTED if history.interrupted else EXIT_OK


def _save(model, path: str, result: dict[str, Any], report: Reporter) -> None:
    """--save PATH: cnn_core.save (networks and estimators alike), a file-system error reported as --save's."""
    try:
        cnn_core.save(model, path)
    except OSError as e:
        raise UsageError(f"--save: cannot write {path}: {e.strerror or e}") from None
    result["saved"] = path
    report(f"Saved the model to {path}")


def _plot(history, path: str, title: str, loss_label: str) -> None:
    """--plot PATH: cnn_core.plotting.plot_history, a file-system error reported as --plot's."""
    try:
        plot_history(history, path, title=title, loss_label=loss_label)
    except OSError as e:
        raise UsageError(f"--plot: cannot write {path}: {e.strerror or e}") from None


def _plot_directory(directory: str, curves, loss_label: str, title: str, cm: np.ndarray, conv_model,
                    report: Reporter) -> list[str]:
    """--plot DIR: the curves, the test set's confusion matrix and (for a conv net) the first layer's filters,
    each through cnn_core.plotting into DIR (created if missing); returns the files written."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--plot: cannot create {directory}: {e.strerror or e}") from None
    paths = {name: os.path.join(directory, file) for name, file in PLOT_FILES.items()}
    _plot(curves, paths["curves"], title, loss_label)
    written = [paths["curves"]]
    try:
        plot_confusion_matrix(cm, paths["confusion"], title=f"{title}: test set")
        written.append(paths["confusion"])
        if conv_model is not None:
            plot_filters(conv_model, paths["filters"])
            written.append(paths["filters"])
    except OSError as e:
        raise UsageError(f"--plot: cannot write into {directory}: {e.strerror or e}") from None
    report(f"Wrote {', '.join(os.path.basename(p) for p in written)} to {directory}")
    return written


def _emit_json(args, result: dict[str, Any]) -> None:
    if args.json:
        import json
        print(json.dumps(result), flush=True)


# ---- linear estimators ------------------------------------------------------------------------------------

def parse_classes(text: str, available: np.ndarray) -> tuple[int, int]:
    """--classes A,B: two distinct labels present in the data."""
    parts = text.split(",")
    try:
        a, b = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--classes: expected two labels like 3,8, got {text!r}") from None
    if a == b:
        raise UsageError(f"--classes: expected two different labels, got {a} twice")
    for c in (a, b):
        if c not in available:
            raise UsageError(f"--classes: label {c} is not in the data (labels: "
                             f"{', '.join(str(int(v)) for v in available)})")
    return a, b


def _train_estimator(args, s, X, y, X_test, y_test) -> int:
    report = Reporter(args)
    if args.classes is not None:
        a, b = parse_classes(args.classes, np.unique(y))
        keep, keep_test = np.isin(y, (a, b)), np.isin(y_test, (a, b))
        X, y, X_test, y_test = X[keep], y[keep], X_test[keep_test], y_test[keep_test]
        task = f"{a} vs {b}"
    else:
        task = f"one-vs-rest over {len(np.unique(y))} classes"
    if len(np.unique(y)) < 2:
        raise UsageError(f"need at least two classes to train {args.model}, the training data has "
                         f"{len(np.unique(y))} (raise --limit)")
    if len(X_test) == 0:
        raise UsageError("no test samples of the chosen classes (raise --limit)")
    Xf, Xf_test = X.reshape(len(X), -1), X_test.reshape(len(X_test), -1)
    if args.model == "perceptron":
        est = Perceptron(eta=s["lr"], max_epochs=s["epochs"], algorithm=s["algorithm"], random_state=args.seed)
        how = f"{s['algorithm']} algorithm, eta {s['lr']}, at most {s['epochs']} epochs"
    else:
        batch = len(Xf) if s["algorithm"] == "gd" else s["batch_size"]
        est = LinearSVM(lr=s["lr"], max_epochs=s["epochs"], batch_size=batch, random_state=args.seed)
        how = f"{s['algorithm']} (batch {batch}), C {est.C}, lr {s['lr']}, at most {s['epochs']} epochs"
    k = 1 if len(np.unique(y)) == 2 else len(np.unique(y))
    d = Xf.shape[1]
    report(f"Model: {type(est).__name__} ({task}): weights ({k}, {d}) + biases ({k},) = {k * (d + 1):,} parameters")
    report(f"Training on {len(Xf):,} samples, testing on {len(Xf_test):,}: {how}, seed {args.seed}")
    t0 = time.perf_counter()
    try:
        est.fit(Xf, y)
    except ValueError as e:
        # The data and options were checked above, so what fit still refuses is its arithmetic overflowing
        # (--lr far too large): the estimators' counterpart of a diverging network, reported the same way.
        print(f"cnn-core: training diverged: {e}", file=sys.stderr)
        return EXIT_FAILED
    seconds = time.perf_counter() - t0
    train_acc, test_acc = est.score(Xf, y), est.score(Xf_test, y_test)
    result: dict[str, Any] = {"model": args.model, "classes": [int(c) for c in est.classes_],
                              "epochs": int(est.n_iter_), "train_seconds": seconds, "train_accuracy": train_acc,
                              "test_accuracy": test_acc, "test_samples": len(Xf_test),
                              "loss_curve": [float(v) for v in est.loss_curve_], "saved": None, "plot": None}
    facts = [f"{est.n_iter_} epoch(s)"]
    if args.model == "perceptron":
        result["updates"], result["converged"] = int(est.n_updates_), bool(est.converged_)
        facts += [f"{est.n_updates_:,} updates", "converged" if est.converged_ else "not converged"]
        facts.append(f"final L(w, b) {est.loss_curve_[-1]:.4g}")
    else:
        facts.append(f"final objective {est.loss_curve_[-1]:.4g}")
    report("; ".join(facts))
    report(f"Train accuracy {100 * train_acc:.2f}%, test accuracy {100 * test_acc:.2f}% on {len(Xf_test):,} "
           f"samples; trained in {format_duration(seconds)}")
    if args.save:
        _save(est, args.save, result, report)
    if args.plot:
        label = "perceptron loss L(w, b)" if args.model == "perceptron" else "SVM objective"
        if _plot_into_directory(args.plot):
            cm = confusion_matrix(y_test, est.predict(Xf_test), labels=est.classes_)
            result["plot_files"] = _plot_directory(args.plot, est.loss_curve_, label, f"{args.model} ({task})", cm,
                                                   None, report)
        else:
            _plot(est.loss_curve_, args.plot, f"{args.model} ({task})", label)
            report(f"Wrote the curve to {args.plot}")
        result["plot"] = args.plot
    _emit_json(args, result)
    return EXIT_OK
