"""Reproduce the README's results table: model, data, epochs, test accuracy, seconds.

Each row trains from a fixed seed and prints as soon as it finishes; the Markdown table comes last.
Data: the embedded MNIST digits (8,000 train / 2,000 test, cnn_core.datasets.load_mnist()) and
Fashion-MNIST (60,000 / 10,000) when its files are present. Seconds are wall time of training plus the test
evaluation, on the threads cnn_core is set to use (--threads). No augmentation in the deck's rows.

The small_cnn and small_resnet rows (issue 11, Fashion-MNIST) train with augmentation (RandomCrop(28,
padding=4) + RandomHorizontalFlip through cnn_core.data.DataLoader) and AdamW + OneCycleLR stepped per batch
(--cnn-epochs, at most 15), print the test accuracy after every epoch, the training time per epoch and the
memory training adds (peak RSS during training minus the RSS after data loading, Linux's VmHWM reset through
/proc/self/clear_refs), and, where torch is installed, the same epoch time and memory for the same network in
PyTorch, fed the same augmented batches (--torch-epochs epochs; its accuracy is printed, not compared).

Run: python benchmarks/accuracy.py [--rows nielsen,lenet5,lenet5_fashion,rnn,lstm,perceptron,svm,small_cnn,
     small_resnet] [--fashion DIR] [--cnn-epochs 15] [--torch-epochs 1]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads
import numpy as np

import cnn_core
from cnn_core import nn, optim
from cnn_core.callbacks import Callback, LRSchedulerStep
from cnn_core.data import Compose, DataLoader, RandomCrop, RandomHorizontalFlip
from cnn_core.datasets import load_mnist
from cnn_core.models import LinearSVM, Perceptron, RNNClassifier, lenet5, mlp, small_cnn, small_resnet
from cnn_core.training import evaluate, fit

FASHION = "/usr/share/datasets/fashion-mnist"
SEED = 0


class Row:
    def __init__(self, model: str, data: str, epochs: int | str, accuracy: float, seconds: float,
                 target: float | None, settings: str) -> None:
        self.model, self.data, self.epochs, self.accuracy = model, data, epochs, accuracy
        self.seconds, self.target, self.settings = seconds, target, settings

    def line(self) -> str:
        target = "-" if self.target is None else f">= {100 * self.target:.1f}% ({'met' if self.met else 'MISSED'})"
        return (f"| {self.model} | {self.data} | {self.epochs} | {100 * self.accuracy:.2f}% | {self.seconds:.1f} "
                f"| {target} | {self.settings} |")

    @property
    def met(self) -> bool:
        return self.target is None or self.accuracy >= self.target


def digits():
    X, y = load_mnist(split="train")
    Xt, yt = load_mnist(split="test")
    return X, y, Xt, yt


def train_net(model, loss, opt, X, y, Xt, yt, epochs, batch_size, scheduler=None):
    t0 = time.perf_counter()
    fit(model, loss, opt, X, y, epochs=epochs, batch_size=batch_size, seed=SEED,
        callbacks=[LRSchedulerStep(scheduler)] if scheduler is not None else None)
    acc = evaluate(model, loss, Xt, yt, batch_size=500).accuracy
    return acc, time.perf_counter() - t0


def nielsen(args) -> Row:
    """Nielsen's network: [784, 30, 10] sigmoid, N(0, 1/n_in) init, QuadraticLoss on one-hot targets,
    SGD lr 3.0, batch 10, 30 epochs."""
    X, y, Xt, yt = digits()
    X, Xt = X.reshape(-1, 784), Xt.reshape(-1, 784)
    onehot = np.eye(10, dtype=np.float32)
    cnn_core.manual_seed(SEED)
    model = mlp([784, 30, 10], "sigmoid", output_activation="sigmoid", init="normal", rng=SEED)
    loss = nn.QuadraticLoss()
    acc, sec = train_net(model, loss, optim.SGD(model.parameters(), lr=3.0), X, onehot[y], Xt, onehot[yt], 30, 10)
    return Row("MLP 784-30-10 sigmoid (Nielsen)", "embedded digits", 30, acc, sec, 0.94,
               "QuadraticLoss, one-hot, SGD lr 3.0, batch 10")


def adam_cosine_row(name: str, data: str, model, X, y, Xt, yt, epochs: int, batch_size: int,
                    target: float) -> Row:
    """The recipe shared by the LeNet-5 and RNN rows: CrossEntropyLoss, Adam lr 1e-3 with cosine decay to 0."""
    opt = optim.Adam(model.parameters(), lr=1e-3)
    acc, sec = train_net(model, nn.CrossEntropyLoss(), opt, X, y, Xt, yt, epochs, batch_size,
                         optim.CosineAnnealingLR(opt, T_max=epochs))
    return Row(name, data, epochs, acc, sec, target,
               f"CrossEntropyLoss, Adam lr 1e-3 cosine to 0, batch {batch_size}")


def lenet_digits(args) -> Row:
    X, y, Xt, yt = digits()
    cnn_core.manual_seed(SEED)
    return adam_cosine_row("LeNet-5 (ReLU, max pool)", "embedded digits", lenet5(rng=SEED), X, y, Xt, yt,
                           epochs=20, batch_size=32, target=0.98)


def lenet_fashion(args) -> Row | None:
    if not os.path.isdir(args.fashion):
        print(f"lenet5_fashion: skipped, no Fashion-MNIST at {args.fashion}")
        return None
    X, y = load_mnist(args.fashion, "train")
    Xt, yt = load_mnist(args.fashion, "test")
    cnn_core.manual_seed(SEED)
    return adam_cosine_row("LeNet-5 (ReLU, max pool)", "Fashion-MNIST", lenet5(rng=SEED), X, y, Xt, yt,
                           epochs=15, batch_size=64, target=0.895)


def rnn_rows(args) -> Row:
    X, y, Xt, yt = digits()
    cnn_core.manual_seed(SEED)
    return adam_cosine_row("RNNClassifier 28-128-10 (tanh), rows as steps", "embedded digits",
                           RNNClassifier(28, 128, 10, rng=SEED), X, y, Xt, yt, epochs=20, batch_size=32,
                           target=0.94)


def lstm_rows(args) -> Row:
    """The issue's LSTM row: the digits read row by row (28 steps of 28 pixels), hidden 128, Adam, 20 epochs
    (PyTorch's nn.LSTM with this recipe reaches 97.3% here)."""
    X, y, Xt, yt = digits()
    cnn_core.manual_seed(SEED)
    return adam_cosine_row("RNNClassifier 28-128-10 (LSTM), rows as steps", "embedded digits",
                           RNNClassifier(28, 128, 10, rng=SEED, cell="lstm"), X, y, Xt, yt, epochs=20,
                           batch_size=32, target=0.97)


def perceptron(args) -> Row:
    X, y, Xt, yt = digits()
    t0 = time.perf_counter()
    clf = Perceptron(max_epochs=10, random_state=SEED).fit(X.reshape(-1, 784), y)
    acc = clf.score(Xt.reshape(-1, 784), yt)
    return Row("Perceptron (primal, one-vs-rest)", "embedded digits", clf.n_iter_, acc, time.perf_counter() - t0,
               None, "eta 1.0, shuffled passes (digits are not separable: stops at max_epochs)")


def svm(args) -> Row:
    X, y, Xt, yt = digits()
    t0 = time.perf_counter()
    clf = LinearSVM(C=1.0, random_state=SEED).fit(X.reshape(-1, 784), y)
    acc = clf.score(Xt.reshape(-1, 784), yt)
    return Row("LinearSVM (hinge, one-vs-rest)", "embedded digits", clf.n_iter_, acc, time.perf_counter() - t0, None,
               f"C 1.0, lr {clf.lr}, batch {clf.batch_size}")


# ---- issue 11: a modern small CNN with augmentation, AdamW and 1cycle, beside PyTorch ----------------------

CNN_BATCH, CNN_MAX_LR, CNN_WEIGHT_DECAY = 128, 5e-3, 5e-2


def _rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process in MiB; ru_maxrss off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> bool:
    """Start VmHWM again from the current RSS (Linux >= 4.0); False where that is not possible, in which case
    the peak is the process's lifetime peak and the figure an upper bound."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _EpochReport(Callback):
    """Training seconds of each epoch (first batch's start to last batch's end, so the test evaluation is
    not counted) and the test accuracy after it, printed as they come."""

    def __init__(self, name: str, Xt, yt) -> None:
        self.name, self.Xt, self.yt = name, Xt, yt
        self.seconds, self.accuracy = [], []

    def on_epoch_begin(self, epoch, info):
        self._t0 = time.perf_counter()

    def on_batch_end(self, batch, logs):
        self._t1 = time.perf_counter()

    def on_epoch_end(self, epoch, logs):
        self.seconds.append(self._t1 - self._t0)
        self.accuracy.append(evaluate(self.model, nn.CrossEntropyLoss(), self.Xt, self.yt, batch_size=500).accuracy)
        print(f"{self.name}: epoch {epoch + 1}: train loss {logs['train_loss']:.4f}, test accuracy "
              f"{100 * self.accuracy[-1]:.2f}%, {self.seconds[-1]:.1f} s", flush=True)


def _augmented(X, y, seed: int) -> DataLoader:
    return DataLoader(X, y, batch_size=CNN_BATCH, shuffle=True, seed=seed,
                      transform=Compose([RandomCrop(28, padding=4), RandomHorizontalFlip()]))


def _torch_small_cnn(torch, resnet: bool):
    """The same networks in PyTorch, layer for layer (bias-free convs, BatchNorm2d, AdaptiveAvgPool2d(1))."""
    tnn = torch.nn

    def cbr(cin, cout, stride=1):
        return [tnn.Conv2d(cin, cout, 3, stride, 1, bias=False), tnn.BatchNorm2d(cout), tnn.ReLU()]

    head = [tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Dropout(0.2), tnn.Linear(128, 10)]
    if not resnet:
        return tnn.Sequential(*cbr(1, 32), tnn.MaxPool2d(2), *cbr(32, 64), *cbr(64, 64), tnn.MaxPool2d(2),
                              *cbr(64, 128), *cbr(128, 128), *head)

    class Basic(tnn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.block = tnn.Sequential(*cbr(cin, cout, 2), tnn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                        tnn.BatchNorm2d(cout))
            self.shortcut = tnn.Sequential(tnn.Conv2d(cin, cout, 1, 2, bias=False), tnn.BatchNorm2d(cout))

        def forward(self, x):
            return torch.relu(self.block(x) + self.shortcut(x))

    return tnn.Sequential(*cbr(1, 32), Basic(32, 64), Basic(64, 128), *head)


def _torch_figures(resnet: bool, X, y, Xt, yt, epochs: int):
    """(median epoch seconds, MiB training adds, test accuracy) for PyTorch, or None without torch."""
    try:
        import torch
    except ImportError:
        print("torch not installed: no PyTorch figures")
        return None
    torch.set_num_threads(cnn_core.get_num_threads())
    torch.manual_seed(SEED)
    model = _torch_small_cnn(torch, resnet)
    opt = torch.optim.AdamW(model.parameters(), lr=CNN_MAX_LR, weight_decay=CNN_WEIGHT_DECAY)
    loader = _augmented(X, y, SEED)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, CNN_MAX_LR, epochs=epochs, steps_per_epoch=len(loader))
    loss = torch.nn.CrossEntropyLoss()
    base = _rss_mib("VmRSS")
    _reset_peak_rss()
    seconds = []
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for xb, yb in loader:
            opt.zero_grad()
            loss(model(torch.from_numpy(xb)), torch.from_numpy(yb.astype(np.int64))).backward()
            opt.step()
            sched.step()
        seconds.append(time.perf_counter() - t0)
        print(f"  torch: epoch {epoch + 1}: {seconds[-1]:.1f} s", flush=True)
    added = _rss_mib("VmHWM") - base
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(torch.from_numpy(Xt[i:i + 1000])).argmax(1) for i in range(0, len(Xt), 1000)])
    return statistics.median(seconds), added, float((pred.numpy() == yt).mean())


def _small_cnn_row(args, resnet: bool) -> Row | None:
    name = "small_resnet" if resnet else "small_cnn"
    if not os.path.isdir(args.fashion):
        print(f"{name}: skipped, no Fashion-MNIST at {args.fashion}")
        return None
    X, y = load_mnist(args.fashion, "train")
    Xt, yt = load_mnist(args.fashion, "test")
    epochs = args.cnn_epochs
    cnn_core.manual_seed(SEED)
    model = (small_resnet if resnet else small_cnn)(rng=SEED)
    opt = optim.AdamW(model.parameters(), lr=CNN_MAX_LR, weight_decay=CNN_WEIGHT_DECAY)
    loader = _augmented(X, y, SEED)
    sched = optim.OneCycleLR(opt, CNN_MAX_LR, epochs=epochs, steps_per_epoch=len(loader))
    report = _EpochReport(name, Xt, yt)
    base = _rss_mib("VmRSS")
    exact = _reset_peak_rss()
    t0 = time.perf_counter()
    fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=epochs,
        callbacks=[LRSchedulerStep(sched, interval="batch"), report])
    seconds = time.perf_counter() - t0
    added = _rss_mib("VmHWM") - base
    epoch_s = statistics.median(report.seconds)
    print(f"{name}: cnn_core: median epoch {epoch_s:.1f} s, training adds {added:.0f} MiB"
          f"{'' if exact else ' (lifetime peak: an upper bound)'}", flush=True)
    peer = ""
    theirs = _torch_figures(resnet, X, y, Xt, yt, args.torch_epochs) if args.torch_epochs else None
    if theirs is not None:
        t_s, t_mib, t_acc = theirs
        print(f"{name}: torch: median epoch {t_s:.1f} s, training adds {t_mib:.0f} MiB, test accuracy "
              f"{100 * t_acc:.2f}% after {args.torch_epochs} epoch(s) of a {args.torch_epochs}-epoch 1cycle; "
              f"epoch time ratio cnn_core/torch {epoch_s / t_s:.2f}", flush=True)
        peer = f"; PyTorch {t_s:.0f} s/epoch, +{t_mib:.0f} MiB"
    what = "ResNet-style (2 basic blocks)" if resnet else "32-64-128x2 conv-BN-ReLU"
    return Row(f"{name} ({what}, GAP)", "Fashion-MNIST", epochs, report.accuracy[-1], seconds,
               None if resnet else 0.93,
               f"crop 4 + flip, AdamW wd {CNN_WEIGHT_DECAY} + OneCycleLR max {CNN_MAX_LR}, batch {CNN_BATCH}; "
               f"{epoch_s:.0f} s/epoch, +{added:.0f} MiB{peer}")


def small_cnn_row(args) -> Row | None:
    return _small_cnn_row(args, resnet=False)


def small_resnet_row(args) -> Row | None:
    return _small_cnn_row(args, resnet=True)


ROWS = {"nielsen": nielsen, "lenet5": lenet_digits, "lenet5_fashion": lenet_fashion, "rnn": rnn_rows,
        "lstm": lstm_rows, "perceptron": perceptron, "svm": svm, "small_cnn": small_cnn_row,
        "small_resnet": small_resnet_row}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    ap.add_argument("--fashion", default=FASHION, help="Fashion-MNIST directory")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cnn-epochs", type=int, default=15, choices=range(1, 16), metavar="1..15",
                    help="epochs of the small_cnn/small_resnet rows (1cycle over that many; the target is for 15)")
    ap.add_argument("--torch-epochs", type=int, default=1, help="PyTorch epochs timed per CNN row (0: none)")
    args = ap.parse_args(argv)
    names = args.rows.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        ap.error(f"--rows: unknown {unknown}; choose from {list(ROWS)}")
    cnn_core.set_num_threads(args.threads)
    print(_timing.machine())
    print(f"cnn_core {cnn_core.__version__}, {cnn_core.get_num_threads()} threads, seed {SEED}", flush=True)
    rows = []
    for name in names:
        row = ROWS[name](args)
        if row is not None:
            print(f"{name}: test accuracy {100 * row.accuracy:.2f}% in {row.seconds:.1f} s", flush=True)
            rows.append(row)
    print("\n| model | data | epochs | test accuracy | seconds | target | settings |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(row.line())
    return 0 if all(r.met for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
